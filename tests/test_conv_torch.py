"""Conv2D, pooling and BatchNorm2D against PyTorch autograd in float64 (NHWC here, NCHW there):
outputs, dx and every parameter gradient, with nonzero biases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from torch import nn

import lstmkit as lk
from lstmkit.layers import conv

from .conftest import assert_close, randomise_torch, t64


def nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2)


def nhwc(a) -> np.ndarray:
    return (a.detach().numpy() if isinstance(a, torch.Tensor) else a).transpose(0, 2, 3, 1)


def check_layer(ours: lk.Layer, theirs_fn, x: np.ndarray, rng: np.random.Generator,
                theirs_module: nn.Module | None = None) -> np.ndarray:
    """Forward and backward of ``ours`` on x (NHWC) against ``theirs_fn`` on NCHW tensors."""
    xt = t64(nchw(x), True)
    yt = theirs_fn(xt)
    dy = rng.standard_normal(nhwc(yt).shape)
    (yt * t64(nchw(dy))).sum().backward()
    y = ours.forward(x)
    assert_close(y, nhwc(yt), what="y")
    assert_close(ours.backward(dy), nhwc(xt.grad), what="dx")
    if theirs_module is not None:
        grads = ours.torch_state_dict(grad=True)
        for name, p in theirs_module.named_parameters():
            assert_close(grads[name], p.grad, what=f"d{name}")
    return y


CONV_CASES = [
    # (N, H, W, C, O, kernel, stride, padding, dilation, bias)
    (2, 7, 6, 3, 4, 3, 1, "valid", 1, True),
    (2, 7, 6, 3, 4, 3, 1, "same", 1, True),
    (2, 8, 9, 1, 5, (2, 3), 2, 1, 1, True),
    (1, 9, 7, 4, 2, (3, 2), (2, 1), (2, 1), 1, False),
    (2, 9, 9, 2, 3, 3, 1, "same", 2, True),
    (2, 10, 8, 3, 2, (3, 3), 2, "valid", (2, 1), True),
    (3, 5, 5, 6, 7, 1, 1, 0, 1, True),
    (1, 6, 6, 2, 3, 3, 1, 3, 1, True),                  # padding larger than the kernel's reach
    # 8 or more input channels: one pixel a row, and dx as a correlation of dy with the flipped kernel
    (2, 7, 6, 9, 4, 3, 1, "same", 1, True),
    (2, 9, 8, 8, 3, (3, 2), 1, "valid", (2, 1), False),
    (2, 6, 7, 8, 3, 2, 1, "same", 1, True),             # even kernel: one more row and column at the end
    (2, 9, 9, 10, 3, 3, 2, "same", 1, True),            # strided: dx by the planes
    (1, 6, 6, 8, 3, 3, 1, 3, 1, True),                  # padding beyond the kernel's reach: dx by the planes
]


@pytest.mark.parametrize("N,H,W,C,O,k,s,p,d,bias", CONV_CASES)
def test_conv2d_matches_torch(N, H, W, C, O, k, s, p, d, bias, rng):
    ours = lk.Conv2D(C, O, k, stride=s, padding=p, dilation=d, bias=bias, dtype="float64")
    theirs = nn.Conv2d(C, O, k, stride=s, padding=0 if isinstance(p, str) else p, dilation=d, bias=bias,
                       dtype=torch.float64)
    randomise_torch(theirs, seed=N * 100 + C)
    ours.load_torch_state_dict(theirs.state_dict())
    pt, pb, pl, pr = ours.pads(H, W)

    def run(xt: torch.Tensor) -> torch.Tensor:
        if isinstance(p, str):                          # "same"/"valid": pad exactly as lstmkit says, then convolve
            xt = tF.pad(xt, (pl, pr, pt, pb))
        return theirs(xt)

    check_layer(ours, run, rng.standard_normal((N, H, W, C)), rng, theirs)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_same_padding_is_pytorchs_and_the_batch_halves_agree(rng, monkeypatch):
    ours = lk.Conv2D(3, 4, (3, 4), padding="same", dtype="float64")
    theirs = nn.Conv2d(3, 4, (3, 4), padding="same", dtype=torch.float64)
    randomise_torch(theirs, seed=3)
    ours.load_torch_state_dict(theirs.state_dict())
    x = rng.standard_normal((4, 6, 7, 3))
    check_layer(ours, theirs, x, rng, theirs)
    monkeypatch.setattr(conv, "_SPLIT_MIN", 0)          # two threads, one batch half each
    monkeypatch.setattr(conv.parallel, "cores", lambda: 2)
    theirs.zero_grad()
    ours.zero_grad()
    check_layer(ours, theirs, x, rng, theirs)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (3, 1, 0), ((2, 4), None, 0)])
@pytest.mark.parametrize("H,W", [(7, 8), (8, 12)])        # 8 × 12 tiles exactly for the stride = pool cases
@pytest.mark.parametrize("ties", [True, False])
def test_max_pool_matches_torch_including_ties(k, s, p, H, W, ties, rng):
    # with ties (small integers) the first maximum of each window gets the gradient, as in PyTorch
    x = rng.integers(-2, 3, (2, H, W, 3)).astype(np.float64) if ties else rng.standard_normal((2, H, W, 3))
    ours = lk.MaxPool2D(k, s, p)
    check_layer(ours, lambda xt: tF.max_pool2d(xt, k, s, p), x, rng)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1))])
def test_avg_pool_matches_torch(k, s, p, rng):
    check_layer(lk.AvgPool2D(k, s, p), lambda xt: tF.avg_pool2d(xt, k, s, p), rng.standard_normal((2, 7, 8, 3)),
                rng)


def test_global_avg_pool(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    ours = lk.GlobalAvgPool2D()
    xt = t64(nchw(x), True)
    yt = xt.mean(dim=(2, 3))
    dy = rng.standard_normal((3, 6))
    (yt * t64(dy)).sum().backward()
    assert_close(ours.forward(x), yt, what="y")
    assert_close(ours.backward(dy), nhwc(xt.grad), what="dx")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_matches_torch_in_both_modes_with_running_statistics(momentum, rng):
    ours = lk.BatchNorm2D(4, momentum=momentum, dtype="float64")
    theirs = nn.BatchNorm2d(4, momentum=momentum, dtype=torch.float64)
    randomise_torch(theirs, seed=5)                      # γ and β nonzero and not 1/0
    ours.load_torch_state_dict(theirs.state_dict())
    for step in range(3):                                # training: batch statistics, running ones updated
        theirs.zero_grad()
        ours.zero_grad()
        check_layer(ours, theirs, rng.standard_normal((3, 5, 4, 4)) * 2 + step, rng, theirs)
    for k, v in theirs.state_dict().items():
        assert_close(ours.torch_state_dict()[k], v, what=k)
    assert int(ours.num_batches_tracked.value) == 3
    ours.eval()
    theirs.eval()
    theirs.zero_grad()
    ours.zero_grad()
    check_layer(ours, theirs, rng.standard_normal((2, 3, 3, 4)), rng, theirs)


def test_batchnorm_buffers_are_state_not_parameters(tmp_path):
    bn = lk.BatchNorm2D(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    bn.forward(np.random.default_rng(0).standard_normal((4, 2, 2, 3)).astype(np.float32))
    lk.save_model(bn, tmp_path / "bn.npz")
    same = lk.load_model(tmp_path / "bn.npz")
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(same.state_dict()[k], v)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"Conv2D: expected input of shape \(N, H, W, 3\), got shape \(2, 5, 5, 4\)"):
        lk.Conv2D(3, 2, 3).forward(np.zeros((2, 5, 5, 4)))
    with pytest.raises(ValueError, match=r"Conv2D: expected input of shape \(N, H, W, 3\), got shape \(5, 5, 3\)"):
        lk.Conv2D(3, 2, 3).forward(np.zeros((5, 5, 3)))
    with pytest.raises(ValueError, match=r"Conv2D: the kernel \(5×5 with dilation\) is larger than the padded input"):
        lk.Conv2D(3, 2, 3, dilation=2).forward(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="Conv2D: padding must be 'valid', 'same'"):
        lk.Conv2D(3, 2, 3, padding="full")
    with pytest.raises(ValueError, match="Conv2D: kernel_size must be an int >= 1 or a pair"):
        lk.Conv2D(3, 2, 0)
    with pytest.raises(ValueError, match="MaxPool2D: pool_size .* is larger than the padded input"):
        lk.MaxPool2D(4).forward(np.zeros((1, 3, 3, 1)))
    with pytest.raises(ValueError, match="MaxPool2D: padding must be at most half the pool size"):
        lk.MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match=r"BatchNorm2D: expected input of shape \(N, H, W, 4\)"):
        lk.BatchNorm2D(4).forward(np.zeros((2, 3, 3, 3)))


def test_weights_move_to_pytorch_and_back(rng):
    ours = lk.Sequential(lk.Conv2D(3, 4, (3, 2), padding=1, dtype="float64"), lk.BatchNorm2D(4, dtype="float64"),
                         lk.Activation("relu"), lk.MaxPool2D(2), lk.GlobalAvgPool2D(), lk.Dense(4, 2, dtype="float64"))
    ours.forward(rng.standard_normal((2, 6, 6, 3)))       # running statistics move away from their defaults
    theirs = nn.Sequential(nn.Conv2d(3, 4, (3, 2), padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).double()
    sd = ours.torch_state_dict()
    assert sd["1.num_batches_tracked"].dtype == np.int64
    missing = theirs.load_state_dict({("6" + k[1:] if k.startswith("5.") else k): torch.tensor(v)
                                      for k, v in sd.items()}, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 6, 6, 3))
    assert_close(ours.forward(x), theirs(t64(nchw(x))), tol=1e-10, what="y")
