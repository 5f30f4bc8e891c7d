"""A run folder: ``latest.npz`` (everything needed to continue), ``best.npz`` (the best weights so far),
``history.csv`` and plots.

One place decides whether a folder may start a run, which checkpoint continues one and
which file a finished run is read from; every application, ``fit`` and the CLI ask here.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointError

LATEST = "latest.npz"
BEST = "best.npz"


class RunError(ValueError):
    """A run directory or option that cannot be used; the message names the path and the problem."""


def check_run_dir(out: str | Path, resume: bool, where: str = "--out", how: str = "",
                  required: bool = True) -> Path | None:
    """Before training in ``out``: the ``latest.npz`` to continue from (``resume``), or None for a new run.

    A file where the folder should be, a new run over an old one, and a folder with a best.npz but no
    latest.npz raise RunError; ``where`` names the option that chose ``out`` and ``how`` says how to
    continue (default "continue it with --resume OUT"). With ``resume`` and nothing to continue,
    CheckpointError if ``required``, else None (a new run starts).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a directory; {where} needs a directory for the run")
    latest = out / LATEST
    if not latest.is_file():
        if (out / BEST).exists():
            raise RunError(f"{out}: holds a {BEST} but no {LATEST} to continue from; choose another {where}")
        if resume and required:
            raise CheckpointError(f"{latest}: no checkpoint to resume from")
        return None
    if not resume:
        raise RunError(f"{out}: already holds a run; {how or f'continue it with --resume {out}'} or choose a new "
                       f"{where}")
    return latest


def run_file(run: str | Path) -> Path:
    """The checkpoint to read for a run: the file itself, else the folder's best.npz, else its latest.npz.

    A folder with neither raises CheckpointError; a path that does not exist is returned as it is
    (the reader then names it as missing).
    """
    run = Path(run)
    if not run.is_dir():
        return run
    found = [p for p in (run / BEST, run / LATEST) if p.is_file()]
    if not found:
        raise CheckpointError(f"{run}: no {BEST} or {LATEST} in this run directory")
    return found[0]
