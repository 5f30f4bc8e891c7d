r"""Recurrent layers: LSTM, GRU, SimpleRNN, and the NumPy scans that compute them.

The equations (PyTorch's gate order and two biases) are stated once, in docs/design.md
("The equations"); ``steps.py`` is one step of each as code. How the scans here are
arranged for speed (the maths is exactly that; the frame that stacks layers and
directions is ``rnn_base.py``, single steps ``cells.py``):

* The gate weights are stacked: ``weight_ih`` is (G·H, I) and ``weight_hh`` is
  (G·H, H) with G = 4, 3, 1 gate blocks, as in PyTorch's state_dict.
* ``W_i· x_t + b_i·`` for *all* time steps is one GEMM before the time loop;
  only ``h W_hh^T`` stays inside it. Arrays inside the loop are time-major,
  (T, B, ·), so each step's slice is contiguous; buffers are allocated once.
* One ``tanh`` serves all gates of a step: σ(p) = ½ + ½·tanh(p/2), and the
  halving is folded into the weights the forward uses (exact: a power of 2).
  ``np.tanh`` is also the cheapest transcendental NumPy has on these CPUs.
* Backward: the derivative factors that do not depend on the incoming gradient
  (σ' = s(1 − s), tanh' = 1 − g², …) are formed for a chunk of steps at a time, in
  a few whole-array passes that stay in cache, so each step runs only the few
  products that chain the gradient back, and one GEMM.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..workspace import Workspace
from .projected import PROJECTED, check_proj_size
from .rnn_base import _RNNBase
from .scan import Kernel, ScanGrads, ScanRecord, add_final_grads, masked
from .steps import gru_step, lstm_step, rnn_relu_step, rnn_tanh_step

# Derivative factors are formed for as many steps at a time as fit in this many bytes (stays in L2).
_CHUNK_BYTES = 1 << 19


def _chunk(T: int, row_bytes: int) -> int:
    return max(1, min(T, _CHUNK_BYTES // max(1, row_bytes)))


@functools.lru_cache(maxsize=64)
def _sigmoid_affine(pattern: str, H: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift), each (len(pattern)·H,), that turn tanh(p/2) into σ(p) for the gates marked "s"."""
    scale = np.repeat([0.5 if c == "s" else 1.0 for c in pattern], H).astype(dtype)
    shift = np.repeat([0.5 if c == "s" else 0.0 for c in pattern], H).astype(dtype)
    scale.setflags(write=False)
    shift.setflags(write=False)
    return scale, shift


# ---- LSTM ------------------------------------------------------------------


def _lstm_forward(xproj: np.ndarray, w_t: np.ndarray, b_hh: None, h0: np.ndarray, c0: np.ndarray,
                  ws: Workspace, prescaled: bool = True, extra: dict | None = None,
                  rmask: np.ndarray | None = None) -> ScanRecord:
    """xproj (T, B, 4H) and w_t = W_hh^T (H, 4H), with the i, f, o columns halved if ``prescaled``.

    Returns the record: hs, cs (T + 1, B, H), gates (T, B, 4H) [i, f, g, o] (in xproj's buffer)
    and aux["tanh_c"] (T, B, H) = tanh(c_1..c_T).
    """
    T, B, G = xproj.shape
    H = G // 4
    dt = xproj.dtype
    scale, shift = _sigmoid_affine("ssts", H, dt.str)
    acts = xproj                                # (T, B, 4H): becomes [i, f, g, o]
    hs = ws.empty("hs", (T + 1, B, H), dt)          # h_0..h_T
    cs = ws.empty("cs", (T + 1, B, H), dt)          # c_0..c_T
    tanh_cs = ws.empty("tanh_cs", (T, B, H), dt)    # tanh(c_1..c_T)
    hs[0], cs[0] = h0, c0
    rec = ws.empty("rec", (B, G), dt)
    ig = ws.empty("ig", (B, H), dt)
    for t in range(T):
        a = acts[t]
        np.matmul(masked(hs[t], rmask), w_t, out=rec)
        a += rec
        if not prescaled:
            a *= scale                          # [p_i/2, p_f/2, p_g, p_o/2]
        np.tanh(a, out=a)
        a *= scale
        a += shift                              # i, f, o = ½ + ½ tanh(p/2) = σ(p);  g = tanh(p_g)
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c, tc = cs[t + 1], tanh_cs[t]
        np.multiply(f, cs[t], out=c)            # c_t = f ⊙ c + i ⊙ g
        np.multiply(i, g, out=ig)
        c += ig
        np.tanh(c, out=tc)                      # h_t = o ⊙ tanh(c_t)
        np.multiply(o, tc, out=hs[t + 1])
    return ScanRecord(hs, acts, cs, {"tanh_c": tanh_cs})


def _lstm_backward(record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict,
                   ws: Workspace, extra: dict | None = None, rmask: np.ndarray | None = None) -> ScanGrads:
    """Back through the LSTM scan: ``record`` from ``_lstm_forward``, w_hh (4H, H) the true weights,
    dhs (T, B, H) the outputs' gradient, ``inject`` the final-state gradients by step.

    Returns the gradient w.r.t. the pre-activations (T, B, 4H) (the same array serves x and h sides)
    and dh_0, dc_0 (B, H).
    """
    acts, cs, tanh_cs = record.gates, record.cs, record.aux["tanh_c"]
    T, B, G = acts.shape
    H = G // 4
    dt = acts.dtype
    dpre = ws.empty("dpre", (T, B, G), dt)      # holds each step's factors, then its gradient
    K = _chunk(T, B * G * dt.itemsize)
    dh_dc_all = ws.empty("dh_dc", (K, B, H), dt)
    dh, dc = (ws.empty(name, (B, H), dt) for name in ("dh", "dc"))
    dh_next = np.zeros((B, H), dt)
    dc_next = np.zeros((B, H), dt)
    for e in range(T, 0, -K):
        s = max(0, e - K)
        A, P, tc, dh_dc = acts[s:e], dpre[s:e], tanh_cs[s:e], dh_dc_all[:e - s]
        i, g, o = A[..., :H], A[..., 2 * H:3 * H], A[..., 3 * H:]
        pg = P[..., 2 * H:3 * H]
        np.subtract(1, A, out=P)                # σ' = s(1 − s) for i, f, o
        P *= A
        np.multiply(g, g, out=pg)               # tanh' = 1 − g² for g
        np.subtract(1, pg, out=pg)
        P[..., :H] *= g                         # ∂c_t/∂p_i = g ⊙ σ'(p_i)
        P[..., H:2 * H] *= cs[s:e]              # ∂c_t/∂p_f = c_{t−1} ⊙ σ'(p_f)
        pg *= i                                 # ∂c_t/∂p_g = i ⊙ tanh'(p_g)
        P[..., 3 * H:] *= tc                    # ∂h_t/∂p_o = tanh(c_t) ⊙ σ'(p_o)
        np.multiply(tc, tc, out=dh_dc)          # ∂h_t/∂c_t = o ⊙ (1 − tanh² c_t)
        np.subtract(1, dh_dc, out=dh_dc)
        dh_dc *= o
        for t in range(e - 1, s - 1, -1):
            add_final_grads(t, inject, dh_next, dc_next)
            np.add(dhs[t], dh_next, out=dh)             # dL/dh_t
            np.multiply(dh, dh_dc[t - s], out=dc)       # dL/dc_t
            dc += dc_next
            dp = dpre[t]
            dp[:, :3 * H].reshape(B, 3, H)[...] *= dc[:, None, :]   # i, f, g: through c_t
            dp[:, 3 * H:] *= dh                                      # o: through h_t
            np.multiply(dc, acts[t, :, H:2 * H], out=dc_next)       # dL/dc_{t−1} = dc ⊙ f
            np.matmul(dp, w_hh, out=dh_next)                         # dL/dh_{t−1} (recurrent part)
            if rmask is not None:
                dh_next *= rmask
    return ScanGrads(dpre, dpre, dh_next, dc_next)


# ---- GRU -------------------------------------------------------------------


def _gru_forward(xproj: np.ndarray, w_t: np.ndarray, b_hn: np.ndarray | None, h0: np.ndarray,
                 c0: None, ws: Workspace, prescaled: bool = True, extra: dict | None = None,
                 rmask: np.ndarray | None = None) -> ScanRecord:
    """xproj (T, B, 3H) incl. b_ir + b_hr, b_iz + b_hz, b_in; w_t = W_hh^T (H, 3H); the r, z parts of both
    halved if ``prescaled``.

    Returns the record: hs (T + 1, B, H), gates (T, B, 3H) [r, z, n] (in xproj's buffer) and
    aux["hproj_n"] (T, B, H) = W_hn h_{t−1} + b_hn.
    """
    T, B, G = xproj.shape
    H = G // 3
    dt = xproj.dtype
    hs = ws.empty("hs", (T + 1, B, H), dt)
    hp_n = ws.empty("hp_n", (T, B, H), dt)      # W_hn h + b_hn per step (the backward needs it)
    rec = ws.empty("rec", (B, G), dt)
    tmp = ws.empty("tmp", (B, H), dt)
    hs[0] = h0
    acts = xproj                                 # becomes [r, z, n]
    for t in range(T):
        np.matmul(masked(hs[t], rmask), w_t, out=rec)
        a = acts[t]
        rz = a[:, :2 * H]
        rz += rec[:, :2 * H]
        if not prescaled:
            rz *= 0.5                            # [p_r/2, p_z/2]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5                                # r, z = σ(p) = ½ + ½ tanh(p/2)
        r, z, n, hn = a[:, :H], a[:, H:2 * H], a[:, 2 * H:], hp_n[t]
        if b_hn is None:
            np.copyto(hn, rec[:, 2 * H:])
        else:
            np.add(rec[:, 2 * H:], b_hn, out=hn)
        np.multiply(r, hn, out=tmp)              # n = tanh(x_n + r ⊙ (W_hn h + b_hn))
        n += tmp
        np.tanh(n, out=n)
        np.subtract(hs[t], n, out=tmp)           # h_t = n + z ⊙ (h − n)
        tmp *= z
        np.add(n, tmp, out=hs[t + 1])
    return ScanRecord(hs, acts, None, {"hproj_n": hp_n})


def _gru_backward(record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict,
                  ws: Workspace, extra: dict | None = None, rmask: np.ndarray | None = None) -> ScanGrads:
    """Back through the GRU scan: ``record`` from ``_gru_forward``, w_hh (3H, H) the true weights,
    dhs (T, B, H) the outputs' gradient, ``inject`` the final-state gradients by step.

    Returns the gradients w.r.t. the x-side (T, B, 3H) and h-side (T, B, 3H) pre-activations (they
    differ in the n block, where the h side is gated by r) and dh_0 (B, H).
    """
    acts, hs, hp_n = record.gates, record.hs, record.aux["hproj_n"]
    T, B, G = acts.shape
    H = G // 3
    dt = acts.dtype
    dxp = ws.empty("dxp", (T, B, G), dt)
    dhp = ws.empty("dhp", (T, B, G), dt)
    K = _chunk(T, B * G * dt.itemsize)
    fac_all = ws.empty("fac", (K, B, G), dt)     # per step [f_r, f_z, f_n]
    dh, tmp = ws.empty("dh", (B, H), dt), ws.empty("tmp", (B, H), dt)
    dh_next = np.zeros((B, H), dt)
    for e in range(T, 0, -K):
        s = max(0, e - K)
        A, Fa = acts[s:e], fac_all[:e - s]
        r, z, n = A[..., :H], A[..., H:2 * H], A[..., 2 * H:]
        fr, fz, fn = Fa[..., :H], Fa[..., H:2 * H], Fa[..., 2 * H:]
        np.subtract(1, z, out=fn)                # f_n = (1 − z)(1 − n²): ∂h_t/∂p_n
        np.subtract(hs[s:e], n, out=fz)          # f_z = (h − n) z (1 − z): ∂h_t/∂p_z
        fz *= fn
        fz *= z
        np.multiply(n, n, out=fr)
        np.subtract(1, fr, out=fr)
        fn *= fr
        np.subtract(1, r, out=fr)                # f_r = hn r (1 − r): ∂p_n/∂p_r
        fr *= r
        fr *= hp_n[s:e]
        for t in range(e - 1, s - 1, -1):
            add_final_grads(t, inject, dh_next, None)
            np.add(dhs[t], dh_next, out=dh)
            dx = dxp[t]
            np.multiply(Fa[t - s, :, H:].reshape(B, 2, H), dh[:, None, :], out=dx[:, H:].reshape(B, 2, H))  # dz, dn
            np.multiply(dx[:, 2 * H:], Fa[t - s, :, :H], out=dx[:, :H])                         # d p_r
            dhp[t, :, :2 * H] = dx[:, :2 * H]
            np.multiply(dx[:, 2 * H:], acts[t, :, :H], out=dhp[t, :, 2 * H:])                    # r ⊙ d p_n
            np.matmul(dhp[t], w_hh, out=dh_next)
            if rmask is not None:
                dh_next *= rmask
            np.multiply(dh, acts[t, :, H:2 * H], out=tmp)                                        # + dh ⊙ z
            dh_next += tmp
    return ScanGrads(dxp, dhp, dh_next)


# ---- Elman -----------------------------------------------------------------


def _make_rnn_kernels(nonlinearity: str) -> Kernel:
    relu = nonlinearity == "relu"

    def forward(xproj: np.ndarray, w_t: np.ndarray, b_hh: None, h0: np.ndarray,
                c0: None, ws: Workspace, prescaled: bool = True, extra: dict | None = None,
                rmask: np.ndarray | None = None) -> ScanRecord:
        T, B, H = xproj.shape
        hs = ws.empty("hs", (T + 1, B, H), xproj.dtype)
        hs[0] = h0
        for t in range(T):
            np.matmul(masked(hs[t], rmask), w_t, out=hs[t + 1])   # h_t = act(x_t W_ih^T + b + h W_hh^T)
            hs[t + 1] += xproj[t]
            if relu:
                np.maximum(hs[t + 1], 0, out=hs[t + 1])
            else:
                np.tanh(hs[t + 1], out=hs[t + 1])
        return ScanRecord(hs)

    def backward(record: ScanRecord, w_hh: np.ndarray, dhs: np.ndarray, inject: dict,
                 ws: Workspace, extra: dict | None = None, rmask: np.ndarray | None = None) -> ScanGrads:
        hs = record.hs
        T, B, H = dhs.shape
        factor = ws.empty("factor", (T, B, H), hs.dtype)      # act'(pre) from the outputs
        if relu:
            np.greater(hs[1:], 0, out=factor)
        else:
            np.multiply(hs[1:], hs[1:], out=factor)
            np.subtract(1, factor, out=factor)
        dpre = ws.empty("dpre", (T, B, H), hs.dtype)
        dh_next = np.zeros((B, H), hs.dtype)
        for t in range(T - 1, -1, -1):
            add_final_grads(t, inject, dh_next, None)
            dh_next += dhs[t]
            np.multiply(dh_next, factor[t], out=dpre[t])
            np.matmul(dpre[t], w_hh, out=dh_next)
            if rmask is not None:
                dh_next *= rmask
        return ScanGrads(dpre, dpre, dh_next)

    return Kernel(f"RNN_{nonlinearity.upper()}", (), forward, backward, rnn_relu_step if relu else rnn_tanh_step,
                  compiled=f"rnn_{nonlinearity}")


_LSTM = Kernel("LSTM", ("i", "f", "g", "o"), _lstm_forward, _lstm_backward, lstm_step,
               row_scale=(0.5, 0.5, 1.0, 0.5), has_cell=True, compiled="lstm")
_GRU = Kernel("GRU", ("r", "z", "n"), _gru_forward, _gru_backward, gru_step, row_scale=(0.5, 0.5, 1.0),
              loop_bias_gates=1, compiled="gru")
_RNN = {"tanh": _make_rnn_kernels("tanh"), "relu": _make_rnn_kernels("relu")}


# --------------------------------------------------------------------------
# Sequence layers
# --------------------------------------------------------------------------

class LSTM(_RNNBase):
    """Long short-term memory over batch-first sequences (see the module docstring).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, dropout=0.0,
    bidirectional=False, return_sequences=None, dtype="float32", proj_size=0)``.
    x (B, T, input_size) -> y (B, T, D·hidden_size), (h_n, c_n) each
    (num_layers·D, B, hidden_size). Weights are PyTorch's, gate order i, f, g, o.
    With ``proj_size`` P > 0 the state h is projected to P units (``projected.py``):
    y (B, T, D·P), h_n (num_layers·D, B, P), c_n as without, and a further weight
    ``weight_hr_l{k}`` (P, hidden_size) per layer and direction, as PyTorch's.
    """

    _name = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, return_sequences: bool | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None, proj_size: int = 0,
                 **regularisers: float) -> None:
        P = check_proj_size(self._name, proj_size, hidden_size) if proj_size else 0
        super().__init__(PROJECTED if P else _LSTM, input_size, hidden_size, num_layers, bias, dropout,
                         bidirectional, return_sequences, dtype, rng, {"proj_size": P} if P else None, regularisers)


class GRU(_RNNBase):
    """Gated recurrent unit over batch-first sequences (PyTorch's variant; gate order r, z, n).

    x (B, T, input_size) -> y (B, T, D·hidden_size), h_n (num_layers·D, B, hidden_size).
    """

    _name = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, return_sequences: bool | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None, **regularisers: float) -> None:
        super().__init__(_GRU, input_size, hidden_size, num_layers, bias, dropout, bidirectional,
                         return_sequences, dtype, rng, regularisers=regularisers)


class SimpleRNN(_RNNBase):
    """Elman RNN, ``nonlinearity`` "tanh" or "relu" (PyTorch's ``nn.RNN``).

    x (B, T, input_size) -> y (B, T, D·hidden_size), h_n (num_layers·D, B, hidden_size).
    """

    _name = "SimpleRNN"

    def config(self) -> dict[str, Any]:
        return {**super().config(), "nonlinearity": self.nonlinearity}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 return_sequences: bool | None = None, dtype: str = "float32",
                 rng: np.random.Generator | None = None, **regularisers: float) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(_RNN[nonlinearity], input_size, hidden_size, num_layers,
                         bias, dropout, bidirectional, return_sequences, dtype, rng, regularisers=regularisers)

