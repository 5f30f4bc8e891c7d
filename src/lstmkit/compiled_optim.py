"""The compiled core's optimizer update (``_core/optim.c``): Adam's and AdamW's arithmetic in one pass over a
parameter's memory, operation for operation as ``optim._adam_update`` (the readable reference, which runs when the
core is off). ``optim.Optimizer.step`` already splits the parameters over two threads; each call runs on its own.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import compiled
from ._boundary import Adam


def usable(*arrays: np.ndarray | None) -> bool:
    """Whether the core can update these arrays: it is on, and they are C-contiguous float32 or float64 alike."""
    first = arrays[0]
    return (first is not None and first.dtype in (np.float32, np.float64) and compiled.active()
            and all(a is None or (a.dtype == first.dtype and a.flags.c_contiguous) for a in arrays))


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, vmax: np.ndarray | None, decay: float,
                l2: float, b1: float, b2: float, eps: float, step_size: float, bc2_sqrt: float) -> None:
    """θ ·= decay; g' = g + l2·θ; m, v (and vmax) updated; θ −= step_size · m / (sqrt(v) / bc2_sqrt + eps): p, m,
    v, vmax in place (all of p's shape and dtype, contiguous: ``usable``)."""
    compiled._load().lk_adam(ctypes.byref(Adam(
        f64=int(p.dtype == np.float64), n=p.size, p=p.ctypes.data, g=g.ctypes.data, m=m.ctypes.data,
        v=v.ctypes.data, vmax=None if vmax is None else vmax.ctypes.data, decay=decay, l2=l2, b1=b1, b2=b2,
        eps=eps, step_size=step_size, bc2_sqrt=bc2_sqrt)))
