"""Metrics for ``fit``/``evaluate``: each returns ``(sum, count)`` over a batch, so batches (and MPI ranks)
combine exactly: ``accuracy``, ``mae``, ``mse``, ``cer``, or a function ``fn(pred, y) -> batch mean``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._checks import class_indices
from .ctc import unpack_targets
from .decoding import ctc_greedy, edit_distance

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], tuple[float, float]]


def _valid(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Positions that count: targets >= 0 (negative = ignore_index) and, for (B, T, ...) outputs, t < length."""
    ok = y >= 0
    if lengths is not None and pred.ndim >= 3 and ok.ndim >= 2:
        ok = ok & (np.arange(ok.shape[1])[None, :] < lengths[:, None]).reshape(ok.shape[:2] + (1,) * (ok.ndim - 2))
    return ok


def accuracy(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> tuple[float, float]:
    """Class accuracy: argmax of the logits against integer classes (or against one-hot/probability targets)."""
    y = class_indices("accuracy", np.asarray(y), pred.shape)
    if np.issubdtype(y.dtype, np.integer) and pred.ndim == y.ndim + 1:
        ok = _valid(pred, y, lengths)
        hit = (pred.argmax(axis=-1) == y) & ok
        return float(hit.sum()), float(ok.sum())
    if pred.shape == y.shape and pred.ndim >= 2:
        return accuracy(pred, y.argmax(axis=-1), lengths)
    raise ValueError(f"accuracy: expected integer class targets of shape {pred.shape[:-1]} (or one-hot of shape "
                     f"{pred.shape}), got {y.dtype} of shape {y.shape}")


def _elementwise(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Metric:
    def metric(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> tuple[float, float]:
        if pred.shape != y.shape:
            raise ValueError(f"{name}: prediction shape {pred.shape} and target shape {y.shape} differ")
        err = fn(pred - y)
        return float(err.sum()), float(err.size)
    return metric


def cer(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> tuple[float, float]:
    """Character error rate of CTC best-path decoding: logits (B, T, C) against ``ctc.pack_targets`` rows."""
    in_lens, targets, t_lens = unpack_targets(y)
    decoded = ctc_greedy(pred, blank=0, input_lengths=in_lens)
    errors = sum(edit_distance(d, list(targets[b, :t_lens[b]])) for b, d in enumerate(decoded))
    return float(errors), float(t_lens.sum())


METRICS: dict[str, Metric] = {"accuracy": accuracy, "mae": _elementwise("mae", np.abs),
                              "mse": _elementwise("mse", np.square), "cer": cer}


def metric_fns(metrics: Sequence[str | Callable[..., Any]]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in METRICS:
                raise ValueError(f"fit: unknown metric {m!r}; expected one of {sorted(METRICS)} or a function")
            out[m] = METRICS[m]
        elif callable(m):                 # fn(pred, y) -> batch mean
            out[m.__name__] = lambda p, y, lengths, fn=m: (float(fn(p, y)) * len(p), float(len(p)))
        else:
            raise ValueError(f"fit: a metric must be a name or a function, got {type(m).__name__}")
    return out
