"""``model.summary(input_shape)``: a Keras-style table of layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers.base import Layer
from .layers.core import Embedding


def _shape(out: Any) -> str:
    if isinstance(out, tuple):                   # (y, state) from a recurrent layer
        return f"{_shape(out[0])} + state"
    return str((None, *np.shape(out)[1:]))       # the batch axis as None, as Keras prints it


def _first_leaf(layer: Layer) -> Layer:
    children = list(layer.sublayers())
    return _first_leaf(children[0]) if children else layer


def summary(model: Layer, input_shape: tuple[int, ...], dtype: str | None = None) -> str:
    """Run one sample of zeros (shape ``(1, *input_shape)``) through ``model`` and tabulate its direct sub-layers.

    Integer zeros go in when the first layer is an ``Embedding`` (or ``dtype`` says so).
    """
    if dtype is None:
        dtype = "int64" if isinstance(_first_leaf(model), Embedding) else "float64"
    rows: list[tuple[str, str, int]] = []
    children = list(model.named_children()) or [("", model)]
    originals = {}
    for name, child in children:
        def hooked(*args: Any, _child: Layer = child, _name: str = name, **kwargs: Any) -> Any:
            out = type(_child).forward(_child, *args, **kwargs)
            rows.append((f"{_name} ({type(_child).__name__})" if _name else type(_child).__name__, _shape(out),
                         sum(p.value.size for p in _child.parameters())))
            return out
        originals[name] = child
        child.forward = hooked                   # instance attribute: shadows the class's forward for this call
    was_training = model.training
    model.eval()
    try:
        model.forward(np.zeros((1, *input_shape), dtype=dtype))
    except ValueError as e:
        raise ValueError(f"summary: input_shape {tuple(input_shape)} does not fit the model: {e}") from None
    finally:
        for child in originals.values():
            del child.forward
        model.train(was_training)
    total = sum(p.value.size for p in model.parameters())
    w0 = max(len("Layer (type)"), *(len(r[0]) for r in rows))
    w1 = max(len("Output Shape"), *(len(r[1]) for r in rows))
    line = "-" * (w0 + w1 + 16)
    out_lines = [f'Model: "{type(model).__name__}"', line, f"{'Layer (type)':<{w0}}  {'Output Shape':<{w1}}  "
                 f"{'Param #':>12}", "=" * len(line)]
    out_lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>12,}" for a, b, c in rows]
    out_lines += ["=" * len(line), f"Total params: {total:,}",
                  f"Trainable params: {total:,}", "Non-trainable params: 0", line]
    return "\n".join(out_lines)
