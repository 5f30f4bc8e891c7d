"""Truncated backpropagation through time: sequences too long to backpropagate whole are cut into windows of
consecutive steps, each window one training step; the recurrent layers carry their final state into the next
window of the same sequences, and no gradient crosses a window's edge (Williams & Peng 1990; what Keras calls a
stateful RNN). One implementation for both trainers that use it: ``fit(..., tbptt=K)`` and the char LM's
(``apps/charlm.py``), whose windows run through the whole text::

    carry = StateCarry(model)          # every recurrent layer of the model
    carry.reset()                      # new sequences: the next window starts from zero state
    with carry.active():
        model.forward(x_window)        # each layer starts from its carried state, then keeps its final one

Outside ``active()`` the layers run as always (validation and prediction are unaffected).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .layers.base import Layer
from .layers.rnn_base import _RNNBase


def recurrent_layers(model: Layer) -> list[_RNNBase]:
    """The recurrent layers of ``model`` (itself included), in the order ``sublayers`` reaches them."""
    found, stack = [], [model]
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, _RNNBase):
            found.append(layer)
        else:
            stack.extend(layer.sublayers())
    return found


class StateCarry:
    """Carries each recurrent layer's final state into its next forward while ``active()``. A new one starts from
    zero state (whatever an earlier carrier left on the layers, say a training run's last window)."""

    def __init__(self, model: Layer, what: str = "tbptt") -> None:
        self.layers = recurrent_layers(model)
        if not self.layers:
            raise ValueError(f"{what}: the model has no recurrent layer to carry a state through "
                             f"({type(model).__name__})")
        self.reset()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Inside the block every recurrent layer starts from its carried state (when it has one and is given none)
        and keeps its final state, detached: the next window's backward stops at its first step."""
        for layer in self.layers:
            layer.carrying = True
        try:
            yield
        finally:
            for layer in self.layers:
                layer.carrying = False

    def reset(self) -> None:
        """New sequences: every layer's next window starts from zero state."""
        for layer in self.layers:
            layer.carried = None

    def get(self) -> list[Any]:
        """Each layer's carried state ((h, c) or h, each (num_layers·D, B, units)), or None."""
        return [layer.carried for layer in self.layers]

    def set(self, states: list[Any]) -> None:
        """Restore what ``get`` returned (e.g. from a checkpoint)."""
        for layer, state in zip(self.layers, states):
            layer.carried = state

    def arrays(self, prefix: str = "carry/") -> dict[str, np.ndarray]:
        """The carried states as named arrays for a checkpoint (none when nothing is carried)."""
        out = {}
        for i, state in enumerate(self.get()):
            if state is not None:
                for name, a in zip(("h", "c"), state if isinstance(state, tuple) else (state,)):
                    out[f"{prefix}{i}/{name}"] = a
        return out

    def load(self, arrays: dict[str, np.ndarray], prefix: str = "carry/") -> None:
        """Restore the states ``arrays`` wrote (a layer with none in them starts from zero)."""
        states = []
        for i, layer in enumerate(self.layers):
            h = arrays.get(f"{prefix}{i}/h")
            c = arrays.get(f"{prefix}{i}/c")
            states.append(None if h is None else ((h, c) if layer.kernel.has_cell else h))
        self.set(states)
