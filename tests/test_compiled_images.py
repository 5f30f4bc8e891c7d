"""The compiled core's convolutions, dense products and max pooling (``_core/conv.h``, ``_core/image.c``) against
the NumPy reference paths of the same layers: float64 to 1e-12 and float32 to 1e-5 on every SIMD path this CPU
runs; geometries that take each of the core's routes (receptive fields read where they lie at the row strides it
has kernels for, packed otherwise, taps read where they lie in the weight gradient, padding, stride, dilation, a
column count that is no multiple of the panel width). The layers' oracle tests against PyTorch run on whichever
path is active."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import compiled

from .conftest import assert_close, needs_core

SIMDS = ("generic", "avx2", "avx512")


def _both(monkeypatch: pytest.MonkeyPatch, simd: str, fn):
    """fn() on the NumPy path, then on the core at ``simd``."""
    monkeypatch.setenv("LSTMKIT_KERNEL", "numpy")
    ref = fn()
    monkeypatch.delenv("LSTMKIT_KERNEL")
    compiled.set_simd(simd)
    try:
        return ref, fn()
    finally:
        compiled.set_simd(None)


# (N, H, W, C, O, kernel, stride, padding, dilation, bias): C 1, 3, 8, 16 and 32 at stride 1 have kernels that read
# the input where it lies; 5 and stride 2 go through packing; C 16 with 3 taps across fills whole weight-gradient
# panels; O 40 and 33 leave a partial panel. dx: by the flipped forward from 8 channels at stride 1, else scattered
# (dy's rows read where they lie at O 16, packed at O 5, 7, 17, 40). Stride 1 with padding tiles the padded rows
# (padding columns as virtual pixels, not written): dilation 2 with padding 2 reads farthest past a row's end, and a
# 2 × 2 image has fewer pixels than one tile.
CONVS = [
    (2, 7, 9, 8, 16, 3, 1, 2, 2, False),
    (3, 2, 2, 16, 32, 3, 1, 1, 1, True),
    (3, 7, 6, 3, 5, 3, 1, "same", 1, True),
    (2, 8, 13, 3, 16, 3, 1, "same", 1, True),
    (2, 9, 8, 16, 33, 3, 1, 1, 1, True),
    (2, 9, 9, 5, 17, (3, 2), 1, "valid", 2, False),
    (2, 10, 11, 8, 40, 3, 2, "same", 1, True),
    (3, 6, 30, 32, 16, 3, 1, "same", 1, True),
    (4, 6, 6, 1, 12, 1, 1, 0, 1, True),
    (2, 12, 13, 16, 7, (2, 3), (2, 1), (1, 2), (1, 2), True),
]


@needs_core
@pytest.mark.parametrize("simd", SIMDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONVS)
def test_conv2d_on_the_core_equals_the_numpy_path(monkeypatch, simd, dtype, case):
    N, H, W, C, O, k, s, p, d, bias = case
    layer = lk.Conv2D(C, O, k, stride=s, padding=p, dilation=d, bias=bias, dtype=dtype,
                      rng=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    dy = rng.standard_normal((N, *layer.output_shape(H, W), O)).astype(dtype)

    def run():
        for prm in layer.parameters():
            prm.grad[...] = 0
        y = layer.forward(x)
        dx = layer.backward(dy)
        return [y, dx] + [prm.grad.copy() for prm in layer.parameters()]

    ref, got = _both(monkeypatch, simd, run)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(got, ref):
        assert_close(a, b, tol)


@needs_core
@pytest.mark.parametrize("simd", SIMDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dense_on_the_core_equals_the_numpy_path(monkeypatch, simd, dtype):
    layer = lk.Dense(300, 70, dtype=dtype, rng=np.random.default_rng(1))      # 2 · 30 · 300 · 70: past _CORE_MIN
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 30, 300)).astype(dtype)
    dy = rng.standard_normal((2, 30, 70)).astype(dtype)

    def run():
        for prm in layer.parameters():
            prm.grad[...] = 0
        y = layer.forward(x)
        return [y, layer.backward(dy), layer.weight.grad.copy(), layer.bias.grad.copy()]

    ref, got = _both(monkeypatch, simd, run)
    tol = 1e-12 if dtype == "float64" else 1e-4
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        assert_close(a, b, tol)


@needs_core
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pool", [(2, None, 0), (3, 2, 1), (2, 1, 0), ((3, 2), (1, 2), (1, 1))])
def test_maxpool_on_the_core_equals_the_numpy_path_ties_included(monkeypatch, dtype, pool):
    """ReLU's zeros tie in most windows: the first tap (row-major) takes the gradient on both paths, as in
    PyTorch; overlapping windows add."""
    layer = lk.MaxPool2D(*pool)
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((3, 9, 8, 5)), 0).astype(dtype)
    dy = rng.standard_normal(layer.forward(x).shape).astype(dtype)

    def run():
        y = layer.forward(x)
        return [y, layer.backward(dy)]

    (y_ref, dx_ref), (y, dx) = _both(monkeypatch, "avx512", run)
    assert np.array_equal(y, y_ref)
    assert_close(dx, dx_ref, 1e-12 if dtype == "float64" else 1e-6)      # overlapping windows add in another order
    assert np.count_nonzero(dx) == np.count_nonzero(dx_ref) > 0


@needs_core
def test_the_training_loop_asks_no_input_gradient_and_a_direct_backward_still_gets_one():
    """fit turns ``input_grad`` off for its backward (the first Conv2D then skips dx); after it, a user's own
    backward gets dx again, equal to the NumPy path's."""
    rng = np.random.default_rng(0)
    model = lk.models.CNNLSTM(3, 1, 8, (4,), 6, 5, rng=rng)
    x = rng.random((4, 3, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 3, 4)
    conv = model.layers[0].layer.layers[0]
    seen = []
    backward = conv.backward
    conv.backward = lambda dy: seen.append(backward(dy)) or seen[-1]
    model.fit(x, y, epochs=1, batch_size=4, progress=False)
    assert seen and all(dx is None for dx in seen)
    loss = lk.CrossEntropyLoss()
    loss(model.forward(x), y)
    dx = model.backward(loss.backward())
    assert dx.shape == x.shape and np.abs(dx).sum() > 0


@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_core)])
def test_a_relu_after_a_convolution_runs_in_its_pass_with_the_same_outputs_and_gradients(monkeypatch, kernel):
    """Sequential runs Conv2D + Activation("relu") as one pass (the core adds the ReLU in the tile); outputs and
    every gradient equal the two layers run one after the other."""
    if kernel == "numpy":
        monkeypatch.setenv("LSTMKIT_KERNEL", "numpy")
    else:
        monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    rng = np.random.default_rng(0)
    model = lk.Sequential(lk.Conv2D(3, 5, 3, padding="same", dtype="float64", rng=rng), lk.Activation("relu"),
                          lk.MaxPool2D(2), lk.Flatten(), lk.Dense(5 * 4 * 4, 2, dtype="float64", rng=rng))
    x = rng.standard_normal((4, 8, 8, 3))
    dy = rng.standard_normal((4, 2))
    seen = []
    model.layers[1].forward = lambda a: seen.append("relu") or lk.Activation.forward(model.layers[1], a)
    y_apart = model.forward(x)                               # a forward replaced on the instance: run apart
    dx_apart = model.backward(dy)
    grads_apart = [p.grad.copy() for p in model.parameters()]
    assert seen == ["relu"]
    del model.layers[1].forward
    for p in model.parameters():
        p.grad[...] = 0
    y = model.forward(x)
    dx = model.backward(dy)
    assert seen == ["relu"]                                  # fused: the activation's forward did not run
    assert np.array_equal(y, y_apart) and np.array_equal(dx, dx_apart)
    for a, b in zip((p.grad for p in model.parameters()), grads_apart):
        assert np.array_equal(a, b)
