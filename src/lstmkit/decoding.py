"""Decoding: sampling from logits with temperature and top-k; CTC best-path and prefix beam search; edit distance."""

from __future__ import annotations

import numpy as np

from .beam import PrefixScorer, prefix_beam_search


def sample_logits(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                  top_k: int | None = None) -> np.ndarray:
    """Draw one index per row of ``logits`` (..., V) -> (...) int64.

    ``temperature`` divides the logits (0 means greedy argmax); ``top_k`` keeps
    only the k most likely classes. The same generator state gives the same draw.
    """
    logits = np.asarray(logits, dtype=np.float64)
    V = logits.shape[-1]
    if temperature < 0:
        raise ValueError(f"sample_logits: temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k:
        raise ValueError(f"sample_logits: top_k must be >= 1, got {top_k}")
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits / temperature
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=-1)[..., V - top_k, None]
        z = np.where(z >= kth, z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(logits.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((cdf < u).sum(axis=-1), V - 1).astype(np.int64)


# ---- CTC decoding ---------------------------------------------------------------


def _ctc_lengths(log_probs: np.ndarray, input_lengths: np.ndarray | None, owner: str) -> tuple[np.ndarray, np.ndarray]:
    lp = np.asarray(log_probs)
    if lp.ndim != 3:
        raise ValueError(f"{owner}: expected log-probabilities of shape (B, T, C), got {lp.shape}")
    B, T, _ = lp.shape
    lens = np.full(B, T) if input_lengths is None else np.asarray(input_lengths)
    if lens.shape != (B,) or lens.min(initial=0) < 0 or lens.max(initial=0) > T:
        raise ValueError(f"{owner}: expected input_lengths of shape ({B},) with values in [0, {T}], got {lens}")
    return lp, lens


def ctc_greedy(log_probs: np.ndarray, blank: int = 0, input_lengths: np.ndarray | None = None) -> list[list[int]]:
    """Best-path decoding of (B, T, C) log-probabilities (or logits): argmax per step, merge repeats, drop blanks."""
    lp, lens = _ctc_lengths(log_probs, input_lengths, "ctc_greedy")
    best = lp.argmax(axis=-1)                                             # (B, T)
    keep = np.ones_like(best, bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != blank
    return [best[b, :lens[b]][keep[b, :lens[b]]].tolist() for b in range(len(best))]


def ctc_beam_search(log_probs: np.ndarray, beam_width: int = 10, blank: int = 0,
                    input_lengths: np.ndarray | None = None, top_n: int = 1, lm: PrefixScorer | None = None,
                    alpha: float = 0.5, beta: float = 0.0) -> list[list[tuple[list[int], float]]]:
    """Prefix beam search over (B, T, C) log-probabilities (log_softmax outputs), the whole batch at once
    (``lstmkit.beam``).

    Each prefix keeps two log-probabilities — of ending in a blank and of ending in its last label —
    so that "a, blank, a" (two labels) and "a, a" (one) are told apart. Returns, per batch item, the
    ``top_n`` best (labels, score) pairs, best first: the score is the CTC log-probability, plus
    ``alpha``·log p_lm + ``beta``·length with a language model ``lm`` (``lstmkit.beam.CharLMScorer``).
    """
    lp, lens = _ctc_lengths(log_probs, input_lengths, "ctc_beam_search")
    if beam_width < 1 or top_n < 1:
        raise ValueError(f"ctc_beam_search: beam_width and top_n must be >= 1, got {beam_width}, {top_n}")
    if not 0 <= blank < lp.shape[2]:
        raise ValueError(f"ctc_beam_search: blank must be a class in [0, {lp.shape[2]}), got {blank}")
    return prefix_beam_search(lp, lens, beam_width, blank, top_n, lm, alpha, beta)


def edit_distance(a: list[int] | str, b: list[int] | str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning ``a`` into ``b``."""
    prev = np.arange(len(b) + 1)
    for i, x in enumerate(a, start=1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return int(prev[-1])


def character_error_rate(predictions: list[list[int]] | list[str], targets: list[list[int]] | list[str]) -> float:
    """Σ edit distances / Σ target lengths over a set of sequences."""
    if len(predictions) != len(targets):
        raise ValueError(f"character_error_rate: {len(predictions)} predictions for {len(targets)} targets")
    total = sum(len(t) for t in targets)
    return sum(edit_distance(p, t) for p, t in zip(predictions, targets)) / max(total, 1)
