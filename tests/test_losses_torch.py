"""MSELoss and CrossEntropyLoss against PyTorch in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

import lstmkit as lk

from .conftest import assert_close, t64


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_matches_torch(reduction, rng):
    p, y = rng.standard_normal((2, 3, 4))
    pt = t64(p, True)
    lt = tF.mse_loss(pt, t64(y), reduction=reduction)
    fn = lk.MSELoss(reduction)
    loss = fn(p, y)
    g = rng.standard_normal(lt.shape) if reduction == "none" else None
    (lt * t64(g)).sum().backward() if g is not None else lt.backward()
    assert_close(loss, lt, what="loss")
    assert_close(fn.backward(g), pt.grad, what="dpred")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_indices_with_ignore_index(reduction, smoothing, rng):
    logits = rng.standard_normal((3, 5, 6)) * 3            # (B, T, C): class axis last
    target = rng.integers(0, 6, (3, 5))
    target[0, 1] = target[2, 4] = -100
    lt_in = t64(logits, True)
    lt = tF.cross_entropy(lt_in.permute(0, 2, 1), torch.tensor(target), reduction=reduction,
                          label_smoothing=smoothing)
    fn = lk.CrossEntropyLoss(reduction, label_smoothing=smoothing)
    loss = fn(logits, target)
    g = rng.standard_normal(lt.shape) if reduction == "none" else None
    (lt * t64(g)).sum().backward() if g is not None else lt.backward()
    assert_close(loss, lt, what="loss")
    assert_close(fn.backward(g), lt_in.grad, what="dlogits")


def test_cross_entropy_probability_targets_and_extremes(rng):
    logits = rng.standard_normal((4, 5)) * 3
    logits[0, 0] = 1000.0                                    # stable for huge logits
    probs = rng.random((4, 5))
    probs /= probs.sum(1, keepdims=True)
    lt_in = t64(logits, True)
    lt = tF.cross_entropy(lt_in, t64(probs))
    lt.backward()
    fn = lk.CrossEntropyLoss()
    assert_close(fn(logits, probs), lt, what="loss")
    assert_close(fn.backward(), lt_in.grad, what="dlogits")
    onehot = np.eye(5)[[1, 0, 4, 2]]
    assert np.isclose(fn(logits, onehot), lk.CrossEntropyLoss()(logits, np.array([1, 0, 4, 2])))


def test_loss_bad_input():
    fn = lk.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"class-index target must have shape \(4,\).*got \(4, 1\)"):
        fn(np.zeros((4, 3)), np.zeros((4, 1), int))
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\).*\[5\]"):
        fn(np.zeros((2, 3)), np.array([0, 5]))
    with pytest.raises(ValueError, match="MSELoss: prediction shape"):
        lk.MSELoss()(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        lk.MSELoss("avg")
