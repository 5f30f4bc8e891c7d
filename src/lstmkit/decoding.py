"""Decoding: sampling from logits with temperature and top-k; CTC best-path and prefix beam search; edit distance."""

from __future__ import annotations

from typing import Any

import numpy as np


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
                    input_lengths: np.ndarray | None = None, top_n: int = 1) -> list[list[tuple[list[int], float]]]:
    """Prefix beam search over (B, T, C) log-probabilities (log_softmax outputs).

    Each prefix keeps two log-probabilities — of ending in a blank and of ending in its last label —
    so that "a, blank, a" (two labels) and "a, a" (one) are told apart. Returns, per batch item, the
    ``top_n`` best (labels, log-probability) pairs, best first.
    """
    lp, lens = _ctc_lengths(log_probs, input_lengths, "ctc_beam_search")
    if beam_width < 1 or top_n < 1:
        raise ValueError(f"ctc_beam_search: beam_width and top_n must be >= 1, got {beam_width}, {top_n}")
    out = []
    for b in range(lp.shape[0]):
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}   # prefix -> (p_blank, p_label)
        for t in range(lens[b]):
            y = lp[b, t]
            nxt: dict[tuple[int, ...], list[float]] = {}
            add = _adder(nxt)
            for prefix, (pb, pnb) in beams.items():
                total = np.logaddexp(pb, pnb)
                add(prefix, 0, total + y[blank])                          # a blank: the prefix stays
                if prefix:
                    add(prefix, 1, pnb + y[prefix[-1]])                   # the last label again, merged
                for k in range(len(y)):
                    if k == blank:
                        continue
                    if prefix and k == prefix[-1]:
                        add(prefix + (k,), 1, pb + y[k])                 # a repeat needs a blank between
                    else:
                        add(prefix + (k,), 1, total + y[k])
            ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam_width]
            beams = {p: (v[0], v[1]) for p, v in ranked}
        ranked = sorted(beams.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:top_n]
        out.append([(list(p), float(np.logaddexp(*v))) for p, v in ranked])
    return out


def _adder(table: dict[tuple[int, ...], list[float]]) -> Any:
    """add(prefix, 0 | 1, log p): accumulate a blank-ending (0) or label-ending (1) probability of prefix."""
    def add(prefix: tuple[int, ...], which: int, value: float) -> None:
        entry = table.setdefault(prefix, [-np.inf, -np.inf])
        entry[which] = np.logaddexp(entry[which], value)
    return add


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
