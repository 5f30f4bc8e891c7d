r"""Conv2D on NHWC images: im2col + one GEMM.

With the compiled core (``compiled.active()``) the products run there (``_core/conv.h``, through
``compiled_images``): each tile of output pixels' receptive fields goes straight into the micro-kernel's
panels (or is read where it lies, a row of pixels at a time), bias added in the tile; the weight gradient
in one pass over the pixels; dx at stride 1 as the forward over dy padded "full" with the kernel flipped.
What follows is the NumPy path, the readable reference, which forms the same products.

For an input x (N, H, W, C), zero-padded to (N, Hp, Wp, C), weights w (kh, kw, C, O)
and bias b (O,), stride (sh, sw) and dilation (dh, dw)::

    y[n, u, v, o] = b[o] + Σ_{i, j, c} x_pad[n, u·sh + i·dh, v·sw + j·dw, c] · w[i, j, c, o]

im2col copies each output pixel's receptive field into one row of a matrix
(N·Ho·Wo, kh·kw·C), with a column of ones for the bias; then y = cols @ w is one
GEMM, written straight into NHWC. How the matrix is laid out depends on the
channel count (measured): with 8 or more channels, one strided copy of the padded
input's windows, a pixel a row; with fewer, the transpose of a channels-first
(kh·kw·C, pixels) matrix whose rows are strided copies of contiguous planes.
Backward: dW and db are one GEMM, colsᵀ @ dy (im2col recomputed: cheaper than
keeping it). dx, at stride 1 with 8 or more channels, is itself a convolution: dy
zero-padded to "full" and correlated with the kernel flipped and its in/out channels
swapped — the same window copy and one GEMM. Otherwise dx is w @ dyᵀ, for every
kernel tap and input channel a plane over the output pixels, added back at each
tap's offset into the padded input (kh·kw slice-adds of contiguous planes), then
turned to NHWC. Python loops run over the kh·kw kernel taps at most, never over
pixels. The batch is cut into chunks whose im2col fits in cache, taken in turn by
two threads; buffers are reused.

PyTorch keeps images NCHW and weights (O, C, kh, kw); the layouts are converted
when weights move (``load_torch_state_dict`` / ``torch_state_dict``), not here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import compiled, parallel
from .. import compiled_images as core
from .._checks import check_dtype_name, check_float_input
from ..init import uniform
from ..parameter import Parameter
from ..workspace import Workspace
from .base import Layer, TorchLayout
from .core import Activation

# Below this many multiply-adds per call, splitting the batch over two threads costs more than it saves.
_SPLIT_MIN = 1 << 24
# From this many input channels the one-pixel-a-row layout wins (its copies move C contiguous values at a time;
# with 3 channels the channels-first planes were 1.2x faster, with 16 the rows 1.3x).
_ROWS_MIN = 8


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


def fuses_relu(layer: Layer, following: Layer | None) -> bool:
    """Whether ``layer`` then ``following`` is a Conv2D and an Activation("relu") that can run as one pass (neither
    one's forward replaced on the instance, as a tracer might)."""
    return (isinstance(layer, Conv2D) and isinstance(following, Activation) and following.name == "relu"
            and "forward" not in vars(layer) and "forward" not in vars(following))


class Conv2D(Layer):
    """2-D convolution over NHWC images: x (N, H, W, in_channels) -> y (N, Ho, Wo, out_channels).

    ``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding="valid", dilation=1,
    bias=True, dtype="float32")``. ``padding`` is "valid" (none), "same" (output size
    ceil(H / stride), the extra row or column at the bottom/right, as Keras and PyTorch do),
    an int or a pair (ph, pw) of zeros on both sides. ``weight`` is (kh, kw, in, out),
    initialised as PyTorch's, U(±1/sqrt(in·kh·kw)), and so is ``bias``.
    """

    _kept = ("_cache",)

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

    def forward(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        """x (N, H, W, in_channels) -> y (N, Ho, Wo, out_channels); with ``relu``, max(y, 0) in the same pass (a
        Sequential asks for it when an ``Activation("relu")`` follows)."""
        x = check_float_input("Conv2D", x, self.dtype, 4, f"(N, H, W, {self.in_channels})", last=self.in_channels)
        N, H, W, _ = x.shape
        Ho, Wo = self.output_shape(H, W)
        y = np.empty((N, Ho, Wo, self.out_channels), self.dtype)
        self._cache = {"x": x, "out": (Ho, Wo), "chunks": self._chunks(N, Ho * Wo)}
        if compiled.active():                            # the core: im2col packed straight into its GEMM's panels
            self._cache["x"] = x = np.ascontiguousarray(x)
            K = self.weight.value[..., 0].size
            core.conv_forward(x, self.weight.value.reshape(K, -1), self._geometry(H, W), self._bias(), relu, out=y)
            return y
        self._split(lambda k, s: self._forward_part(k, x[s], y[s]))
        return np.maximum(y, 0, out=y) if relu else y

    def _bias(self) -> np.ndarray | None:
        return None if self.bias is None else self.bias.value

    def _geometry(self, H: int, W: int) -> core.Geometry:
        return core.Geometry(*self.kernel_size, *self.stride, *self.dilation, self.pads(H, W),
                             *self.output_shape(H, W))

    def _cols(self, ws: Workspace, x: np.ndarray, Ho: int, Wo: int) -> np.ndarray:
        """x's receptive fields as a (N·Ho·Wo, kh·kw·C [+ 1]) matrix (taps i, j, then channels; a ones column
        for the bias), laid out as suits the channel count (measured): with few channels, channels first
        (the transpose of a (K, pixels) matrix whose rows are strided copies of contiguous planes); with
        ``_ROWS_MIN`` or more, one pixel a row, made by one strided copy of the padded input's windows."""
        N, H, W, C = x.shape
        pads = self.pads(H, W)
        if C >= _ROWS_MIN:
            return self._rows(ws, "cols", padded(ws, "xpad", x, pads), (Ho, Wo), self.stride, self.bias is not None)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        K, nb = kh * kw * C, int(self.bias is not None)
        t, b, l, r = pads
        xp = ws.empty("xpadT", (C, N, H + t + b, W + l + r), self.dtype)
        if any(pads):
            xp.fill(0)
        xp[:, :, t:t + H, l:l + W] = x.transpose(3, 0, 1, 2)
        cols = ws.empty("colsT", (K + nb, N * Ho * Wo), self.dtype)
        taps = cols[:K].reshape(kh, kw, C, N, Ho, Wo)
        for i in range(kh):
            for j in range(kw):
                taps[i, j] = xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
        if nb:
            cols[K] = 1
        return cols.T

    def _rows(self, ws: Workspace, name: str, xp: np.ndarray, out_hw: tuple[int, int], stride: tuple[int, int],
              ones: bool) -> np.ndarray:
        """(N·Ho·Wo, kh·kw·C [+ 1]) receptive fields of a padded xp (N, Hp, Wp, C), one output pixel a row, with
        a ones column if ``ones``: one strided copy of the windows."""
        N, _, _, C = xp.shape
        (kh, kw), s = self.kernel_size, self.dtype.itemsize
        K, nb = kh * kw * C, int(ones)
        Ho, Wo = out_hw
        cols = ws.empty(name, (N * Ho * Wo, K + nb), self.dtype)
        row = (K + nb) * s
        dst = as_strided(cols, (N, Ho, Wo, kh, kw, C), (Ho * Wo * row, Wo * row, row, kw * C * s, C * s, s))
        np.copyto(dst, windows(xp, out_hw, self.kernel_size, stride, self.dilation))
        if nb:
            cols[:, K] = 1
        return cols

    def _forward_part(self, k: int, x: np.ndarray, y: np.ndarray) -> None:
        ws = self._ws[k]
        Ho, Wo, O = y.shape[1:]
        cols = self._cols(ws, x, Ho, Wo)
        K = cols.shape[1] - int(self.bias is not None)
        w = ws.empty("w_aug", (cols.shape[1], O), self.dtype)
        w[:K] = self.weight.value.reshape(K, O)
        if self.bias is not None:                         # the bias rides in the GEMM as a column of ones
            w[K] = self.bias.value
        np.matmul(cols, w, out=y.reshape(-1, O))          # straight into NHWC

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, Ho, Wo, out) -> dx (N, H, W, in); adds into weight.grad and bias.grad."""
        if self._cache is None:
            raise self._unkept("Conv2D")
        x = self._cache["x"]
        N, H, W, C = x.shape
        Ho, Wo = self._cache["out"]
        dy = np.asarray(dy, self.dtype)
        if dy.shape != (N, Ho, Wo, self.out_channels):
            raise ValueError(f"Conv2D.backward: expected dy of shape {(N, Ho, Wo, self.out_channels)}, got {dy.shape}")
        if compiled.active():
            return self._backward_core(x, np.ascontiguousarray(dy))
        dx = np.empty((N, H, W, C), self.dtype)
        for dWb in self._split(lambda k, s: self._backward_part(k, x[s], dy[s], dx[s])):
            self.weight.grad += dWb[:-1].reshape(self.weight.shape) if self.bias is not None else \
                dWb.reshape(self.weight.shape)
            if self.bias is not None:
                self.bias.grad += dWb[-1]
        return dx if self.input_grad else None

    def _backward_core(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray | None:
        """The core's backward: [dW; db] in one pass over the pixels, then dx (unless ``input_grad`` is off) as the
        forward over dy padded "full" with the kernel flipped (stride 1, 8 channels or more), else by scattering each
        pixel's dy · Wᵀ back over its receptive field."""
        N, H, W, C = x.shape
        g = self._geometry(H, W)
        dWb = core.conv_weight_grad(x, dy, g, self.bias is not None)
        K = self.weight.value[..., 0].size
        self.weight.grad += dWb[:K].reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += dWb[K]
        if not self.input_grad:
            return None
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        t, b, l, r = g.pads
        full = ((kh - 1) * dh - t, (kh - 1) * dh - b, (kw - 1) * dw - l, (kw - 1) * dw - r)
        if self.stride != (1, 1) or min(full) < 0 or C < _ROWS_MIN:      # few channels: the flipped forward's
            return core.conv_input_grad(dy, self.weight.value.reshape(K, -1), g, x.shape)   # output would be thin
        w_flip = self._ws[1].empty("w_flip", (kh, kw, self.out_channels, C), self.dtype)
        w_flip[...] = self.weight.value[::-1, ::-1].transpose(0, 1, 3, 2)
        return core.conv_forward(dy, w_flip.reshape(-1, C), core.Geometry(kh, kw, 1, 1, dh, dw, full, H, W))

    def _backward_part(self, k: int, x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Writes this chunk's dx and returns its [dW; db] (K [+ 1], O)."""
        ws = self._ws[k]
        N, H, W, C = dx.shape
        Ho, Wo, O = dy.shape[1:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        dy2 = dy.reshape(-1, O)
        dWb = self._cols(ws, x, Ho, Wo).T @ dy2                       # recomputed: cheaper than keeping it
        t, b, l, r = self.pads(H, W)
        eh, ew = (kh - 1) * dh, (kw - 1) * dw
        full = (eh - t, eh - b, ew - l, ew - r)
        if (sh, sw) == (1, 1) and min(full) >= 0 and C >= _ROWS_MIN:
            # dx is the correlation of dy, zero-padded to "full", with the kernel flipped and its in/out
            # channels swapped: the same window copy and one GEMM, straight into NHWC.
            dcols = self._rows(ws, "dcols", padded(ws, "dypad", dy, full), (H, W), (1, 1), False)
            w_flip = ws.empty("w_flip", (kh * kw * O, C), self.dtype)
            w_flip.reshape(kh, kw, O, C)[...] = self.weight.value[::-1, ::-1].transpose(0, 1, 3, 2)
            np.matmul(dcols, w_flip, out=dx.reshape(-1, C))
            return dWb
        self._input_grad(ws, dy, dx)
        return dWb

    def _input_grad(self, ws: Workspace, dy: np.ndarray, dx: np.ndarray) -> None:
        """dx (N, H, W, C) for any stride: each output pixel's gradient spread back over its receptive field. One
        GEMM gives, per kernel tap (i, j) and input channel, a plane over the output pixels (channels first, so that
        each plane is contiguous); the planes are added into the padded input at their taps' offsets, then turned to
        NHWC."""
        N, H, W, C = dx.shape
        Ho, Wo, O = dy.shape[1:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        t, b, l, r = self.pads(H, W)
        dcols = ws.empty("dcolsT", (kh, kw, C, N, Ho, Wo), self.dtype)
        np.matmul(self.weight.value.reshape(kh * kw * C, O), dy.reshape(-1, O).T, out=dcols.reshape(kh * kw * C, -1))
        dxp = ws.empty("dxpadT", (C, N, H + t + b, W + l + r), self.dtype)
        dxp.fill(0)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw] += dcols[i, j]
        dx[...] = dxp[:, :, t:t + H, l:l + W].transpose(1, 2, 3, 0)

    # ---- two cores --------------------------------------------------------------

    def _chunks(self, N: int, pixels: int) -> list[slice]:
        """Batch chunks whose im2col fits in cache (~2 MB); two threads take turns when the work is large."""
        K = self.kernel_size[0] * self.kernel_size[1] * self.in_channels + 1
        per = max(1, (1 << 21) // (K * pixels * self.dtype.itemsize))
        return [slice(s, min(s + per, N)) for s in range(0, N, per)]

    def _split(self, part: Any) -> list[Any]:
        """``part(k, batch_slice)`` over the chunks chosen in forward, on two threads (k = 0, 1) when it pays.

        Returns, per thread, the sum of its parts' results (the backward's [dW; db]; None for the forward).
        """
        chunks = self._cache["chunks"]
        N = chunks[-1].stop
        Ho, Wo = self._cache["out"]
        work = N * Ho * Wo * self.kernel_size[0] * self.kernel_size[1] * self.in_channels * self.out_channels
        two = len(chunks) >= 2 and work >= _SPLIT_MIN and parallel.cores() >= 2

        def run(k: int, mine: list[slice]) -> Any:
            out = None
            for s in mine:
                r = part(k, s)
                out = r if out is None else out + r
            return out

        if not two:
            return [run(0, chunks)]
        return [r for r in parallel.side_by_side(lambda: run(0, chunks[0::2]), lambda: run(1, chunks[1::2]))
                if r is not None]
