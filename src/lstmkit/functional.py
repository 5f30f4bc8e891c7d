"""Stateless maths shared by the layers.

Everything here is plain NumPy on whole arrays (no Python loops over
elements), so the hot paths stay swappable for CuPy later.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x)), any shape.

    ``exp(-x)`` overflows to ``inf`` for very negative ``x``; ``1 / inf`` is the
    correct limit 0, so the overflow is silenced rather than clipped (clipping
    would change values in float64 gradient checks).
    """
    with np.errstate(over="ignore"):
        out = np.negative(x, out=out)
        np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
    return out


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Hyperbolic tangent, any shape."""
    return np.tanh(x, out=out)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), any shape."""
    return np.maximum(x, 0)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``, shifted by the max for stability."""
    z = x - x.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) along ``axis`` without forming the softmax."""
    z = x - x.max(axis=axis, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: np.dtype) -> np.ndarray:
    """Inverted-dropout mask of ``shape``: 0 with probability ``p``, else 1/(1 − p).

    Draws 16-bit integers and keeps those at or above p·2¹⁶ (rounded): ``p`` is met to within 2⁻¹⁷, and a mask
    of a million entries takes ~1.8 ms instead of ~6.6 with float32 uniforms (a char-LM step draws two).
    """
    cut = min(round(p * 65536), 65535)
    keep = rng.integers(0, 65536, size=shape, dtype=np.uint16) >= cut
    return np.multiply(keep, 1.0 / (1.0 - p), dtype=dtype)


def reverse_index(lengths: np.ndarray, T: int) -> np.ndarray:
    """(T, B) time indices that reverse each sequence within its own length.

    Entry [t, b] is ``lengths[b] − 1 − t`` for t < lengths[b] and t otherwise
    (padding stays where it is). The mapping is its own inverse.
    """
    t = np.arange(T)[:, None]
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
