"""Dense, Activation, Dropout, Flatten, Embedding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import compiled
from .. import compiled_images as core
from .. import functional as F
from .._checks import check_dtype_name, check_float_input
from ..init import uniform
from ..parameter import Parameter
from ..random import get_rng
from .base import Layer

# From this many multiply-adds a dense product runs on the compiled core's threads (below, a call's ~50 us of
# overhead is more than NumPy's single-threaded product takes).
_CORE_MIN = 1 << 20


class Dense(Layer):
    """Fully connected layer ``y = x W^T + b`` (PyTorch's ``nn.Linear`` layout).

    Shapes: x (..., in_features) -> y (..., out_features); weight
    (out_features, in_features), bias (out_features,). Initialised as PyTorch
    does, U(±1/sqrt(in_features)). Large products run on the compiled core.
    """

    _kept = ("_x",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        self.dtype = check_dtype_name("Dense", dtype)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(uniform((out_features, in_features), bound, self.dtype, rng), "weight")
        self.bias = Parameter(uniform((out_features,), bound, self.dtype, rng), "bias") if bias else None
        self._x: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
                "dtype": self.dtype.name}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_float_input("Dense", x, self.dtype, tuple(range(1, 8)), f"(..., {self.in_features})",
                              last=self.in_features)
        self._x = x
        if self._core(x):
            x2 = np.ascontiguousarray(x.reshape(-1, self.in_features))
            b = None if self.bias is None else self.bias.value
            return core.dense_forward(x2, self.weight.value.T, b).reshape(*x.shape[:-1], self.out_features)
        y = x @ self.weight.value.T
        if self.bias is not None:
            y += self.bias.value
        return y

    def _core(self, x: np.ndarray) -> bool:
        return x.size * self.out_features >= _CORE_MIN and compiled.active()

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (..., out_features) -> dx (..., in_features) (None when ``input_grad`` is off); adds into the
        weight's and the bias's gradients."""
        x = self._x
        if x is None:
            raise self._unkept("Dense")
        dy2 = dy.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        if self._core(x):
            dy2 = np.ascontiguousarray(dy2, self.dtype)
            g = core.dense_weight_grad(np.ascontiguousarray(x2), dy2, self.bias is not None)   # (in [+ 1], out)
            self.weight.grad += g[:self.in_features].T
            if self.bias is not None:
                self.bias.grad += g[self.in_features]
            if not self.input_grad:
                return None
            return core.dense_forward(dy2, self.weight.value).reshape(x.shape)
        self.weight.grad += dy2.T @ x2
        if self.bias is not None:
            self.bias.grad += dy2.sum(axis=0)
        return dy @ self.weight.value if self.input_grad else None


_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softmax", "linear")


class Activation(Layer):
    """Element-wise activation (softmax acts on the last axis). Shape preserved.

    ``name`` is one of sigmoid, tanh, relu, leaky_relu (``negative_slope``),
    softmax, linear. For classification feed logits to ``CrossEntropyLoss``
    instead of a softmax layer: it is more accurate.
    """

    _kept = ("_x", "_y")

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        if name not in _ACTIVATIONS:
            raise ValueError(f"Activation: unknown activation {name!r}; expected one of {_ACTIVATIONS}")
        self.name, self.negative_slope = name, negative_slope
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "negative_slope": self.negative_slope}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"Activation({self.name}): expected a floating-point input, got dtype {x.dtype}")
        n = self.name
        if n == "sigmoid":
            y = F.sigmoid(x)
        elif n == "tanh":
            y = np.tanh(x)
        elif n == "relu":
            y = F.relu(x)
        elif n == "leaky_relu":
            y = np.where(x > 0, x, self.negative_slope * x)
        elif n == "softmax":
            y = F.softmax(x, axis=-1)
        else:
            y = x
        self._x, self._y = x, y
        return y

    def take(self, y: np.ndarray) -> np.ndarray:
        """A ReLU's output formed by the layer before it (Conv2D's fused pass): kept for the backward as both input
        and output (y > 0 exactly where the input was), and returned."""
        if self.name != "relu":
            raise ValueError(f"Activation({self.name}).take: only a ReLU's output can be formed by the layer before")
        self._x = self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, y, n = self._x, self._y, self.name
        if x is None or y is None:
            raise self._unkept(f"Activation({n})")
        if n == "sigmoid":
            return dy * y * (1 - y)
        if n == "tanh":
            return dy * (1 - y * y)
        if n == "relu":
            return dy * (x > 0)
        if n == "leaky_relu":
            return np.where(x > 0, dy, self.negative_slope * dy)
        if n == "softmax":  # J^T dy = y * (dy - <dy, y>)
            return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
        return dy


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p``
    and scale the rest by 1/(1-p); identity in eval mode. Shape preserved."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.rng = p, rng
        self._mask: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        self._mask = F.dropout_mask(get_rng(self.rng), x.shape, self.p, x.dtype)
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self._mask is None else dy * self._mask


class Flatten(Layer):
    """(B, d1, d2, ...) -> (B, d1*d2*...)."""

    _kept = ("_shape",)

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None

    def config(self) -> dict[str, Any]:
        return {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected input of shape (B, ...) with rank >= 2, got shape {x.shape}")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise self._unkept("Flatten")
        return dy.reshape(self._shape)


class Embedding(Layer):
    """Lookup table: integer indices (...) -> vectors (..., embedding_dim).

    ``weight`` is (num_embeddings, embedding_dim), initialised N(0, 1) as in
    PyTorch. Row ``padding_idx`` (if given) starts at zero and gets no gradient.
    ``backward`` returns None: indices have no gradient.
    """

    _kept = ("_idx",)

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        self.dtype = check_dtype_name("Embedding", dtype)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        w = get_rng(rng).standard_normal((num_embeddings, embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [-{num_embeddings}, {num_embeddings}), "
                                 f"got {padding_idx}")
            padding_idx %= num_embeddings
            w[padding_idx] = 0
        self.padding_idx = padding_idx
        self.weight = Parameter(w, "weight")
        self._idx: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "dtype": self.dtype.name}

    def forward(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"Embedding: expected integer indices, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: indices must be in [0, {self.num_embeddings}), "
                             f"got values in [{idx.min()}, {idx.max()}]")
        self._idx = idx
        return self.weight.value[idx]

    def backward(self, dy: np.ndarray) -> None:
        if self._idx is None:
            raise self._unkept("Embedding")
        flat = self._idx.reshape(-1)
        dy2 = dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = flat != self.padding_idx
            flat, dy2 = flat[keep], dy2[keep]
        # Sum rows sharing an index with one sort + reduceat (np.add.at is ~10x slower).
        order = np.argsort(flat, kind="stable")
        flat_sorted = flat[order]
        if flat_sorted.size:
            starts = np.flatnonzero(np.r_[True, flat_sorted[1:] != flat_sorted[:-1]])
            self.weight.grad[flat_sorted[starts]] += np.add.reduceat(dy2[order], starts, axis=0)
        return None


