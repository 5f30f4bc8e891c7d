"""LSTM, GRU and SimpleRNN against PyTorch autograd in float64: outputs, final
states, dx, d(initial state) and every parameter gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk

from .conftest import assert_close, randomise_torch, t64, torch_params
from .recurrent_oracles import KINDS, make_pair


def compare(kind, L, bi, B, T, lengths=None, I=3, H=5, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    ours, theirs = make_pair(kind, I, H, L, bi, seed, bias)
    D = 2 if bi else 1
    lstm = ours.kernel.has_cell
    x = rng.standard_normal((B, T, I))
    h0, c0 = (rng.standard_normal((L * D, B, n or 1)) for n in (ours.state_size, ours.cell_size))
    xt, h0t, c0t = t64(x, True), t64(h0, True), t64(c0, True)
    yt, st = theirs.run(xt, (h0t, c0t) if lstm else h0t, lengths)
    dy = rng.standard_normal(yt.shape)
    dhn, dcn = (rng.standard_normal((L * D, B, n or 1)) for n in (ours.state_size, ours.cell_size))
    if lstm:
        loss = (yt * t64(dy)).sum() + (st[0] * t64(dhn)).sum() + (st[1] * t64(dcn)).sum()
    else:
        loss = (yt * t64(dy)).sum() + (st * t64(dhn)).sum()
    loss.backward()

    y, s = ours.forward(x, (h0, c0) if lstm else h0, lengths=lengths)
    dx = ours.backward(dy, (dhn, dcn) if lstm else dhn)
    assert_close(y, yt, what="y")
    assert_close(dx, xt.grad, what="dx")
    if lstm:
        assert_close(s[0], st[0], what="h_n")
        assert_close(s[1], st[1], what="c_n")
        assert_close(ours.initial_state_grad[0], h0t.grad, what="dh_0")
        assert_close(ours.initial_state_grad[1], c0t.grad, what="dc_0")
    else:
        assert_close(s, st, what="h_n")
        assert_close(ours.initial_state_grad, h0t.grad, what="dh_0")
    grads = ours.torch_state_dict(grad=True)
    assert sorted(grads) == sorted(theirs.params)
    for name, p in theirs.params.items():
        assert_close(grads[name], p.grad, what=f"d{name}")
    return ours


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("L,bi", [(1, False), (2, False), (1, True), (2, True)])
def test_matches_torch_full_length(kind, L, bi):
    compare(kind, L, bi, B=4, T=7)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("L,bi", [(1, False), (2, True)])
def test_matches_torch_ragged_lengths(kind, L, bi):
    # length 1, the full length and lengths in between, unsorted
    compare(kind, L, bi, B=5, T=6, lengths=[3, 6, 1, 5, 6])


@pytest.mark.parametrize("kind", list(KINDS))
def test_single_step_and_long_sequence(kind):
    compare(kind, 1, False, B=3, T=1)
    compare(kind, 2, True, B=2, T=1)
    compare(kind, 1, False, B=2, T=80, H=4, seed=3)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "PEEPHOLE"])
def test_without_bias(kind):
    compare(kind, 2, True, B=3, T=5, bias=False)


def test_lstm_float32_close_to_float64():
    ours64, _ = make_pair("LSTM", 3, 5, 2, False)
    ours32 = lk.LSTM(3, 5, num_layers=2, dtype="float32")
    ours32.load_torch_state_dict(ours64.torch_state_dict())
    x = np.random.default_rng(0).standard_normal((4, 9, 3))
    y64, _ = ours64.forward(x)
    y32, _ = ours32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    assert np.abs(y32 - y64).max() < 1e-5


def test_return_sequences_modes_match_tuple_mode(rng):
    full = lk.LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64")
    seq = lk.LSTM(3, 4, num_layers=2, bidirectional=True, return_sequences=True, dtype="float64")
    last = lk.LSTM(3, 4, num_layers=2, bidirectional=True, return_sequences=False, dtype="float64")
    for m in (seq, last):
        m.load_torch_state_dict(full.torch_state_dict())
    x = rng.standard_normal((2, 5, 3))
    lengths = np.array([5, 2])
    y, (h_n, _) = full.forward(x, lengths=lengths)
    np.testing.assert_array_equal(seq.forward(x, lengths=lengths), y)
    out = last.forward(x, lengths=lengths)
    np.testing.assert_array_equal(out, np.concatenate([h_n[-2], h_n[-1]], axis=1))
    # the last output's gradient is the final-state gradient of the top layer
    d = rng.standard_normal(out.shape)
    dx_last = last.backward(d)
    dh = np.zeros_like(h_n)
    dh[-2], dh[-1] = d[:, :4], d[:, 4:]
    dx_full = full.backward(np.zeros_like(y), (dh, np.zeros_like(dh)))
    np.testing.assert_allclose(dx_last, dx_full, atol=1e-14)


def test_dropout_between_layers_matches_torch_with_same_mask():
    """A 2-layer LSTM with dropout equals two torch LSTMs with our mask applied between them."""
    rng = np.random.default_rng(5)
    ours = lk.LSTM(3, 4, num_layers=2, dropout=0.4, dtype="float64", rng=np.random.default_rng(9))
    torch.manual_seed(0)
    l0 = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    l1 = torch.nn.LSTM(4, 4, batch_first=True, dtype=torch.float64)
    randomise_torch(l0, 1)
    randomise_torch(l1, 2)
    sd = {k: v for k, v in torch_params(l0).items()}
    sd.update({k.replace("l0", "l1"): v for k, v in torch_params(l1).items()})
    ours.load_torch_state_dict(sd)
    x = rng.standard_normal((3, 6, 3))
    y, _ = ours.forward(x)
    mask = ours._record.layers[0].drop.transpose(1, 0, 2)       # (B, T, H) as applied
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    xt = t64(x, True)
    y0, _ = l0(xt)
    yt, _ = l1(y0 * t64(mask))
    assert_close(y, yt, what="y")
    dy = rng.standard_normal(y.shape)
    (yt * t64(dy)).sum().backward()
    assert_close(ours.backward(dy), xt.grad, what="dx")
    g = ours.torch_state_dict(grad=True)
    assert_close(g["weight_hh_l0"], l0.weight_hh_l0.grad, what="dW_hh_l0")
    # eval mode: no dropout, deterministic
    ours.eval()
    a, _ = ours.forward(x)
    b, _ = ours.forward(x)
    np.testing.assert_array_equal(a, b)


def test_gradients_accumulate_until_zero_grad(rng):
    m = lk.GRU(2, 3, dtype="float64")
    x = rng.standard_normal((2, 4, 2))
    dy = rng.standard_normal((2, 4, 3))
    m.forward(x)
    m.backward(dy)
    once = m.torch_state_dict(grad=True)
    m.forward(x)
    m.backward(dy)
    twice = m.torch_state_dict(grad=True)
    for k in once:
        np.testing.assert_allclose(twice[k], 2 * once[k], rtol=1e-12, atol=1e-14)
    m.zero_grad()
    assert all(not v.any() for v in m.torch_state_dict(grad=True).values())


@pytest.mark.parametrize("cell_cls,torch_cls,two_states", [
    (lk.LSTMCell, torch.nn.LSTMCell, True),
    (lk.GRUCell, torch.nn.GRUCell, False),
    (lk.SimpleRNNCell, torch.nn.RNNCell, False),
])
def test_cells_match_torch(cell_cls, torch_cls, two_states):
    rng = np.random.default_rng(2)
    theirs = torch_cls(3, 4, dtype=torch.float64)
    randomise_torch(theirs, 7)
    ours = cell_cls(3, 4, dtype="float64")
    ours.load_torch_state_dict(torch_params(theirs))
    assert sorted(ours.torch_state_dict()) == sorted(torch_params(theirs))
    x, h, c = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    xt, ht, ct = t64(x[0], True), t64(h, True), t64(c, True)
    dh, dc = rng.standard_normal((2, 2, 4))
    if two_states:
        h1t, c1t = theirs(xt, (ht, ct))
        ((h1t * t64(dh)).sum() + (c1t * t64(dc)).sum()).backward()
        h1, c1 = ours.forward(x[0], (h, c))
        assert_close(c1, c1t, what="c'")
        dx = ours.backward(dh, dc)
        assert_close(ours.initial_state_grad[1], ct.grad, what="dc")
        assert_close(ours.initial_state_grad[0], ht.grad, what="dh")
    else:
        h1t = theirs(xt, ht)
        (h1t * t64(dh)).sum().backward()
        h1 = ours.forward(x[0], h)
        dx = ours.backward(dh)
        assert_close(ours.initial_state_grad, ht.grad, what="dh")
    assert_close(h1, h1t, what="h'")
    assert_close(dx, xt.grad, what="dx")
    grads = ours.torch_state_dict(grad=True)
    for name, p in theirs.named_parameters():
        assert_close(grads[name], p.grad, what=f"d{name}")


def test_torch_state_dict_round_trip_and_named_parameters():
    m = lk.LSTM(3, 4, num_layers=2, bidirectional=True)
    t = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    assert list(m.torch_state_dict()) == list(t.state_dict())
    assert [n for n, _ in m.named_parameters()] == list(t.state_dict())
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.torch_state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    with torch.no_grad():
        yt, _ = t(torch.from_numpy(x))
    y, _ = m.forward(x)
    np.testing.assert_allclose(y, yt.numpy(), atol=1e-5)


# ---- bad input ---------------------------------------------------------------


def test_bad_inputs_name_layer_and_shapes():
    m = lk.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM: expected input of shape \(B, T, 3\), got shape \(2, 3\)"):
        m.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"LSTM: .*last axis 5 != 3"):
        m.forward(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match="LSTM: expected a floating-point input, got dtype int64"):
        m.forward(np.zeros((2, 4, 3), np.int64))
    x = np.zeros((2, 4, 3), np.float32)
    x[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="LSTM: input contains 1 NaN"):
        m.forward(x)
    with pytest.raises(ValueError, match=r"LSTM: expected h_0 of shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        m.forward(np.zeros((2, 4, 3)), (np.zeros((1, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match=r"LSTM: expected state as a tuple \(h_0, c_0\)"):
        m.forward(np.zeros((2, 4, 3)), np.zeros((2, 2, 4)))
    g = lk.GRU(3, 4)
    with pytest.raises(ValueError, match=r"GRU: every length must be in \[1, 4\].*got values in \[1, 5\]"):
        g.forward(np.zeros((2, 4, 3)), lengths=[1, 5])
    with pytest.raises(ValueError, match=r"GRU: every length must be in \[1, 4\].*\[0, 4\]"):
        g.forward(np.zeros((2, 4, 3)), lengths=[0, 4])
    with pytest.raises(ValueError, match=r"GRU: expected lengths as integers of shape \(2,\)"):
        g.forward(np.zeros((2, 4, 3)), lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="SimpleRNN: nonlinearity must be 'tanh' or 'relu'"):
        lk.SimpleRNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="LSTM: dtype must be 'float32' or 'float64'"):
        lk.LSTM(3, 4, dtype="float16")


def test_load_torch_state_dict_rejects_bad_keys_and_shapes():
    m = lk.LSTM(3, 4)
    sd = m.torch_state_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['weight_ih_l1'\]"):
        m.load_torch_state_dict({**sd, "weight_ih_l1": sd["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\]"):
        m.load_torch_state_dict({k: v for k, v in sd.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match=r"'weight_hh_l0' expected shape \(16, 4\), got \(4, 16\)"):
        m.load_torch_state_dict({**sd, "weight_hh_l0": sd["weight_hh_l0"].T})


def test_memory_of_cache_is_sequence_sized():
    """The forward cache holds O(B·T·H) floats in a few arrays, not per-step objects."""
    m = lk.LSTM(8, 16)
    m.forward(np.zeros((4, 50, 8), np.float32))
    rec = m._record.layers[0].dirs[0].scan
    arrays = [a for a in (rec.hs, rec.gates, rec.cs, *rec.aux.values()) if a is not None]
    assert all(isinstance(a, np.ndarray) for a in arrays) and len(arrays) == 4
    total = sum(a.size for a in arrays)
    assert total <= 4 * 51 * 16 * 8 + 16 * 64   # acts(4H) + h + c + tanh c (+ the weight view)
