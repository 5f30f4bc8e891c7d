"""Parameter: a trainable array and the gradient accumulated into it."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array.

    Attributes:
        value: the array itself (any shape, float32 or float64).
        grad: same shape and dtype as ``value``; layers *add* into it during
            ``backward`` and optimizers read it in ``step``.
        name: a label such as ``"weight_ih_l0"`` used in state dicts.
    """

    __slots__ = ("value", "grad", "name")

    def __init__(self, value: np.ndarray, name: str = "") -> None:
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"Parameter {name!r}: expected a floating-point array, got dtype {value.dtype}")
        self.value = value
        self.grad = np.zeros_like(value)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def assign(self, value: np.ndarray) -> None:
        """Overwrite the value in place, checking the shape and keeping the dtype."""
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(f"Parameter {self.name!r}: expected shape {self.value.shape}, got {value.shape}")
        self.value[...] = value

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"


class Buffer(Parameter):
    """State that a layer keeps but no optimizer trains (BatchNorm's running statistics).

    It travels with the weights — ``state_dict``, model files, PyTorch's ``state_dict``
    keys — but ``parameters()`` leaves it out. Any numeric dtype (PyTorch's
    ``num_batches_tracked`` is an integer).
    """

    __slots__ = ()

    def __init__(self, value: np.ndarray, name: str = "") -> None:
        value = np.asarray(value)
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise ValueError(f"Buffer {name!r}: expected a numeric array, got dtype {value.dtype}")
        self.value, self.grad, self.name = value, None, name
