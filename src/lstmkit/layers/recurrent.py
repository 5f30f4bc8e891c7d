r"""Recurrent layers: LSTM, GRU, SimpleRNN (sequence layers and single-step cells).

The equations, in PyTorch's gate order and with its two biases
(x_t: input at step t, h: previous hidden state, c: previous cell state,
σ: logistic sigmoid, ⊙: element-wise product):

LSTM (gates i, f, g, o; Hochreiter & Schmidhuber 1997, with forget gate)::

    i = σ(W_ii x_t + b_ii + W_hi h + b_hi)          input gate
    f = σ(W_if x_t + b_if + W_hf h + b_hf)          forget gate
    g = tanh(W_ig x_t + b_ig + W_hg h + b_hg)       candidate cell
    o = σ(W_io x_t + b_io + W_ho h + b_ho)          output gate
    c_t = f ⊙ c + i ⊙ g
    h_t = o ⊙ tanh(c_t)

GRU (gates r, z, n; Cho et al. 2014, PyTorch's variant)::

    r = σ(W_ir x_t + b_ir + W_hr h + b_hr)          reset gate
    z = σ(W_iz x_t + b_iz + W_hz h + b_hz)          update gate
    n = tanh(W_in x_t + b_in + r ⊙ (W_hn h + b_hn)) candidate
    h_t = (1 - z) ⊙ n + z ⊙ h

SimpleRNN (Elman)::

    h_t = act(W_ih x_t + b_ih + W_hh h + b_hh),  act = tanh or relu

How the code is arranged for speed (the maths is exactly the above):

* The gate weights are stacked: ``weight_ih`` is (G·H, I) and ``weight_hh`` is
  (G·H, H) with G = 4, 3, 1 gate blocks, as in PyTorch's state_dict.
* ``W_i· x_t + b_i·`` for *all* time steps is one GEMM before the time loop;
  only ``h W_hh^T`` stays inside it.
* Arrays inside the loop are time-major, (T, B, ·), so each step's slice is
  contiguous; buffers for the whole sequence are allocated once.
* The LSTM takes one sigmoid over all four gates, using
  tanh(x) = 2σ(2x) − 1 for g (exp is ~2× cheaper than tanh here).
* Backward: derivative factors for every step are computed in one vectorised
  pass before the loop; dW_ih, dW_hh, the biases and dx are single GEMMs after it.

Variable lengths: sequences are padded at the end. Steps past a sequence's
length never influence its steps before it, so the loop runs over all T steps
and then (i) outputs past the length are zeroed, (ii) the final state is read
at each sequence's own last step, (iii) the reverse direction runs on each
sequence reversed *within its own length*. Gradients are those of PyTorch's
``pack_padded_sequence`` path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .._checks import check_dtype_name, check_finite, check_float_input
from ..init import uniform
from ..parameter import Parameter
from ..random import get_rng
from ..workspace import Workspace
from .base import Layer

# --------------------------------------------------------------------------
# Scan kernels: one layer, one direction, time-major.
#   forward(xp, w_hh, b_hh, h0, c0, ws) -> (hs, cache)   (ws: Workspace for buffers)
#       xp: (T, B, G·H) input projections incl. b_ih, and b_hh too except for the GRU, whose
#           kernel gets b_hh separately because b_hn sits inside r ⊙ (·); the kernel may overwrite xp
#       hs: (T + 1, B, H) with hs[0] = h0 and hs[t + 1] = h_t
#   backward(cache, dhs, inject, ws) -> (dxp, dhp, dh0, dc0)
#       dhs: (T, B, H) gradient w.r.t. h_1..h_T coming from the outputs
#       inject: {t: (index, dh, dc)} final-state gradients entering at step t
#       dxp: (T, B, G·H) gradient w.r.t. xp (so dW_ih, db_ih, dx follow)
#       dhp: (T, B, G·H) gradient w.r.t. h W_hh^T + b_hh (so dW_hh, db_hh follow)
# --------------------------------------------------------------------------


def _inject(t: int, inject: dict[int, tuple[Any, np.ndarray, np.ndarray | None]],
            dh: np.ndarray, dc: np.ndarray | None) -> None:
    """Add the final-state gradients of the sequences that end at step t."""
    if t in inject:
        idx, dh_n, dc_n = inject[t]
        dh[idx] += dh_n
        if dc is not None and dc_n is not None:
            dc[idx] += dc_n


def _lstm_forward(xp: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray | None, h0: np.ndarray,
                  c0: np.ndarray, ws: Workspace) -> tuple[np.ndarray, dict[str, Any]]:
    T, B, G = xp.shape
    H = G // 4
    w_t = w_hh.T  # (H, 4H) view: BLAS reads the transpose in place (a copy costs more than it saves)

    acts = xp                                   # (T, B, 4H): becomes [i, f, g, o]
    hs = ws.empty("hs", (T + 1, B, H), xp.dtype)        # h_0..h_T
    cs = ws.empty("cs", (T + 1, B, H), xp.dtype)        # c_0..c_T
    tanh_cs = ws.empty("tanh_cs", (T, B, H), xp.dtype)  # tanh(c_1..c_T)
    hs[0], cs[0] = h0, c0
    rec = ws.empty("rec", (B, G), xp.dtype)
    ig = ws.empty("ig", (B, H), xp.dtype)
    for t in range(T):
        a = acts[t]
        np.matmul(hs[t], w_t, out=rec)
        a += rec                                # pre-activations [i, f, g, o]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        # One sigmoid serves all four gates: tanh(x) = 2σ(2x) − 1 (exp is cheaper than tanh).
        g *= 2
        F.sigmoid(a, out=a)
        g *= 2
        g -= 1                                  # g = tanh(pre_g)
        c, tc = cs[t + 1], tanh_cs[t]
        np.multiply(f, cs[t], out=c)            # c_t = f ⊙ c + i ⊙ g
        np.multiply(i, g, out=ig)
        c += ig
        F.tanh_via_sigmoid(c, out=tc)           # h_t = o ⊙ tanh(c_t)
        np.multiply(o, tc, out=hs[t + 1])
    return hs, {"acts": acts, "hs": hs, "cs": cs, "tanh_cs": tanh_cs, "w_hh": w_hh}


def _lstm_backward(cache: dict[str, Any], dhs: np.ndarray, inject: dict, ws: Workspace) -> tuple[np.ndarray, ...]:
    acts, cs, tanh_cs, w_hh = cache["acts"], cache["cs"], cache["tanh_cs"], cache["w_hh"]
    T, B, G = acts.shape
    H = G // 4
    dt = acts.dtype
    dpre = ws.empty("dpre", (T, B, G), dt)
    dh, dc, tmp = (ws.empty(name, (B, H), dt) for name in ("dh", "dc", "tmp"))
    dh_next = np.zeros((B, H), dt)
    dc_next = np.zeros((B, H), dt)
    # Derivative factors are formed per step, on slices that stay in cache: on
    # these machines that beats whole-sequence passes, which stream from memory.
    for t in range(T - 1, -1, -1):
        _inject(t, inject, dh_next, dc_next)
        a, tc = acts[t], tanh_cs[t]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        np.add(dhs[t], dh_next, out=dh)                 # dL/dh_t
        np.multiply(tc, tc, out=tmp)                    # dL/dc_t = dc_next + dh ⊙ o ⊙ (1 − tanh²c_t)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        np.add(dc_next, tmp, out=dc)
        dp = dpre[t]
        d_i, d_f, d_g, d_o = dp[:, :H], dp[:, H:2 * H], dp[:, 2 * H:3 * H], dp[:, 3 * H:]
        np.subtract(1, a, out=dp)                       # σ' = s(1 − s) for i, f, o
        dp *= a
        np.multiply(g, g, out=d_g)                      # tanh' = 1 − g² for g
        np.subtract(1, d_g, out=d_g)
        d_i *= g                                        # ∂c_t/∂pre_i = g ⊙ σ'(pre_i)
        d_f *= cs[t]                                    # ∂c_t/∂pre_f = c_{t−1} ⊙ σ'(pre_f)
        d_g *= i                                        # ∂c_t/∂pre_g = i ⊙ tanh'(pre_g)
        dp[:, :3 * H].reshape(B, 3, H)[...] *= dc[:, None, :]
        d_o *= tc                                       # ∂h_t/∂pre_o = tanh(c_t) ⊙ σ'(pre_o)
        d_o *= dh
        np.multiply(dc, f, out=dc_next)                 # dL/dc_{t−1}
        np.matmul(dp, w_hh, out=dh_next)                # dL/dh_{t−1} (recurrent part)
    return dpre, dpre, dh_next, dc_next


def _gru_forward(xp: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray | None, h0: np.ndarray,
                 c0: None, ws: Workspace) -> tuple[np.ndarray, dict[str, Any]]:
    T, B, G = xp.shape
    H = G // 3
    w_t = w_hh.T                                 # (H, 3H) view
    hs = ws.empty("hs", (T + 1, B, H), xp.dtype)
    hp = ws.empty("hp", (T, B, G), xp.dtype)     # h W_hh^T + b_hh per step (its n block is kept)
    hs[0] = h0
    acts = xp                                    # becomes [r, z, n]
    tmp = ws.empty("tmp", (B, H), xp.dtype)
    for t in range(T):
        np.matmul(hs[t], w_t, out=hp[t])
        if b_hh is not None:
            hp[t] += b_hh
        a = acts[t]
        rz = a[:, :2 * H]
        rz += hp[t, :, :2 * H]
        F.sigmoid(rz, out=rz)
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        np.multiply(r, hp[t, :, 2 * H:], out=tmp)   # n = tanh(x_n + r ⊙ (W_hn h + b_hn))
        n += tmp
        np.tanh(n, out=n)
        np.subtract(hs[t], n, out=tmp)              # h_t = n + z ⊙ (h − n)
        tmp *= z
        np.add(n, tmp, out=hs[t + 1])
    return hs, {"acts": acts, "hs": hs, "hp_n": hp[:, :, 2 * H:], "w_hh": w_hh}


def _gru_backward(cache: dict[str, Any], dhs: np.ndarray, inject: dict, ws: Workspace) -> tuple[np.ndarray, ...]:
    acts, hs, hp_n, w_hh = cache["acts"], cache["hs"], cache["hp_n"], cache["w_hh"]
    T, B, G = acts.shape
    H = G // 3
    r, z, n = acts[:, :, :H], acts[:, :, H:2 * H], acts[:, :, 2 * H:]
    # Factors for all steps: d pre_n = dh ⊙ (1−z)(1−n²); d pre_z = dh ⊙ (h−n) z(1−z);
    # d pre_r = d pre_n ⊙ hp_n ⊙ r(1−r); the recurrent n term also sees r.
    f_n = (1 - z) * (1 - n * n)
    f_z = (hs[:-1] - n) * z * (1 - z)
    f_r = hp_n * r * (1 - r)
    dxp = ws.empty("dxp", (T, B, G), acts.dtype)
    dhp = ws.empty("dhp", (T, B, G), acts.dtype)
    dh = ws.empty("dh", (B, H), acts.dtype)
    dh_next = np.zeros((B, H), acts.dtype)
    for t in range(T - 1, -1, -1):
        _inject(t, inject, dh_next, None)
        np.add(dhs[t], dh_next, out=dh)
        dn = dxp[t, :, 2 * H:]
        np.multiply(dh, f_n[t], out=dn)
        np.multiply(dh, f_z[t], out=dxp[t, :, H:2 * H])
        np.multiply(dn, f_r[t], out=dxp[t, :, :H])
        dhp[t, :, :2 * H] = dxp[t, :, :2 * H]
        np.multiply(dn, r[t], out=dhp[t, :, 2 * H:])
        np.matmul(dhp[t], w_hh, out=dh_next)
        np.multiply(dh, z[t], out=dh)
        dh_next += dh
    return dxp, dhp, dh_next, None


def _make_rnn_kernels(nonlinearity: str) -> tuple[Any, Any]:
    relu = nonlinearity == "relu"

    def forward(xp: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray | None, h0: np.ndarray,
                c0: None, ws: Workspace) -> tuple[np.ndarray, dict[str, Any]]:
        T, B, H = xp.shape
        w_t = w_hh.T
        hs = ws.empty("hs", (T + 1, B, H), xp.dtype)
        hs[0] = h0
        for t in range(T):
            np.matmul(hs[t], w_t, out=hs[t + 1])   # h_t = act(x_t W_ih^T + b + h W_hh^T)
            hs[t + 1] += xp[t]
            if relu:
                np.maximum(hs[t + 1], 0, out=hs[t + 1])
            else:
                np.tanh(hs[t + 1], out=hs[t + 1])
        return hs, {"hs": hs, "w_hh": w_hh}

    def backward(cache: dict[str, Any], dhs: np.ndarray, inject: dict, ws: Workspace) -> tuple[np.ndarray, ...]:
        hs, w_hh = cache["hs"], cache["w_hh"]
        T, B, H = dhs.shape
        factor = (hs[1:] > 0).astype(hs.dtype) if relu else 1 - hs[1:] * hs[1:]
        dpre = ws.empty("dpre", (T, B, H), hs.dtype)
        dh_next = np.zeros((B, H), hs.dtype)
        for t in range(T - 1, -1, -1):
            _inject(t, inject, dh_next, None)
            dh_next += dhs[t]
            np.multiply(dh_next, factor[t], out=dpre[t])
            np.matmul(dpre[t], w_hh, out=dh_next)
        return dpre, dpre, dh_next, None

    return forward, backward


_KINDS: dict[str, tuple[int, Any, Any]] = {
    "LSTM": (4, _lstm_forward, _lstm_backward),
    "GRU": (3, _gru_forward, _gru_backward),
    "RNN_TANH": (1, *_make_rnn_kernels("tanh")),
    "RNN_RELU": (1, *_make_rnn_kernels("relu")),
}


# --------------------------------------------------------------------------
# Sequence layers
# --------------------------------------------------------------------------


class _RNNBase(Layer):
    """Stacked, optionally bidirectional recurrence over batch-first sequences.

    Parameters are named exactly as in PyTorch's ``state_dict``
    (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``,
    with a ``_reverse`` suffix for the backward direction).
    """

    _name = "RNN"

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 return_sequences: bool | None = None, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        name = self._name
        for label, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: {label} must be a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.dtype = check_dtype_name(name, dtype)
        self.mode = mode
        self.gates, self._fwd_kernel, self._bwd_kernel = _KINDS[mode]
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.dropout, self.bidirectional = bias, float(dropout), bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.return_sequences = return_sequences
        self.rng = rng
        H, G = self.hidden_size, self.gates * self.hidden_size
        bound = 1.0 / math.sqrt(H)
        self.params: dict[str, Parameter] = {}
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else H * self.num_directions
            for sfx in self._suffixes():
                shapes = {"weight_ih": (G, in_k), "weight_hh": (G, H)}
                if bias:
                    shapes.update({"bias_ih": (G,), "bias_hh": (G,)})
                for base, shape in shapes.items():
                    key = f"{base}_l{k}{sfx}"
                    self.params[key] = Parameter(uniform(shape, bound, self.dtype, rng), key)
        self.initial_state_grad: Any = None
        self._cache: dict[str, Any] | None = None
        self._ws: dict[tuple[int, int], Workspace] = {}

    def config(self) -> dict[str, Any]:
        """Constructor arguments (without weights), e.g. to build a twin layer."""
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
               "bias": self.bias, "dropout": self.dropout, "bidirectional": self.bidirectional,
               "return_sequences": self.return_sequences, "dtype": self.dtype.name}
        if isinstance(self, SimpleRNN):
            cfg["nonlinearity"] = self.nonlinearity
        return cfg

    # ---- helpers -------------------------------------------------------

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _has_cell(self) -> bool:
        return self.mode == "LSTM"

    def _p(self, base: str, k: int, d: int) -> np.ndarray | None:
        p = self.params.get(f"{base}_l{k}{self._suffixes()[d]}")
        return None if p is None else p.value

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_lengths(self, lengths: Any, B: int, T: int) -> np.ndarray | None:
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{self._name}: expected lengths as integers of shape ({B},), "
                             f"got {lengths.dtype} of shape {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"{self._name}: every length must be in [1, {T}] (T = {T}), "
                             f"got values in [{lengths.min()}, {lengths.max()}]")
        return lengths.astype(np.intp)

    def _check_state(self, state: Any, B: int) -> tuple[np.ndarray, np.ndarray | None]:
        shape = self._state_shape(B)
        if state is None:
            z = np.zeros(shape, self.dtype)
            return z, (z.copy() if self._has_cell else None)
        parts = state if self._has_cell else (state,)
        if self._has_cell and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise ValueError(f"{self._name}: expected state as a tuple (h_0, c_0), each of shape {shape}")
        out = []
        for label, s in zip(("h_0", "c_0"), parts):
            s = np.asarray(s)
            if s.shape != shape:
                raise ValueError(f"{self._name}: expected {label} of shape {shape} "
                                 f"(num_layers*num_directions, B, hidden_size), got {s.shape}")
            if not np.issubdtype(s.dtype, np.floating):
                raise ValueError(f"{self._name}: expected a floating-point {label}, got dtype {s.dtype}")
            check_finite(self._name, s, label)
            out.append(s.astype(self.dtype, copy=False))
        return out[0], (out[1] if self._has_cell else None)

    def _ws_for(self, k: int, d: int) -> Workspace:
        """The workspace of layer k, direction d (k = -1: the stack's own buffers)."""
        return self._ws.setdefault((k, d), Workspace())

    @staticmethod
    def _reverse(a: np.ndarray, rev: np.ndarray | None) -> np.ndarray:
        """Reverse a time-major (T, B, ·) array along time, each sequence within its own length."""
        if rev is None:
            return a[::-1]
        return a[rev, np.arange(a.shape[1])[None, :]]

    # ---- forward -------------------------------------------------------

    def forward(self, x: np.ndarray, state: Any = None, lengths: Any = None) -> Any:
        """Run the stack over a batch of sequences.

        Args:
            x: (B, T, input_size).
            state: initial state, h_0 (num_layers·D, B, H), or for the LSTM a
                tuple (h_0, c_0); zeros if None. D = 2 if bidirectional.
            lengths: (B,) integer lengths for padded batches, or None.

        Returns:
            With ``return_sequences=None`` (PyTorch style): ``(y, h_n)`` or for the
            LSTM ``(y, (h_n, c_n))``, y of shape (B, T, D·H) and h_n, c_n of shape
            (num_layers·D, B, H). With ``return_sequences=True``: y only. With
            ``False``: the last output (B, D·H), i.e. each direction's final state
            of the top layer (Keras style).
        """
        name = self._name
        x = check_float_input(name, x, self.dtype, 3, f"(B, T, {self.input_size})", last=self.input_size)
        B, T, _ = x.shape
        if T == 0 or B == 0:
            raise ValueError(f"{name}: expected a non-empty batch of shape (B, T, {self.input_size}), got {x.shape}")
        lengths = self._check_lengths(lengths, B, T)
        h0, c0 = self._check_state(state, B)
        H, D = self.hidden_size, self.num_directions
        rev = mask = last = None
        if lengths is not None:
            t_idx = np.arange(T)[:, None]
            mask = (t_idx < lengths[None, :])[:, :, None]                      # (T, B, 1)
            rev = F.reverse_index(lengths, T)
            last = lengths - 1
        training = self.training and self.dropout > 0
        h_n = np.empty(self._state_shape(B), self.dtype)
        c_n = np.empty_like(h_n) if self._has_cell else None

        inp = self._ws_for(-1, 0).empty("x", (T, B, self.input_size), self.dtype)
        inp[...] = x.transpose(1, 0, 2)                                        # (T, B, I)
        layers = []
        for k in range(self.num_layers):
            dirs = []
            out = None if D == 1 else self._ws_for(k, 0).empty("out", (T, B, D * H), self.dtype)
            for d in range(D):
                ws = self._ws_for(k, d)
                inp_d = inp if d == 0 else self._reverse(inp, rev)
                G = self.gates * H
                xp = ws.empty("xp", (T, B, G), self.dtype)
                np.matmul(inp_d.reshape(T * B, -1), self._p("weight_ih", k, d).T, out=xp.reshape(T * B, G))
                b_ih, b_hh = self._p("bias_ih", k, d), self._p("bias_hh", k, d)
                if b_ih is not None and self.mode != "GRU":
                    xp += b_ih + b_hh        # both biases in one pass; GRU needs b_hn inside r ⊙ (·)
                    b_hh = None
                elif b_ih is not None:
                    xp += b_ih
                s = k * D + d
                hs, cache = self._fwd_kernel(xp, self._p("weight_hh", k, d), b_hh, h0[s],
                                             None if c0 is None else c0[s], ws)
                if last is None:
                    h_n[s] = hs[T]
                    if c_n is not None:
                        c_n[s] = cache["cs"][T]
                else:
                    h_n[s] = hs[last + 1, np.arange(B)]
                    if c_n is not None:
                        c_n[s] = cache["cs"][last + 1, np.arange(B)]
                ys = hs[1:]                                                    # (T, B, H)
                if out is None:
                    out = ys
                else:
                    out[:, :, d * H:(d + 1) * H] = ys if d == 0 else self._reverse(ys, rev)
                dirs.append({"inp": inp_d, "cache": cache})
            if mask is not None:
                out = out * mask
            drop = None
            if training and k < self.num_layers - 1:
                keep = get_rng(self.rng).random(out.shape) >= self.dropout
                drop = keep.astype(self.dtype) / (1.0 - self.dropout)
                out = out * drop
            layers.append({"dirs": dirs, "drop": drop})
            inp = out
        self._cache = {"layers": layers, "B": B, "T": T, "rev": rev, "mask": mask, "last": last}
        y = np.ascontiguousarray(inp.transpose(1, 0, 2))                       # (B, T, D·H)
        state_out = (h_n, c_n) if self._has_cell else h_n
        if self.return_sequences is None:
            return y, state_out
        if self.return_sequences:
            return y
        return h_n[-D:].transpose(1, 0, 2).reshape(B, D * H)

    # ---- backward ------------------------------------------------------

    def backward(self, dy: np.ndarray | None, dstate: Any = None) -> np.ndarray:
        """Back-propagate; accumulate parameter gradients; return dx (B, T, input_size).

        Args:
            dy: gradient w.r.t. the forward output: (B, T, D·H) for sequences,
                (B, D·H) with ``return_sequences=False``; None means zeros.
            dstate: gradient w.r.t. the final state (dh_n or, for the LSTM,
                (dh_n, dc_n)), each (num_layers·D, B, H); None means zeros.

        After the call, ``initial_state_grad`` holds dh_0 (or (dh_0, dc_0)).
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{self._name}.backward called before forward")
        B, T, rev, mask, last = cache["B"], cache["T"], cache["rev"], cache["mask"], cache["last"]
        H, D = self.hidden_size, self.num_directions
        shape = self._state_shape(B)
        dh_n = np.zeros(shape, self.dtype)
        dc_n = np.zeros(shape, self.dtype) if self._has_cell else None
        if dstate is not None:
            parts = dstate if self._has_cell else (dstate,)
            if self._has_cell and (not isinstance(dstate, (tuple, list)) or len(dstate) != 2):
                raise ValueError(f"{self._name}.backward: expected dstate as a tuple (dh_n, dc_n)")
            for dst, s in zip((dh_n, dc_n), parts):
                if s is not None and dst is not None:
                    s = np.asarray(s)
                    if s.shape != shape:
                        raise ValueError(f"{self._name}.backward: expected final-state gradient of shape "
                                         f"{shape}, got {s.shape}")
                    dst += s
        if self.return_sequences is False:
            if dy is None or np.shape(dy) != (B, D * H):
                raise ValueError(f"{self._name}.backward: expected dy of shape {(B, D * H)}, "
                                 f"got {None if dy is None else np.shape(dy)}")
            dh_n[-D:] += np.asarray(dy).reshape(B, D, H).transpose(1, 0, 2)
            dy = None
        if dy is None:
            dout = np.zeros((T, B, D * H), self.dtype)
        else:
            dy = np.asarray(dy)
            if dy.shape != (B, T, D * H):
                raise ValueError(f"{self._name}.backward: expected dy of shape {(B, T, D * H)}, got {dy.shape}")
            dout = self._ws_for(-1, 0).empty("dy", (T, B, D * H), self.dtype)
            dout[...] = dy.transpose(1, 0, 2)
        dh0 = np.empty(shape, self.dtype)
        dc0 = np.empty(shape, self.dtype) if self._has_cell else None

        for k in range(self.num_layers - 1, -1, -1):
            layer = cache["layers"][k]
            if layer["drop"] is not None:
                dout = dout * layer["drop"]
            if mask is not None:
                dout = dout * mask
            dinp = None
            for d in range(D):
                s = k * D + d
                ent = layer["dirs"][d]
                dys = dout[:, :, d * H:(d + 1) * H]
                if d == 1:
                    dys = self._reverse(dys, rev)
                inject = self._inject_map(T, last, dh_n[s], None if dc_n is None else dc_n[s])
                ws = self._ws_for(k, d)
                dxp, dhp, dh0[s], dc_s = self._bwd_kernel(ent["cache"], dys, inject, ws)
                if dc0 is not None:
                    dc0[s] = dc_s
                sfx = self._suffixes()[d]
                hs = ent["cache"]["hs"]
                dxp2, dhp2 = dxp.reshape(T * B, -1), dhp.reshape(T * B, -1)
                # Weight gradients for all steps at once: dW_hh = Σ_t dhp_t^T h_{t−1}, dW_ih = Σ_t dxp_t^T x_t.
                self.params[f"weight_hh_l{k}{sfx}"].grad += dhp2.T @ hs[:-1].reshape(T * B, H)
                self.params[f"weight_ih_l{k}{sfx}"].grad += dxp2.T @ ent["inp"].reshape(T * B, -1)
                if self.bias:
                    db_ih = dxp2.sum(axis=0)
                    self.params[f"bias_ih_l{k}{sfx}"].grad += db_ih
                    self.params[f"bias_hh_l{k}{sfx}"].grad += db_ih if dhp is dxp else dhp2.sum(axis=0)
                w_ih = self.params[f"weight_ih_l{k}{sfx}"].value
                dinp_d = ws.empty("dinp", (T, B, w_ih.shape[1]), self.dtype)
                np.matmul(dxp2, w_ih, out=dinp_d.reshape(T * B, -1))
                if d == 1:
                    dinp_d = self._reverse(dinp_d, rev)
                dinp = dinp_d if dinp is None else np.add(dinp, dinp_d, out=dinp_d)
            dout = dinp
        self.initial_state_grad = (dh0, dc0) if self._has_cell else dh0
        return np.ascontiguousarray(dout.transpose(1, 0, 2))

    @staticmethod
    def _inject_map(T: int, last: np.ndarray | None, dh_n: np.ndarray,
                    dc_n: np.ndarray | None) -> dict[int, tuple[Any, np.ndarray, np.ndarray | None]]:
        """Where each sequence's final-state gradient enters the backward loop."""
        if last is None:
            return {T - 1: (slice(None), dh_n, dc_n)}
        out = {}
        for t in np.unique(last):
            idx = np.flatnonzero(last == t)
            out[int(t)] = (idx, dh_n[idx], None if dc_n is None else dc_n[idx])
        return out


class LSTM(_RNNBase):
    """Long short-term memory over batch-first sequences (see the module docstring).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, dropout=0.0,
    bidirectional=False, return_sequences=None, dtype="float32")``.
    x (B, T, input_size) -> y (B, T, D·hidden_size), (h_n, c_n) each
    (num_layers·D, B, hidden_size). Weights are PyTorch's, gate order i, f, g, o.
    """

    _name = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, return_sequences: bool | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, dropout, bidirectional,
                         return_sequences, dtype, rng)


class GRU(_RNNBase):
    """Gated recurrent unit over batch-first sequences (PyTorch's variant; gate order r, z, n).

    x (B, T, input_size) -> y (B, T, D·hidden_size), h_n (num_layers·D, B, hidden_size).
    """

    _name = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, return_sequences: bool | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, dropout, bidirectional,
                         return_sequences, dtype, rng)


class SimpleRNN(_RNNBase):
    """Elman RNN, ``nonlinearity`` "tanh" or "relu" (PyTorch's ``nn.RNN``).

    x (B, T, input_size) -> y (B, T, D·hidden_size), h_n (num_layers·D, B, hidden_size).
    """

    _name = "SimpleRNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 return_sequences: bool | None = None, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, dropout,
                         bidirectional, return_sequences, dtype, rng)


# --------------------------------------------------------------------------
# Single-step cells: one step of the same kernels, for custom loops and teaching.
# --------------------------------------------------------------------------


class _CellBase(Layer):
    _mode = "LSTM"
    _name = "Cell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        self._seq = _RNNBase.__new__(_RNNBase)
        self._seq._name = self._name
        _RNNBase.__init__(self._seq, self._mode, input_size, hidden_size, 1, bias, 0.0, False, None, dtype, rng)
        self.input_size, self.hidden_size, self.dtype = input_size, hidden_size, self._seq.dtype
        # PyTorch's cell keys: weight_ih, weight_hh, bias_ih, bias_hh.
        self.params = {key[:-3]: p for key, p in self._seq.params.items()}
        for key, p in self.params.items():
            p.name = key

    def _step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        x = check_float_input(self._name, x, self.dtype, 2, f"(B, {self.input_size})", last=self.input_size)
        if state is not None:
            state = tuple(np.asarray(s)[None] for s in state) if isinstance(state, tuple) else np.asarray(state)[None]
        _, st = self._seq.forward(x[:, None, :], state)
        return st

    def config(self) -> dict[str, Any]:
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size, "bias": self._seq.bias,
               "dtype": self.dtype.name}
        if self._name == "SimpleRNNCell":
            cfg["nonlinearity"] = self._mode[len("RNN_"):].lower()
        return cfg


class LSTMCell(_CellBase):
    """One LSTM step: x (B, I), (h, c) each (B, H) -> (h', c').

    After ``forward``, ``trace`` holds the step spelled out for learners:
    pre-activations and values of the gates i, f, g, o, and c', h', each (B, H).
    ``backward(dh, dc=None)`` returns dx (B, I); ``initial_state_grad`` holds (dh, dc).
    """

    _mode, _name = "LSTM", "LSTMCell"

    def forward(self, x: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        h_n, c_n = self._step(x, state)
        acts = self._seq._cache["layers"][0]["dirs"][0]["cache"]["acts"][0]      # (B, 4H), [i, f, g, o]
        h_prev = self._seq._cache["layers"][0]["dirs"][0]["cache"]["hs"][0]
        x = np.asarray(x, self.dtype)
        pre = x @ self.params["weight_ih"].value.T + h_prev @ self.params["weight_hh"].value.T
        if "bias_ih" in self.params:
            pre = pre + self.params["bias_ih"].value + self.params["bias_hh"].value
        H = self.hidden_size
        self.trace = {f"pre_{g}": pre[:, j * H:(j + 1) * H] for j, g in enumerate("ifgo")}
        self.trace.update({g: acts[:, j * H:(j + 1) * H].copy() for j, g in enumerate("ifgo")})
        self.trace.update({"c": c_n[0], "h": h_n[0]})
        return h_n[0], c_n[0]

    def backward(self, dh: np.ndarray, dc: np.ndarray | None = None) -> np.ndarray:
        dx = self._seq.backward(None, (np.asarray(dh)[None], None if dc is None else np.asarray(dc)[None]))
        dh0, dc0 = self._seq.initial_state_grad
        self.initial_state_grad = (dh0[0], dc0[0])
        return dx[:, 0]


class _SingleStateCell(_CellBase):
    def forward(self, x: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        return self._step(x, state)[0]

    def backward(self, dh: np.ndarray) -> np.ndarray:
        dx = self._seq.backward(None, np.asarray(dh)[None])
        self.initial_state_grad = self._seq.initial_state_grad[0]
        return dx[:, 0]


class GRUCell(_SingleStateCell):
    """One GRU step: x (B, I), h (B, H) -> h' (B, H). ``backward(dh)`` returns dx."""

    _mode, _name = "GRU", "GRUCell"


class SimpleRNNCell(_SingleStateCell):
    """One Elman step: x (B, I), h (B, H) -> h' (B, H); ``nonlinearity`` tanh or relu."""

    _name = "SimpleRNNCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._mode = f"RNN_{nonlinearity.upper()}"
        super().__init__(input_size, hidden_size, bias, dtype, rng)
