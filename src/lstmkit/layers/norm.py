r"""BatchNorm2D over NHWC images, with PyTorch's running statistics.

Per channel c, over the N·H·W positions of a training batch::

    μ = mean(x),  σ² = mean((x − μ)²)                      (biased, for normalising)
    y = γ · (x − μ) / sqrt(σ² + eps) + β
    running_mean ← (1 − m) running_mean + m μ
    running_var  ← (1 − m) running_var + m σ² · n / (n − 1)  (unbiased, as PyTorch)

with m = ``momentum`` (or 1 / num_batches_tracked when ``momentum=None``: a
cumulative average). In eval mode the running statistics replace μ and σ².
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_dtype_name, check_float_input
from ..parameter import Buffer, Parameter
from .base import Layer


class BatchNorm2D(Layer):
    """x (N, H, W, num_features) -> same shape. ``weight`` (γ), ``bias`` (β) and the running statistics are
    (num_features,); ``num_batches_tracked`` counts training batches. Names and semantics are PyTorch's
    ``nn.BatchNorm2d``."""

    _kept = ("_cache",)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: str = "float32") -> None:
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"BatchNorm2D: num_features must be a positive integer, got {num_features!r}")
        if eps <= 0 or (momentum is not None and not 0 <= momentum <= 1):
            raise ValueError(f"BatchNorm2D: eps must be > 0 and momentum in [0, 1] or None, got {eps}, {momentum}")
        self.dtype = check_dtype_name("BatchNorm2D", dtype)
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        C = self.num_features
        self.weight = Parameter(np.ones(C, self.dtype), "weight") if affine else None
        self.bias = Parameter(np.zeros(C, self.dtype), "bias") if affine else None
        if track_running_stats:
            self.running_mean = Buffer(np.zeros(C, self.dtype), "running_mean")
            self.running_var = Buffer(np.ones(C, self.dtype), "running_var")
            self.num_batches_tracked = Buffer(np.zeros((), np.int64), "num_batches_tracked")
        self._cache: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats, "dtype": self.dtype.name}

    def forward(self, x: np.ndarray) -> np.ndarray:
        C = self.num_features
        x = check_float_input("BatchNorm2D", x, self.dtype, 4, f"(N, H, W, {C})", last=C)
        x2 = x.reshape(-1, C)
        n = x2.shape[0]
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if n < 2:
                raise ValueError(f"BatchNorm2D: training needs more than one value per channel, got input "
                                 f"of shape {x.shape}")
            mean = x2.mean(axis=0)
            xc = x2 - mean
            var = np.mean(xc * xc, axis=0)
            if self.training and self.track_running_stats:
                self.num_batches_tracked.value += 1
                m = 1.0 / float(self.num_batches_tracked.value) if self.momentum is None else self.momentum
                self.running_mean.value[...] = (1 - m) * self.running_mean.value + m * mean
                self.running_var.value[...] = (1 - m) * self.running_var.value + m * var * (n / (n - 1))
        else:
            mean, var = self.running_mean.value, self.running_var.value
            xc = x2 - mean
        inv = 1.0 / np.sqrt(var + self.eps)
        xhat = xc * inv
        y = xhat * self.weight.value + self.bias.value if self.affine else xhat
        self._cache = {"xhat": xhat, "inv": inv, "batch": batch_stats, "shape": x.shape}
        return y.reshape(x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._unkept("BatchNorm2D")
        c = self._cache
        dy = np.asarray(dy)
        if dy.shape != c["shape"]:
            raise ValueError(f"BatchNorm2D.backward: expected dy of shape {c['shape']}, got {dy.shape}")
        dy2 = dy.reshape(-1, self.num_features)
        xhat, inv = c["xhat"], c["inv"]
        if self.affine:
            self.weight.grad += (dy2 * xhat).sum(axis=0)
            self.bias.grad += dy2.sum(axis=0)
            dxhat = dy2 * self.weight.value
        else:
            dxhat = dy2
        if not c["batch"]:                               # eval mode: the statistics are constants
            return (dxhat * inv).reshape(c["shape"])
        # dx = inv / n · (n dx̂ − Σ dx̂ − x̂ Σ dx̂ x̂)
        dx = dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)
        dx *= inv
        return dx.reshape(c["shape"])
