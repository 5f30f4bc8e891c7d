r"""Zoneout (Krueger et al. 2016) around any kind's scan: each unit of the state keeps its previous value with
probability p, a fresh draw d ∈ {0, 1} per step, sequence and unit:

    h_t = d_t ⊙ h_{t−1} + (1 − d_t) ⊙ h̃_t,      c_t = d^c_t ⊙ c_{t−1} + (1 − d^c_t) ⊙ c̃_t

where h̃_t, c̃_t are what the kind's step makes of (x_t, h_{t−1}, c_{t−1}). In eval mode d is p itself (the
expectation). Backward: dL/dh_t reaches h̃_t as ⊙ (1 − d) and h_{t−1} directly as ⊙ d (c alike).

The compiled core does this inside its scans (``_core/scan.h``, zone_row). Here, the NumPy reference: the kind's
own NumPy scan and backward, one step at a time (T = 1 each), with the mixing between steps — slow, but any kind
gets it without a line of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..workspace import Workspace
from .scan import Kernel, ScanGrads, ScanRecord, add_final_grads


class Zone(NamedTuple):
    """One direction's zoneout: the drawn d for h and for c, (T, B, units) each, or None in eval mode, where d is
    p_h, p_c; p_c is 0 (and c None) without zoneout on the cell."""

    h: np.ndarray | None
    c: np.ndarray | None
    p_h: float
    p_c: float

    def d(self, t: int) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Step t's (d for h, d for c)."""
        return (self.p_h if self.h is None else self.h[t]), (self.p_c if self.c is None else self.c[t])


def draw(rng: np.random.Generator | None, T: int, B: int, h: int, c: int | None, p_h: float, p_c: float,
         dtype: np.dtype) -> Zone | None:
    """Zoneout's masks for one scan of T steps (training: a generator) or its eval form (rng None); None when off."""
    if not (p_h or p_c):
        return None
    if rng is None:
        return Zone(None, None, p_h, p_c)
    return Zone((rng.random((T, B, h), dtype=np.float32) < p_h).astype(dtype),
                None if c is None else (rng.random((T, B, c), dtype=np.float32) < p_c).astype(dtype), p_h, p_c)


def forward(scan: Callable[[np.ndarray, np.ndarray, np.ndarray | None, Workspace], ScanRecord], inp: np.ndarray,
            h0: np.ndarray, c0: np.ndarray | None, zone: Zone) -> ScanRecord:
    """``scan(inp_t (1, B, I), h, c, ws) -> one step's record`` over inp (T, B, I), zoned between steps. The record:
    hs, cs the zoned states, gates stacked, aux "steps" the steps' own records (the backward reruns nothing)."""
    T, B = inp.shape[:2]
    hs = np.empty((T + 1, *h0.shape), h0.dtype)
    cs = None if c0 is None else np.empty((T + 1, *c0.shape), c0.dtype)
    hs[0] = h0
    if cs is not None:
        cs[0] = c0
    steps = []
    for t in range(T):
        r = scan(inp[t:t + 1], hs[t], None if cs is None else cs[t], Workspace())
        d_h, d_c = zone.d(t)
        hs[t + 1] = d_h * hs[t] + (1 - d_h) * r.hs[1]
        if cs is not None:
            cs[t + 1] = d_c * cs[t] + (1 - d_c) * r.cs[1]
        steps.append(r)
    gates = None if steps[0].gates is None else np.concatenate([r.gates for r in steps])
    return ScanRecord(hs, gates, cs, {"steps": steps})       # type: ignore[dict-item]


def backward(kernel: Kernel, record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict, zone: Zone,
             extra: dict[str, np.ndarray], rmask: np.ndarray | None) -> ScanGrads:
    """As ``kernel.backward`` over a zoned record: each step's backward (T = 1) given dL/dh̃_t, dL/dc̃_t, the parts that
    skip the step added to dL/dh_{t−1}, dL/dc_{t−1}."""
    steps: list[Any] = record.aux["steps"]
    T, B, h = dhs.shape
    dh_next = np.zeros((B, h), dhs.dtype)
    dc_next = None if record.cs is None else np.zeros(record.cs.shape[1:], dhs.dtype)
    d_x, d_h, extras, sums, split = [], [], [], [], False
    for t in range(T - 1, -1, -1):
        add_final_grads(t, inject, dh_next, dc_next)
        dh = dhs[t] + dh_next
        z_h, z_c = zone.d(t)
        dc_raw = None if dc_next is None else dc_next * (1 - z_c)
        g = kernel.backward(steps[t], w_hh, (dh * (1 - z_h))[None], {0: (slice(None), np.zeros_like(dh), dc_raw)},
                            Workspace(), extra, rmask)
        d_x.append(g.d_xproj[0])
        d_h.append(g.d_hproj[0])
        split = split or g.d_hproj is not g.d_xproj
        extras.append(g.extra)
        if g.bias is not None:
            sums.append(g.bias)
        dh_next = g.dh0 + dh * z_h
        if dc_next is not None:
            dc_next = g.dc0 + dc_next * z_c
    d_xproj = np.stack(d_x[::-1])
    d_hproj = np.stack(d_h[::-1]) if split else d_xproj
    extra_grads = {name: sum(e[name] for e in extras) for name in extras[0]}
    bias = None if not sums else (sum(s[0] for s in sums), sum(s[1] for s in sums))
    return ScanGrads(d_xproj, d_hproj, dh_next, dc_next, extra_grads, bias)
