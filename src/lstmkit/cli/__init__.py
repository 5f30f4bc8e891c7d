"""``lstmkit <app> <command>``: the command-line applications, one module each.

    lstmkit charlm train --text my.txt --out runs/my --minutes 30      (cli/charlm.py)
    lstmkit video train data/moving --out runs/video --epochs 10        (cli/video.py)
    lstmkit ctc train data/strips --out runs/ctc --minutes 15           (cli/ctc.py)
    lstmkit tree train data/bool --out runs/bool --cell slstm           (cli/tree.py)
    lstmkit model summary mine.npz --input-shape 20,8                   (cli/model.py)
    lstmkit info                                                        (cli/info.py)

Every module has the same shape: ``add_parser(apps)`` adds its sub-commands and
``run(args) -> exit status`` carries one out. Bad input (a missing, empty, binary or
too-short file, a missing or damaged checkpoint, a vocabulary that does not match)
prints one line naming the file and the problem and exits with status 2; nothing is
overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

from ..checkpoint import CheckpointError
from ..compiled import SimdError
from ..data.speech import AudioError
from ..data.strips import StripError
from ..data.text import TextError
from ..data.transcribed import TranscriptError
from ..data.trees import TreeError
from ..data.video import VideoError
from ..distributed import DistributedError, launched, world
from ..inspect import InspectError
from ..runs import RunError, release_run
from . import charlm, ctc, info, model, tree, video
from .charlm import pretrained_path
from .common import fail

APPS = {"charlm": charlm, "video": video, "ctc": ctc, "tree": tree, "model": model, "info": info}
# What bad input raises, anywhere below: one line on stderr and exit 2, never a traceback.
BAD_INPUT = (TextError, CheckpointError, RunError, VideoError, StripError, TreeError, InspectError, DistributedError,
             SimdError, TranscriptError, AudioError)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lstmkit", description="lstmkit applications")
    apps = p.add_subparsers(dest="app", required=True, metavar="APP")
    for app in APPS.values():
        app.add_parser(apps)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if launched():                         # under mpirun: rank 0 speaks for the job, the others stay quiet
        try:
            rank = world().rank
        except DistributedError as e:
            return fail(str(e))
        if rank and getattr(args, "cmd", None) != "train":
            return 0                       # only training is data-parallel: anything else runs once, on rank 0
        if rank:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                return _dispatch(args)
    return _dispatch(args)


def _plain_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"lstmkit: warning: {message}\n"


def _dispatch(args: argparse.Namespace) -> int:
    shown, warnings.formatwarning = warnings.formatwarning, _plain_warning   # one plain line, no source line
    try:
        return APPS[args.app].run(args)
    except BAD_INPUT as e:
        return fail(str(e))
    except BrokenPipeError:                # `lstmkit ... | head`: the reader left; stop quietly, as cat would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:                   # e.g. an unwritable --out: name the path, no traceback
        return fail(f"{e.filename or ''}: {e.strerror or e}")
    finally:
        release_run()                      # the run folders this command trained in are free again
        warnings.formatwarning = shown


__all__ = ["main", "parser", "pretrained_path"]
