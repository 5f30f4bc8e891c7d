"""Weight initialisers. Each returns a new array of the given shape and dtype."""

from __future__ import annotations

import numpy as np

from .random import get_rng


def uniform(shape: tuple[int, ...], bound: float, dtype: str | np.dtype = "float32",
            rng: np.random.Generator | None = None) -> np.ndarray:
    """U(-bound, bound); PyTorch's default for Linear and RNN layers with bound 1/sqrt(fan)."""
    return get_rng(rng).uniform(-bound, bound, size=shape).astype(dtype)
