"""Analyses behind the see-inside report, on plain arrays (T steps, N cells), all NumPy.

* ``char_loss``: the model's surprise at each next character.
* ``saturation``: per unit, how often a gate is below 0.1 / above 0.9 (Karpathy, Johnson & Fei-Fei 2016).
* ``span_match``: LSTMVis's selection (Strobelt et al. 2018): cells on inside a span and off around
  it, then every other place where that set of cells is on together.
* ``text_features`` + ``detect``: per text property (position in the line, inside quotes, inside
  brackets, upper-case speaker lines, start of a word), the cells most correlated with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..functional import log_softmax


def char_loss(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Cross-entropy in nats of each target under its logits: (T, V), (T,) -> (T,)."""
    logp = log_softmax(np.asarray(logits, np.float64), axis=-1)
    return -logp[np.arange(len(targets)), targets]


def top_guesses(logits: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The k most likely next symbols and their probabilities: (T, V) -> (T, k) ids, (T, k) probabilities."""
    logp = log_softmax(np.asarray(logits, np.float64), axis=-1)
    ids = np.argsort(-logp, axis=-1, kind="stable")[:, :k]
    return ids, np.exp(np.take_along_axis(logp, ids, axis=-1))


def saturation(gate: np.ndarray, low: float = 0.1, high: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the fraction of steps with the gate below ``low`` and above ``high``: (T, N) -> (N,), (N,)."""
    gate = np.asarray(gate)
    return (gate < low).mean(axis=0), (gate > high).mean(axis=0)


@dataclass
class SpanMatch:
    cells: np.ndarray      # (k,) the selected cells, best first
    scores: np.ndarray     # (k,) their on-inside minus on-around fractions
    spans: list[tuple[int, int]]   # other [start, end) where every selected cell is on, longest first


def span_match(values: np.ndarray, start: int, end: int, threshold: float = 0.5, flank: int = 5,
               max_cells: int = 5, min_score: float = 0.5) -> SpanMatch:
    """Cells that are on over values[start:end] and off around it, and where they are on together elsewhere.

    A cell is on at a step when its value exceeds ``threshold``. Its score is the fraction of the
    span it is on minus the fraction of the ``flank`` steps on either side it is on; the cells with
    a score of at least ``min_score`` (at most ``max_cells``, best first) are selected. The other
    places are the maximal runs of steps where all selected cells are on, at least half the span's
    length, not overlapping the span itself.
    """
    values = np.asarray(values)
    T = values.shape[0]
    if not 0 <= start < end <= T:
        raise ValueError(f"span_match: need 0 <= start < end <= {T}, got [{start}, {end})")
    on = values > threshold                                                   # (T, N)
    around = np.r_[max(0, start - flank):start, end:min(T, end + flank)]
    score = on[start:end].mean(axis=0) - (on[around].mean(axis=0) if around.size else 0.0)
    order = np.argsort(-score, kind="stable")
    cells = order[score[order] >= min_score][:max_cells]
    if not cells.size:
        return SpanMatch(cells, score[cells], [])
    together = np.r_[False, on[:, cells].all(axis=1), False].astype(np.int8)
    edges = np.flatnonzero(np.diff(together))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])
            if b - a >= max(1, (end - start) // 2) and (b <= start or a >= end)]
    runs.sort(key=lambda r: (r[0] - r[1], r[0]))
    return SpanMatch(cells, score[cells], runs)


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character, simple properties of the text a cell might track, each (T,) float.

    line position: characters since the start of the line; inside quotes: between an opening
    and a closing double quote; inside brackets: within ( ), [ ] or { }; upper-case line:
    the line has letters and none is lower-case (speaker names in plays); word start: a letter
    after a non-letter.
    """
    chars = np.array(list(text))
    T = len(chars)
    newline = chars == "\n"
    idx = np.arange(T)
    line_start = np.maximum.accumulate(np.where(np.r_[True, newline[:-1]], idx, 0))
    quote = np.cumsum(chars == '"') % 2 == 1
    depth = np.cumsum(np.isin(chars, list("([{")).astype(int) - np.isin(chars, list(")]}")).astype(int))
    letter = np.char.isalpha(chars)
    lower = np.char.islower(chars)
    line_id = np.cumsum(newline) - newline                        # a newline belongs to the line it ends
    has_letter = np.bincount(line_id, letter, minlength=line_id[-1] + 1 if T else 0) > 0
    has_lower = np.bincount(line_id, lower, minlength=line_id[-1] + 1 if T else 0) > 0
    upper_line = (has_letter & ~has_lower)[line_id] if T else np.zeros(0, bool)
    word_start = letter & ~np.r_[False, letter[:-1]]
    return {"line position": (idx - line_start).astype(float), "inside quotes": quote.astype(float),
            "inside brackets": (depth > 0).astype(float), "upper-case line": upper_line.astype(float),
            "word start": word_start.astype(float)}


@dataclass
class Detection:
    feature: str
    cells: np.ndarray      # (k,) best first, by |correlation|
    corr: np.ndarray       # (k,) Pearson correlation of each with the feature (NaN: the feature is constant)


class _Centred:
    """Columns of ``values`` (T, N) centred once, in float64; ``corr(feature)`` gives each column's Pearson
    correlation with a feature (T,), NaN where either is constant."""

    def __init__(self, values: np.ndarray) -> None:
        v = np.asarray(values, np.float64)
        self.v = v - v.mean(axis=0)
        self.ss = (self.v * self.v).sum(axis=0)

    def corr(self, feature: np.ndarray) -> np.ndarray:
        f = np.asarray(feature, np.float64)
        f = f - f.mean()
        denom = np.sqrt(self.ss * (f @ f))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, (f @ self.v) / np.where(denom > 0, denom, 1), np.nan)


def detect(values: np.ndarray, features: dict[str, np.ndarray], top: int = 3) -> list[Detection]:
    """For each feature, the ``top`` cells of ``values`` (T, N) with the largest |correlation|."""
    centred = _Centred(values)
    out = []
    for name, f in features.items():
        r = centred.corr(f)
        order = np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0), kind="stable")[:top]
        out.append(Detection(name, order, r[order]))
    return out
