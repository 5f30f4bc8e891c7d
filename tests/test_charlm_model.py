"""Sampling and the character LM model: determinism, temperature/top-k, and learning."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.data import TextError, Vocab, Windows
from lstmkit.decoding import sample_logits
from lstmkit.models.charlm import CharLM, CharLMConfig


def test_sample_logits_temperature_top_k_and_seed():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    draw = sample_logits(np.tile(logits, (20000, 1)), np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draw, minlength=4) / 20000, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    assert (sample_logits(np.tile(logits, (50, 1)), np.random.default_rng(0), top_k=1) == 3).all()
    assert (sample_logits(logits, np.random.default_rng(0), temperature=0) == 3).all()
    top2 = sample_logits(np.tile(logits, (5000, 1)), np.random.default_rng(1), top_k=2)
    assert set(np.unique(top2)) == {2, 3}
    cold = sample_logits(np.tile(logits, (5000, 1)), np.random.default_rng(2), temperature=0.25)
    assert (cold == 3).mean() > 0.6                       # sharper than the 0.4 it has at temperature 1
    a = sample_logits(np.tile(logits, (30, 1)), np.random.default_rng(5))
    b = sample_logits(np.tile(logits, (30, 1)), np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample_logits(logits, np.random.default_rng(0), temperature=-1)


def train_tiny(text: str, steps: int, seed: int = 0) -> tuple[CharLM, Vocab, list[float]]:
    vocab = Vocab.from_text(text)
    model = CharLM(CharLMConfig(len(vocab), embed=16, hidden=48, layers=1), rng=np.random.default_rng(seed))
    windows = Windows.make(vocab.encode(text), batch_size=8, seq_len=16)
    opt = lk.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.0)
    loss_fn = lk.CrossEntropyLoss()
    state, losses = None, []
    for step in range(steps):
        k = step % len(windows)
        if k == 0:
            state = None                                   # a new pass starts from zero state
        x, y = windows.window(k)
        opt.zero_grad()
        logits, state = model.forward(x, state)            # the state is carried across windows
        losses.append(loss_fn(logits, y))
        model.backward(loss_fn.backward())
        lk.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model, vocab, losses


def test_charlm_learns_a_periodic_text_and_samples_deterministically():
    text = "the cat sat on the mat. " * 60
    model, vocab, losses = train_tiny(text, steps=150)
    # uniform guessing costs ln(11) = 2.40 nats; the text is almost fully predictable
    assert np.mean(losses[:5]) > 2.0
    assert np.mean(losses[-10:]) < 0.15, losses[-10:]
    a = model.generate(vocab, "the ", 40, np.random.default_rng(3), temperature=0.5)
    b = model.generate(vocab, "the ", 40, np.random.default_rng(3), temperature=0.5)
    assert a == b and len(a) == 40
    streamed: list[str] = []
    greedy = model.generate(vocab, "the cat ", 16, np.random.default_rng(0), temperature=0, on_char=streamed.append)
    assert "".join(streamed) == greedy == "sat on the mat. "
    with pytest.raises(TextError, match="prompt has characters not in the model's vocabulary: 'Zbr'"):
        model.generate(vocab, "Zebra", 5, np.random.default_rng(0))


def dropout_model(**dropout: float) -> tuple[CharLM, np.ndarray, np.ndarray]:
    """A tiny float64 model with the given dropout, its ids, and its output when evaluating (checked unmasked)."""
    model = CharLM(CharLMConfig(vocab_size=7, embed=3, hidden=6, layers=1, dtype="float64", **dropout),
                   rng=np.random.default_rng(0))
    ids = np.array([[1, 2, 3, 4, 5, 6, 0, 1]])
    model.eval()
    a, _ = model.forward(ids)
    assert model._mask is None and model._in_mask is None and np.array_equal(a, model.forward(ids)[0])
    model.train()
    return model, ids, a


def test_output_dropout_masks_the_head_input_in_training_only_and_backward_uses_the_same_mask():
    model, ids, a = dropout_model(output_dropout=0.5)
    b, _ = model.forward(ids)
    mask = model._mask
    assert mask is not None and set(np.unique(mask)) == {0.0, 2.0} and not np.array_equal(a, b)
    seen = {}
    backward = model.rnn.backward
    model.rnn.backward = lambda dh, **kw: seen.setdefault("dh", dh) is None or backward(dh, **kw)
    model.backward(np.ones_like(b))
    assert np.all(seen["dh"][mask == 0] == 0) and np.all(seen["dh"][mask > 0] != 0)   # the same mask, backwards
    with pytest.raises(ValueError, match="output_dropout must be in"):
        CharLM(CharLMConfig(vocab_size=7, output_dropout=1.0))


def test_input_dropout_masks_the_embeddings_in_training_only_and_backward_uses_the_same_mask():
    model, ids, _ = dropout_model(input_dropout=0.5)
    seen = {}
    rnn_forward, rnn_backward, embed_backward = model.rnn.forward, model.rnn.backward, model.embed.backward
    model.rnn.forward = lambda x, *a, **kw: (seen.setdefault("x", x), rnn_forward(x, *a, **kw))[1]
    model.rnn.backward = lambda dh, **kw: seen.setdefault("dx", rnn_backward(dh, **kw))
    model.embed.backward = lambda dx: seen.setdefault("dembed", dx) is None or embed_backward(dx)
    b, _ = model.forward(ids)
    mask = model._in_mask
    assert mask is not None and mask.shape == (1, 8, 3) and set(np.unique(mask)) == {0.0, 2.0}
    np.testing.assert_array_equal(seen["x"], model.embed.forward(ids) * mask)    # the LSTM reads masked embeddings
    model.backward(np.ones_like(b))
    np.testing.assert_array_equal(seen["dembed"], seen["dx"] * mask)             # the same mask, backwards
    with pytest.raises(ValueError, match="input_dropout must be in"):
        CharLM(CharLMConfig(vocab_size=7, input_dropout=-0.1))


def test_the_char_lm_takes_awd_regularisers_and_files_from_before_have_none():
    """--weight-drop, --recurrent-dropout and --cell reach the LSTM; a model file written before they existed (no
    such keys) loads with them off and an LSTM, whatever the defaults are now."""
    from lstmkit.layers.regularise import Regularisers
    m = CharLM(CharLMConfig(vocab_size=5, embed=3, hidden=4, weight_drop=0.3, recurrent_dropout=0.2, zoneout=0.05,
                            zoneout_cell=0.5))
    r = m.rnn.regularisers
    assert (r.weight_drop, r.recurrent_dropout, r.zoneout, r.zoneout_cell) == (0.3, 0.2, 0.05, 0.5)
    old = CharLM.from_config({"vocab_size": 5, "embed": 3, "hidden": 4, "layers": 1, "dtype": "float32"})
    assert old.rnn.regularisers == Regularisers() and type(old.rnn) is lk.LSTM
    assert type(CharLM(CharLMConfig(vocab_size=5, cell="layer_norm")).rnn) is lk.LayerNormLSTM
    with pytest.raises(ValueError, match="CharLM: cell must be one of lstm, layer_norm, got 'gru'"):
        CharLM(CharLMConfig(vocab_size=5, cell="gru"))
