"""Streaming: run a model over sequences that arrive a chunk at a time (audio as it is recorded, text as it is
typed) and get exactly the outputs one pass over the whole sequences would give. The recurrent layers carry their
state from one call to the next (``lstmkit.tbptt.StateCarry``, the mechanism truncated BPTT trains with).

    stream = lk.Stream(model)          # any model with recurrent layers: a Sequential, CharLM, a bare LSTM
    y1 = stream(x[:, :100])            # x (B, T, ...): B independent streams
    y2 = stream(x[:, 100:250])         # continues each of the B streams where the last call left it
    stream.reset([2])                  # stream 2 starts over (a new utterance); the others go on
    stream.reset()                     # all start over

A stream that ends early: give ``lengths`` for the chunk (its steps this call); its state stays at its last
step. Outputs are what ``model.forward`` returns, chunk by chunk (past a stream's length: zeros). Bidirectional
layers are refused — their backward direction needs the sequence's end. Calls run the model as it is (``eval()``
for inference: no dropout); the model is free to train between streams, outside a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .layers.base import Layer
from .tbptt import StateCarry


class Stream:
    """``model`` over chunks of B streams, its recurrent state carried between calls (see the module docstring)."""

    def __init__(self, model: Layer) -> None:
        self.model = model
        self.carry = StateCarry(model, "Stream")
        for layer in self.carry.layers:
            if layer.bidirectional:
                raise ValueError(f"Stream: {type(layer).__name__} is bidirectional; its backward direction needs "
                                 "each sequence's end, so it cannot run a chunk at a time (run whole sequences)")

    def __call__(self, x: Any, lengths: Any = None, **kwargs: Any) -> Any:
        """The model's output for this chunk, x (B, T, ...), every stream continuing from the last call's state.
        ``lengths`` (B,): the steps of each stream in this chunk (at least 1). Other keyword arguments go to the
        model's forward."""
        x = np.asarray(x)
        for state in self.carry.get():
            h = None if state is None else (state[0] if isinstance(state, tuple) else state)
            if h is not None and h.shape[1] != len(x):
                raise ValueError(f"Stream: this chunk has {len(x)} streams but the stream holds {h.shape[1]}; "
                                 f"call reset() to start a batch of another size")
        with self.carry.active():
            return self.model.forward(x, **kwargs) if lengths is None else \
                self.model.forward(x, lengths=lengths, **kwargs)

    def reset(self, streams: Sequence[int] | np.ndarray | None = None) -> None:
        """Start over: every stream (``None``), or only those indexed (their state back to zero; the rest go on)."""
        if streams is None:
            self.carry.reset()
            return
        idx = np.asarray(streams, dtype=np.intp)
        for state in self.carry.get():
            for part in (state if isinstance(state, tuple) else (state,)) if state is not None else ():
                if idx.size and (idx.min() < -part.shape[1] or idx.max() >= part.shape[1]):
                    raise IndexError(f"Stream.reset: stream index out of range for {part.shape[1]} streams: "
                                     f"{idx.tolist()}")
                part[:, idx] = 0
