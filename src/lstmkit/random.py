"""The one random generator that every random choice goes through.

``lstmkit.manual_seed(seed)`` reseeds it; layers that draw (initialisers,
dropout) take an optional ``rng`` and fall back to this one.
"""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator and return it."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """``rng`` if given, else the global generator."""
    return _rng if rng is None else rng
