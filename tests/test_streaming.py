"""lk.Stream: a model over chunks of B streams gives exactly one whole pass's outputs (every recurrent kind, both
kernels); streams reset one at a time or all; a stream that ends early; bidirectional layers refused."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk

from .recurrent_oracles import KINDS

KIND_NAMES = [k for k in KINDS if k != "LSTM_BY_STEP"]


def _model(kind: str, seed: int = 0) -> lk.Sequential:
    k = KINDS[kind]
    g = np.random.default_rng(seed)
    rnn = k.ours(3, 6, num_layers=2, return_sequences=True, dtype="float64", rng=g, **k.kwargs)
    model = lk.Sequential(rnn, lk.TimeDistributed(lk.Dense(rnn.output_size, 4, dtype="float64", rng=g)))
    model.eval()
    return model


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_chunks_give_the_whole_pass(kind):
    model = _model(kind)
    x = np.random.default_rng(1).standard_normal((5, 16, 3))
    whole = model.forward(x)
    stream = lk.Stream(model)
    parts = [stream(x[:, a:b]) for a, b in ((0, 3), (3, 4), (4, 9), (9, 16))]
    np.testing.assert_allclose(np.concatenate(parts, 1), whole, rtol=0, atol=1e-12)
    stream.reset()                                                    # again from zero: the same again
    np.testing.assert_allclose(stream(x[:, :7]), whole[:, :7], rtol=0, atol=1e-12)


def test_one_stream_starts_over_while_the_others_go_on():
    model = _model("LSTM")
    g = np.random.default_rng(2)
    x, fresh = g.standard_normal((3, 10, 3)), g.standard_normal((1, 6, 3))
    stream = lk.Stream(model)
    stream(x[:, :4])
    stream.reset([1])                                                 # stream 1: a new utterance from here
    second = x[:, 4:].copy()
    second[1] = fresh[0]
    out = stream(second)
    whole = model.forward(x)
    np.testing.assert_allclose(out[[0, 2]], whole[[0, 2], 4:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[1], model.forward(fresh)[0], rtol=0, atol=1e-12)
    with pytest.raises(IndexError, match="stream index out of range for 3 streams"):
        stream.reset([3])


def test_a_stream_that_ends_early_keeps_its_state_at_its_last_step():
    model = _model("GRU")
    rnn = model.layers[0]
    x = np.random.default_rng(3).standard_normal((2, 8, 3))
    stream = lk.Stream(model)
    first = stream(x[:, :5], lengths=np.array([5, 3]))               # stream 1 ends after 3 steps
    rnn_state_after = rnn.carried[:, 1].copy()
    whole = model.forward(x, lengths=np.array([8, 3]))
    np.testing.assert_allclose(first, whole[:, :5], rtol=0, atol=1e-12)
    rnn.return_sequences = None                                       # (the layer alone, with its final state)
    np.testing.assert_allclose(rnn_state_after, rnn.forward(x[1:, :3])[1][:, 0], rtol=0, atol=1e-12)
    rnn.return_sequences = True
    np.testing.assert_allclose(stream(x[:, 5:], lengths=np.array([3, 1]))[0], whole[0, 5:], rtol=0, atol=1e-12)


def test_generation_carries_the_char_lm_state_through_a_stream():
    """CharLM.generate is a Stream: priming with the prompt, then one character a call. Greedy, each character is
    the argmax of one whole pass over the prompt and the characters before it."""
    from lstmkit.data import Vocab
    vocab = Vocab("abcd")
    model = lk.models.CharLM(lk.models.CharLMConfig(vocab_size=4, embed=3, hidden=5, layers=2, dtype="float64"),
                             rng=np.random.default_rng(0))
    with lk.tbptt.StateCarry(model).active():                     # a training run's last window, 3 streams,
        model.forward(np.zeros((3, 4), np.int64))                  # left on the layer: a new stream starts afresh
    text = model.generate(vocab, "ab", 12, np.random.default_rng(4), temperature=0)
    model.eval()
    for i, ch in enumerate(text):
        logits, _ = model.forward(vocab.encode("ab" + text[:i])[None])
        assert vocab.chars[int(np.argmax(logits[0, -1]))] == ch


def test_what_a_stream_refuses():
    with pytest.raises(ValueError, match="Stream: LSTM is bidirectional; its backward direction needs each "
                                         "sequence's end"):
        lk.Stream(lk.LSTM(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="Stream: the model has no recurrent layer"):
        lk.Stream(lk.Sequential(lk.Dense(3, 4)))
    stream = lk.Stream(lk.LSTM(3, 4, return_sequences=True))
    stream(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="this chunk has 3 streams but the stream holds 2; call reset"):
        stream(np.zeros((3, 3, 3), np.float32))
