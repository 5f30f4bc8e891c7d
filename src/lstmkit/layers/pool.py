"""Pooling over NHWC images: MaxPool2D, AvgPool2D, GlobalAvgPool2D.

Windows are strided views of the (padded) input; Python loops run over the
kh·kw window taps only. Max pooling gives a tied maximum's gradient to the first
element of its window in row-major order, as PyTorch does; padding counts as
−inf for max pooling and as zeros (included in the count, PyTorch's default)
for average pooling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import compiled
from .. import compiled_images as core
from .._checks import check_float_input
from ..workspace import Workspace
from .base import Layer
from .conv import padded, pair


class _Pool2D(Layer):
    _name = "Pool2D"
    _kept = ("_cache",)

    def __init__(self, pool_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        self.pool_size = pair(self._name, "pool_size", pool_size)
        self.stride = self.pool_size if stride is None else pair(self._name, "stride", stride)
        self.padding = pair(self._name, "padding", padding, minimum=0)
        if any(p > k // 2 for p, k in zip(self.padding, self.pool_size)):
            raise ValueError(f"{self._name}: padding must be at most half the pool size, got padding "
                             f"{self.padding} for pool_size {self.pool_size}")
        self._ws = Workspace()
        self._cache: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride), "padding": list(self.padding)}

    def _check(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        """x checked (N, H, W, C), and the output's (Ho, Wo); sets the cache's input shape."""
        x = np.asarray(x)
        x = check_float_input(self._name, x, x.dtype, 4, "(N, H, W, C)")
        N, H, W, C = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.pool_size, self.stride, self.padding
        if H + 2 * ph < kh or W + 2 * pw < kw:
            raise ValueError(f"{self._name}: pool_size {self.pool_size} is larger than the padded input "
                             f"({H + 2 * ph}×{W + 2 * pw}); expected an input of at least that size")
        self._cache = {"shape": x.shape, "dtype": x.dtype}
        return x, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1

    def _taps(self, x: np.ndarray, fill: float) -> tuple[np.ndarray, list[tuple[int, int, tuple[slice, ...]]]]:
        """The padded input and, per window tap (i, j), the slice of it that tap reads for every output."""
        x, Ho, Wo = self._check(x)
        (kh, kw), (sh, sw), (ph, pw) = self.pool_size, self.stride, self.padding
        xp = padded(self._ws, "xpad", x, (ph, ph, pw, pw), fill)
        taps = [(i, j, (slice(None), slice(i, i + sh * (Ho - 1) + 1, sh), slice(j, j + sw * (Wo - 1) + 1, sw)))
                for i in range(kh) for j in range(kw)]
        self._cache.update(padded=xp.shape, taps=taps)
        return xp, taps

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        (ph, pw), (H, W) = self.padding, self._cache["shape"][1:3]
        return np.ascontiguousarray(dxp[:, ph:ph + H, pw:pw + W])


class MaxPool2D(_Pool2D):
    """Max over kh × kw windows: x (N, H, W, C) -> (N, Ho, Wo, C). ``stride`` defaults to ``pool_size``.

    The backward sends each window's gradient to the first tap (row-major) that equals the
    maximum, as PyTorch does. The compiled core keeps each window's winner (``_core/image.c``).
    The NumPy reference: the forward is a chain of ``np.maximum`` over the window taps; when
    windows tile the input exactly (stride = pool size, no padding, sizes divisible) the taps
    are views of one reshape of x, and dx is one broadcast product.
    """

    _name = "MaxPool2D"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if compiled.active() and x.dtype in (np.float32, np.float64) and self.pool_size[0] * self.pool_size[1] <= 256:
            x, Ho, Wo = self._check(x)
            y, arg = core.maxpool_forward(np.ascontiguousarray(x), self.pool_size, self.stride, self.padding,
                                          (Ho, Wo))
            self._cache.update(arg=arg, y=y)
            return y
        (kh, kw), (ph, pw) = self.pool_size, self.padding
        if self.stride == self.pool_size and (ph, pw) == (0, 0) and x.ndim == 4 and x.shape[1] % kh == 0 \
                and x.shape[2] % kw == 0 and x.shape[1] >= kh and x.shape[2] >= kw:
            x = check_float_input(self._name, x, x.dtype, 4, "(N, H, W, C)")
            N, H, W, C = x.shape
            xr = x.reshape(N, H // kh, kh, W // kw, kw, C)             # a view: window taps on axes 2 and 4
            y = xr[:, :, 0, :, 0].copy()
            for i in range(kh):
                for j in range(kw):
                    if i or j:
                        np.maximum(y, xr[:, :, i, :, j], out=y)
            self._cache = {"tiled": xr, "y": y, "shape": x.shape}
            return y
        xp, taps = self._taps(x, -np.inf)
        y = xp[taps[0][2]].copy()
        for _, _, sl in taps[1:]:
            np.maximum(y, xp[sl], out=y)
        self._cache.update(y=y, xp=xp, tiled=None)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._unkept("MaxPool2D")
        y = self._cache["y"]
        dy = np.asarray(dy)
        if dy.shape != y.shape:
            raise ValueError(f"MaxPool2D.backward: expected dy of shape {y.shape}, got {dy.shape}")
        if "arg" in self._cache:
            return core.maxpool_backward(np.asarray(dy, y.dtype), self._cache["arg"], self._cache["shape"],
                                         self.pool_size, self.stride, self.padding)
        xr = self._cache["tiled"]
        taken = np.zeros(y.shape, bool)                  # windows whose maximum already has its gradient
        if xr is not None:
            hit = xr == y[:, :, None, :, None]
            if np.count_nonzero(hit) != y.size:          # ties somewhere (ReLU zeros, say): keep the first
                for i in range(self.pool_size[0]):
                    for j in range(self.pool_size[1]):
                        first_only(hit[:, :, i, :, j], taken)
            return np.multiply(hit, dy[:, :, None, :, None]).reshape(self._cache["shape"])
        xp = self._cache["xp"]
        dxp = np.zeros(xp.shape, y.dtype)
        for _, _, sl in self._cache["taps"]:
            hit = xp[sl] == y
            first_only(hit, taken)
            dxp[sl] += dy * hit
        return self._unpad(dxp)


def first_only(hit: np.ndarray, taken: np.ndarray) -> None:
    """Keep the hits of windows that have none yet (in place), and mark them taken."""
    np.logical_and(hit, np.logical_not(taken), out=hit)
    taken |= hit


class AvgPool2D(_Pool2D):
    """Mean over kh × kw windows (zero padding counted): x (N, H, W, C) -> (N, Ho, Wo, C)."""

    _name = "AvgPool2D"

    def forward(self, x: np.ndarray) -> np.ndarray:
        xp, taps = self._taps(x, 0.0)
        y = xp[taps[0][2]].copy()
        for _, _, sl in taps[1:]:
            y += xp[sl]
        y *= 1.0 / len(taps)
        self._cache["out"] = y.shape
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._unkept("AvgPool2D")
        dy = np.asarray(dy)
        if dy.shape != self._cache["out"]:
            raise ValueError(f"AvgPool2D.backward: expected dy of shape {self._cache['out']}, got {dy.shape}")
        taps = self._cache["taps"]
        share = dy * (1.0 / len(taps))
        dxp = np.zeros(self._cache["padded"], self._cache["dtype"])
        for _, _, sl in taps:
            dxp[sl] += share
        return self._unpad(dxp)


class GlobalAvgPool2D(Layer):
    """Mean over all positions: x (N, H, W, C) -> (N, C)."""

    _kept = ("_shape",)

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None

    def config(self) -> dict[str, Any]:
        return {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"GlobalAvgPool2D: expected a floating-point input of shape (N, H, W, C), "
                             f"got {x.dtype} of shape {x.shape}")
        self._shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise self._unkept("GlobalAvgPool2D")
        N, H, W, C = self._shape
        dy = np.asarray(dy)
        if dy.shape != (N, C):
            raise ValueError(f"GlobalAvgPool2D.backward: expected dy of shape {(N, C)}, got {dy.shape}")
        return np.broadcast_to((dy / (H * W))[:, None, None, :], self._shape).copy()
