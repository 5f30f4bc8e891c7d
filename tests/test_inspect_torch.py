"""lk.inspect: traces equal PyTorch's hidden states and satisfy the gate equations (stacked, bidirectional,
padded, LSTM and GRU, float64), and the analyses give the known answer on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk
from lstmkit.inspect import analysis as an

from .conftest import assert_close


def sig(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_lstm_trace_matches_torch_and_the_equations(bidirectional, padded, rng):
    B, T, I, H = 3, 7, 4, 5
    lstm = lk.LSTM(I, H, num_layers=2, bidirectional=bidirectional, return_sequences=True, dtype="float64")
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=bidirectional, batch_first=True, dtype=torch.float64)
    for p in ref.parameters():
        torch.nn.init.normal_(p, 0, 0.6)
    lstm.load_torch_state_dict(ref.state_dict())
    x = rng.standard_normal((B, T, I))
    lengths = np.array([7, 4, 6]) if padded else None
    tr = lk.inspect.trace(lstm, x, lengths=lengths)
    D = 2 if bidirectional else 1
    assert list(tr) == [f"lstm/l{k}" + s for k in range(2) for s in (["", "/reverse"] if bidirectional else [""])]
    with torch.no_grad():
        if padded:
            packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                             enforce_sorted=False)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=T)
        else:
            y = ref(torch.tensor(x))[0]
    y = y.numpy()
    valid = np.ones((B, T), bool) if lengths is None else np.arange(T)[None] < lengths[:, None]
    for k in range(2):
        # layer 0 reads x; layer 1 the traced outputs of layer 0 (both directions), checked by the equations
        inp = x if k == 0 else np.concatenate([tr["lstm/l0" + s]["h"] for s in ["", "/reverse"][:D]], axis=-1)
        for d in range(D):
            a = tr[f"lstm/l{k}" + ("/reverse" if d else "")]
            assert set(a) == {"i", "f", "g", "o", "c", "h"} and all(v.shape == (B, T, H) for v in a.values())
            if k == 1:                                                      # the top layer is PyTorch's output
                assert_close(a["h"][valid], y[:, :, d * H:(d + 1) * H][valid], what=f"h l{k} d{d}")
            sd = {n: ref.state_dict()[f"{n}_l{k}" + ("_reverse" if d else "")].numpy()
                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            for b in range(B):
                L = T if lengths is None else lengths[b]
                steps = range(L) if d == 0 else range(L - 1, -1, -1)
                h, c = np.zeros(H), np.zeros(H)
                for t in steps:                 # the equations, step by step, from the traced inputs
                    p = sd["weight_ih"] @ inp[b, t] + sd["bias_ih"] + sd["weight_hh"] @ h + sd["bias_hh"]
                    i, f, g, o = sig(p[:H]), sig(p[H:2 * H]), np.tanh(p[2 * H:3 * H]), sig(p[3 * H:])
                    c = f * c + i * g
                    h = o * np.tanh(c)
                    for name, v in zip("ifgoch", (i, f, g, o, c, h)):
                        assert_close(a[name][b, t], v, tol=1e-10, what=f"{name} l{k} d{d} b{b} t{t}")
    assert lstm.forward.__func__ is type(lstm).forward                      # the hook is gone afterwards
    assert lstm.training


def test_gru_and_simple_rnn_traces_inside_a_model(rng):
    model = lk.Sequential(lk.GRU(3, 4, return_sequences=True, dtype="float64"),
                          lk.SimpleRNN(4, 2, return_sequences=False, dtype="float64"), lk.Dense(2, 1, dtype="float64"))
    x = rng.standard_normal((2, 5, 3))
    tr = lk.inspect.trace(model, x)
    assert list(tr) == ["0/l0", "1/l0"]
    assert set(tr["0/l0"]) == {"r", "z", "n", "h"} and set(tr["1/l0"]) == {"h"}
    np.testing.assert_array_equal(tr.output, model.forward(x))
    gru = model.layers[0] if hasattr(model, "layers") else list(model.sublayers())[0]
    np.testing.assert_allclose(tr["0/l0"]["h"], gru.forward(x), atol=1e-12)
    w = {k: v for k, v in gru.torch_state_dict().items()}
    hp = np.zeros((2, 4))
    for t in range(5):                                                         # r, z, n by the equations
        gi = x[:, t] @ w["weight_ih_l0"].T + w["bias_ih_l0"]
        gh = hp @ w["weight_hh_l0"].T + w["bias_hh_l0"]
        r, z = sig(gi[:, :4] + gh[:, :4]), sig(gi[:, 4:8] + gh[:, 4:8])
        n = np.tanh(gi[:, 8:] + r * gh[:, 8:])
        for name, v in zip("rzn", (r, z, n)):
            np.testing.assert_allclose(tr["0/l0"][name][:, t], v, atol=1e-12)
        hp = (1 - z) * n + z * hp


def test_trace_without_a_recurrent_layer_says_so():
    with pytest.raises(ValueError, match="holds no recurrent layer"):
        lk.inspect.trace(lk.Sequential(lk.Dense(3, 2)), np.zeros((1, 3)))


def test_char_loss_and_top_guesses():
    logits = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    np.testing.assert_allclose(an.char_loss(logits, np.array([1, 2])), -np.log([0.3, 0.8]))
    ids, p = an.top_guesses(logits, 2)
    assert ids.tolist() == [[0, 1], [2, 0]]
    np.testing.assert_allclose(p, [[0.5, 0.3], [0.8, 0.1]])


def test_saturation_fractions():
    gate = np.array([[0.05, 0.5], [0.95, 0.5], [0.02, 0.99], [0.5, 0.91]])
    lo, hi = an.saturation(gate)
    np.testing.assert_allclose(lo, [0.5, 0.0])
    np.testing.assert_allclose(hi, [0.25, 0.5])


def test_span_match_finds_the_cell_on_inside_and_where_it_fires_again():
    T = 60
    v = np.full((T, 4), -0.8)
    v[10:16, 2] = 0.9                  # cell 2: on over the span only
    v[40:46, 2] = 0.9                  # ... and again here, and briefly (too short) here
    v[52:54, 2] = 0.9
    v[:, 1] = 0.9                      # cell 1: always on, so not off around the span
    v[12:14, 3] = 0.9                  # cell 3: on inside only partly
    m = an.span_match(v, 10, 16)
    assert m.cells.tolist() == [2]
    assert m.scores[0] == pytest.approx(1.0)
    assert m.spans == [(40, 46)]
    both = v.copy()
    both[10:16, 0] = 0.9
    both[40:43, 0] = 0.9
    m2 = an.span_match(both, 10, 16)
    assert sorted(m2.cells.tolist()) == [0, 2] and m2.spans == [(40, 43)]      # where *both* are on
    assert an.span_match(v, 10, 16, threshold=0.95).cells.size == 0
    with pytest.raises(ValueError, match="start < end"):
        an.span_match(v, 5, 5)


def test_text_features_on_a_known_text():
    text = 'ROMEO:\nA "b" (c)\n'
    f = an.text_features(text)
    assert f["line position"].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert f["upper-case line"].tolist() == [1] * 7 + [0] * 10
    assert f["inside quotes"][9:12].tolist() == [1, 1, 0] and f["inside quotes"].sum() == 2
    assert f["inside brackets"].tolist() == [0] * 13 + [1, 1, 0, 0]
    assert np.flatnonzero(f["word start"]).tolist() == [0, 7, 10, 14]


def test_detectors_rank_the_cell_that_tracks_a_property():
    rng = np.random.default_rng(0)
    text = ("ROMEO:\nWhat light through yonder window breaks\n" * 20)
    f = an.text_features(text)
    v = rng.standard_normal((len(text), 6)) * 0.3
    v[:, 4] = f["line position"] / 40 + rng.standard_normal(len(text)) * 0.05
    v[:, 1] = -f["upper-case line"] + rng.standard_normal(len(text)) * 0.1
    found = {d.feature: d for d in an.detect(v, f)}
    assert found["line position"].cells[0] == 4 and found["line position"].corr[0] > 0.9
    assert found["upper-case line"].cells[0] == 1 and found["upper-case line"].corr[0] < -0.9
    assert np.isnan(found["inside brackets"].corr[0])                   # no brackets in the text


def test_trace_works_on_the_applications_models(rng):
    ctc = lk.models.CTCRecognizer(6, 4, hidden=5, layers=2, rng=rng)
    tr = lk.inspect.trace(ctc, rng.standard_normal((2, 9, 6)).astype(np.float32), lengths=np.array([9, 7]))
    assert list(tr) == ["0/l0", "0/l0/reverse", "0/l1", "0/l1/reverse"] and tr["0/l1"]["c"].shape == (2, 9, 5)
    video = lk.models.CNNLSTM(3, in_channels=1, size=8, conv_channels=(2,), features=4, hidden=3, rng=rng)
    tr = lk.inspect.trace(video, rng.random((2, 4, 8, 8, 1)).astype(np.float32))
    assert list(tr) == ["1/l0"] and tr["1/l0"]["h"].shape == (2, 4, 3) and tr.output.shape == (2, 3)
