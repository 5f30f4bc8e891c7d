r"""Conv2D on NHWC images: im2col + one GEMM.

For an input x (N, H, W, C), zero-padded to (N, Hp, Wp, C), weights w (kh, kw, C, O)
and bias b (O,), stride (sh, sw) and dilation (dh, dw)::

    y[n, u, v, o] = b[o] + Σ_{i, j, c} x_pad[n, u·sh + i·dh, v·sw + j·dw, c] · w[i, j, c, o]

im2col copies each output pixel's receptive field into one column of a matrix
(kh·kw·C, N·Ho·Wo) — channels first, so that every row is a strided copy of one
contiguous plane — with a row of ones for the bias; then y = colsᵀ @ wᵀ is one
GEMM, written straight into NHWC. Backward: dW and db are one GEMM, cols @ dy;
dx is w @ dyᵀ — for every kernel tap and input channel a plane over the output
pixels — added back at each tap's offset into the padded input (kh·kw slice-adds
of contiguous planes, channels first), then turned to NHWC. Python loops run
over the kh·kw kernel taps at most, never over pixels. Buffers are reused.

PyTorch keeps images NCHW and weights (O, C, kh, kw); the layouts are converted
when weights move (``load_torch_state_dict`` / ``torch_state_dict``), not here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from .._checks import check_dtype_name, check_float_input
from ..init import uniform
from ..parameter import Parameter
from ..workspace import Workspace
from .base import Layer, TorchLayout

# Below this many multiply-adds per call, splitting the batch over two threads costs more than it saves.
_SPLIT_MIN = 1 << 24


def pair(owner: str, name: str, v: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, as (a, b), each at least ``minimum``."""
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v) if isinstance(v, (tuple, list)) else None
    if t is None or len(t) != 2 or not all(isinstance(a, (int, np.integer)) and a >= minimum for a in t):
        raise ValueError(f"{owner}: {name} must be an int >= {minimum} or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def windows(x: np.ndarray, out_hw: tuple[int, int], k: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int]) -> np.ndarray:
    """A read-only (N, Ho, Wo, kh, kw, C) view of x (N, Hp, Wp, C): each output pixel's receptive field."""
    sN, sH, sW, sC = x.strides
    return as_strided(x, (x.shape[0], *out_hw, *k, x.shape[3]),
                      (sN, stride[0] * sH, stride[1] * sW, dilation[0] * sH, dilation[1] * sW, sC), writeable=False)


def padded(ws: Workspace, name: str, x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0
           ) -> np.ndarray:
    """x (N, H, W, C) with (top, bottom, left, right) borders of ``value``, in a reused buffer (x itself if none)."""
    t, b, l, r = pads
    if not any(pads):
        return x
    N, H, W, C = x.shape
    out = ws.empty(name, (N, H + t + b, W + l + r, C), x.dtype)
    out.fill(value)
    out[:, t:t + H, l:l + W] = x
    return out


class Conv2D(Layer):
    """2-D convolution over NHWC images: x (N, H, W, in_channels) -> y (N, Ho, Wo, out_channels).

    ``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding="valid", dilation=1,
    bias=True, dtype="float32")``. ``padding`` is "valid" (none), "same" (output size
    ceil(H / stride), the extra row or column at the bottom/right, as Keras and PyTorch do),
    an int or a pair (ph, pw) of zeros on both sides. ``weight`` is (kh, kw, in, out),
    initialised as PyTorch's, U(±1/sqrt(in·kh·kw)), and so is ``bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: str | int | tuple[int, int] = "valid",
                 dilation: int | tuple[int, int] = 1, bias: bool = True, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        name = "Conv2D"
        for label, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: {label} must be a positive integer, got {v!r}")
        self.dtype = check_dtype_name(name, dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(name, "kernel_size", kernel_size)
        self.stride = pair(name, "stride", stride)
        self.dilation = pair(name, "dilation", dilation)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
            self.padding: str | tuple[int, int] = padding
        else:
            self.padding = pair(name, "padding", padding, minimum=0)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(self.in_channels * kh * kw)
        self.weight = Parameter(uniform((kh, kw, self.in_channels, self.out_channels), bound, self.dtype, rng),
                                "weight")
        self.bias = Parameter(uniform((self.out_channels,), bound, self.dtype, rng), "bias") if bias else None
        self._ws = [Workspace(), Workspace()]            # one per batch half
        self._cache: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
                "dilation": list(self.dilation), "bias": self.bias is not None, "dtype": self.dtype.name}

    def _walk(self, prefix: str, torch: bool = False) -> Iterator[tuple[str, Any]]:
        if not torch:
            yield from super()._walk(prefix)
            return
        # PyTorch's nn.Conv2d weight is (out, in, kh, kw).
        yield prefix + "weight", TorchLayout(self.weight, lambda w: w.transpose(3, 2, 0, 1),
                                             lambda w: w.transpose(2, 3, 1, 0))
        if self.bias is not None:
            yield prefix + "bias", self.bias

    # ---- geometry ------------------------------------------------------------

    def pads(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zero padding for an H × W input."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        if isinstance(self.padding, tuple):
            ph, pw = self.padding
            return ph, ph, pw, pw
        out = []
        for size, k, s, d in zip((H, W), self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            out += [total // 2, total - total // 2]
        return out[0], out[1], out[2], out[3]

    def output_shape(self, H: int, W: int) -> tuple[int, int]:
        t, b, l, r = self.pads(H, W)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if H + t + b < eh or W + l + r < ew:
            raise ValueError(f"Conv2D: the kernel ({eh}×{ew} with dilation) is larger than the padded input "
                             f"({H + t + b}×{W + l + r}); expected an input of at least that size")
        return (H + t + b - eh) // sh + 1, (W + l + r - ew) // sw + 1

    # ---- forward / backward -----------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, H, W, in_channels) -> y (N, Ho, Wo, out_channels)."""
        x = check_float_input("Conv2D", x, self.dtype, 4, f"(N, H, W, {self.in_channels})", last=self.in_channels)
        N, H, W, _ = x.shape
        Ho, Wo = self.output_shape(H, W)
        y = np.empty((N, Ho, Wo, self.out_channels), self.dtype)
        self._cache = {"shape": x.shape, "out": (Ho, Wo), "halves": self._halves(N, Ho * Wo)}
        self._split(lambda k, s: self._forward_part(k, x[s], y[s]))
        return y

    def _forward_part(self, k: int, x: np.ndarray, y: np.ndarray) -> None:
        ws = self._ws[k]
        N, H, W, C = x.shape
        Ho, Wo, O = y.shape[1:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        K, P, nb = kh * kw * C, N * Ho * Wo, int(self.bias is not None)
        # im2col, channels first: row (i, j, c) holds the input that tap (i, j) of channel c sees at every
        # output pixel; each row is a strided copy of a contiguous plane of the padded input.
        t, b, l, r = self.pads(H, W)
        xp = ws.empty("xpadT", (C, N, H + t + b, W + l + r), self.dtype)
        if t or b or l or r:
            xp.fill(0)
        xp[:, :, t:t + H, l:l + W] = x.transpose(3, 0, 1, 2)
        cols = ws.empty("colsT", (K + nb, P), self.dtype)
        taps = cols[:K].reshape(kh, kw, C, N, Ho, Wo)
        for i in range(kh):
            for j in range(kw):
                taps[i, j] = xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
        w = ws.empty("w_aug", (O, K + nb), self.dtype)
        w[:, :K] = self.weight.value.reshape(K, O).T
        if nb:                                            # the bias rides in the GEMM as a row of ones
            cols[K] = 1
            w[:, K] = self.bias.value
        np.matmul(cols.T, w.T, out=y.reshape(P, O))      # straight into NHWC

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, Ho, Wo, out) -> dx (N, H, W, in); adds into weight.grad and bias.grad."""
        if self._cache is None:
            raise RuntimeError("Conv2D.backward called before forward")
        N, H, W, C = self._cache["shape"]
        Ho, Wo = self._cache["out"]
        dy = np.asarray(dy, self.dtype)
        if dy.shape != (N, Ho, Wo, self.out_channels):
            raise ValueError(f"Conv2D.backward: expected dy of shape {(N, Ho, Wo, self.out_channels)}, got {dy.shape}")
        dx = np.empty((N, H, W, C), self.dtype)
        grads = self._split(lambda k, s: self._backward_part(k, dy[s], dx[s]))
        for dw, db in grads:
            self.weight.grad += dw
            if self.bias is not None:
                self.bias.grad += db
        return dx

    def _backward_part(self, k: int, dy: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        ws = self._ws[k]
        N, H, W, C = dx.shape
        Ho, Wo, O = dy.shape[1:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        K, nb = kh * kw * C, int(self.bias is not None)
        dy2 = dy.reshape(-1, O)
        cols = ws.empty("colsT", (K + nb, N * Ho * Wo), self.dtype)      # from the forward, with its ones row
        dWb = cols @ dy2                                                  # (K + 1, O): dW and, last, db
        dW, db = dWb[:K].reshape(self.weight.shape), (dWb[K] if nb else None)
        # dx: each output pixel's gradient spread back over its receptive field. One GEMM gives, per kernel
        # tap (i, j) and input channel, a plane over the output pixels (channels first, so that each plane is
        # contiguous); the planes are added into the padded input at their taps' offsets, then turned to NHWC.
        t, b, l, r = self.pads(H, W)
        dcols = ws.empty("dcolsT", (kh, kw, C, N, Ho, Wo), self.dtype)
        np.matmul(self.weight.value.reshape(K, O), dy2.T, out=dcols.reshape(K, -1))
        dxp = ws.empty("dxpadT", (C, N, H + t + b, W + l + r), self.dtype)
        dxp.fill(0)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw] += dcols[i, j]
        dx[...] = dxp[:, :, t:t + H, l:l + W].transpose(1, 2, 3, 0)
        return dW, db

    # ---- two cores --------------------------------------------------------------

    def _halves(self, N: int, pixels: int) -> list[slice]:
        work = N * pixels * self.kernel_size[0] * self.kernel_size[1] * self.in_channels * self.out_channels
        if N >= 2 and work >= _SPLIT_MIN and parallel.cores() >= 2:
            return [slice(0, N // 2), slice(N // 2, N)]
        return [slice(0, N)]

    def _split(self, part: Any) -> list[Any]:
        """``part(k, batch_slice)`` for the batch halves chosen in forward, side by side when there are two."""
        halves = self._cache["halves"]
        if len(halves) == 1:
            return [part(0, halves[0])]
        return list(parallel.side_by_side(lambda: part(0, halves[0]), lambda: part(1, halves[1])))
