"""The Layer contract.

``forward(x)`` computes the output and caches what ``backward`` needs;
``backward(dy)`` returns ``dx`` and *adds* into each ``Parameter.grad``.
Layers never update their own weights: optimizers do, from ``parameters()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..parameter import Parameter


class Layer:
    """Base class. Sub-layers and Parameters stored as attributes (or in lists
    of them) are found automatically, in the order they were assigned."""

    training: bool = True

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs, sub-layers included, each once."""
        seen: set[int] = set()
        for name, p in self._walk(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _walk(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        # Attributes starting with "_" are private (caches, helpers) and skipped.
        # A dict of Parameters contributes its keys as names (recurrent layers keep
        # PyTorch's keys, e.g. "weight_ih_l0", that way).
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
                yield from v._walk(f"{prefix}{attr}.")
            elif isinstance(v, (list, tuple)):
                for i, item in enumerate(v):
                    if isinstance(item, Layer):
                        yield from item._walk(f"{prefix}{attr}.{i}.")
                    elif isinstance(item, Parameter):
                        yield f"{prefix}{attr}.{i}", item

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def sublayers(self) -> Iterator[Layer]:
        for v in vars(self).values():
            if isinstance(v, Layer):
                yield v
            elif isinstance(v, (list, tuple)):
                yield from (item for item in v if isinstance(item, Layer))

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
        """Parameter values by dotted name (copies)."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load values by dotted name; unknown, missing or mis-shaped keys raise ValueError."""
        own = dict(self.named_parameters())
        unknown = sorted(set(state) - set(own))
        missing = sorted(set(own) - set(state))
        if unknown or missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unknown keys {unknown}, missing keys {missing}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name!r} expected shape {p.shape}, "
                                 f"got {value.shape}")
            p.value[...] = value
