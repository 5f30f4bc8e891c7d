r"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016, §3.1): the input and recurrent pre-activations are each
normalised over all 4H of a row before they add, and the cell state before its tanh:

    p_t = LN(W_ih x_t; γ_ih) + LN(W_hh h_{t−1}; γ_hh) + b_ih + b_hh          (4H: [i, f, g, o])
    i, f, o = σ(p_i), σ(p_f), σ(p_o);  g = tanh(p_g);  c_t = f ⊙ c_{t−1} + i ⊙ g
    h_t = o ⊙ tanh(LN(c_t; γ_c, β_c))

with LN(a; γ, β) = γ ⊙ (a − mean(a)) / √(var(a) + ε) + β over the row's units, ε = 1e-5 (PyTorch's
LayerNorm). The state carried forward is the un-normalised c_t. Parameters per layer and direction:
PyTorch's four LSTM keys (the biases play the pre-activation norms' β), ``ln_ih_l{k}`` and ``ln_hh_l{k}``
(4, H) the gains γ_ih, γ_hh in gate order (initially 1), ``ln_c_l{k}`` (2, H) = [γ_c; β_c] (initially 1, 0).

This file is the whole of the kind: its reference step, its kernel (a plain scan and its backward; compiled:
``_core/cells.h``, whose scan gives each thread whole rows, as the norms need) and its layer. Stacking,
directions, lengths, dropout, initial states, model files and ``lk.inspect`` come from the frame
(``rnn_base.py``, ``scan.py``).
"""

from __future__ import annotations

import numpy as np

from ..functional import sigmoid
from ..workspace import Workspace
from .rnn_base import _RNNBase
from .scan import Kernel, ScanGrads, ScanRecord, add_final_grads, masked

EPS = 1e-5
# What a step keeps for its backward, per row, in one (T, B, 9H + 4) array ``saved``: the normalised x side
# (4H), h side (4H) and cell (H), then the three norms' √(var + ε). The compiled core writes the same layout.
SAVED_ROWS = 9


def layer_norm(a: np.ndarray, gain: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """γ ⊙ (a − mean) / √(var + ε) + β over the last axis (biased variance, as torch.nn.LayerNorm)."""
    d = a - a.mean(-1, keepdims=True)
    return gain * d / np.sqrt((d * d).mean(-1, keepdims=True) + EPS) + shift


def layer_norm_lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: dict[str, np.ndarray]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """One step -> (h_t, c_t), each (B, H): the equations of the module docstring."""
    p = layer_norm(x @ w["weight_ih"].T, w["ln_ih"].reshape(-1)) + layer_norm(h @ w["weight_hh"].T,
                                                                             w["ln_hh"].reshape(-1))
    if "bias_ih" in w:
        p = p + w["bias_ih"] + w["bias_hh"]
    p_i, p_f, p_g, p_o = np.split(p, 4, axis=-1)
    c_t = sigmoid(p_f) * c + sigmoid(p_i) * np.tanh(p_g)
    gain, shift = w["ln_c"]
    return sigmoid(p_o) * np.tanh(layer_norm(c_t, gain, shift)), c_t


def _normalise(a: np.ndarray, out: np.ndarray, sigma: np.ndarray) -> None:
    """out = (a − mean) / σ and sigma = σ = √(var + ε) over the last axis (sigma keeps that axis, of 1)."""
    np.subtract(a, a.mean(-1, keepdims=True), out=out)
    np.sqrt((out * out).mean(-1, keepdims=True) + EPS, out=sigma)
    out /= sigma


def _norm_back(dy: np.ndarray, xhat: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The gradient of a from that of x̂ = (a − mean) / σ over the last axis: (dy − mean(dy) − x̂·mean(dy ⊙ x̂)) / σ."""
    return (dy - dy.mean(-1, keepdims=True) - xhat * (dy * xhat).mean(-1, keepdims=True)) / sigma


def _views(saved: np.ndarray, H: int) -> tuple[np.ndarray, ...]:
    """(x̂, ĥ, ĉ, σ_x, σ_h, σ_c) as views of ``saved`` (…, 9H + 4); the σs keep a last axis of 1."""
    return (saved[..., :4 * H], saved[..., 4 * H:8 * H], saved[..., 8 * H:9 * H], saved[..., 9 * H:9 * H + 1],
            saved[..., 9 * H + 1:9 * H + 2], saved[..., 9 * H + 2:9 * H + 3])


def _forward(xproj: np.ndarray, w_t: np.ndarray, bias: np.ndarray | None, h0: np.ndarray, c0: np.ndarray,
             ws: Workspace, prescaled: bool, extra: dict[str, np.ndarray],
             rmask: np.ndarray | None = None) -> ScanRecord:
    """xproj (T, B, 4H) = W_ih x_t without biases, w_t = W_hh^T (H, 4H), bias b_ih + b_hh (4H,) or None ->
    hs, cs (T + 1, B, H), gates (T, B, 4H) [i, f, g, o], aux tanh_c = tanh(LN(c_t)) (T, B, H) and saved."""
    T, B, G = xproj.shape
    H = G // 4
    dt = xproj.dtype
    g_x, g_h = extra["ln_ih"].reshape(-1), extra["ln_hh"].reshape(-1)
    g_c, b_c = extra["ln_c"]
    hs, cs = ws.empty("hs", (T + 1, B, H), dt), ws.empty("cs", (T + 1, B, H), dt)
    tanh_cs, saved = ws.empty("tanh_cs", (T, B, H), dt), ws.empty("saved", (T, B, SAVED_ROWS * H + 4), dt)
    xhat, hhat, chat, s_x, s_h, s_c = _views(saved, H)
    hs[0], cs[0] = h0, c0
    _normalise(xproj, xhat, s_x)                          # the x side of every step at once
    acts = xproj                                          # becomes [i, f, g, o]
    for t in range(T):
        _normalise(masked(hs[t], rmask) @ w_t, hhat[t], s_h[t])
        a = acts[t]
        np.multiply(g_x, xhat[t], out=a)
        a += g_h * hhat[t]
        if bias is not None:
            a += bias
        sigmoid(a[:, :2 * H], out=a[:, :2 * H])
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
        sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        np.add(f * cs[t], i * g, out=cs[t + 1])           # c_t = f ⊙ c + i ⊙ g
        _normalise(cs[t + 1], chat[t], s_c[t])
        np.tanh(g_c * chat[t] + b_c, out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=hs[t + 1])         # h_t = o ⊙ tanh(LN(c_t))
    return ScanRecord(hs, acts, cs, {"tanh_c": tanh_cs, "saved": saved})


def _backward(record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict, ws: Workspace,
              extra: dict[str, np.ndarray], rmask: np.ndarray | None = None) -> ScanGrads:
    """Back through the scan -> the gradients of W_ih x_t and of W_hh h_{t−1} (T, B, 4H) (before their norms),
    dh_0, dc_0 (B, H), the gains' and the cell norm's shift's, and Σ dL/dp (both biases')."""
    acts, cs, tanh_cs = record.gates, record.cs, record.aux["tanh_c"]
    T, B, G = acts.shape
    H = G // 4
    dt = acts.dtype
    g_x, g_h = extra["ln_ih"].reshape(-1), extra["ln_hh"].reshape(-1)
    g_c = extra["ln_c"][0]
    xhat, hhat, chat, s_x, s_h, s_c = _views(record.aux["saved"], H)
    dp_all, dpre_h = ws.empty("dpre", (T, B, G), dt), ws.empty("dhp", (T, B, G), dt)
    d_ln_c = np.zeros((2, H), dt)
    dh_next, dc_next = np.zeros((B, H), dt), np.zeros((B, H), dt)
    for t in range(T - 1, -1, -1):
        add_final_grads(t, inject, dh_next, dc_next)
        dh = dhs[t] + dh_next
        i, f, g, o = acts[t, :, :H], acts[t, :, H:2 * H], acts[t, :, 2 * H:3 * H], acts[t, :, 3 * H:]
        tz, dp = tanh_cs[t], dp_all[t]
        np.multiply(dh * tz, o * (1 - o), out=dp[:, 3 * H:])                      # ∂L/∂p_o
        dz = dh * o * (1 - tz * tz)                                               # ∂L/∂LN(c_t)
        d_ln_c[0] += (dz * chat[t]).sum(0)
        d_ln_c[1] += dz.sum(0)
        dc = _norm_back(dz * g_c, chat[t], s_c[t]) + dc_next                      # ∂L/∂c_t
        np.multiply(dc * g, i * (1 - i), out=dp[:, :H])                           # ∂L/∂p_i
        np.multiply(dc * cs[t], f * (1 - f), out=dp[:, H:2 * H])                  # ∂L/∂p_f
        np.multiply(dc * i, 1 - g * g, out=dp[:, 2 * H:3 * H])                    # ∂L/∂p_g
        dpre_h[t] = _norm_back(dp * g_h, hhat[t], s_h[t])                         # ∂L/∂(W_hh h_{t−1})
        dc_next = dc * f                                                          # ∂L/∂c_{t−1}
        dh_next = masked(dpre_h[t] @ w_hh, rmask)                                 # ∂L/∂h_{t−1}
    sums = dp_all.reshape(T * B, G)
    d_ln = {"ln_ih": (sums * xhat.reshape(T * B, G)).sum(0).reshape(4, H),
            "ln_hh": (sums * hhat.reshape(T * B, G)).sum(0).reshape(4, H), "ln_c": d_ln_c}
    db = sums.sum(0)
    dpre_x = _norm_back(dp_all * g_x, xhat, s_x)                                  # ∂L/∂(W_ih x_t), all steps
    return ScanGrads(dpre_x, dpre_h, dh_next, dc_next, d_ln, bias=(db, db.copy()))


_LAYER_NORM = Kernel("LayerNormLSTM", ("i", "f", "g", "o"), _forward, _backward, layer_norm_lstm_step,
                     has_cell=True, extra=(("ln_ih", 4), ("ln_hh", 4), ("ln_c", 2)), apart=True,
                     initial={"ln_ih": (1.0,), "ln_hh": (1.0,), "ln_c": (1.0, 0.0)}, compiled="layer_norm_lstm")


class LayerNormLSTM(_RNNBase):
    """LSTM with layer normalisation (see the module docstring); otherwise as ``LSTM``.

    x (B, T, input_size) -> y (B, T, D·hidden_size), (h_n, c_n) each (num_layers·D, B, hidden_size).
    Parameters: PyTorch's four LSTM keys per layer and direction, plus ``ln_ih_l{k}``, ``ln_hh_l{k}`` (4, H) and
    ``ln_c_l{k}`` (2, H).
    """

    _name = "LayerNormLSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, return_sequences: bool | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None, **regularisers: float) -> None:
        super().__init__(_LAYER_NORM, input_size, hidden_size, num_layers, bias, dropout, bidirectional,
                         return_sequences, dtype, rng, regularisers=regularisers)
