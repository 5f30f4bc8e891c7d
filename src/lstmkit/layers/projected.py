r"""LSTM with a projected state (Sak et al. 2014; PyTorch's ``nn.LSTM(proj_size=P)``): the hidden state
that is output and fed back is h_t = W_hr (o ⊙ tanh c_t), P < H units, with W_hr the weight
``weight_hr_l{k}`` (P, H); W_hh is (4H, P). The equations are in docs/design.md beside the LSTM's.

This file is the whole of the kind: its reference step, its shapes (``layout``: h of P
units, c of H), its kernel (a plain scan and its backward; compiled: the LSTM's step in
``_core/cells.h``, the projection in the core's scan, ``core.h``'s proj column);
``LSTM(proj_size=P)`` runs it.
Stacking, directions, lengths, dropout, initial states, model files and ``lk.inspect`` come
from the frame (``rnn_base.py``, ``scan.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import sigmoid
from ..workspace import Workspace
from .scan import Kernel, ScanGrads, ScanRecord, Shapes, add_final_grads, masked
from .steps import lstm_step


def projected_lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: dict[str, np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """One step -> (h_t (B, P), c_t (B, H)): the LSTM's step, its h projected by ``weight_hr`` (P, H)."""
    m, c_t = lstm_step(x, h, c, w)
    return m @ w["weight_hr"].T, c_t


def _layout(kernel: Kernel, in_k: int, H: int, bias: bool, proj_size: int) -> Shapes:
    """The LSTM's layout with h of P units (W_hh (4H, P)), plus weight_hr (P, H)."""
    shapes = kernel.standard_shapes(in_k, H, bias, h=proj_size)
    return shapes._replace(params={**shapes.params, "weight_hr": (proj_size, H)})


def _forward(xproj: np.ndarray, w_t: np.ndarray, b_loop: None, h0: np.ndarray, c0: np.ndarray, ws: Workspace,
             prescaled: bool, extra: dict[str, np.ndarray],
             rmask: np.ndarray | None = None) -> ScanRecord:
    """xproj (T, B, 4H) incl. both biases, w_t = W_hh^T (P, 4H) -> hs (T + 1, B, P), cs (T + 1, B, H), gates
    (T, B, 4H), aux tanh_c and m = o ⊙ tanh(c_t), each (T, B, H)."""
    T, B, G = xproj.shape
    H = G // 4
    w_hr = extra["weight_hr"]
    dt = xproj.dtype
    hs, cs = ws.empty("hs", (T + 1, B, w_hr.shape[0]), dt), ws.empty("cs", (T + 1, B, H), dt)
    tanh_cs, ms = ws.empty("tanh_cs", (T, B, H), dt), ws.empty("m", (T, B, H), dt)
    hs[0], cs[0] = h0, c0
    acts = xproj                                          # becomes [i, f, g, o]
    for t in range(T):
        a = acts[t]
        a += masked(hs[t], rmask) @ w_t
        sigmoid(a[:, :2 * H], out=a[:, :2 * H])
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
        sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        np.add(f * cs[t], i * g, out=cs[t + 1])           # c_t = f ⊙ c + i ⊙ g
        np.tanh(cs[t + 1], out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=ms[t])
        np.matmul(ms[t], w_hr.T, out=hs[t + 1])           # h_t = W_hr (o ⊙ tanh(c_t))
    return ScanRecord(hs, acts, cs, {"tanh_c": tanh_cs, "m": ms})


def _backward(record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict, ws: Workspace,
              extra: dict[str, np.ndarray], rmask: np.ndarray | None = None) -> ScanGrads:
    """Back through the scan -> d(pre-activations) (T, B, 4H), dh_0 (B, P), dc_0 (B, H) and d weight_hr (P, H)."""
    acts, cs, tanh_cs, ms = record.gates, record.cs, record.aux["tanh_c"], record.aux["m"]
    T, B, G = acts.shape
    H = G // 4
    w_hr = extra["weight_hr"]
    dt = acts.dtype
    dpre = ws.empty("dpre", (T, B, G), dt)
    d_hr = np.zeros_like(w_hr)
    dh_next, dc_next = np.zeros((B, w_hr.shape[0]), dt), np.zeros((B, H), dt)
    for t in range(T - 1, -1, -1):
        add_final_grads(t, inject, dh_next, dc_next)
        dh = dhs[t] + dh_next                                                     # ∂L/∂h_t (B, P)
        d_hr += dh.T @ ms[t]
        dm = dh @ w_hr                                                            # ∂L/∂(o ⊙ tanh c_t)
        i, f, g, o = acts[t, :, :H], acts[t, :, H:2 * H], acts[t, :, 2 * H:3 * H], acts[t, :, 3 * H:]
        tc, dp = tanh_cs[t], dpre[t]
        dc = dm * o * (1 - tc * tc) + dc_next                                     # ∂L/∂c_t
        np.multiply(dm * tc, o * (1 - o), out=dp[:, 3 * H:])                      # ∂L/∂p_o
        np.multiply(dc * g, i * (1 - i), out=dp[:, :H])                           # ∂L/∂p_i
        np.multiply(dc * cs[t], f * (1 - f), out=dp[:, H:2 * H])                  # ∂L/∂p_f
        np.multiply(dc * i, 1 - g * g, out=dp[:, 2 * H:3 * H])                    # ∂L/∂p_g
        dc_next = dc * f                                                          # ∂L/∂c_{t−1}
        dh_next = masked(dp @ w_hh, rmask)                                        # ∂L/∂h_{t−1} (B, P)
    return ScanGrads(dpre, dpre, dh_next, dc_next, {"weight_hr": d_hr})


PROJECTED = Kernel("LSTM", ("i", "f", "g", "o"), _forward, _backward, projected_lstm_step, has_cell=True,
                   layout=_layout, compiled="projected_lstm", projection="weight_hr")


def check_proj_size(name: str, proj_size: Any, hidden_size: int) -> int:
    """proj_size as an int in [0, hidden_size), or a ValueError that says so (0: no projection)."""
    if not isinstance(proj_size, (int, np.integer)) or not 0 <= proj_size < hidden_size:
        raise ValueError(f"{name}: proj_size must be an integer in [0, hidden_size) = [0, {hidden_size}), "
                         f"got {proj_size!r}")
    return int(proj_size)
