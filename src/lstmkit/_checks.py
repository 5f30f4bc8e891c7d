"""Input validation shared by every public entry point.

Errors name the layer, what was expected and what came, so a user can fix the
call without reading our code.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def check_dtype_name(owner: str, dtype: str | np.dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.name not in FLOAT_DTYPES:
        raise ValueError(f"{owner}: dtype must be 'float32' or 'float64', got {dt.name!r}")
    return dt


def check_float_input(owner: str, x: np.ndarray, dtype: np.dtype, ndim: int | tuple[int, ...],
                      what: str, last: int | None = None) -> np.ndarray:
    """Check rank, last-axis size, dtype kind and finiteness; return ``x`` cast to ``dtype``.

    Args:
        owner: the layer's name for messages, e.g. ``"LSTM"``.
        x: the input.
        ndim: accepted rank(s).
        what: a description of the expected shape, e.g. ``"(B, T, 128)"``.
        last: required size of the last axis, or None.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in ndims:
        raise ValueError(f"{owner}: expected input of shape {what}, got shape {x.shape} (rank {x.ndim})")
    if last is not None and x.shape[-1] != last:
        raise ValueError(f"{owner}: expected input of shape {what}, got shape {x.shape} "
                         f"(last axis {x.shape[-1]} != {last})")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{owner}: expected a floating-point input, got dtype {x.dtype}")
    check_finite(owner, x, "input")
    return x.astype(dtype, copy=False)


def check_finite(owner: str, x: np.ndarray, what: str) -> None:
    """Raise if ``x`` holds NaN or inf. One sum in x's own precision first: cheap, and NaN/inf propagate (a sum
    that overflows on finite values only costs the exact count)."""
    if x.size and not np.isfinite(x.sum()):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise ValueError(f"{owner}: {what} contains {bad} NaN or infinite value(s); expected finite numbers")


def class_indices(owner: str, target: np.ndarray, logits_shape: tuple[int, ...]) -> np.ndarray:
    """A float target of the logits' shape without the class axis holds class indices (as Keras takes them): whole
    numbers become int64; anything else is refused, naming what was expected. Other targets pass as they are."""
    if np.issubdtype(target.dtype, np.integer) or target.shape != logits_shape[:-1] or not target.size:
        return target
    if not np.issubdtype(target.dtype, np.floating) and target.dtype != bool:
        raise ValueError(f"{owner}: class indices must be integers, got dtype {target.dtype}")
    whole = np.isfinite(target) & (target == np.round(target)) if target.dtype != bool else np.ones(target.shape, bool)
    if not whole.all():
        example = target[~whole].flat[0].item()
        raise ValueError(f"{owner}: a target of shape {target.shape} holds class indices, which must be "
                         f"integers; got values such as {example!r} (for class probabilities, give the logits' "
                         f"shape {logits_shape})")
    return target.astype(np.int64)
