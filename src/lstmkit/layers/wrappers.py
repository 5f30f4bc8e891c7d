"""Wrappers: Bidirectional (Keras style) and TimeDistributed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import functional as F
from ..parameter import Parameter
from .base import Layer
from .rnn_base import _RNNBase

_MERGE_MODES = ("concat", "sum", "mul", "ave")


def _reverse_batch_first(a: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Reverse (B, T, ...) along time, each sequence within its own length."""
    if lengths is None:
        return a[:, ::-1]
    rev = F.reverse_index(lengths, a.shape[1])                       # (T, B)
    return a[np.arange(a.shape[0])[:, None], rev.T]


class Bidirectional(Layer):
    """Run a recurrent layer forwards and a twin of it backwards, then merge.

    ``Bidirectional(layer, merge_mode="concat")``: ``layer`` is an ``LSTM``,
    ``GRU`` or ``SimpleRNN`` (unidirectional); the backward twin has the same
    configuration and its own weights (``backward_layer``). x (B, T, I) ->

    * ``return_sequences=True``: merged sequences (B, T, H') with H' = 2H for
      "concat", H otherwise ("sum", "mul", "ave");
    * ``return_sequences=False``: merged last outputs (B, H') — the forward
      layer's state at each sequence's end, the backward layer's at its start;
    * ``return_sequences=None``: ``(merged sequences, (state_fwd, state_bwd))``.

    ``lengths`` (B,) works as for the recurrent layers: the backward layer reads
    each sequence reversed within its own length.
    """

    _kept = ("_cache",)

    def __init__(self, layer: _RNNBase, merge_mode: str = "concat", backward_layer: _RNNBase | None = None) -> None:
        if not isinstance(layer, _RNNBase):
            raise ValueError(f"Bidirectional: expected an LSTM, GRU or SimpleRNN, got {type(layer).__name__}")
        if layer.bidirectional:
            raise ValueError("Bidirectional: the wrapped layer must be unidirectional (bidirectional=False)")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {_MERGE_MODES}, got {merge_mode!r}")
        self.forward_layer = layer
        self.backward_layer = backward_layer if backward_layer is not None else type(layer)(**layer.config())
        if self.backward_layer.config() != layer.config():
            raise ValueError("Bidirectional: backward_layer must have the same configuration as layer")
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self._cache: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        return {"layer": self.forward_layer, "merge_mode": self.merge_mode}

    def _walk(self, prefix: str, torch: bool = False) -> Iterator[tuple[str, Parameter]]:
        if not torch:
            yield from super()._walk(prefix)
            return
        # PyTorch's one-layer bidirectional module: the backward direction's keys end in "_reverse".
        if self.forward_layer.num_layers != 1:
            raise ValueError("Bidirectional: only a one-layer wrapped layer has a PyTorch equivalent "
                             f"(nn.{self.forward_layer.kernel.name.split('_')[0]}(bidirectional=True)); this one has "
                             f"{self.forward_layer.num_layers} layers")
        yield from self.forward_layer._walk(prefix, True)
        yield from ((f"{k}_reverse", p) for k, p in self.backward_layer._walk(prefix, True))

    def _merge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        m = self.merge_mode
        if m == "concat":
            return np.concatenate([a, b], axis=-1)
        if m == "sum":
            return a + b
        if m == "mul":
            return a * b
        return (a + b) / 2

    def _split(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._cache["a"], self._cache["b"]
        m = self.merge_mode
        if m == "concat":
            H = a.shape[-1]
            return dy[..., :H], dy[..., H:]
        if m == "sum":
            return dy, dy
        if m == "mul":
            return dy * b, dy * a
        return dy / 2, dy / 2

    def forward(self, x: np.ndarray, state: Any = None, lengths: Any = None) -> Any:
        """x (B, T, I); ``state`` is None or a pair (state_fwd, state_bwd)."""
        st_f, st_b = (None, None) if state is None else state
        x = np.asarray(x)
        lens = None if lengths is None else np.asarray(lengths)
        out_f = self.forward_layer.forward(x, st_f, lengths=lengths)
        out_b = self.backward_layer.forward(_reverse_batch_first(x, lens), st_b, lengths=lengths)
        if self.return_sequences is False:
            a, b = out_f, out_b
        else:
            a = out_f if self.return_sequences else out_f[0]
            b = out_b if self.return_sequences else out_b[0]
            b = _reverse_batch_first(b, lens)
            if lens is not None:                       # keep padded outputs at zero
                b = b * (np.arange(x.shape[1])[None, :] < lens[:, None])[..., None]
        self._cache = {"a": a, "b": b, "lengths": lens}
        y = self._merge(a, b)
        if self.return_sequences is None:
            return y, (out_f[1], out_b[1])
        return y

    def backward(self, dy: np.ndarray, dstate: Any = None) -> np.ndarray:
        """dy: gradient w.r.t. the merged output; returns dx (B, T, I)."""
        if self._cache is None:
            raise self._unkept("Bidirectional")
        lens = self._cache["lengths"]
        ds_f, ds_b = (None, None) if dstate is None else dstate
        da, db = self._split(np.asarray(dy))
        if self.return_sequences is not False:
            db = _reverse_batch_first(db, lens)
        if self.return_sequences is None:
            dx_f = self.forward_layer.backward(da, ds_f)
            dx_b = self.backward_layer.backward(db, ds_b)
        else:
            dx_f = self.forward_layer.backward(da)
            dx_b = self.backward_layer.backward(db)
        return dx_f + _reverse_batch_first(dx_b, lens)


class TimeDistributed(Layer):
    """Apply ``layer`` to every time step: (B, T, ...) -> (B, T, ...'), by folding T into the batch."""

    _kept = ("_bt",)

    def __init__(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed: expected a Layer, got {type(layer).__name__}")
        self.layer = layer
        self._bt: tuple[int, int] | None = None

    def config(self) -> dict[str, Any]:
        return {"layer": self.layer}

    def _walk(self, prefix: str, torch: bool = False) -> Iterator[tuple[str, Parameter]]:
        # PyTorch applies a module over leading axes as they are: the inner layer's keys, unprefixed.
        yield from (self.layer._walk(prefix, True) if torch else super()._walk(prefix))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"TimeDistributed: expected input of shape (B, T, ...) with rank >= 3, got {x.shape}")
        B, T = x.shape[:2]
        self._bt = (B, T)
        y = self.layer.forward(x.reshape(B * T, *x.shape[2:]))
        return y.reshape(B, T, *y.shape[1:])

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._bt is None:
            raise self._unkept("TimeDistributed")
        B, T = self._bt
        self.layer.input_grad = self.input_grad
        dx = self.layer.backward(np.asarray(dy).reshape(B * T, *dy.shape[2:]))
        return None if dx is None else dx.reshape(B, T, *dx.shape[1:])
