"""Losses. Each is called as ``loss = fn(prediction, target)`` and
``fn.backward()`` returns the gradient w.r.t. the prediction.

Classification losses take logits (never probabilities) with the class axis
*last*: (N, C) or (B, T, C).
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from ._checks import class_indices

_REDUCTIONS = ("mean", "sum", "none")


class _Loss:
    name = "Loss"

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{self.name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._grad_fn = None

    def __call__(self, prediction: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        return self.forward(prediction, target)

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        raise NotImplementedError

    def _reduce(self, per: np.ndarray, count: float) -> float | np.ndarray:
        if self.reduction == "none":
            return per
        total = per.sum()
        return float(total / count) if self.reduction == "mean" else float(total)

    def _upstream(self, grad_output: np.ndarray | float | None, shape: tuple[int, ...], count: float) -> np.ndarray:
        """The gradient w.r.t. each unreduced loss element."""
        if self.reduction == "none":
            g = np.ones(shape) if grad_output is None else np.asarray(grad_output, dtype=float)
            if g.shape != shape:
                raise ValueError(f"{self.name}.backward: expected grad_output of shape {shape}, got {g.shape}")
            return g
        scale = 1.0 if grad_output is None else float(grad_output)
        return np.full(shape, scale / count if self.reduction == "mean" else scale)


def _as_float(owner: str, a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{owner}: expected a floating-point {what}, got dtype {a.dtype}")
    return a


class MSELoss(_Loss):
    """Mean squared error, element-wise over any shape (prediction and target the same shape)."""

    name = "MSELoss"

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        prediction = _as_float(self.name, prediction, "prediction")
        target = np.asarray(target)
        if prediction.shape != target.shape:
            raise ValueError(f"MSELoss: prediction shape {prediction.shape} and target shape {target.shape} differ")
        diff = prediction - target
        self._diff = diff
        return self._reduce(diff * diff, diff.size)

    def backward(self, grad_output: np.ndarray | float | None = None) -> np.ndarray:
        diff = self._diff
        g = self._upstream(grad_output, diff.shape, diff.size)
        return (2 * diff * g).astype(diff.dtype, copy=False)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits.

    Args:
        reduction: "mean" (over non-ignored targets, as PyTorch), "sum" or "none".
        ignore_index: class-index targets equal to this contribute nothing.
        label_smoothing: as PyTorch's, in [0, 1).

    Shapes: logits (..., C); target either integer class indices (...) or
    float class probabilities / one-hot (..., C). With "none" the loss has
    shape (...).
    """

    name = "CrossEntropyLoss"

    def __init__(self, reduction: str = "mean", ignore_index: int = -100, label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        logits = _as_float(self.name, logits, "logits")
        if logits.ndim < 1 or logits.shape[-1] < 1:
            raise ValueError(f"CrossEntropyLoss: expected logits of shape (..., C), got {logits.shape}")
        target = class_indices(self.name, np.asarray(target), logits.shape)
        C = logits.shape[-1]
        logp = F.log_softmax(logits, axis=-1)
        if np.issubdtype(target.dtype, np.integer):
            if target.shape != logits.shape[:-1]:
                raise ValueError(f"CrossEntropyLoss: class-index target must have shape {logits.shape[:-1]} "
                                 f"(logits without the class axis), got {target.shape}")
            valid = target != self.ignore_index
            bad = valid & ((target < 0) | (target >= C))
            if bad.any():
                raise ValueError(f"CrossEntropyLoss: class indices must be in [0, {C}) or ignore_index "
                                 f"{self.ignore_index}; got {target[bad][:5].tolist()}")
            probs = np.zeros_like(logp)
            safe = np.where(valid, target, 0)
            np.put_along_axis(probs, safe[..., None], 1.0, axis=-1)
            probs *= valid[..., None]
            count = float(valid.sum())
        else:
            if target.shape != logits.shape:
                raise ValueError(f"CrossEntropyLoss: probability target must have the logits' shape {logits.shape}, "
                                 f"got {target.shape}")
            probs = target.astype(logp.dtype)
            valid = np.ones(logits.shape[:-1], bool)
            count = float(valid.size)
        if self.label_smoothing:
            eps = self.label_smoothing
            probs = probs * (1 - eps) + (eps / C) * valid[..., None]
        per = -(probs * logp).sum(axis=-1)
        self._cache = (logp, probs, valid, count)
        # PyTorch returns nan for a mean over zero targets; we do the same.
        return self._reduce(per, count if count else np.nan)

    def backward(self, grad_output: np.ndarray | float | None = None) -> np.ndarray:
        logp, probs, valid, count = self._cache
        g = self._upstream(grad_output, valid.shape, count if count else np.nan)
        # d(-Σ p log softmax(z))/dz = softmax(z)·Σp − p
        grad = np.exp(logp) * probs.sum(axis=-1, keepdims=True) - probs
        grad *= g[..., None]
        return grad.astype(logp.dtype, copy=False)
