"""The frame every recurrent layer shares: stacking, directions, lengths, dropout, buffers.

A kind of recurrence (LSTM, GRU, Elman, peephole LSTM) is a ``Kernel`` (``scan.py``):
a time-major scan over one layer and one direction that fills a ``ScanRecord``, and
its backward (``recurrent.py`` holds them with the equations). Everything else is
here, once:

* Each layer and direction runs on the compiled core (``lstmkit.compiled``) when
  the core runs its kind (``Kernel.compiled``): the core forms the input
  projection, adds the biases, steps, and in the backward sums the bias
  gradients, forms dx and adds dW_ih, dW_hh. Otherwise on NumPy: the input
  projection of all steps is one GEMM before the kernel's scan, and the weight
  and bias gradients and dx are GEMMs after its backward.
* A kernel may ask for some gate rows to be scaled (``Kernel.row_scale``): the
  NumPy forward then uses scaled copies of the weights, e.g. ½ for the sigmoid gates so
  that σ(p) = ½ + ½·tanh(p/2) needs no separate scaling pass. Scaling by ½ is
  exact in binary floating point; the backward uses the true weights.
* Variable lengths: sequences are padded at the end. Steps past a sequence's
  length never influence its steps before it, so the scan runs over all T steps
  and then (i) outputs past the length are zeroed, (ii) the final state is read
  at each sequence's own last step, (iii) the reverse direction runs on each
  sequence reversed *within its own length*. Gradients are those of PyTorch's
  ``pack_padded_sequence`` path.
* A bidirectional layer's two directions are independent: with two cores and
  enough work they run side by side (``lstmkit.parallel``; a compiled scan then
  on one core each), with identical results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import compiled, parallel
from .. import functional as F
from .._checks import check_dtype_name, check_finite, check_float_input
from ..init import uniform
from ..parameter import Parameter
from ..random import get_rng
from ..workspace import Workspace, aligned_empty
from . import inference, regularise, zoneout
from .base import Layer
from .regularise import Regularisers
from .rnn_backward import StackBackward
from .scan import DirectionRecord, Kernel, LayerRecord, ScanRecord, Shapes, StackRecord, Weights

_STANDARD = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# Below this many multiply-adds per recurrent step, two threads cost more than they save.
_SIDE_BY_SIDE_MIN = 2 ** 21


def directions_side_by_side(B: int, H: int, gates: int) -> bool:
    """Whether a bidirectional layer of batch B, H units and ``gates`` gate blocks runs its two directions
    on two threads (one recurrent step is B·H·gates·H multiply-adds)."""
    return B * H * gates * H >= _SIDE_BY_SIDE_MIN and parallel.cores() >= 2


class _RNNBase(StackBackward, Layer):
    """Stacked, optionally bidirectional recurrence over batch-first sequences.

    Parameters are named exactly as in PyTorch's ``state_dict``
    (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``,
    with a ``_reverse`` suffix for the backward direction). Every kind also takes the
    regularisers of ``regularise.py`` as keyword options (``input_dropout``, ``output_dropout``,
    ``recurrent_dropout``, ``weight_drop``, ``zoneout``, ``zoneout_cell``).
    """

    _name = "RNN"
    _kept = ("_record",)

    def __init__(self, kernel: Kernel, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 return_sequences: bool | None = None, dtype: str = "float32",
                 rng: np.random.Generator | None = None, options: dict[str, Any] | None = None,
                 regularisers: dict[str, float] | None = None) -> None:
        name = self._name
        for label, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: {label} must be a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.regularisers = Regularisers.of(name, regularisers or {})
        self.regularisers.check_kind(name, kernel.has_cell, kernel.projection is not None)
        self.dtype = check_dtype_name(name, dtype)
        self.kernel = kernel
        self.gates = kernel.gates
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.dropout, self.bidirectional = bias, float(dropout), bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.return_sequences = return_sequences
        self.rng = rng
        self.options = dict(options or {})                   # the kind's own constructor arguments (proj_size)
        self.params: dict[str, Parameter] = {}
        H = self.hidden_size
        bound = 1.0 / math.sqrt(H)
        self.shapes: list[Shapes] = []                      # each layer's sizes, as the kind lays them out
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else self.shapes[-1].h * self.num_directions
            self.shapes.append(kernel.shapes(in_k, H, bias, **self.options))
            for sfx in self._suffixes():
                for base, shape in self.shapes[k].params.items():
                    key = f"{base}_l{k}{sfx}"
                    rows = kernel.initial.get(base)
                    value = uniform(shape, bound, self.dtype, rng) if rows is None else \
                        np.repeat(np.asarray(rows, self.dtype), shape[0] // len(rows))[:, None].repeat(shape[1], 1)
                    self.params[key] = Parameter(value, key)
        self.state_size, self.cell_size = self.shapes[-1].h, self.shapes[-1].c   # h and c of every layer
        self.initial_state_grad: Any = None
        self.carrying, self.carried = False, None          # truncated BPTT (lstmkit.tbptt): the state carried over
        self._record: StackRecord | None = None
        self._ws: dict[tuple[int, int], Workspace] = {}
        self._row_scale = None if kernel.row_scale is None else \
            np.repeat(np.asarray(kernel.row_scale, self.dtype), H)[:, None]           # (G, 1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (without weights), e.g. to build a twin layer."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bias": self.bias, "dropout": self.dropout, "bidirectional": self.bidirectional,
                "return_sequences": self.return_sequences, "dtype": self.dtype.name, **self.options,
                **self.regularisers.config()}

    @property
    def output_size(self) -> int:
        """Units of each step's output: D·h (h = hidden_size unless the kind projects it)."""
        return self.num_directions * self.state_size

    # ---- helpers -------------------------------------------------------

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _has_cell(self) -> bool:
        return self.kernel.has_cell

    def _extra(self, k: int, d: int) -> dict[str, np.ndarray]:
        """The kind's own parameters of layer k, direction d (all but PyTorch's four), by their base names."""
        return {name: self._p(name, k, d) for name in self.shapes[k].params if name not in _STANDARD}

    def last_trace(self) -> dict[str, dict[str, np.ndarray]]:
        """The gates and states of the last forward: ``{"l<k>" or "l<k>/reverse": {name: (B, T, H)}}``.

        Names are the kernel's gates (LSTM i, f, g, o; GRU r, z, n), then "c" (kinds with a cell
        state) and "h". Arrays are batch-first copies in the input's time order (the reverse
        direction's too); past a sequence's length they hold what the kernel computed there.
        """
        rec = self._record
        if rec is None:
            raise RuntimeError(f"{self._name}.last_trace called before forward")
        out: dict[str, dict[str, np.ndarray]] = {}
        for k, layer in enumerate(rec.layers):
            for d, direction in enumerate(layer.dirs):
                named = direction.scan.named(self.kernel.gate_names)
                out[f"l{k}" + ("/reverse" if d else "")] = {
                    name: np.ascontiguousarray((a if d == 0 else self._reverse(a, rec.rev)).transpose(1, 0, 2))
                    for name, a in named.items()}
        return out

    def _p(self, base: str, k: int, d: int) -> np.ndarray | None:
        p = self.params.get(f"{base}_l{k}{self._suffixes()[d]}")
        return None if p is None else p.value

    def _state_shape(self, B: int, size: int | None = None) -> tuple[int, int, int]:
        """(num_layers·D, B, h), or with ``size`` that many units (the cell state's)."""
        return (self.num_layers * self.num_directions, B, self.state_size if size is None else size)

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
        shapes = {"h_0": self._state_shape(B), "c_0": self._state_shape(B, self.cell_size)}
        if state is None:
            c0 = np.zeros(shapes["c_0"], self.dtype) if self._has_cell else None
            return np.zeros(shapes["h_0"], self.dtype), c0
        parts = state if self._has_cell else (state,)
        if self._has_cell and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise ValueError(f"{self._name}: expected state as a tuple (h_0, c_0) of shapes {shapes['h_0']} and "
                             f"{shapes['c_0']}")
        out = []
        for label, s in zip(("h_0", "c_0"), parts):
            s = np.asarray(s)
            if s.shape != shapes[label]:
                raise ValueError(f"{self._name}: expected {label} of shape {shapes[label]} "
                                 f"(num_layers*num_directions, B, units), got {s.shape}")
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

    def _directions(self, run: Callable[[int], Any], B: int, core: bool) -> list[Any]:
        """``[run(0), run(1)]`` for the two directions, side by side when that pays."""
        if self.num_directions == 1:
            return [run(0)]
        if directions_side_by_side(B, self.hidden_size, self.gates):
            if core:                              # each direction's compiled scan on one core
                return list(parallel.side_by_side(lambda: compiled.one_thread(run, 0),
                                                  lambda: compiled.one_thread(run, 1)))
            return list(parallel.side_by_side(lambda: run(0), lambda: run(1)))
        return [run(0), run(1)]

    # ---- forward -------------------------------------------------------

    def _weights(self, k: int, d: int, wmask: np.ndarray | None = None) -> Weights:
        """Layer k, direction d's parameters, by role (W_hh ⊙ wmask under weight drop)."""
        w_hh = self._p("weight_hh", k, d)
        return Weights(self._p("weight_ih", k, d), w_hh if wmask is None else w_hh * wmask, self._p("bias_ih", k, d),
                       self._p("bias_hh", k, d), self._extra(k, d))

    def _numpy_scan(self, w: Weights, inp: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                    ws: Workspace, rmask: np.ndarray | None = None) -> ScanRecord:
        """The input projection W_ih x_t + biases of all steps as one GEMM, then the kernel's NumPy scan.

        With at least as many steps as weight rows, the scan gets a copy of the recurrent weights, transposed to
        (H, G·H) (the faster layout for h @ W_hh^T on AVX-512 kernels) and, with the projection, scaled by the
        kernel's row factors (exact: powers of 2); otherwise a view, and the kernel scales each step's
        pre-activations itself."""
        T, B, _ = inp.shape
        kern, H = self.kernel, self.hidden_size
        copied = T * B >= H
        prescaled = self._row_scale is not None and copied
        w_t = w.w_hh.T
        if copied:
            w_t = ws.empty("w_t", w_t.shape, self.dtype)
            if prescaled:
                np.multiply(w.w_hh.T, self._row_scale.T, out=w_t)
            else:
                np.copyto(w_t, w.w_hh.T)
        if prescaled:
            scale = self._row_scale
            w = Weights(np.multiply(w.w_ih, scale, out=ws.empty("w_ih", w.w_ih.shape, self.dtype)), w.w_hh,
                        None if w.b_ih is None else w.b_ih * scale[:, 0],
                        None if w.b_hh is None else w.b_hh * scale[:, 0], w.extra)
        G = w.w_ih.shape[0]
        xproj = ws.empty("xproj", (T, B, G), self.dtype)           # W_ih x_t + biases for every step
        np.matmul(inp.reshape(T * B, -1), w.w_ih.T, out=xproj.reshape(T * B, G))
        bias, b_loop = w.folded_biases(kern.loop_bias_gates * H)    # both biases in one pass, but for those inside
        if kern.apart:                                              # the kernel adds them after its own x side
            bias, b_loop = None, bias
        if bias is not None:
            xproj += bias
        return kern.forward(xproj, w_t, b_loop, h0, c0, ws, prescaled, w.extra, rmask)

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
        if state is None and self.carrying:                 # truncated BPTT: the previous window's final state
            state = self.carried
        h0, c0 = self._check_state(state, B)
        if inference.chunked(self, T):                      # lk.inference(): a chunk at a time, nothing kept
            y, h_n, c_n = inference.forward_in_chunks(self, x, h0, c0, lengths)
        else:
            y, h_n, c_n = self._whole(x, h0, c0, lengths)
        if self.carrying:                                   # (a copy: no gradient flows back through it)
            self.carried = (h_n.copy(), c_n.copy()) if self._has_cell else h_n.copy()
        D, H = self.num_directions, self.state_size
        y_mask = None if self._record is None else self._record.y_mask
        state_out = (h_n, c_n) if self._has_cell else h_n
        if self.return_sequences is None:
            return y, state_out
        if self.return_sequences:
            return y
        last = h_n[-D:].transpose(1, 0, 2).reshape(B, D * H)
        return last if y_mask is None else last * y_mask[:, 0]

    def _whole(self, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, lengths: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The stack over all of x (B, T, I) from (h0, c0), checked -> (y (B, T, D·h) with output dropout applied,
        h_n, c_n), the record kept for the backward."""
        B, T, _ = x.shape
        H, D = self.state_size, self.num_directions                          # H: units of h
        rev = mask = last = None
        if lengths is not None:
            t_idx = np.arange(T)[:, None]
            mask = (t_idx < lengths[None, :])[:, :, None]                      # (T, B, 1)
            rev = F.reverse_index(lengths, T)
            last = lengths - 1
        core = compiled.runs(self.kernel)        # the plan, once: the compiled core's scans, or the NumPy kernel's
        h_n = np.empty(self._state_shape(B), self.dtype)
        c_n = np.empty(self._state_shape(B, self.cell_size), self.dtype) if self._has_cell else None

        rng = get_rng(self.rng) if self.training else None                 # the regularisers' masks: training only
        x_mask = regularise.mask(rng, (B, 1, self.input_size), self.regularisers.input_dropout, self.dtype)
        if core:                                 # (T, B, I) seen time-major: the compiled scans read it as it lies
            inp = (x if x_mask is None else x * x_mask).transpose(1, 0, 2)
        else:
            inp = self._ws_for(-1, 0).empty("x", (T, B, self.input_size), self.dtype)
            inp[...] = (x if x_mask is None else x * x_mask).transpose(1, 0, 2)
        # The compiled scans of the top layer write the (B, T, D·H) output themselves, with no mask to apply.
        y_out = None
        if mask is None and self.return_sequences is not False and core:
            y_out = aligned_empty((B, T, D * H), self.dtype)
        rec = StackRecord([], B, T, rev, mask, last, core, x_mask,
                          regularise.mask(rng, (B, 1, D * H), self.regularisers.output_dropout, self.dtype))
        with compiled.holding_blas(core):                                   # (see compiled.threads)
            for k in range(self.num_layers):
                y_k = y_out.transpose(1, 0, 2) if y_out is not None and k == self.num_layers - 1 else None
                inp = self._layer_forward(rec, k, inp, (h0, c0), (h_n, c_n), y_k)
        self._record = rec
        y = y_out if y_out is not None else np.ascontiguousarray(inp.transpose(1, 0, 2))    # (B, T, D·H)
        if rec.y_mask is not None:
            y *= rec.y_mask
        return y, h_n, c_n

    def _layer_forward(self, rec: StackRecord, k: int, inp: np.ndarray, init: tuple[np.ndarray, np.ndarray | None],
                       final: tuple[np.ndarray, np.ndarray | None], y_k: np.ndarray | None) -> np.ndarray:
        """Layer k over inp (T, B, in_k): its directions (side by side when that pays), their outputs joined, masked
        past each length and dropped out; recorded in ``rec``. init: (h_0, c_0) of every layer and direction;
        final: where (h_n, c_n) go. Returns the output (T, B, D·h)."""
        D, H = self.num_directions, self.state_size
        out = None if D == 1 else y_k if y_k is not None else self._ws_for(k, 0).empty("out", (rec.T, rec.B, D * H),
                                                                                          self.dtype)
        masks = [self._scan_masks(k, d, rec.B, rec.T) for d in range(D)]   # drawn here, in order, not on two threads
        run = functools.partial(self._direction_forward, rec, k, inp, init, final, out, y_k, masks)
        dirs = self._directions(run, rec.B, rec.core)
        if out is None:
            out = dirs[0].scan.hs[1:]                                           # (T, B, h)
        if rec.mask is not None:
            out = out * rec.mask
        drop = None
        if self.training and self.dropout > 0 and k < self.num_layers - 1:
            drop = F.dropout_mask(get_rng(self.rng), out.shape, self.dropout, self.dtype)
            out = out * drop
        rec.layers.append(LayerRecord(dirs, drop))
        return out

    def _direction_forward(self, rec: StackRecord, k: int, inp: np.ndarray, init: tuple[np.ndarray, np.ndarray | None],
                           final: tuple[np.ndarray, np.ndarray | None], out: np.ndarray | None, y_k: np.ndarray | None,
                           masks: list[tuple[Any, ...]], d: int) -> DirectionRecord:
        """Direction d of layer k: its scan (with the recurrent-dropout and weight-drop masks[d], or None), its final
        state into ``final``, its h_1..h_T into its half of ``out`` (two directions), in the input's time order."""
        (h0, c0), (h_n, c_n) = init, final
        (rmask, wmask, zone), s, H, T, B = masks[d], k * self.num_directions + d, self.state_size, rec.T, rec.B
        inp_d = inp if d == 0 else self._reverse(inp, rec.rev)
        ws, w, c0_s = self._ws_for(k, d), self._weights(k, d, wmask), None if c0 is None else c0[s]
        # The compiled scan also writes h_1..h_T where the layer's output wants them: y_k (one direction, the top
        # layer), or its half of ``out`` (two, in the input's time order; with lengths they are gathered after).
        half = None if out is None else out[:, :, d * H:(d + 1) * H]
        y_d = y_k if half is None else None
        if half is not None and rec.core and rec.rev is None:
            y_d = half if d == 0 else self._reverse(half, None)
        if rec.core:
            scan = compiled.scan_forward(self.kernel, w, inp_d, h0[s], c0_s, ws, y_d, rmask, zone)
        elif zone is not None:               # the kind's own scan a step at a time, zoned between steps
            scan = zoneout.forward(lambda x_t, h, c, ws_t: self._numpy_scan(w, x_t, h, c, ws_t, rmask), inp_d, h0[s],
                                   c0_s, zone)
        else:
            scan = self._numpy_scan(w, inp_d, h0[s], c0_s, ws, rmask)
        h_n[s] = scan.hs[T] if rec.last is None else scan.hs[rec.last + 1, np.arange(B)]
        if c_n is not None:
            c_n[s] = scan.cs[T] if rec.last is None else scan.cs[rec.last + 1, np.arange(B)]
        if half is not None and y_d is None:
            half[...] = scan.hs[1:] if d == 0 else self._reverse(scan.hs[1:], rec.rev)
        return DirectionRecord(inp_d, scan, rmask, wmask, zone)

    def _scan_masks(self, k: int, d: int, B: int, T: int) -> tuple[Any, ...]:
        """Layer k direction d's recurrent-dropout mask (B, h), weight-drop mask (W_hh's shape) and zoneout
        (``zoneout.Zone``): each None when its regulariser is off; in eval mode the first two are None and zoneout
        is its deterministic form."""
        rng, reg, shapes = get_rng(self.rng) if self.training else None, self.regularisers, self.shapes[k]
        return (regularise.mask(rng, (B, shapes.h), reg.recurrent_dropout, self.dtype),
                regularise.mask(rng, shapes.params["weight_hh"], reg.weight_drop, self.dtype),
                zoneout.draw(rng, T, B, shapes.h, shapes.c, reg.zoneout, reg.zoneout_cell, self.dtype))
