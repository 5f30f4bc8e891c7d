"""The bridge from the recurrent frame to the compiled core (``lstmkit.compiled``): the same buffers and the
same ``ScanRecord`` as the NumPy kernels of ``recurrent.py``, filled by the C scans.

A kernel that the core can run names itself with ``Kernel.native = (gate blocks, activation)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from .. import compiled
from ..workspace import Workspace
from .scan import Kernel, ScanGrads, ScanRecord

R = TypeVar("R")


def runs(kernel: Kernel) -> bool:
    """Whether this kernel's scans run compiled: its kind is native and the core is active (every shape: small
    batches take the core's matrix-vector steps, ``compiled.direct``)."""
    return kernel.native is not None and compiled.active()


def one_thread(fn: Callable[[int], R], d: int) -> R:
    """``fn(d)`` with this thread's compiled scans held to one thread (two directions running side by side)."""
    with compiled.threads_held(1):
        return fn(d)


def fuses_input(kernel: Kernel, B: int, H: int) -> bool:
    """Whether the compiled scan forms W_ih x_t itself (LSTM, Elman: the x and h products of a gate are summed;
    GRU keeps W_in x_t apart from r ⊙ W_hn h, so its input projection stays one GEMM before the scan). Not for
    batches of matrix-vector steps (``compiled.direct``), where one GEMM over all steps measured faster (LSTM
    1,28,65,1000: 3.6-4.5 ms against 4.7-6.3 for the forward scan)."""
    return kernel.native is not None and kernel.native[0] != 3 and not compiled.direct(B, H)


def forward(kernel: Kernel, xproj: np.ndarray, w_t: np.ndarray, b_loop: np.ndarray | None, h0: np.ndarray,
            c0: np.ndarray | None, ws: Workspace, prescaled: bool, bias: np.ndarray | None,
            x: np.ndarray | None = None, w_ih: np.ndarray | None = None, y: np.ndarray | None = None
            ) -> ScanRecord:
    """As ``kernel.forward``, but xproj (T, B, G·H) = W_ih x_t without biases: the scan adds ``bias`` (G·H,) as
    it goes; with ``y`` (T, B, H) (a view of the layer's (B, T, H) output) h_1..h_T are written there too.
    With ``x`` (T, B, I) and ``w_ih`` (G·H, I) instead (``fuses_input``), the scan forms W_ih x_t itself
    and xproj is only written. xproj becomes the gates; returns the record (hs, cs, tanh c, W_hn h + b)."""
    gates, act = kernel.native
    T, B, GH = xproj.shape
    H = GH // gates
    dt = xproj.dtype
    hs = ws.empty("hs", (T + 1, B, H), dt)
    hs[0] = h0
    cs = tcs = aux = None
    if kernel.has_cell:
        cs, tcs = ws.empty("cs", (T + 1, B, H), dt), ws.empty("tanh_cs", (T, B, H), dt)
        cs[0] = c0
    if gates == 3:
        aux = ws.empty("hp_n", (T, B, H), dt)
        b_loop = None if b_loop is None else np.ascontiguousarray(b_loop, dt)
    bias = np.zeros(GH, dt) if bias is None else np.ascontiguousarray(bias, dt)
    if x is not None:
        x, w_ih = np.ascontiguousarray(x, dt), np.ascontiguousarray(w_ih, dt)
    compiled.scan_forward(gates, act, xproj, w_t, bias, b_loop, hs, cs, tcs, aux, prescaled, x, w_ih, y)
    if gates == 1:
        return ScanRecord(hs)
    return ScanRecord(hs, xproj, cs, {"tanh_c": tcs} if kernel.has_cell else {"hproj_n": aux})


def backward(kernel: Kernel, record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict,
             ws: Workspace, w_ih: np.ndarray, dinp: np.ndarray) -> ScanGrads:
    """As ``kernel.backward``: the pre-activations' gradients (T, B, G·H), the initial state's, and the biases';
    the input's gradient dinp (T, B, I) = dxp_t · W_ih is formed in the same scan, step by step. dhs and dinp
    may be time-major views of (B, T, ·) arrays."""
    gates, act = kernel.native
    T, B, H = dhs.shape
    dt = record.hs.dtype
    dxp = ws.empty("dpre", (T, B, gates * H), dt)
    dhp = ws.empty("dhp", (T, B, gates * H), dt) if gates == 3 else dxp
    acts = record.gates if record.gates is not None else dxp         # Elman keeps no gates (unused by the core)
    dh0, dc0, db_x, db_h = compiled.scan_backward(gates, act, acts, record.hs, record.cs, record.aux.get("tanh_c"),
                                                  record.aux.get("hproj_n"), w_hh, dhs, inject, dxp, dhp, w_ih,
                                                  dinp)
    return ScanGrads(dxp, dhp, dh0, dc0, bias=(db_x, db_h))
