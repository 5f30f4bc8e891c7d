"""Sequential: a stack of layers, each feeding the next."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..layers import inference
from ..layers.base import Layer, takes_lengths
from ..layers.conv import fuses_relu
from ..parameter import Parameter
from .model import Model


class Sequential(Model):
    """``Sequential(layer1, layer2, ...)``: forward runs them in order, backward in reverse.

    Recurrent layers go in with ``return_sequences=True`` (y, (B, T, H)) or
    ``False`` (last output, (B, H)) so each layer passes one array on.
    ``forward(x, lengths=...)`` hands the lengths of a padded batch to every
    layer that takes them. Parameter names are ``"{index}.{name}"``, as in
    PyTorch's ``nn.Sequential``.
    """

    def __init__(self, *layers: Layer) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: item {i} is a {type(layer).__name__}, expected a Layer")
        self.layers = list(layers)

    def config(self) -> dict[str, Any]:
        return {"layers": list(self.layers)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        return cls(*config["layers"])

    def _walk(self, prefix: str, torch: bool = False) -> Iterator[tuple[str, Parameter]]:
        for i, layer in enumerate(self.layers):
            yield from layer._walk(f"{prefix}{i}.", torch)

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def forward(self, x: Any, lengths: Any = None) -> Any:
        fused = False
        releasing = inference.active() and not self.training   # lk.inference(): each layer keeps nothing
        for i, layer in enumerate(self.layers):
            if fused:                                    # this ReLU ran inside the convolution before it
                fused = False
                continue
            following = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if fuses_relu(layer, following):
                x, fused = following.take(layer.forward(x, relu=True)), True
                if releasing:
                    layer.release()
                    following.release()
                continue
            x = layer(x, lengths=lengths) if lengths is not None and takes_lengths(layer) else layer(x)
            if releasing:
                layer.release()
            if isinstance(x, tuple):
                raise ValueError(f"Sequential: layer {i} ({type(layer).__name__}) returned a tuple; give recurrent "
                                 "layers return_sequences=True or False inside Sequential")
        return x

    def backward(self, dy: np.ndarray) -> Any:
        if self.layers:
            self.layers[0].input_grad = self.input_grad
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
