"""CTC prefix beam search, every sequence of a batch at once, with a character language model in the score.

A prefix (the labels read so far) keeps two probabilities: of the frames so far ending in a blank, p_b, and
ending in its last label, p_nb. Reading frame t with probabilities y::

    stay:    p_b' = (p_b + p_nb)·y_blank          p_nb' = p_nb·y_last              (the prefix does not grow)
    extend:  prefix + c gets p_nb' = (p_b + p_nb)·y_c, or p_b·y_c when c is the last label (a repeat
             needs a blank between); where prefix + c is already a beam, the two are added.

The beams kept are the ``beam_width`` best by score = log(p_b + p_nb) + α·log p_lm(prefix) + β·len(prefix)
(shallow fusion; without a language model, α = β = 0). At the end, a language model that knows an end of line
("\\n") adds α·log p_lm(end | prefix). Prefixes are told apart by a 64-bit hash of their labels, so a step is a
few array operations on (batch, beam, classes) arrays — no dictionary of prefixes.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

_MULT = np.uint64(0x100000001B3)            # FNV-style prime: hash(prefix + c) = hash(prefix)·M + c + 1 (mod 2^64)


class PrefixScorer(Protocol):
    """A language model over a recogniser's classes, run on many prefixes at once (``CharLMScorer``)."""

    def start(self, n: int) -> tuple[Any, np.ndarray, np.ndarray]:
        """(state, log p(class | empty) (n, C), log p(end | empty) (n,)) of ``n`` empty prefixes."""
        ...

    def step(self, state: Any, classes: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        """The state after each prefix reads its class (n,), with the next (n, C) and end (n,) log-probabilities."""
        ...

    def take(self, state: Any, rows: np.ndarray) -> Any:
        """The states of the prefixes ``rows`` (n',)."""
        ...

    def put(self, state: Any, rows: np.ndarray, part: Any) -> Any:
        """``state`` (one ``take`` returned: the search's own) with its ``rows`` replaced by ``part``, in place."""
        ...


def prefix_beam_search(log_probs: np.ndarray, lengths: np.ndarray, beam_width: int = 10, blank: int = 0,
                       top_n: int = 1, lm: PrefixScorer | None = None, alpha: float = 0.5, beta: float = 0.0
                       ) -> list[list[tuple[list[int], float]]]:
    """The ``top_n`` best (labels, score) of each sequence of (B, T, C) log-probabilities (log_softmax) with
    ``lengths`` (B,), best first. The score is log p_ctc, plus α·log p_lm + β·length with a language model."""
    lp = np.asarray(log_probs, np.float64)
    B, T, C = lp.shape
    K = int(beam_width)
    a = float(alpha) if lm is not None else 0.0
    b_ = float(beta) if lm is not None else 0.0
    neg = -np.inf
    pb = np.full((B, K), neg)
    pb[:, 0] = 0.0
    pnb = np.full((B, K), neg)
    length = np.zeros((B, K), np.int64)
    last = np.full((B, K), -1, np.int64)
    key = np.zeros((B, K), np.uint64)
    parent_key = np.zeros((B, K), np.uint64)
    lm_sum = np.zeros((B, K))
    if lm is not None:
        state, lm_next, lm_end = lm.start(B * K)
        lm_next, lm_end = lm_next.reshape(B, K, C), lm_end.reshape(B, K)
    else:
        state, lm_next, lm_end = None, np.zeros((B, K, C)), np.zeros((B, K))
    parents, labels = [], []
    rows = np.arange(B)[:, None]
    cls = np.arange(C)
    for t in range(int(lengths.max(initial=0))):
        active = t < lengths                                                    # (B,)
        y = lp[:, t]                                                            # (B, C)
        alive = np.isfinite(pb) | np.isfinite(pnb)
        total = np.logaddexp(pb, pnb)
        stay_b = total + y[:, blank, None]
        stay_nb = np.where(last >= 0, pnb + np.take_along_axis(y, np.maximum(last, 0), 1), neg)
        ext = np.where(cls == last[..., None], pb[..., None], total[..., None]) + y[:, None, :]   # (B, K, C)
        ext[..., blank] = neg
        ext[~alive] = neg
        # prefix k + c that is already beam j: its probability joins j's, and is no candidate of its own
        same = (parent_key[:, :, None] == key[:, None, :]) & (length[:, :, None] == length[:, None, :] + 1) \
            & alive[:, :, None] & alive[:, None, :]
        bb, j, k = np.nonzero(same)
        merged = ext[bb, k, last[bb, j]]
        stay_nb[bb, j] = np.logaddexp(stay_nb[bb, j], merged)
        ext[bb, k, last[bb, j]] = neg
        stay = np.logaddexp(stay_b, stay_nb)
        scores = np.concatenate([np.where(alive, stay + a * lm_sum + b_ * length, neg),
                                 (ext + a * (lm_sum[..., None] + lm_next) + b_ * (length[..., None] + 1)
                                  ).reshape(B, K * C)], axis=1)
        pick = np.argsort(-scores, axis=1, kind="stable")[:, :K]                  # (B, K)
        ok = np.isfinite(np.take_along_axis(scores, pick, 1))
        keep = np.repeat(~active[:, None], K, axis=1)   # finished sequences keep their beams as they were
        grows = (pick >= K) & ~keep
        src = np.where(keep, np.arange(K), np.where(pick >= K, (pick - K) // C, pick))
        c = np.where(grows, (pick - K) % C, -1)
        cc = np.maximum(c, 0)
        pb_, pnb_ = np.where(grows, neg, np.take_along_axis(stay_b, src, 1)), \
            np.where(grows, ext[rows, src, cc], np.take_along_axis(stay_nb, src, 1))
        pb = np.where(keep, pb, np.where(ok, pb_, neg))
        pnb = np.where(keep, pnb, np.where(ok, pnb_, neg))
        old_key = np.take_along_axis(key, src, 1)
        parent_key = np.where(grows, old_key, np.take_along_axis(parent_key, src, 1))
        key = np.where(grows, old_key * _MULT + (c + 1).astype(np.uint64), old_key)
        lm_sum = np.take_along_axis(lm_sum, src, 1) + np.where(grows, lm_next[rows, src, cc], 0.0)
        length = np.take_along_axis(length, src, 1) + grows
        last = np.where(grows, c, np.take_along_axis(last, src, 1))
        if lm is not None:                           # each beam's LM state: its source's, a step on where it grew
            flat = (rows * K + src).reshape(-1)
            lm_next, lm_end = lm_next.reshape(B * K, C)[flat], lm_end.reshape(-1)[flat]
            state = lm.take(state, flat)
            grown = np.flatnonzero((grows & ok).reshape(-1))
            if len(grown):
                part, lm_next[grown], lm_end[grown] = lm.step(lm.take(state, grown), c.reshape(-1)[grown])
                state = lm.put(state, grown, part)
            lm_next, lm_end = lm_next.reshape(B, K, C), lm_end.reshape(B, K)
        parents.append(src)
        labels.append(c)
    final = np.logaddexp(pb, pnb)
    ranked = final + a * (lm_sum + lm_end) + b_ * length
    out = []
    for bi in range(B):
        order = [k for k in np.argsort(-ranked[bi], kind="stable") if np.isfinite(ranked[bi, k])][:top_n]
        best = []
        for k in order:
            seq, j = [], k
            for t in range(int(lengths[bi]) - 1, -1, -1):
                if labels[t][bi, j] >= 0:
                    seq.append(int(labels[t][bi, j]))
                j = parents[t][bi, j]
            best.append((seq[::-1], float(ranked[bi, k])))
        out.append(best)
    return out


class CharLMScorer:
    """A ``CharLM`` (``lstmkit charlm``) as the prefix scorer of a recogniser whose class i + 1 is
    ``alphabet[i]`` (class 0, the blank, is never scored). Each prefix starts after an end of line when the
    LM's vocabulary has one ("\\n": the LM was trained on lines of transcripts), which also scores the end."""

    def __init__(self, model: Any, vocab: Any, alphabet: str) -> None:
        missing = [ch for ch in alphabet if ch not in vocab.index]
        if missing:
            raise ValueError(f"CharLMScorer: the language model's vocabulary lacks {''.join(missing)!r} of the "
                             f"recogniser's alphabet")
        self.model, self.vocab = model, vocab
        self.ids = np.array([0] + [vocab.index[ch] for ch in alphabet], np.int64)      # class -> LM id
        self.newline = vocab.index.get("\n")
        model.eval()

    def _scores(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = logits.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nxt = logp[:, self.ids]
        nxt[:, 0] = 0.0
        end = logp[:, self.newline] if self.newline is not None else np.zeros(len(z))
        return nxt, end

    def start(self, n: int) -> tuple[Any, np.ndarray, np.ndarray]:
        H, L = self.model.cfg.hidden, self.model.cfg.layers
        dt = np.dtype(self.model.cfg.dtype)
        state = (np.zeros((L, n, H), dt), np.zeros((L, n, H), dt))
        if self.newline is None:                                # no context: the first character is uniform
            nxt, end = self._scores(np.zeros((n, len(self.vocab))))
            return state, nxt, end
        logits, one = self.model.forward(np.full((1, 1), self.newline, np.int64),
                                         (state[0][:, :1], state[1][:, :1]))
        nxt, end = self._scores(np.repeat(logits[:, 0], n, axis=0))
        return (np.repeat(one[0], n, axis=1), np.repeat(one[1], n, axis=1)), nxt, end

    def step(self, state: Any, classes: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        logits, new = self.model.forward(self.ids[classes][:, None], state)
        nxt, end = self._scores(logits[:, 0])
        return new, nxt, end

    def take(self, state: Any, rows: np.ndarray) -> Any:
        return state[0][:, rows], state[1][:, rows]

    def put(self, state: Any, rows: np.ndarray, part: Any) -> Any:
        state[0][:, rows], state[1][:, rows] = part
        return state
