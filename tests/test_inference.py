"""lk.inference(): eval-mode recurrent forwards a chunk at a time — the whole pass's outputs and final states for
every kind, ragged, from given states; nothing kept (backward is an error); predict runs in it; memory follows the
output (measured in a fresh process)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.layers import inference

from .recurrent_oracles import KINDS

KIND_NAMES = [k for k in KINDS if k != "LSTM_BY_STEP"]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(inference, "CHUNK", 4)


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("lengths", [None, [11, 3, 8, 4, 9]])
def test_chunks_give_the_whole_pass(kind, lengths, small_chunks):
    k = KINDS[kind]
    layer = k.ours(3, 6, num_layers=2, dtype="float64", rng=np.random.default_rng(0), **k.kwargs)
    layer.eval()
    g = np.random.default_rng(1)
    x = g.standard_normal((5, 11, 3))
    h0 = g.standard_normal((2, 5, layer.state_size))
    state = (h0, g.standard_normal((2, 5, 6))) if layer.kernel.has_cell else h0
    y, st = layer.forward(x, state, lengths=lengths)
    with lk.inference():
        y2, st2 = layer.forward(x, state, lengths=lengths)
    assert layer._record is None
    np.testing.assert_allclose(y2, y, rtol=0, atol=1e-12)
    for a, b in zip(st2 if isinstance(st2, tuple) else (st2,), st if isinstance(st, tuple) else (st,)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    layer.return_sequences = False                                  # the last output, Keras style
    with lk.inference():
        np.testing.assert_allclose(layer.forward(x, state, lengths=lengths), layer.forward(x, state, lengths=lengths))


def test_backward_after_an_inference_forward_is_an_error(small_chunks):
    layer = lk.GRU(3, 4, return_sequences=True)
    layer.eval()
    with lk.inference():
        y = layer.forward(np.zeros((2, 9, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"GRU.backward: the last forward ran under lk.inference\(\), which keeps "
                                           "nothing for a backward"):
        layer.backward(np.ones_like(y))


def test_training_mode_and_bidirectional_layers_run_whole_inside_it(small_chunks):
    for layer in (lk.LSTM(3, 4, return_sequences=True), lk.LSTM(3, 4, bidirectional=True, return_sequences=True)):
        if layer.bidirectional:
            layer.eval()
        with lk.inference():
            y = layer.forward(np.ones((2, 9, 3), np.float32))
        assert layer._record is not None and layer._record.T == 9
        layer.backward(np.ones_like(y))                             # (kept what its backward needs)


def test_predict_keeps_nothing(small_chunks):
    model = lk.Sequential(lk.LSTM(3, 4, return_sequences=True, rng=np.random.default_rng(0)),
                          lk.TimeDistributed(lk.Dense(4, 2, rng=np.random.default_rng(1))))
    x = np.random.default_rng(2).standard_normal((3, 10, 3)).astype(np.float32)
    model.eval()
    whole = model.forward(x)
    np.testing.assert_allclose(lk.predict(model, x), whole, rtol=1e-6, atol=1e-6)
    assert model.layers[0]._record is None


def test_a_long_forward_grows_by_about_its_output():
    """Issue 32's case: a 2-layer LSTM (64 -> 256) over 100,000 steps grew the process by 1,530 MB for a 102 MB
    output; under lk.inference() at most 1.3x the output."""
    code = """
import numpy as np, lstmkit as lk
def kb(field):       # this process's own peak (VmHWM starts afresh at exec; ru_maxrss counts the forked parent)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) * 1024
m = lk.LSTM(64, 256, num_layers=2, return_sequences=True); m.eval()
x = np.random.default_rng(0).standard_normal((1, 100000, 64)).astype(np.float32)
before = kb("VmRSS")
with lk.inference():
    y = m.forward(x)
print(kb("VmHWM") - before, y.nbytes)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    growth, size = int(out[0]), int(out[1])
    assert growth <= 1.3 * size, f"grew {growth / 1e6:.0f} MB for a {size / 1e6:.0f} MB output"


def test_a_sequential_under_inference_keeps_no_activation(small_chunks):
    """Each layer of a Sequential drops what it kept once the next has its output (the video model here): no
    activation outlives its use, and a backward after it names the reason."""
    model = lk.models.CNNLSTM(3, size=8, conv_channels=(4,), features=6, hidden=5, rng=np.random.default_rng(0))
    model.eval()
    clips = np.random.default_rng(1).standard_normal((2, 3, 8, 8, 3)).astype(np.float32)
    whole = model.forward(clips)
    with lk.inference():
        np.testing.assert_array_equal(model.forward(clips), whole)
    kept = [(type(layer).__name__, name) for layer in _walk(model) for name in type(layer)._kept
            if getattr(layer, name, None) is not None]
    assert kept == []
    with pytest.raises(RuntimeError, match=r"Dense.backward: the last forward ran under lk.inference\(\)"):
        model.backward(np.ones_like(whole))
    model.forward(clips)                                            # outside it: everything kept again
    model.backward(np.ones_like(whole))


def _walk(layer):
    yield layer
    for child in layer.sublayers():
        yield from _walk(child)
