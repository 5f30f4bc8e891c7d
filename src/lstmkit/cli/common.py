"""What every application's command line shares: run options, exit codes, the end-of-training message."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..runs import RunError

EXIT_BAD_INPUT = 2
EXIT_NAN = 3
EXIT_INTERRUPTED = 130


def run_options(p: argparse.ArgumentParser, default_out: str, items: str, default_budget: str = "10 epochs") -> None:
    """The options every application's ``train`` shares: where the run lives, its budget, the progress bar."""
    p.add_argument("--out", help=f"run folder (default {default_out})")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder where it stopped")
    p.add_argument("--epochs", type=int, help=f"budget in passes over the training {items} (with no budget given: "
                   f"{default_budget})")
    p.add_argument("--steps", type=int, help="budget in optimizer steps")
    p.add_argument("--minutes", type=float, help="budget in wall-clock minutes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# One option that shapes a run: (name, int / float / "flag" / a list of choices, help). The help gets the
# config's default appended unless it states one itself or the default is None.
Shaping = tuple[str, Any, str]


def shaping_options(p: argparse.ArgumentParser, defaults: Any, spec: list[Shaping],
                    title: str = "model and optimisation (fixed when a run starts)") -> None:
    """Add a ``train`` command's run-shaping options (fixed when a run starts; ``--resume`` refuses them)."""
    g = p.add_argument_group(title)
    for name, kind, text in spec:
        flag, default = "--" + name.replace("_", "-"), getattr(defaults, name, None)
        shown = text if default is None or "(default" in text else f"{text} (default {default})"
        if kind == "flag":
            g.add_argument(flag, action="store_true", default=None, help=text)
        elif isinstance(kind, (list, tuple)):
            g.add_argument(flag, choices=list(kind), help=shown)
        else:
            g.add_argument(flag, type=kind, help=shown)


def shaping_names(spec: list[Shaping]) -> tuple[str, ...]:
    return tuple(name for name, _, _ in spec)


def add_run(p: argparse.ArgumentParser) -> None:
    """The positional RUN of the commands that use a trained run."""
    p.add_argument("run", help="run folder (or its best.npz)")


def fixed_settings(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The run-shaping options given; with --resume (where the run keeps its own) any of them is an error."""
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    data = getattr(args, "data", None)
    if args.resume and (given or data):
        flags = [f"--{k.replace('_', '-')}" for k in given] + (["DATA"] if data else [])
        raise RunError(f"{args.resume}: {', '.join(flags)} cannot change when resuming (the run keeps the "
                          "settings it started with)")
    return given


def new_or_resumed(args: argparse.Namespace, shaping: tuple[str, ...], config: Callable[..., Any],
                   default_out: str, need: str) -> tuple[Path, Any]:
    """(run folder, new config) for ``train DATA [options]``, or (folder, None) for ``train --resume RUN``."""
    given = fixed_settings(args, shaping)
    if args.resume:
        return Path(args.resume), None
    if not args.data:
        raise RunError(f"give {need} or --resume RUN")
    out = Path(args.out or default_out)
    return out, config(data=str(Path(args.data).resolve()), **given)


def end_of_training(app: str, reason: str, out: Path, summary: str, at: str = "", knobs: str = "--lr") -> int:
    """What every ``train`` command says and returns when the loop ends: exit 3 after a non-finite loss (the
    last good checkpoint kept), 130 after Ctrl-C (with how to resume), else 0; ``summary`` otherwise."""
    if reason == "nan":
        last = out / "latest.npz"
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint had been written yet"
        return fail(f"the loss became non-finite (nan/inf){at}; training stopped and {kept} (try a lower {knobs})",
                     EXIT_NAN)
    print(summary, file=sys.stderr)
    if reason == "interrupted":
        print(f"stopped by Ctrl-C; continue with: lstmkit {app} train --resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"lstmkit: error: {msg}", file=sys.stderr)
    return code


def print_each(results: Iterable[Any], line: Callable[[Any], str]) -> int:
    """``line(result)`` on stdout for each result, one error line for each that is an exception (naming its
    input); exit status 2 if any was, so the good inputs of a command are answered all the same."""
    status = 0
    for r in results:
        if isinstance(r, Exception):
            status = fail(str(r))
        else:
            print(line(r), flush=True)
    return status
