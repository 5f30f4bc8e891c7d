"""Properties that must hold for any input (hypothesis-generated)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import lstmkit as lk

KINDS = [lk.LSTM, lk.GRU, lk.SimpleRNN]


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(KINDS), bi=st.booleans(), layers=st.integers(1, 2),
       lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_padding_never_changes_a_sequence(kind, bi, layers, lengths, seed):
    """A padded batch gives each sequence exactly what running it alone, unpadded, gives."""
    rng = np.random.default_rng(seed)
    m = kind(3, 4, num_layers=layers, bidirectional=bi, dtype="float64", rng=rng)
    seqs = [rng.standard_normal((n, 3)) for n in lengths]
    batch, lens = lk.data.pad_sequences(seqs, value=7.0)           # junk padding must not leak
    y, state = m.forward(batch, lengths=lens)
    dy = rng.standard_normal(y.shape)
    dx = m.backward(dy)
    h_n = state[0] if kind is lk.LSTM else state
    for b, s in enumerate(seqs):
        n = len(s)
        m.zero_grad()
        y1, st1 = m.forward(s[None])
        dx1 = m.backward(dy[b:b + 1, :n])
        np.testing.assert_allclose(y[b, :n], y1[0], atol=1e-12)
        assert not y[b, n:].any()
        np.testing.assert_allclose(h_n[:, b], (st1[0] if kind is lk.LSTM else st1)[:, 0], atol=1e-12)
        np.testing.assert_allclose(dx[b, :n], dx1[0], atol=1e-12)
        assert not dx[b, n:].any()


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_cross_entropy_gradient_rows_sum_to_zero(n, c, seed):
    rng = np.random.default_rng(seed)
    fn = lk.CrossEntropyLoss(reduction="sum")
    fn(rng.standard_normal((n, c)) * 5, rng.integers(0, c, n))
    np.testing.assert_allclose(fn.backward().sum(axis=-1), 0, atol=1e-12)
