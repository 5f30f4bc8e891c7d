"""Prefix beam search against brute force: every path of a short sequence enumerated, collapsed and summed,
then scored with the same language model run over whole strings (another code path than the beam's
incremental one). With a beam wide enough to keep every prefix, the beam's ranked list must be the exact one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lstmkit.beam import CharLMScorer, prefix_beam_search
from lstmkit.data.text import Vocab
from lstmkit.decoding import ctc_beam_search, ctc_greedy
from lstmkit.models import CharLM, CharLMConfig


def brute_force(lp: np.ndarray, lm_score, alpha: float, beta: float) -> list[tuple[list[int], float]]:
    T, C = lp.shape
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        s = sum(lp[t, k] for t, k in enumerate(path))
        labels = tuple(k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k))
        total[labels] = np.logaddexp(total.get(labels, -np.inf), s)
    return sorted(((list(k), v + alpha * lm_score(k) + beta * len(k)) for k, v in total.items()), key=lambda r: -r[1])


def log_softmax(x: np.ndarray) -> np.ndarray:
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def tiny_lm():
    alphabet, vocab = "ab", Vocab("ab\n")
    lm = CharLM(CharLMConfig(vocab_size=3, embed=4, hidden=5, layers=2, dropout=0, output_dropout=0,
                             input_dropout=0, dtype="float64"), rng=np.random.default_rng(3))
    lm.eval()

    def whole(labels) -> float:                  # log p("\n" + text + "\n") over the string in one forward
        ids = vocab.encode("\n" + "".join(alphabet[k - 1] for k in labels) + "\n")
        logits, _ = lm.forward(ids[None, :-1])
        return float(log_softmax(logits[0].astype(np.float64))[np.arange(len(ids) - 1), ids[1:]].sum())
    return CharLMScorer(lm, vocab, alphabet), whole


@pytest.mark.parametrize("with_lm", [False, True])
def test_a_wide_beam_is_the_brute_force_ranking(with_lm, tiny_lm):
    scorer, whole = tiny_lm
    rng = np.random.default_rng(1)
    alpha, beta = (0.7, 0.4) if with_lm else (0.0, 0.0)
    for _ in range(5):
        T, B = int(rng.integers(2, 7)), 3
        lp = log_softmax(rng.normal(size=(B, T, 3)) * 2)
        lens = rng.integers(1, T + 1, B)
        lens[0] = T
        got = ctc_beam_search(lp, 300, input_lengths=lens, top_n=40, lm=scorer if with_lm else None,
                              alpha=alpha, beta=beta)
        for b in range(B):
            ref = brute_force(lp[b, :lens[b]], whole if with_lm else (lambda k: 0.0), alpha, beta)
            assert len(got[b]) == min(40, len(ref))
            assert [g[0] for g in got[b]] == [r[0] for r in ref[:len(got[b])]]
            np.testing.assert_allclose([g[1] for g in got[b]], [r[1] for r in ref[:len(got[b])]], atol=1e-9)


def test_narrow_beams_and_edges():
    rng = np.random.default_rng(2)
    lp = log_softmax(rng.normal(size=(4, 30, 6)) * 4)
    lens = np.array([30, 17, 1, 0])
    one = ctc_beam_search(lp, 1, input_lengths=lens)
    assert one[3] == [([], 0.0)]
    # a sharp distribution: beam 1 keeps the best path's labels
    sharp = log_softmax(rng.normal(size=(2, 20, 5)) * 30)
    np.testing.assert_equal([r[0][0] for r in ctc_beam_search(sharp, 1)], ctc_greedy(sharp))
    # beam 10's best is no worse than beam 2's (by the exact score of what each returns)
    wide, narrow = ctc_beam_search(lp, 10, input_lengths=lens), ctc_beam_search(lp, 2, input_lengths=lens)
    assert all(w[0][1] >= n[0][1] - 1e-12 for w, n in zip(wide, narrow))
    with pytest.raises(ValueError, match="beam_width and top_n must be >= 1"):
        ctc_beam_search(lp, 0)
    with pytest.raises(ValueError, match="blank must be a class"):
        ctc_beam_search(lp, 2, blank=6)


def test_the_scorer_needs_the_alphabet_in_the_lm_vocabulary():
    lm = CharLM(CharLMConfig(vocab_size=2, embed=2, hidden=3, layers=1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="lacks 'c'"):
        CharLMScorer(lm, Vocab("ab"), "abc")


def test_prefix_beam_search_is_whole_batch_consistent():
    """A batch gives each sequence what it gets alone (finished sequences are not disturbed)."""
    rng = np.random.default_rng(4)
    lp = log_softmax(rng.normal(size=(5, 25, 7)) * 3)
    lens = np.array([25, 3, 19, 25, 8])
    batch = prefix_beam_search(lp, lens, 5, top_n=3)
    alone = [prefix_beam_search(lp[i:i + 1, :lens[i]], lens[i:i + 1], 5, top_n=3)[0] for i in range(5)]
    assert [[r[0] for r in b] for b in batch] == [[r[0] for r in a] for a in alone]
    np.testing.assert_allclose([r[1] for b in batch for r in b], [r[1] for a in alone for r in a], atol=1e-12)
