"""Single-step cells: one step of the same kernels, for custom loops and teaching.

``LSTMCell``, ``GRUCell`` and ``SimpleRNNCell`` run a one-step sequence layer,
so the equations exist once (``recurrent.py``); their weights use PyTorch's
cell keys (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``). The teaching
trace of ``LSTMCell`` reads the gates from the kernel's record; only the
pre-activations are formed again, by the reference step's ``preactivations``,
and only when ``trace`` is read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_float_input
from .base import Layer
from .recurrent import GRU, LSTM, SimpleRNN
from .rnn_base import _RNNBase
from .steps import preactivations


class _CellBase(Layer):
    _name = "Cell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        self._seq = self._sequence_layer(input_size, hidden_size, bias=bias, dtype=dtype, rng=rng)
        self._seq._name = self._name                   # errors name the cell
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
        if isinstance(self._seq, SimpleRNN):
            cfg["nonlinearity"] = self._seq.nonlinearity
        return cfg

    def _sequence_layer(self, input_size: int, hidden_size: int, **kw: Any) -> _RNNBase:
        raise NotImplementedError


class LSTMCell(_CellBase):
    """One LSTM step: x (B, I), (h, c) each (B, H) -> (h', c').

    After ``forward``, ``trace`` holds the step spelled out for learners:
    pre-activations and values of the gates i, f, g, o, and c', h', each (B, H).
    ``backward(dh, dc=None)`` returns dx (B, I); ``initial_state_grad`` holds (dh, dc).
    """

    _name = "LSTMCell"

    def _sequence_layer(self, input_size: int, hidden_size: int, **kw: Any) -> _RNNBase:
        return LSTM(input_size, hidden_size, **kw)

    def forward(self, x: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        h_n, c_n = self._step(x, state)
        self._x = np.asarray(x, self.dtype)
        return h_n[0], c_n[0]

    @property
    def trace(self) -> dict[str, np.ndarray]:
        """The last step spelled out: pre_i .. pre_o, i, f, g, o, c, h, each (B, H)."""
        if getattr(self, "_x", None) is None:
            raise RuntimeError("LSTMCell.trace read before forward")
        h_prev = self._seq._record.layers[0].dirs[0].scan.hs[0]
        named = self._seq.last_trace()["l0"]
        px, ph = preactivations(self._x, h_prev, {k: p.value for k, p in self.params.items()})
        H, pre = self.hidden_size, px + ph
        out = {f"pre_{g}": pre[:, j * H:(j + 1) * H] for j, g in enumerate("ifgo")}
        out.update({name: a[:, 0] for name, a in named.items()})
        return out

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

    _name = "GRUCell"

    def _sequence_layer(self, input_size: int, hidden_size: int, **kw: Any) -> _RNNBase:
        return GRU(input_size, hidden_size, **kw)


class SimpleRNNCell(_SingleStateCell):
    """One Elman step: x (B, I), h (B, H) -> h' (B, H); ``nonlinearity`` tanh or relu."""

    _name = "SimpleRNNCell"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype, rng)

    def _sequence_layer(self, input_size: int, hidden_size: int, **kw: Any) -> _RNNBase:
        return SimpleRNN(input_size, hidden_size, nonlinearity=self._nonlinearity, **kw)
