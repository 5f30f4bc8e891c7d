r"""Peephole LSTM (Gers & Schmidhuber 2000): the gates also see the cell state — i and f see c_{t−1},
o sees c_t, through per-unit weights [w_ci, w_cf, w_co], the rows of ``weight_peephole_l{k}`` (3, H).
The equations are in docs/design.md beside the LSTM's.

This file is the whole of the kind: its reference step, its kernel (a plain scan and
its backward; compiled: ``_core/cells.h``) and its layer. Stacking, directions, lengths, dropout, initial states,
model files and ``lk.inspect`` come from the frame (``rnn_base.py``, ``scan.py``).
"""

from __future__ import annotations

import numpy as np

from ..functional import sigmoid
from ..workspace import Workspace
from .rnn_base import _RNNBase
from .scan import Kernel, ScanGrads, ScanRecord, add_final_grads, masked
from .steps import preactivations


def peephole_lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: dict[str, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """One peephole-LSTM step -> (h_t, c_t); ``w`` also holds ``weight_peephole`` (3, H) = [w_ci, w_cf, w_co]."""
    px, ph = preactivations(x, h, w)
    p_i, p_f, p_g, p_o = np.split(px + ph, 4, axis=-1)
    w_ci, w_cf, w_co = w["weight_peephole"]
    i, f, g = sigmoid(p_i + w_ci * c), sigmoid(p_f + w_cf * c), np.tanh(p_g)
    c_t = f * c + i * g
    o = sigmoid(p_o + w_co * c_t)
    return o * np.tanh(c_t), c_t


def _forward(xproj: np.ndarray, w_t: np.ndarray, b_loop: None, h0: np.ndarray, c0: np.ndarray, ws: Workspace,
             prescaled: bool, extra: dict[str, np.ndarray],
             rmask: np.ndarray | None = None) -> ScanRecord:
    """xproj (T, B, 4H) incl. both biases, w_t = W_hh^T (H, 4H) -> hs, cs (T + 1, B, H), gates (T, B, 4H)."""
    T, B, G = xproj.shape
    H = G // 4
    dt = xproj.dtype
    w_ci, w_cf, w_co = extra["weight_peephole"]
    hs, cs = ws.empty("hs", (T + 1, B, H), dt), ws.empty("cs", (T + 1, B, H), dt)
    tanh_cs = ws.empty("tanh_cs", (T, B, H), dt)
    hs[0], cs[0] = h0, c0
    acts = xproj                                          # becomes [i, f, g, o]
    for t in range(T):
        a = acts[t]
        a += masked(hs[t], rmask) @ w_t
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        i += w_ci * cs[t]
        f += w_cf * cs[t]
        sigmoid(i, out=i)
        sigmoid(f, out=f)
        np.tanh(g, out=g)
        np.add(f * cs[t], i * g, out=cs[t + 1])           # c_t = f ⊙ c + i ⊙ g
        o += w_co * cs[t + 1]
        sigmoid(o, out=o)
        np.tanh(cs[t + 1], out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=hs[t + 1])         # h_t = o ⊙ tanh(c_t)
    return ScanRecord(hs, acts, cs, {"tanh_c": tanh_cs})


def _backward(record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict, ws: Workspace,
              extra: dict[str, np.ndarray], rmask: np.ndarray | None = None) -> ScanGrads:
    """Back through the scan -> d(pre-activations) (T, B, 4H), dh_0, dc_0 (B, H) and d weight_peephole (3, H)."""
    acts, cs, tanh_cs = record.gates, record.cs, record.aux["tanh_c"]
    T, B, G = acts.shape
    H = G // 4
    w_ci, w_cf, w_co = extra["weight_peephole"]
    dpre = ws.empty("dpre", (T, B, G), acts.dtype)
    dpeep = np.zeros((3, H), acts.dtype)
    dh_next, dc_next = np.zeros((B, H), acts.dtype), np.zeros((B, H), acts.dtype)
    for t in range(T - 1, -1, -1):
        add_final_grads(t, inject, dh_next, dc_next)
        dh = dhs[t] + dh_next
        i, f, g, o = acts[t, :, :H], acts[t, :, H:2 * H], acts[t, :, 2 * H:3 * H], acts[t, :, 3 * H:]
        dp = dpre[t]
        dp_o = dp[:, 3 * H:]
        np.multiply(dh * tanh_cs[t], o * (1 - o), out=dp_o)                       # ∂L/∂p_o
        dc = dh * o * (1 - tanh_cs[t] ** 2) + dc_next + dp_o * w_co               # ∂L/∂c_t (o sees c_t)
        np.multiply(dc * g, i * (1 - i), out=dp[:, :H])                           # ∂L/∂p_i
        np.multiply(dc * cs[t], f * (1 - f), out=dp[:, H:2 * H])                  # ∂L/∂p_f
        np.multiply(dc * i, 1 - g * g, out=dp[:, 2 * H:3 * H])                    # ∂L/∂p_g
        dpeep[0] += (dp[:, :H] * cs[t]).sum(0)
        dpeep[1] += (dp[:, H:2 * H] * cs[t]).sum(0)
        dpeep[2] += (dp_o * cs[t + 1]).sum(0)
        dc_next = dc * f + dp[:, :H] * w_ci + dp[:, H:2 * H] * w_cf              # ∂L/∂c_{t−1}
        dh_next = masked(dp @ w_hh, rmask)                                        # ∂L/∂h_{t−1}
    return ScanGrads(dpre, dpre, dh_next, dc_next, {"weight_peephole": dpeep})


_PEEPHOLE = Kernel("PeepholeLSTM", ("i", "f", "g", "o"), _forward, _backward, peephole_lstm_step, has_cell=True,
                   extra=(("weight_peephole", 3),), compiled="peephole_lstm")


class PeepholeLSTM(_RNNBase):
    """LSTM whose gates see the cell state (see the module docstring); otherwise as ``LSTM``.

    x (B, T, input_size) -> y (B, T, D·hidden_size), (h_n, c_n) each (num_layers·D, B, hidden_size).
    Parameters: PyTorch's four LSTM keys per layer and direction, plus ``weight_peephole_l{k}`` (3, H).
    """

    _name = "PeepholeLSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, return_sequences: bool | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None, **regularisers: float) -> None:
        super().__init__(_PEEPHOLE, input_size, hidden_size, num_layers, bias, dropout, bidirectional,
                         return_sequences, dtype, rng, regularisers=regularisers)
