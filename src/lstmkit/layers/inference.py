"""``lk.inference()``: forwards that keep nothing for a backward. Training needs every step's gates and states for
BPTT (7·H numbers per step, layer and direction); a forward that will never be backpropagated needs only the
state the next step reads. Inside the block, a recurrent layer in eval mode runs a long sequence a chunk of
``CHUNK`` steps at a time — the whole stack on one chunk, then the next, each layer's state carried — so its
memory is its output plus one chunk's buffers, whatever T is. The outputs are those of one whole pass::

    model.eval()
    with lk.inference():
        y = model.forward(x)          # x (B, 100000, I): grows by about y's size, not 15x it

``predict`` and ``evaluate`` run inside it. A ``backward`` after such a forward is an error (nothing was kept),
never a wrong gradient. Bidirectional layers and layers in training mode run whole, as outside the block.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

CHUNK = 512                     # steps per chunk: its buffers (B · CHUNK · ~8H numbers) stay small beside y
_state = threading.local()


@contextlib.contextmanager
def inference() -> Iterator[None]:
    """Inside the block (on this thread), eval-mode recurrent forwards keep nothing for a backward."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth


def active() -> bool:
    """Whether this thread is inside ``inference()``."""
    return getattr(_state, "depth", 0) > 0


def chunked(layer: Any, T: int) -> bool:
    """Whether ``layer``'s forward over T steps runs a chunk at a time: inside ``inference()``, in eval mode, one
    direction, more than one chunk of steps."""
    return active() and not layer.training and layer.num_directions == 1 and T > CHUNK


def forward_in_chunks(layer: Any, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, lengths: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``layer._whole`` over x (B, T, I) a chunk at a time -> (y (B, T, h), h_n, c_n), the state carried from chunk
    to chunk; sequences that ended (``lengths``) leave the batch, their final state kept. No record is left."""
    B, T, _ = x.shape
    y = np.zeros((B, T, layer.output_size), layer.dtype)
    h = h0.copy()
    c = None if c0 is None else c0.copy()
    for a in range(0, T, CHUNK):
        b = min(T, a + CHUNK)
        live: Any = slice(None) if lengths is None else np.flatnonzero(lengths > a)
        if lengths is not None and live.size == 0:
            break
        steps = None if lengths is None else np.minimum(lengths[live] - a, b - a)
        y_c, h_c, c_c = layer._whole(x[live, a:b], h[:, live], None if c is None else c[:, live], steps)
        y[live, a:b] = y_c
        h[:, live] = h_c
        if c is not None:
            c[:, live] = c_c
    layer.release()                                         # (the last chunk's record, too)
    return y, h, c
