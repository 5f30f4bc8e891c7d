"""Decoding: sampling from logits with temperature and top-k (CTC decoders will join them)."""

from __future__ import annotations

import numpy as np


def sample_logits(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                  top_k: int | None = None) -> np.ndarray:
    """Draw one index per row of ``logits`` (..., V) -> (...) int64.

    ``temperature`` divides the logits (0 means greedy argmax); ``top_k`` keeps
    only the k most likely classes. The same generator state gives the same draw.
    """
    logits = np.asarray(logits, dtype=np.float64)
    V = logits.shape[-1]
    if temperature < 0:
        raise ValueError(f"sample_logits: temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k:
        raise ValueError(f"sample_logits: top_k must be >= 1, got {top_k}")
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits / temperature
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=-1)[..., V - top_k, None]
        z = np.where(z >= kth, z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(logits.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((cdf < u).sum(axis=-1), V - 1).astype(np.int64)
