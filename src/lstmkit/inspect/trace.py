"""Traces: every recurrent layer's gates and states, recorded from the forward pass the layers train with.

    tr = lk.inspect.trace(model, x)      # model: any Layer holding LSTM / GRU / SimpleRNN layers
    tr["rnn/l0"]["f"]                     # (B, T, H) forget gate of the first LSTM layer
    tr["bilstm/l1/reverse"]["h"]          # the backward direction, in the input's time order
    tr.output                             # what model.forward returned

Nothing is recomputed: while ``trace`` runs, each recurrent layer's ``forward``
is wrapped so that, after the real kernel has run, the gate activations it
recorded for its backward pass are copied out (``layer.last_trace()``: time-major
buffers are reused by the next call, hence the copies). Each layer gives its
kernel's gates (LSTM i, f, g, o; GRU r, z, n; any new kind its own), then c for
kinds with a cell state, and h. Positions past a sequence's length (with
``lengths``) hold whatever the kernel computed there, not zeros.
"""

from __future__ import annotations

from typing import Any

from ..layers.base import Layer
from ..layers.rnn_base import _RNNBase


class Trace(dict):
    """``{layer key: {name: (B, T, H) array}}`` in the order the layers ran, plus ``output``.

    Keys are ``"<path>/l<k>"`` for layer k of the recurrent module at ``path`` (the dotted
    attribute path in the model, or its class name when the model *is* the module),
    with ``"/reverse"`` appended for the second direction of a bidirectional layer.
    """

    output: Any = None


def recurrent_layers(model: Layer) -> list[tuple[str, _RNNBase]]:
    """(path, layer) of every recurrent sequence layer inside ``model`` (itself included), in order."""
    found: list[tuple[str, _RNNBase]] = []

    def walk(layer: Layer, path: str) -> None:
        if isinstance(layer, _RNNBase):
            found.append((path or type(layer).__name__.lower(), layer))
            return
        for name, child in layer.named_children():
            walk(child, f"{path}.{name}" if path else name)

    if not isinstance(model, Layer):
        raise ValueError(f"trace: expected an lstmkit Layer or model, got {type(model).__name__}")
    walk(model, "")
    return found


def _record(path: str, layer: _RNNBase, trace: Trace) -> None:
    """Copy the gates and states the layer recorded in its last forward into ``trace`` as (B, T, H) arrays."""
    for key, arrays in layer.last_trace().items():
        trace[f"{path}/{key}"] = arrays


def trace(model: Layer, x: Any, lengths: Any = None, **forward_kwargs: Any) -> Trace:
    """Run ``model.forward(x, ...)`` in eval mode and record every recurrent layer's gates and states.

    Args:
        model: a Layer (a Sequential, an application's model, or a recurrent layer itself).
        x: the model's input, e.g. (B, T, F) features or (B, T) token ids.
        lengths: (B,) lengths for padded batches, passed on to ``forward``.
        forward_kwargs: anything else ``forward`` takes (e.g. ``state=`` to carry a state).

    Returns:
        A ``Trace``; raises ValueError if ``model`` holds no recurrent layer.
    """
    layers = recurrent_layers(model)
    if not layers:
        raise ValueError(f"trace: {type(model).__name__} holds no recurrent layer (LSTM, GRU or SimpleRNN); "
                         "there are no gates or states to trace")
    if lengths is not None:
        forward_kwargs["lengths"] = lengths
    out = Trace()
    was = model.training
    model.eval()
    originals = []
    try:
        for path, layer in layers:
            original = layer.forward

            def wrapped(*args: Any, _f: Any = original, _p: str = path, _l: _RNNBase = layer, **kw: Any) -> Any:
                result = _f(*args, **kw)
                _record(_p, _l, out)
                return result

            layer.forward = wrapped                      # an instance attribute shadows the method
            originals.append(layer)
        out.output = model.forward(x, **forward_kwargs)
    finally:
        for layer in originals:
            del layer.forward
        model.train(was)
    return out
