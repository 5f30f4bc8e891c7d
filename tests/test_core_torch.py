"""Dense, Activation, Dropout, Flatten, Embedding against PyTorch in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk

from .conftest import assert_close, t64, torch_vjp


def test_dense_matches_torch_linear(rng):
    lin = torch.nn.Linear(5, 3, dtype=torch.float64)
    d = lk.Dense(5, 3, dtype="float64")
    d.load_state_dict({"weight": lin.weight.detach().numpy(), "bias": lin.bias.detach().numpy()})
    x = rng.standard_normal((2, 4, 5))          # extra leading axes, as nn.Linear
    yt, dxt, dy = torch_vjp(lin, x, rng)
    assert_close(d.forward(x), yt, what="y")
    assert_close(d.backward(dy), dxt, what="dx")
    assert_close(d.weight.grad, lin.weight.grad, what="dW")
    assert_close(d.bias.grad, lin.bias.grad, what="db")


@pytest.mark.parametrize("name,fn", [
    ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu),
    ("leaky_relu", lambda x: torch.nn.functional.leaky_relu(x, 0.2)),
    ("softmax", lambda x: torch.softmax(x, -1)), ("linear", lambda x: x),
])
def test_activations_match_torch(name, fn, rng):
    act = lk.Activation(name, negative_slope=0.2)
    x = rng.standard_normal((3, 7)) * 3
    x[0, 0] = 800.0     # large values must not overflow
    x[0, 1] = -800.0
    yt, dxt, dy = torch_vjp(fn, x, rng)
    assert_close(act.forward(x), yt, what=f"{name} y")
    assert_close(act.backward(dy), dxt, what=f"{name} dx")


def test_dropout_train_and_eval(rng):
    drop = lk.Dropout(0.3, rng=np.random.default_rng(0))
    x = np.ones((200, 100))
    y = drop.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(drop.backward(dy), dy * y)   # same mask, same scale
    drop.eval()
    np.testing.assert_array_equal(drop.forward(x), x)
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\), got 1.0"):
        lk.Dropout(1.0)


def test_flatten_round_trip(rng):
    f = lk.Flatten()
    x = rng.standard_normal((2, 3, 4, 5))
    y = f.forward(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(f.backward(y), x)
    with pytest.raises(ValueError, match="Flatten: expected input of shape"):
        f.forward(np.zeros(3))


def test_embedding_matches_torch_with_repeats_and_padding(rng):
    emb_t = torch.nn.Embedding(7, 4, padding_idx=2, dtype=torch.float64)
    emb = lk.Embedding(7, 4, padding_idx=2, dtype="float64")
    assert not emb.weight.value[2].any()
    emb.load_state_dict({"weight": emb_t.weight.detach().numpy()})
    idx = np.array([[1, 2, 1, 6], [0, 1, 2, 3]])
    yt = emb_t(torch.tensor(idx))
    dy = rng.standard_normal(yt.shape)
    (yt * t64(dy)).sum().backward()
    assert_close(emb.forward(idx), yt, what="y")
    assert emb.backward(dy) is None
    assert_close(emb.weight.grad, emb_t.weight.grad, what="dW")
    with pytest.raises(ValueError, match=r"Embedding: indices must be in \[0, 7\), got values in \[0, 7\]"):
        emb.forward(np.array([0, 7]))
    with pytest.raises(ValueError, match="Embedding: expected integer indices, got dtype float64"):
        emb.forward(np.array([0.0]))


def test_dense_bad_input():
    d = lk.Dense(4, 2)
    with pytest.raises(ValueError, match=r"Dense: expected input of shape \(\.\.\., 4\), got shape \(3, 5\)"):
        d.forward(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="Dense: input contains 1 NaN"):
        d.forward(np.array([[0, 0, np.nan, 0]], np.float32))


def test_sequential_parameters_names_and_backward(rng):
    model = lk.Sequential(lk.LSTM(3, 4, return_sequences=False, dtype="float64"), lk.Dense(4, 2, dtype="float64"))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0", "1.weight", "1.bias"]
    x = rng.standard_normal((2, 5, 3))
    y = model.forward(x)
    assert y.shape == (2, 2)
    assert model.backward(np.ones_like(y)).shape == x.shape
    with pytest.raises(ValueError, match="returned a tuple"):
        lk.Sequential(lk.LSTM(3, 4)).forward(x.astype(np.float32))
    sd = model.state_dict()
    other = lk.Sequential(lk.LSTM(3, 4, return_sequences=False, dtype="float64"), lk.Dense(4, 2, dtype="float64"))
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other.forward(x), y)
