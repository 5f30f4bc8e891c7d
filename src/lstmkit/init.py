"""Weight initialisers. Each returns a new array of the given shape and dtype."""

from __future__ import annotations

import math

import numpy as np

from .random import get_rng


def uniform(shape: tuple[int, ...], bound: float, dtype: str | np.dtype = "float32",
            rng: np.random.Generator | None = None) -> np.ndarray:
    """U(-bound, bound); PyTorch's default for Linear and RNN layers with bound 1/sqrt(fan)."""
    return get_rng(rng).uniform(-bound, bound, size=shape).astype(dtype)


def glorot_uniform(shape: tuple[int, ...], dtype: str | np.dtype = "float32",
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Glorot/Xavier uniform for a (fan_out, fan_in) matrix."""
    fan_out, fan_in = shape[0], int(np.prod(shape[1:]))
    return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)), dtype, rng)


def orthogonal(shape: tuple[int, int], gain: float = 1.0, dtype: str | np.dtype = "float32",
               rng: np.random.Generator | None = None) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (QR of a Gaussian)."""
    rows, cols = shape
    a = get_rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).astype(dtype)
