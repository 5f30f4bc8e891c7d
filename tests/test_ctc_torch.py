"""CTC loss against torch.nn.functional.ctc_loss in float64 (through log_softmax from logits), and the
decoders: greedy, prefix beam search (width 1 = greedy; on small cases the exhaustive best), edit distance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

import lstmkit as lk
from lstmkit import decoding

from .conftest import assert_close, t64


def torch_ctc(logits, targets, in_lens, tgt_lens, blank, reduction, zero_infinity=False):
    x = t64(logits, True)
    lp = tF.log_softmax(x, dim=-1).transpose(0, 1)                  # (T, B, C) for PyTorch
    loss = tF.ctc_loss(lp, torch.tensor(targets), torch.tensor(in_lens), torch.tensor(tgt_lens), blank=blank,
                       reduction=reduction, zero_infinity=zero_infinity)
    return loss, x


CASES = [
    # (B, T, C, target_lengths, input_lengths or None = all T, blank)
    (3, 12, 5, [3, 5, 1], None, 0),
    (4, 10, 6, [2, 0, 4, 3], [10, 7, 9, 4], 0),           # an empty target, inputs shorter than T
    (2, 8, 4, [4, 2], [8, 8], 3),                         # blank ≠ 0
    (2, 6, 5, [6, 3], [6, 6], 0),                         # a target as long as its input
    (3, 9, 4, [3, 3, 3], None, 0),                        # every length equal: β by flipping α's buffer
]


@pytest.mark.parametrize("B,T,C,S,lens,blank", CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("concatenated", [False, True])
def test_loss_and_gradient_match_torch(B, T, C, S, lens, blank, reduction, concatenated, rng):
    logits = rng.standard_normal((B, T, C)) * 2
    labels = [l for l in range(C) if l != blank]
    tgts = []
    for s in S:                                           # no adjacent repeats unless placed below
        t = [int(rng.choice(labels))] if s else []
        while len(t) < s:
            t.append(int(rng.choice([l for l in labels if l != t[-1]])))
        tgts.append(np.array(t, np.int64))
    if 3 <= S[0] < (lens or [T])[0]:             # room for the blank a repeat needs
        tgts[0][1] = tgts[0][0]                           # a repeated label: needs a blank between
    in_lens = lens or [T] * B
    if concatenated:
        targets = np.concatenate(tgts).astype(np.int64)
    else:
        targets = np.zeros((B, max(S) + 2), np.int64)
        for b, t in enumerate(tgts):
            targets[b, :len(t)] = t
    theirs, xt = torch_ctc(logits, targets, in_lens, S, blank, reduction)
    ctc = lk.CTCLoss(blank=blank, reduction=reduction)
    ours = ctc(logits, targets, np.array(in_lens), np.array(S))
    assert_close(np.asarray(ours), theirs, what="loss")
    g = rng.standard_normal(B) if reduction == "none" else None
    (theirs * (t64(g) if g is not None else 1)).sum().backward()
    assert_close(ctc.backward(g), xt.grad, what="dlogits")


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_infeasible_alignments(zero_infinity, rng):
    logits = rng.standard_normal((2, 4, 3))
    targets = np.array([[1, 1, 1, 0], [1, 2, 0, 0]])      # sample 0: 3 repeats need 5 steps, it has 4
    S, lens = [3, 2], [4, 4]
    theirs, xt = torch_ctc(logits, targets, lens, S, 0, "none", zero_infinity)
    ctc = lk.CTCLoss(reduction="none", zero_infinity=zero_infinity)
    ours = ctc(logits, targets, np.array(lens), np.array(S))
    assert (ours[0] == 0.0) if zero_infinity else np.isinf(ours[0])
    assert_close(ours[1:], theirs[1:], what="feasible loss")
    theirs.sum().backward() if zero_infinity else theirs[1].backward()
    grad = ctc.backward(np.array([1.0, 1.0]) if zero_infinity else np.array([0.0, 1.0]))
    if zero_infinity:
        assert_close(grad, xt.grad, what="dlogits")
        assert not grad[0].any()
    else:
        assert_close(grad[1], xt.grad[1], what="dlogits of the feasible sample")


def test_bad_input_names_the_sample():
    ctc = lk.CTCLoss()
    x = np.zeros((2, 5, 4))
    with pytest.raises(ValueError, match=r"target 1 has label 0 at position 1; expected labels in \[0, 4\) other"):
        ctc(x, np.array([[1, 2], [3, 0]]), np.array([5, 5]), np.array([2, 2]))
    with pytest.raises(ValueError, match="target 0 has label 4"):
        ctc(x, np.array([[4]]).repeat(2, 0), np.array([5, 5]), np.array([1, 1]))
    with pytest.raises(ValueError, match="target 1 has 6 labels but its input only 5 steps"):
        ctc(x, np.ones((2, 6), int), np.array([5, 5]), np.array([1, 6]))
    with pytest.raises(ValueError, match=r"input_lengths\[0\] = 7 is outside \[0, 5\]"):
        ctc(x, np.ones((2, 2), int), np.array([7, 5]), np.array([1, 1]))
    with pytest.raises(ValueError, match=r"expected target_lengths as integers of shape \(2,\)"):
        ctc(x, np.ones((2, 2), int), np.array([5, 5]), np.array([1, 1, 1]))
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="logits of sample 1 contain NaN"):
        ctc(bad, np.ones((2, 2), int), np.array([5, 5]), np.array([1, 1]))


def exhaustive_best(lp: np.ndarray, blank: int) -> tuple[list[int], float]:
    """The most probable labelling, summing every alignment (small T and C only)."""
    T, C = lp.shape
    scores: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        labels = tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k))
        scores[labels] = np.logaddexp(scores.get(labels, -np.inf), sum(lp[t, k] for t, k in enumerate(path)))
    best = max(scores, key=scores.get)
    return list(best), scores[best]


def test_decoders(rng):
    logits = rng.standard_normal((5, 6, 4)) * 2
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    # Width 1 keeps one prefix, summing its alignments, so it equals the best path when each frame is
    # confident (on split frames the two may differ: that is the point of summing).
    peaked = lp * 8
    peaked -= np.log(np.exp(peaked).sum(-1, keepdims=True))
    greedy = decoding.ctc_greedy(peaked, blank=1)
    assert [r[0][0] for r in decoding.ctc_beam_search(peaked, beam_width=1, blank=1)] == greedy
    for b in range(5):
        labels, score = exhaustive_best(lp[b], blank=1)
        (beam_labels, beam_score), = decoding.ctc_beam_search(lp[b:b + 1], beam_width=2000, blank=1)[0]
        assert beam_labels == labels and beam_score == pytest.approx(score, abs=1e-9)    # nothing pruned: exact
        (narrow, narrow_score), = decoding.ctc_beam_search(lp[b:b + 1], beam_width=16, blank=1)[0]
        assert narrow == labels and narrow_score <= score + 1e-12        # pruning only loses alignments
    onehot = np.eye(3)[[1, 1, 0, 1, 2, 2]][None]          # best path 1 1 _ 1 2 | 2 (cut by the length)
    assert decoding.ctc_greedy(onehot, input_lengths=np.array([5])) == [[1, 1, 2]]
    assert decoding.edit_distance("kitten", "sitting") == 3 and decoding.edit_distance([], [1, 2]) == 2
    assert decoding.character_error_rate([[1, 2, 3], [4]], [[1, 3], [4, 5]]) == pytest.approx(2 / 4)


def test_float32_logits_as_accurate_as_pytorchs_float32(rng):
    B, T, C, S = 6, 120, 12, 30
    logits = (rng.standard_normal((B, T, C)) * 3).astype(np.float32)
    targets = rng.integers(1, C, (B, S))
    lens, slens = np.full(B, T), np.array([30, 25, 30, 1, 12, 30])

    def torch_run(x: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.tensor(x, requires_grad=True)
        loss = tF.ctc_loss(tF.log_softmax(xt, -1).transpose(0, 1), torch.tensor(targets), torch.tensor(lens),
                           torch.tensor(slens))
        loss.backward()
        return float(loss.detach()), xt.grad.numpy()

    exact_loss, exact_grad = torch_run(logits.astype(np.float64))
    t32_loss, t32_grad = torch_run(logits)
    ctc = lk.CTCLoss()
    ours = ctc(logits, targets, lens, slens)
    grad = ctc.backward()
    assert grad.dtype == np.float32 and np.isfinite(grad).all()
    # both float32 computations stray from the float64 truth by rounding alone; ours no more than PyTorch's
    assert abs(ours - exact_loss) <= 2 * abs(t32_loss - exact_loss) + 1e-6
    assert np.abs(grad - exact_grad).max() <= 2 * np.abs(t32_grad - exact_grad).max() + 1e-7
