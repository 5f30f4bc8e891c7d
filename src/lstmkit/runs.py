"""A run folder: ``latest.npz`` (everything needed to continue), ``best.npz`` (the best weights so far),
``history.csv`` and plots.

One place decides whether a folder may start a run, which checkpoint continues one and
which file a finished run is read from; every application, ``fit`` and the CLI ask here.
A run being trained is locked (``lock_run``): a second training on it is refused with
the process that holds it, so two never overwrite each other's checkpoints.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .distributed import launch_rank

LATEST = "latest.npz"
BEST = "best.npz"
LOCK = "lock"
_HELD: dict[Path, tuple[int, Path | None]] = {}   # run folder -> (its lock file, the first folder we made for it)


class RunError(ValueError):
    """A run directory or option that cannot be used; the message names the path and the problem."""


def check_run_dir(out: str | Path, resume: bool, where: str = "--out", how: str = "",
                  required: bool = True) -> Path | None:
    """Before training in ``out``: the ``latest.npz`` to continue from (``resume``), or None for a new run.

    A file where the folder should be, a new run over an old one, a folder with a best.npz but no
    latest.npz, and a run another process is training raise RunError; ``where`` names the option that
    chose ``out`` and ``how`` says how to continue (default "continue it with --resume OUT"). With
    ``resume`` and nothing to continue, CheckpointError if ``required``, else None (a new run starts).
    The folder is locked for this process (rank 0 of an MPI launch) until ``release_run``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a directory; {where} needs a directory for the run")
    locked = launch_rank() == 0 and lock_run(out)
    try:
        return _check_run(out, resume, where, how, required)
    except Exception:
        if locked:
            release_run(out)
        raise


def _check_run(out: Path, resume: bool, where: str, how: str, required: bool) -> Path | None:
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


def lock_run(out: str | Path) -> bool:
    """Mark the run folder ``out`` (created if needed) as in use by this process, until ``release_run`` or
    the process ends. Held by another live process: RunError naming it. The lock is an advisory
    ``flock`` on ``out/lock``, a file holding the holder's PID, host and command; the kernel drops it
    when its process dies, so a crashed run's lock is taken over, and ``release_run`` deletes it.
    Returns whether it was newly taken (taking it again in one process is a no-op).
    """
    given, out = Path(out), Path(out).resolve()
    if out in _HELD:
        return False
    missing = [p for p in (out, *out.parents) if not p.exists()]
    made = missing[-1] if missing else None
    out.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            _remove_empty(out, made)
            pid, _, rest = holder.partition(" ")
            raise RunError(f"{given}: in use by process {pid} ({rest}); wait for it to finish or stop it, or "
                           "choose another run directory") from None
        try:                             # still the file at that name (not one its holder deleted meanwhile)?
            if os.stat(out / LOCK).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}: {command}\n".encode(), 0)
    _HELD[out] = fd, made
    return True


def release_run(out: str | Path | None = None) -> None:
    """Give up this process's lock on ``out`` (every lock it holds when None); the lock file goes."""
    for path in [Path(out).resolve()] if out is not None else list(_HELD):
        held = _HELD.pop(path, None)
        if held is not None:
            fd, made = held
            (path / LOCK).unlink(missing_ok=True)        # (still holding it, so nobody took it meanwhile)
            os.close(fd)
            _remove_empty(path, made)


def _remove_empty(out: Path, made: Path | None) -> None:
    """The folders made for a run that never used them go again."""
    if made is None or any(p.name != LOCK for p in out.iterdir()):
        return
    (out / LOCK).unlink(missing_ok=True)
    for p in (out, *out.parents):
        p.rmdir()
        if p == made:
            break
