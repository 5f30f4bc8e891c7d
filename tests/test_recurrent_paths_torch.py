"""The speed paths of the recurrent frame, each against PyTorch in float64: per-step scaling of the
pre-activations (fewer steps than weight rows), backward factors chunked across chunk boundaries, and the
two directions of a bidirectional layer run side by side on two threads."""

from __future__ import annotations

import pytest

from lstmkit.layers import recurrent, rnn_base

from .test_recurrent_torch import KINDS, compare


@pytest.mark.parametrize("kind", list(KINDS))
def test_fewer_steps_than_weight_rows_scale_each_step(kind):
    compare(kind, L=2, bi=True, B=1, T=3, H=16)            # T·B = 3 < H: the weights stay unscaled


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("lengths", [None, [7, 2, 5, 1]])
def test_backward_factors_in_chunks_of_two_steps(kind, lengths, monkeypatch):
    monkeypatch.setattr(recurrent, "_CHUNK_BYTES", 2 * 4 * 4 * 5 * 8)   # K = 2 steps of (B=4, 4H=20) float64
    assert recurrent._chunk(7, 4 * 4 * 5 * 8) == 2
    compare(kind, L=2, bi=True, B=4, T=7, lengths=lengths)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("lengths", [None, [6, 3, 1]])
def test_directions_side_by_side(kind, lengths, monkeypatch):
    monkeypatch.setattr(rnn_base, "_SIDE_BY_SIDE_MIN", 0)
    monkeypatch.setattr(rnn_base.parallel, "cores", lambda: 2)
    compare(kind, L=2, bi=True, B=3, T=6, lengths=lengths)
