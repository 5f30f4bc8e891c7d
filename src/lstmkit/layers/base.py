"""The Layer contract.

``forward(x)`` computes the output and caches what ``backward`` needs;
``backward(dy)`` returns ``dx`` and *adds* into each ``Parameter.grad``.
Layers never update their own weights: optimizers do, from ``parameters()``.

Every layer also describes itself: ``config()`` gives its constructor
arguments (so a model file can rebuild it without the code that built it),
``repr()`` prints it as PyTorch does, and ``torch_state_dict()`` /
``load_torch_state_dict()`` move its weights to and from PyTorch's keys.
Nothing here knows about training or files: ``lstmkit.models.Model`` (a Layer)
adds ``fit``, ``evaluate``, ``predict``, ``save`` and ``summary``; a bare layer
trains and saves through the free functions ``lk.fit`` and ``lk.save_model``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..parameter import Buffer, Parameter

# Every Layer subclass, by the name model files use (short for lstmkit's own, module-qualified otherwise).
REGISTRY: dict[str, type[Layer]] = {}


def registered_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module.startswith("lstmkit.") else f"{module}.{cls.__qualname__}"


class Layer:
    """Base class. Sub-layers and Parameters stored as attributes (or in lists
    of them) are found automatically, in the order they were assigned."""

    training: bool = True
    # Whether ``backward`` must return the input's gradient. The training loop turns it off on the model for its
    # backward (the data needs none, as a PyTorch tensor without requires_grad): a Sequential passes it to its first
    # layer, and a layer may then skip that product and return None (Conv2D, Dense).
    input_grad: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            REGISTRY[registered_name(cls)] = cls

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- what a forward keeps for the backward ------------------------------------

    # The attributes a forward fills for its backward; ``release`` drops them (``lk.inference()``).
    _kept: tuple[str, ...] = ()

    def release(self) -> None:
        """Drop what the last forward kept for a backward (this layer's and its sub-layers'): a container running
        under ``lk.inference()`` in eval mode calls it after each layer, so no activation outlives its use."""
        for name in self._kept:
            setattr(self, name, None)
        self._released = True
        for child in self.sublayers():
            child.release()

    def _unkept(self, what: str) -> RuntimeError:
        """The error a backward raises when the forward's record is missing: released, or never made."""
        if getattr(self, "_released", False):
            return RuntimeError(f"{what}.backward: the last forward ran under lk.inference(), which keeps nothing "
                                "for a backward; run the forward outside it (or in train mode) to backpropagate")
        return RuntimeError(f"{what}.backward called before forward")

    # ---- parameters ---------------------------------------------------------

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs of what optimizers train, sub-layers included, each once."""
        return ((n, p) for n, p in _unique(self._walk(prefix)) if not isinstance(p, Buffer))

    def named_state(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Parameters and buffers (running statistics), by dotted name: what ``state_dict`` holds."""
        return _unique(self._walk(prefix))

    def _walk(self, prefix: str, torch: bool = False) -> Iterator[tuple[str, Parameter]]:
        # Attributes starting with "_" are private (caches, helpers) and skipped.
        # A dict of Parameters contributes its keys as names (recurrent layers keep
        # PyTorch's keys, e.g. "weight_ih_l0", that way). With ``torch=True`` the
        # names are PyTorch's; layers whose names differ there override this.
        for attr, v in vars(self).items():
            if attr.startswith("_"):
                continue
            if isinstance(v, dict):
                for key, item in v.items():
                    if isinstance(item, Parameter):
                        yield prefix + key, item
            elif isinstance(v, Parameter):
                yield prefix + attr, v
            elif isinstance(v, Layer):
                yield from v._walk(f"{prefix}{attr}.", torch)
            elif isinstance(v, (list, tuple)):
                for i, item in enumerate(v):
                    if isinstance(item, Layer):
                        yield from item._walk(f"{prefix}{attr}.{i}.", torch)
                    elif isinstance(item, Parameter):
                        yield f"{prefix}{attr}.{i}", item

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """(name, sub-layer) pairs of the direct sub-layers, in assignment order."""
        for attr, v in vars(self).items():
            if attr.startswith("_"):
                continue
            if isinstance(v, Layer):
                yield attr, v
            elif isinstance(v, (list, tuple)):
                yield from ((f"{attr}.{i}", item) for i, item in enumerate(v) if isinstance(item, Layer))

    def sublayers(self) -> Iterator[Layer]:
        return (layer for _, layer in self.named_children())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Layer:
        self.training = mode
        for sub in self.sublayers():
            sub.train(mode)
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and buffer values by dotted name (copies)."""
        return {name: p.value.copy() for name, p in self.named_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load values by dotted name; unknown, missing or mis-shaped keys raise ValueError."""
        _assign(self, dict(self.named_state()), state, "load_state_dict")

    # ---- PyTorch interchange --------------------------------------------------

    def torch_state_dict(self, grad: bool = False) -> dict[str, np.ndarray]:
        """Parameters (or, with ``grad=True``, their gradients) under PyTorch's keys, as copies.

        The keys are those of the equivalent PyTorch module: ``nn.Linear`` for
        ``Dense``, ``nn.LSTM`` for ``LSTM``, ``nn.Sequential``'s ``"0.weight"``
        for ``Sequential``, and so on; buffers (running statistics) are included
        with the values, left out with the gradients. Where a layout differs from
        PyTorch's (convolution weights: (kh, kw, in, out) here, (out, in, kh, kw)
        there) the layer's torch walk yields a ``TorchLayout`` that converts.
        """
        return {key: np.array(p.grad if grad else p.value) for key, p in _unique(self._walk("", torch=True))
                if not (grad and isinstance(p, Buffer))}

    def load_torch_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a PyTorch ``state_dict`` (NumPy arrays or CPU tensors) of the equivalent module.

        Unknown, missing or mis-shaped keys raise ValueError naming them.
        """
        _assign(self, dict(_unique(self._walk("", torch=True))), state_dict, "load_torch_state_dict")

    # ---- description ------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON values, or Layers for wrapped layers) that rebuild this layer."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its constructor arguments; "
                                  "define config() (and from_config() if __init__ does not take them as keywords)")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Build a layer from ``config()``'s output (weights are loaded separately)."""
        return cls(**config)

    def __repr__(self) -> str:
        args = _repr_args(self)
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({args})"
        lines = [args] if args else []                   # PyTorch's layout: arguments, then the children
        lines += [f"({name}): {child!r}" for name, child in children]
        body = "\n".join(lines).replace("\n", "\n  ")
        return f"{type(self).__name__}(\n  {body}\n)"


def takes_lengths(layer: Layer) -> bool:
    """Whether ``layer.forward`` accepts ``lengths=`` (recurrent layers, Bidirectional, Sequential)."""
    try:
        return "lengths" in inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return False


def _unique(pairs: Iterator[tuple[str, Parameter]]) -> Iterator[tuple[str, Parameter]]:
    seen: set[int] = set()
    for name, p in pairs:
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p


class TorchLayout:
    """A parameter as PyTorch lays it out: ``to_torch`` maps our array to theirs, ``from_torch`` back."""

    def __init__(self, p: Parameter, to_torch: Any, from_torch: Any) -> None:
        self.p, self.to_torch, self.from_torch = p, to_torch, from_torch

    @property
    def value(self) -> np.ndarray:
        return self.to_torch(self.p.value)

    @property
    def grad(self) -> np.ndarray:
        return self.to_torch(self.p.grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def assign(self, value: np.ndarray) -> None:
        self.p.value[...] = self.from_torch(value)


def _assign(layer: Layer, own: dict[str, Any], state: dict[str, Any], what: str) -> None:
    owner = f"{type(layer).__name__}.{what}"
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if unknown or missing:
        raise ValueError(f"{owner}: unknown keys {unknown}, missing keys {missing} (expected {sorted(own)})")
    values = {}
    for name, p in own.items():
        value = state[name]
        if hasattr(value, "detach"):                     # a PyTorch tensor
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.shape != p.shape:
            raise ValueError(f"{owner}: {name!r} expected shape {p.shape}, got {value.shape}")
        values[name] = value
    for name, p in own.items():                          # all checked first: a bad key changes nothing
        if isinstance(p, TorchLayout):
            p.assign(values[name])
        else:
            p.value[...] = values[name]


def _repr_args(layer: Layer) -> str:
    """Required arguments by value, the others as ``name=value`` where they differ from the default."""
    try:
        cfg = layer.config()
    except NotImplementedError:
        return ""
    try:
        params = inspect.signature(type(layer).__init__).parameters
    except (TypeError, ValueError):
        params = {}
    parts = []
    for key, value in cfg.items():
        if isinstance(value, Layer) or (isinstance(value, list) and value and isinstance(value[0], Layer)):
            continue                                   # shown as children
        p = params.get(key)
        shown = tuple(value) if isinstance(value, list) else value          # pairs print as PyTorch's tuples
        if p is not None and p.default is inspect.Parameter.empty:
            parts.append(repr(shown))
        elif p is None or not (p.default == value or (isinstance(value, list) and set(value) == {p.default})):
            parts.append(f"{key}={shown!r}")
    return ", ".join(parts)
