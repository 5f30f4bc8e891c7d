"""Scratch arrays reused across calls.

Writing to freshly allocated memory costs a page fault per 4 KiB page (about
10 µs each here); on a (64, 100, 1024) float32 buffer that is ~10 ms, comparable
to a GEMM. Layers therefore keep their sequence-sized buffers between calls.
The forward cache points into these buffers, which is safe because a layer's
``backward`` always belongs to its most recent ``forward``. Arrays handed back
to the user are never workspace buffers.
"""

from __future__ import annotations

import numpy as np

ALIGN = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """np.empty whose data starts on a 64-byte boundary (a cache line; what the compiled core's whole-vector and
    streaming stores need: NumPy itself only promises 16)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(n * dt.itemsize + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + n * dt.itemsize].view(dt).reshape(shape)


class Workspace:
    """Named arrays, re-created only when the requested shape or dtype changes."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape or np.dtype(buf.dtype) != np.dtype(dtype):
            buf = self._bufs[name] = aligned_empty(shape, dtype)
        return buf

    def zeros(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        buf = self.empty(name, shape, dtype)
        buf.fill(0)
        return buf
