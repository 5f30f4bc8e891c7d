"""The contract between the recurrent frame (``rnn_base.py``) and a kind of recurrence (a ``Kernel``).

A kernel runs one layer, one direction, time-major, and keeps what its backward needs in a
``ScanRecord`` — named arrays, written down here, so the frame, the cells and ``lk.inspect``
read the same fields and a compiled kernel can fill the same record. A kernel also says its
shapes (``Kernel.shapes``): the sizes of its states and of each parameter of a layer. A new
kind of cell is its equations, one ``Kernel`` (gate names, the scan and its backward, its
shapes, a plain reference step) and one line in the tests' table.

Shapes: T steps, B sequences, H units, G gate blocks (gates stacked as in PyTorch's weights);
the state h has ``Shapes.h`` units (H unless the kind says otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Shapes(NamedTuple):
    """One layer's sizes as its kind lays them out.

    h       units of the state h, and of each direction's output
    c       units of the cell state c, or None for kinds without one
    params  every parameter's shape by its base name: weight_ih, weight_hh, bias_ih, bias_hh (with bias), then the
            kind's own
    """

    h: int
    c: int | None
    params: dict[str, tuple[int, ...]]


@dataclass
class ScanRecord:
    """What one scan keeps for its backward; time-major.

    hs     (T + 1, B, H)  h_0 .. h_T
    gates  (T, B, G·H)    the gate activations, in the kernel's gate order (None for SimpleRNN)
    cs     (T + 1, B, H)  c_0 .. c_T, for kinds with a cell state (else None)
    aux    {name: array}  anything else only this kernel's backward reads (e.g. tanh(c_t))
    """

    hs: np.ndarray
    gates: np.ndarray | None = None
    cs: np.ndarray | None = None
    aux: dict[str, np.ndarray] = field(default_factory=dict)

    def named(self, gate_names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """{gate: (T, B, H) view, ..., "c": (T, B, c) if a cell state, "h": (T, B, h)} for steps 1..T."""
        out = {}
        if gate_names:
            H = self.gates.shape[-1] // len(gate_names)
            out = {g: self.gates[:, :, j * H:(j + 1) * H] for j, g in enumerate(gate_names)}
        if self.cs is not None:
            out["c"] = self.cs[1:]
        out["h"] = self.hs[1:]
        return out


class ScanGrads(NamedTuple):
    """What a kernel's backward returns.

    d_xproj  (T, B, G·H)  gradient w.r.t. the x-side pre-activations W_ih x_t + b_ih
    d_hproj  (T, B, G·H)  gradient w.r.t. the h-side pre-activations W_hh h_{t−1} + b_hh (may be d_xproj itself)
    dh0, dc0 (B, H)       gradients w.r.t. the initial state (dc0 None without a cell state)
    extra    {name: array} gradients of the kernel's extra parameters, shaped as they are
    bias     (Σ d_xproj, Σ d_hproj) over steps and batch, each (G·H,), when the kernel summed them (else the frame does)
    """

    d_xproj: np.ndarray
    d_hproj: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray | None = None
    extra: dict[str, np.ndarray] = {}
    bias: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class Kernel:
    """One kind of recurrence, as the frame runs it.

    forward(xproj, w_t, b_loop, h0, c0, ws, prescaled, extra, rmask=None) -> ScanRecord
        xproj (T, B, G·H): input projections incl. biases (the kernel may overwrite it; with ``apart`` without
        them); w_t = W_hh^T (H, G·H) and b_loop (the hh-bias of the last ``loop_bias_gates`` gates, or with
        ``apart`` both biases b_ih + b_hh; or None);
        with ``prescaled`` all three were scaled by ``row_scale``, otherwise the kernel scales each
        step's pre-activations itself; ``extra`` {name: (rows, H)} this direction's extra parameters;
        ``rmask`` (B, h) or None: recurrent dropout's mask, on h_{t−1} where it enters W_hh (``masked``).
    backward(record, w_hh, dhs, inject, ws, extra, rmask=None) -> ScanGrads
        w_hh: the true weights (G·H, H); dhs (T, B, H): gradient w.r.t. h_1..h_T from the outputs;
        inject {t: (index, dh, dc)}: final-state gradients entering at step t; ``rmask`` the forward's (the
        gradient reaching h_{t−1} through W_hh is masked as the product's input was).
    step(x, h, c, weights) -> (h', c'): the equations for one step and nothing else (c None/absent
        for kinds without a cell state); the reference the fused scan is tested against.
    """

    name: str                                      # as PyTorch's mode or module names it, for messages
    gate_names: tuple[str, ...]                    # gate blocks in weight-row order; () for a plain RNN
    forward: Callable[..., ScanRecord]
    backward: Callable[..., ScanGrads]
    step: Callable[..., tuple[Any, ...]]
    row_scale: tuple[float, ...] | None = None     # one factor per gate block, or None
    loop_bias_gates: int = 0                       # trailing gates whose hh-bias stays inside the scan
    has_cell: bool = False
    extra: tuple[tuple[str, int], ...] = ()        # extra per-direction parameters: (name, rows), each (rows, H)
    compiled: str | None = None                    # the compiled core's name for this kind (core.h's LK_KINDS)
    projection: str | None = None                  # the parameter (P, H) that projects the step's h to the state
                                                   # fed back (the projected LSTM's weight_hr), or None
    apart: bool = False                            # W_ih x_t and W_hh h reach the step apart and without biases:
                                                   # the kernel adds them (layer norm normalises each side first)
    initial: dict[str, tuple[float, ...]] = field(default_factory=dict)   # extra parameters that start at a value
                                                   # per row (a norm's gain 1, its shift 0) instead of at random
    layout: Callable[..., Shapes] | None = None    # (kernel, in_k, H, bias, **options) -> Shapes, where a kind's
                                                   # sizes are not the standard ones of ``shapes``

    @property
    def split(self) -> bool:
        """Whether the x- and h-side pre-activations enter apart, so their gradients differ (core.h's split)."""
        return self.apart or self.loop_bias_gates > 0

    @property
    def gates(self) -> int:
        """G, the number of gate blocks stacked in the weights."""
        return max(1, len(self.gate_names))

    def shapes(self, in_k: int, H: int, bias: bool = True, **options: Any) -> Shapes:
        """The sizes of one layer of this kind with ``in_k`` inputs and H units per gate block: by default h and c
        of H units, PyTorch's four weights and biases (G·H rows) and each extra parameter (rows, H). A kind whose
        sizes differ (a projected state, per-layer options) gives ``layout``."""
        if self.layout is not None:
            return self.layout(self, in_k, H, bias, **options)
        return self.standard_shapes(in_k, H, bias)

    def standard_shapes(self, in_k: int, H: int, bias: bool = True, h: int | None = None) -> Shapes:
        """PyTorch's layout: the four weights and biases (G·H rows; W_hh has a column per unit of h) and each extra
        parameter (rows, H); h of ``h`` units (default H), c of H. A kind's ``layout`` builds on it."""
        h = H if h is None else h
        G = self.gates * H
        params: dict[str, tuple[int, ...]] = {"weight_ih": (G, in_k), "weight_hh": (G, h)}
        if bias:
            params.update({"bias_ih": (G,), "bias_hh": (G,)})
        params.update({name: (rows, H) for name, rows in self.extra})
        return Shapes(h, H if self.has_cell else None, params)


@dataclass
class Weights:
    """One layer and direction's parameters, by role: w_ih (G·H, in), w_hh (G·H, H), b_ih and b_hh (G·H,) or None,
    and the kernel's extra parameters {name: (rows, H)}."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None
    extra: dict[str, np.ndarray]

    def folded_biases(self, loop: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(b_ih + b_hh, except on the last ``loop`` rows: b_ih alone there; b_hh's last ``loop`` rows, or None).
        Those last rows' h-side bias stays inside the scan (GRU's b_hn, which r gates); (None, None) without bias."""
        if self.b_ih is None or self.b_hh is None:
            return None, None
        cut = self.b_ih.shape[0] - loop
        bias = self.b_ih.copy()
        bias[:cut] += self.b_hh[:cut]
        return bias, (self.b_hh[cut:] if loop else None)


@dataclass
class DirectionRecord:
    """One direction of one layer: its input (T, B, in_k), time-major in the order it ran, its scan, and the masks
    its regularisers drew (``regularise.py``): rmask (B, h) on the state, wmask on W_hh, or None."""

    inp: np.ndarray
    scan: ScanRecord
    rmask: np.ndarray | None = None
    wmask: np.ndarray | None = None
    zone: Any = None                     # zoneout.Zone, or None


@dataclass
class LayerRecord:
    """One layer of the stack: its directions and the dropout mask applied to its output (or None)."""

    dirs: list[DirectionRecord]
    drop: np.ndarray | None


@dataclass
class StackRecord:
    """What a recurrent layer's forward keeps: per layer and direction, and the batch's lengths.

    rev (T, B) index that reverses each sequence within its length, mask (T, B, 1), last (B,) = lengths − 1;
    all None without ``lengths``.
    """

    layers: list[LayerRecord]
    B: int
    T: int
    rev: np.ndarray | None
    mask: np.ndarray | None
    last: np.ndarray | None
    core: bool = False           # whether the scans ran on the compiled core (the backward runs where they did)
    x_mask: np.ndarray | None = None     # input_dropout's (B, 1, I), output_dropout's (B, 1, D·h), or None
    y_mask: np.ndarray | None = None


def masked(h: np.ndarray, rmask: np.ndarray | None) -> np.ndarray:
    """The state h (B, h) where it enters W_hh: h ⊙ rmask under recurrent dropout (``regularise.py``), else h."""
    return h if rmask is None else h * rmask


def add_final_grads(t: int, inject: dict[int, tuple[Any, np.ndarray, np.ndarray | None]], dh: np.ndarray,
                    dc: np.ndarray | None) -> None:
    """A backward's step t: add to dh (and dc) the final-state gradients of the sequences that end at step t."""
    if t in inject:
        idx, dh_n, dc_n = inject[t]
        dh[idx] += dh_n
        if dc is not None and dc_n is not None:
            dc[idx] += dc_n
