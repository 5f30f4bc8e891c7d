"""PyTorch weights for every layer with parameters, both ways, with identical outputs (float64, <= 1e-10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import lstmkit as lk
from lstmkit.models.charlm import CharLM, CharLMConfig

from .conftest import assert_close, randomise_torch, t64

TOL = 1e-10


def run_torch(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward through a module or an nn.Sequential whose recurrent members return (y, state)."""
    for m in (module if isinstance(module, nn.Sequential) else [module]):
        x = m(x)
        x = x[0] if isinstance(x, tuple) else x
    return x


class TorchCharLM(nn.Module):
    """CharLM's PyTorch twin: the same attribute names, so the same keys."""

    def __init__(self, V: int, E: int, H: int, L: int) -> None:
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(V, E), nn.LSTM(E, H, L, batch_first=True), nn.Linear(H, V)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(ids))[0])


def cases() -> list[tuple[str, Callable[[], Any], Callable[[], nn.Module], tuple[int, ...], bool]]:
    """(name, our layer, the PyTorch module, input shape, integer input)."""
    f64 = {"dtype": "float64"}
    return [
        ("Dense", lambda: lk.Dense(5, 3, **f64), lambda: nn.Linear(5, 3), (4, 5), False),
        ("Dense-no-bias", lambda: lk.Dense(5, 3, bias=False, **f64), lambda: nn.Linear(5, 3, bias=False), (4, 5),
         False),
        ("Embedding", lambda: lk.Embedding(7, 3, padding_idx=1, **f64), lambda: nn.Embedding(7, 3, padding_idx=1),
         (2, 6), True),
        ("LSTM-2-layer-bidirectional", lambda: lk.LSTM(3, 4, 2, bidirectional=True, return_sequences=True, **f64),
         lambda: nn.LSTM(3, 4, 2, bidirectional=True, batch_first=True), (2, 5, 3), False),
        ("LSTMCell", lambda: lk.LSTMCell(3, 4, **f64), lambda: nn.LSTMCell(3, 4), (2, 3), False),
        ("GRUCell", lambda: lk.GRUCell(3, 4, **f64), lambda: nn.GRUCell(3, 4), (2, 3), False),
        ("SimpleRNNCell", lambda: lk.SimpleRNNCell(3, 4, nonlinearity="relu", **f64),
         lambda: nn.RNNCell(3, 4, nonlinearity="relu"), (2, 3), False),
        ("Bidirectional-LSTM", lambda: lk.Bidirectional(lk.LSTM(3, 4, return_sequences=True, **f64)),
         lambda: nn.LSTM(3, 4, bidirectional=True, batch_first=True), (2, 5, 3), False),
        ("Bidirectional-GRU", lambda: lk.Bidirectional(lk.GRU(3, 4, return_sequences=True, **f64)),
         lambda: nn.GRU(3, 4, bidirectional=True, batch_first=True), (2, 5, 3), False),
        ("TimeDistributed-Dense", lambda: lk.TimeDistributed(lk.Dense(3, 2, **f64)), lambda: nn.Linear(3, 2),
         (2, 5, 3), False),
        ("Sequential", lambda: lk.Sequential(lk.Embedding(9, 4, **f64),
                                             lk.GRU(4, 5, bidirectional=True, return_sequences=True, **f64),
                                             lk.TimeDistributed(lk.Dense(10, 6, **f64)), lk.Activation("tanh"),
                                             lk.Dense(6, 3, **f64)),
         lambda: nn.Sequential(nn.Embedding(9, 4), nn.GRU(4, 5, bidirectional=True, batch_first=True),
                               nn.Linear(10, 6), nn.Tanh(), nn.Linear(6, 3)), (2, 5), True),
        ("CharLM", lambda: CharLM(CharLMConfig(vocab_size=9, embed=4, hidden=5, layers=2, dtype="float64")),
         lambda: TorchCharLM(9, 4, 5, 2), (2, 6), True),
    ]


@pytest.mark.parametrize("name,ours_fn,theirs_fn,shape,ints", cases(), ids=[c[0] for c in cases()])
def test_weights_move_both_ways_with_identical_outputs(name, ours_fn, theirs_fn, shape, ints):
    g = np.random.default_rng(3)
    x = g.integers(0, 7, shape) if ints else g.standard_normal(shape)
    xt = torch.tensor(x) if ints else t64(x)
    theirs = theirs_fn().double()
    randomise_torch(theirs, seed=1)                            # nonzero biases, non-default weights
    ours = ours_fn()
    ours.load_torch_state_dict(theirs.state_dict())            # PyTorch -> lstmkit (tensors accepted)
    ours.eval()
    expected = run_torch(theirs, xt)
    out = ours.forward(x)
    assert_close(out[0] if isinstance(out, tuple) else out, expected, TOL, f"{name} output")

    back = theirs_fn().double()                                # lstmkit -> a fresh PyTorch module
    back.load_state_dict({k: torch.tensor(v) for k, v in ours.torch_state_dict().items()}, strict=True)
    assert_close(run_torch(back, xt).detach().numpy(), expected, TOL, f"{name} output after the round trip")
    assert set(ours.torch_state_dict()) == set(theirs.state_dict())


def test_gradients_come_out_under_pytorchs_keys(rng):
    ours = lk.Sequential(lk.Dense(3, 4, dtype="float64"), lk.Activation("relu"), lk.Dense(4, 2, dtype="float64"))
    theirs = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    randomise_torch(theirs, seed=2)
    ours.load_torch_state_dict(theirs.state_dict())
    x = rng.standard_normal((5, 3))
    dy = rng.standard_normal((5, 2))
    ours.forward(x)
    ours.backward(dy)
    (theirs(t64(x)) * t64(dy)).sum().backward()
    grads = ours.torch_state_dict(grad=True)
    for k, p in theirs.named_parameters():
        assert_close(grads[k], p.grad, TOL, k)


def test_mismatched_pytorch_weights_are_named_and_change_nothing():
    ours = lk.Sequential(lk.Dense(3, 4), lk.Dense(4, 2))
    before = ours.state_dict()
    sd = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 3)).state_dict()
    with pytest.raises(ValueError, match=r"'1.weight' expected shape \(2, 4\), got \(3, 4\)"):
        ours.load_torch_state_dict(sd)
    with pytest.raises(ValueError, match=r"unknown keys \['2.weight'\]"):
        ours.load_torch_state_dict({**nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).state_dict(),
                                    "2.weight": torch.zeros(1)})
    for k, v in before.items():
        np.testing.assert_array_equal(ours.state_dict()[k], v)
    stacked = lk.Bidirectional(lk.LSTM(3, 4, num_layers=2, return_sequences=True))
    with pytest.raises(ValueError, match="only a one-layer wrapped layer has a PyTorch equivalent"):
        stacked.torch_state_dict()
