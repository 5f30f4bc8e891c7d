"""The compiled core's products outside the scans: convolutions, dense layers, max pooling (``_core/conv.h``,
``_core/image.c``), each one entry point taking one struct of ``_boundary.py``, on the core's thread pool.

    conv_forward(x, w, geometry, bias, relu)       # y (N, Ho, Wo, O)
    conv_weight_grad(x, dy, geometry, bias=True)   # (K [+ 1], O): Σ over pixels of each tap's input times dy
    dense_forward(x2, weight, bias)                # x2 (P, in) @ weightᵀ + bias
    maxpool_forward(x, ...), maxpool_backward(...)

The layers (``layers/conv.py``, ``layers/core.py``, ``layers/pool.py``) call these when ``compiled.active()``;
their NumPy paths stay the readable reference. Each call holds NumPy's BLAS to one thread (``holding_blas``) so
that the core gets every core, whatever was imported first.
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import numpy as np

from . import compiled
from ._boundary import Conv, Pool


class Geometry(NamedTuple):
    """A convolution's shape: kernel (kh, kw), stride (sh, sw), dilation (dh, dw), zero padding (top, bottom, left,
    right) and the output size (Ho, Wo)."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pads: tuple[int, int, int, int]
    Ho: int
    Wo: int


def _run(name: str, args: ctypes.Structure) -> None:
    with compiled.holding_blas(True):
        args.threads = compiled.threads()
        used = getattr(compiled._load(), name)(ctypes.byref(args))
    if used < 0:
        raise MemoryError("lstmkit's compiled core could not allocate its buffers")


def _conv_args(x: np.ndarray, g: Geometry, O: int, w: np.ndarray | None = None) -> Conv:
    """The struct's geometry for x (N, H, W, C) (the core pads each image itself, in a buffer of each thread's),
    and the weights w (K, O) by their element strides when given."""
    N, H, W, C = x.shape
    t, b, l, r = g.pads
    args = Conv(f64=int(x.dtype == np.float64), N=N, H=H, W=W, C=C, O=O, Ho=g.Ho, Wo=g.Wo, kh=g.kh, kw=g.kw,
                sh=g.sh, sw=g.sw, dil_h=g.dh, dil_w=g.dw, pt=t, pl=l, Hp=H + t + b, Wp=W + l + r, x=x.ctypes.data)
    if w is not None:
        args.w, args.wk, args.wo = w.ctypes.data, w.strides[0] // w.itemsize, w.strides[1] // w.itemsize
    return args


def conv_forward(x: np.ndarray, w: np.ndarray, g: Geometry, bias: np.ndarray | None = None, relu: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """y (N, Ho, Wo, O) = the convolution of x (N, H, W, C) with w (K, O), K = kh·kw·C taps (i, j, c) in that
    order (any strides: a transposed view works), plus ``bias`` (O,), then max(·, 0) with ``relu``. x contiguous,
    w, bias and ``out`` of x's dtype (float32 or float64)."""
    K, O = w.shape
    assert x.flags.c_contiguous and K == g.kh * g.kw * x.shape[3] and w.dtype == x.dtype
    y = np.empty((x.shape[0], g.Ho, g.Wo, O), x.dtype) if out is None else out
    assert y.flags.c_contiguous and y.shape == (x.shape[0], g.Ho, g.Wo, O) and y.dtype == x.dtype
    args = _conv_args(x, g, O, w)
    if bias is not None:
        bias = np.ascontiguousarray(bias, x.dtype)
        args.bias = bias.ctypes.data
    args.relu, args.y = int(relu), y.ctypes.data
    _run("lk_conv_forward", args)
    return y


def conv_weight_grad(x: np.ndarray, dy: np.ndarray, g: Geometry, bias: bool, out: np.ndarray | None = None
                     ) -> np.ndarray:
    """(K [+ 1], O), added to ``out`` (zeros when None): row k = Σ over output pixels of tap k's input (x (N, H, W,
    C) as the forward read it) times dy (N, Ho, Wo, O); with ``bias`` a last row Σ dy."""
    N, Ho, Wo, O = dy.shape
    K = g.kh * g.kw * x.shape[3]
    assert x.flags.c_contiguous and dy.flags.c_contiguous and dy.dtype == x.dtype and (Ho, Wo) == (g.Ho, g.Wo)
    dw = np.zeros((K + int(bias), O), x.dtype) if out is None else out
    assert dw.flags.c_contiguous and dw.shape == (K + int(bias), O) and dw.dtype == x.dtype
    args = _conv_args(x, g, O)
    args.dy, args.dw, args.bias = dy.ctypes.data, dw.ctypes.data, (1 if bias else None)
    _run("lk_conv_wgrad", args)
    return dw


def conv_input_grad(dy: np.ndarray, w: np.ndarray, g: Geometry, x_shape: tuple[int, int, int, int]) -> np.ndarray:
    """dx (``x_shape``) of a convolution with w (K, O) (any strides), from dy (N, Ho, Wo, O): each output pixel's
    dy · wᵀ added back over its receptive field (any stride, dilation, padding)."""
    N, Ho, Wo, O = dy.shape
    assert dy.flags.c_contiguous and w.shape == (g.kh * g.kw * x_shape[3], O) and w.dtype == dy.dtype
    dx = np.empty(x_shape, dy.dtype)
    args = _conv_args(dx, g, O, w)
    args.x, args.dy, args.y = None, dy.ctypes.data, dx.ctypes.data
    _run("lk_conv_input_grad", args)
    return dx


_DENSE = Geometry(1, 1, 1, 1, 1, 1, (0, 0, 0, 0), 1, 1)


def dense_forward(x2: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x2 (P, I) @ w + bias for w (I, O) in any strides (a dense layer's weightᵀ is a view): y (P, O)."""
    P, I = x2.shape
    y = conv_forward(x2.reshape(P, 1, 1, I), w, _DENSE, bias)
    return y.reshape(P, w.shape[1])


def dense_weight_grad(x2: np.ndarray, dy2: np.ndarray, bias: bool) -> np.ndarray:
    """(I [+ 1], O): x2ᵀ · dy2 for x2 (P, I) and dy2 (P, O), with ``bias`` a last row Σ dy2."""
    P, I = x2.shape
    return conv_weight_grad(x2.reshape(P, 1, 1, I), dy2.reshape(P, 1, 1, -1), _DENSE, bias)


def maxpool_forward(x: np.ndarray, k: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
                    out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """y (N, Ho, Wo, C), the max over each window of x (N, H, W, C) (contiguous), and arg: each winner's tap i·kw + j
    (uint8: windows of at most 256 taps)."""
    assert k[0] * k[1] <= 256
    N, H, W, C = x.shape
    y = np.empty((N, *out_hw, C), x.dtype)
    arg = np.empty(y.shape, np.uint8)
    _run("lk_maxpool_forward", Pool(f64=int(x.dtype == np.float64), N=N, H=H, W=W, C=C, Ho=out_hw[0], Wo=out_hw[1],
                                    kh=k[0], kw=k[1], sh=stride[0], sw=stride[1], ph=pad[0], pw=pad[1],
                                    x=x.ctypes.data, y=y.ctypes.data, arg=arg.ctypes.data))
    return y, arg


def maxpool_backward(dy: np.ndarray, arg: np.ndarray, shape: tuple[int, int, int, int], k: tuple[int, int],
                     stride: tuple[int, int], pad: tuple[int, int]) -> np.ndarray:
    """dx of ``shape`` (N, H, W, C): dy (N, Ho, Wo, C) added at each window's winner ``arg`` (the forward's, of the
    same window geometry)."""
    N, H, W, C = shape
    dy = np.ascontiguousarray(dy)
    assert arg.shape == dy.shape and arg.dtype == np.uint8
    dx = np.empty(shape, dy.dtype)
    _run("lk_maxpool_backward", Pool(f64=int(dy.dtype == np.float64), N=N, H=H, W=W, C=C, Ho=dy.shape[1],
                                     Wo=dy.shape[2], kh=k[0], kw=k[1], sh=stride[0], sw=stride[1], ph=pad[0],
                                     pw=pad[1], arg=arg.ctypes.data, dy=dy.ctypes.data, dx=dx.ctypes.data))
    return dx
