"""What the applications' ``train`` functions share: opening a run folder, the held-out split, the budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import dataset
from ..runs import RunError, check_run_dir

DEFAULT_EPOCHS = 10


def open_run(out: Path, resume: bool, run_meta: Callable[[Path], dict[str, Any]]) -> dict[str, Any] | None:
    """The header of the run in ``out`` to continue (``resume``; read and checked by the app's ``run_meta``),
    or None for a new run; a new run never starts over an old one."""
    latest = check_run_dir(out, resume)
    return None if latest is None else run_meta(latest)


def holdout(n: int, fraction: float, seed: int, source: Any, items: str) -> tuple[np.ndarray, np.ndarray]:
    """``lstmkit.data.dataset.holdout`` with a RunError (the command line's one-line error) when too few."""
    return dataset.holdout(n, fraction, seed, source, items, RunError)


def budget(epochs: int | None, steps: int | None, minutes: float | None, steps_per_epoch: int = 1,
           min_steps: int = 0) -> int | None:
    """``epochs``, or when no budget at all is given the default of 10 passes — or more passes if those
    are fewer than ``min_steps`` steps (an app whose sets may be a few dozen samples, one step a pass)."""
    if epochs is None and steps is None and minutes is None:
        return max(DEFAULT_EPOCHS, -(-min_steps // max(1, steps_per_epoch)))
    return epochs
