"""Bidirectional, TimeDistributed and pad_sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk

from .conftest import assert_close, t64, torch_vjp


def split_bidirectional(bi: lk.LSTM | lk.GRU, rs) -> lk.Bidirectional:
    """A Bidirectional wrapper holding the two directions of a bidirectional layer."""
    cls = type(bi)
    fwd = cls(bi.input_size, bi.hidden_size, return_sequences=rs, dtype="float64")
    bwd = cls(bi.input_size, bi.hidden_size, return_sequences=rs, dtype="float64")
    sd = bi.torch_state_dict()
    fwd.load_torch_state_dict({k: v for k, v in sd.items() if not k.endswith("_reverse")})
    bwd.load_torch_state_dict({k[:-8]: v for k, v in sd.items() if k.endswith("_reverse")})
    return lk.Bidirectional(fwd, "concat", backward_layer=bwd)


@pytest.mark.parametrize("cls", [lk.LSTM, lk.GRU])
@pytest.mark.parametrize("lengths", [None, [5, 1, 3]])
def test_bidirectional_wrapper_equals_bidirectional_layer(cls, lengths, rng):
    bi = cls(3, 4, bidirectional=True, return_sequences=True, dtype="float64")
    wrap = split_bidirectional(bi, True)
    x = rng.standard_normal((3, 5, 3))
    y = bi.forward(x, lengths=lengths)
    assert_close(wrap.forward(x, lengths=lengths), y, tol=1e-13, what="y")
    dy = rng.standard_normal(y.shape)
    assert_close(wrap.backward(dy), bi.backward(dy), tol=1e-13, what="dx")
    g = bi.torch_state_dict(grad=True)
    assert_close(wrap.backward_layer.torch_state_dict(grad=True)["weight_hh_l0"], g["weight_hh_l0_reverse"],
                 tol=1e-13, what="dW_hh reverse")
    # last-output mode: forward state at each end, backward state at each start
    last_bi = split_bidirectional(bi, False)
    out = last_bi.forward(x, lengths=lengths)
    idx = np.array(lengths) - 1 if lengths is not None else np.full(3, 4)
    np.testing.assert_allclose(out[:, :4], y[np.arange(3), idx, :4], atol=1e-13)
    np.testing.assert_allclose(out[:, 4:], y[:, 0, 4:], atol=1e-13)


@pytest.mark.parametrize("mode,fn", [
    ("sum", lambda a, b: a + b), ("mul", lambda a, b: a * b), ("ave", lambda a, b: (a + b) / 2),
])
def test_bidirectional_merge_modes_match_torch(mode, fn, rng):
    t = torch.nn.GRU(3, 4, bidirectional=True, batch_first=True, dtype=torch.float64)
    fwd = lk.GRU(3, 4, return_sequences=True, dtype="float64")
    bwd = lk.GRU(3, 4, return_sequences=True, dtype="float64")
    sd = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    fwd.load_torch_state_dict({k: v for k, v in sd.items() if "reverse" not in k})
    bwd.load_torch_state_dict({k[:-8]: v for k, v in sd.items() if "reverse" in k})
    wrap = lk.Bidirectional(fwd, mode, backward_layer=bwd)
    x = rng.standard_normal((2, 6, 3))
    xt = t64(x, True)
    yt_full, _ = t(xt)
    yt = fn(yt_full[..., :4], yt_full[..., 4:])
    dy = rng.standard_normal(yt.shape)
    (yt * t64(dy)).sum().backward()
    assert_close(wrap.forward(x), yt, what="y")
    assert_close(wrap.backward(dy), xt.grad, what="dx")
    assert len(wrap.parameters()) == 8


def test_bidirectional_tuple_mode_and_errors(rng):
    wrap = lk.Bidirectional(lk.LSTM(3, 4, dtype="float64"))
    y, (st_f, st_b) = wrap.forward(rng.standard_normal((2, 5, 3)))
    assert y.shape == (2, 5, 8) and st_f[0].shape == (1, 2, 4) and st_b[1].shape == (1, 2, 4)
    assert wrap.backward(np.ones_like(y)).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="must be unidirectional"):
        lk.Bidirectional(lk.LSTM(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        lk.Bidirectional(lk.LSTM(3, 4), "max")
    with pytest.raises(ValueError, match="expected an LSTM, GRU or SimpleRNN, got Dense"):
        lk.Bidirectional(lk.Dense(3, 4))


def test_time_distributed_dense_matches_torch(rng):
    lin = torch.nn.Linear(4, 3, dtype=torch.float64)
    td = lk.TimeDistributed(lk.Dense(4, 3, dtype="float64"))
    td.layer.load_state_dict({"weight": lin.weight.detach().numpy(), "bias": lin.bias.detach().numpy()})
    x = rng.standard_normal((2, 5, 4))
    yt, dxt, dy = torch_vjp(lin, x, rng)
    assert_close(td.forward(x), yt, what="y")
    assert_close(td.backward(dy), dxt, what="dx")
    assert_close(td.layer.weight.grad, lin.weight.grad, what="dW")
    assert [n for n, _ in td.named_parameters()] == ["layer.weight", "layer.bias"]


def test_time_distributed_folds_time_into_batch(rng):
    td = lk.TimeDistributed(lk.Sequential(lk.Flatten(), lk.Dense(6, 2, dtype="float64")))
    x = rng.standard_normal((3, 4, 2, 3))
    y = td.forward(x)
    assert y.shape == (3, 4, 2)
    np.testing.assert_allclose(y[1, 2], td.layer.forward(x[1, 2][None])[0])
    with pytest.raises(ValueError, match=r"TimeDistributed: expected input of shape \(B, T, \.\.\.\)"):
        td.forward(np.zeros((3, 4)))


def test_pad_sequences():
    batch, lengths = lk.data.pad_sequences([np.ones((2, 3)), np.ones((4, 3)) * 2, np.ones((1, 3))], value=-1)
    assert batch.shape == (3, 4, 3) and lengths.tolist() == [2, 4, 1]
    assert (batch[0, 2:] == -1).all() and (batch[1] == 2).all()
    tokens, lengths = lk.data.pad_sequences([np.array([1, 2]), np.array([3])])
    assert tokens.dtype.kind == "i" and tokens.tolist() == [[1, 2], [3, 0]]
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        lk.data.pad_sequences([np.ones(2), np.ones(0)])
    with pytest.raises(ValueError, match="same trailing shape"):
        lk.data.pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
