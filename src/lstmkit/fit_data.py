"""The data ``fit``, ``evaluate`` and ``predict`` read: arrays checked and wrapped, or a dataset as it is;
the validation part (given, or split off); what identifies the training data in a run's checkpoints."""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any

import numpy as np

from .data.dataset import ArrayDataset, Subset, is_dataset
from .layers.base import Layer, takes_lengths
from .losses import CrossEntropyLoss


def check_data(model: Layer, x: Any, y: Any, lengths: Any, what: str) -> tuple[np.ndarray, ...]:
    x = np.asarray(x)
    n = len(x) if x.ndim else 0
    if n == 0:
        raise ValueError(f"{what}: expected x with at least one sample on its first axis, got shape {x.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"{what}: x has {n} samples but y has shape {y.shape}; expected y with {n} on its "
                             "first axis")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{what}: expected lengths as integers of shape ({n},), got {lengths.dtype} of shape "
                             f"{lengths.shape}")
        if not takes_lengths(model):
            raise ValueError(f"{what}: {type(model).__name__}.forward takes no lengths; use a Sequential or a "
                             "recurrent layer")
    return x, y, lengths


def as_dataset(model: Layer, x: Any, y: Any, lengths: Any, what: str) -> Any:
    """``x`` itself when it is a dataset (then no ``y``/``lengths``), else the arrays checked and wrapped."""
    if is_dataset(x):
        if y is not None or lengths is not None:
            raise ValueError(f"{what}: x is a dataset, whose batches carry their own targets and lengths; give y "
                             "and lengths only with arrays")
        if len(x) == 0:
            raise ValueError(f"{what}: the dataset is empty")
        return x
    return ArrayDataset(*check_data(model, x, y, lengths, what))


def training_data(model: Layer, x: Any, y: Any, lengths: Any, validation_data: Any, validation_split: float,
                   loss_fn: Any) -> tuple[Any, Any]:
    """(training data, validation data or None) as datasets, from arrays or datasets, checked."""
    data = as_dataset(model, x, y, lengths, "fit")
    if validation_data is not None:
        if validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if is_dataset(validation_data):
            return data, as_dataset(model, validation_data, None, None, "fit (validation_data)")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be (x_val, y_val), (x_val, y_val, lengths_val) or a "
                             "dataset")
        if lengths is not None and len(validation_data) == 2:
            raise ValueError("fit: the training data has lengths but validation_data has none, so validation would "
                             "score the padding as data; pass validation_data=(x_val, y_val, lengths_val) (for "
                             "unpadded sequences, lengths_val = np.full(len(x_val), x_val.shape[1]))")
        return data, ArrayDataset(*check_data(model, validation_data[0], validation_data[1],
                                               validation_data[2] if len(validation_data) == 3 else None,
                                               "fit (validation_data)"))
    if not validation_split:
        return data, None
    if not 0 < validation_split < 1:
        raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
    n = len(data)
    cut = math.ceil(n * (1 - validation_split))
    if cut >= n or cut < 1:
        raise ValueError(f"fit: validation_split {validation_split} of {n} samples leaves no training or no "
                         "validation samples")
    if isinstance(data, ArrayDataset):
        _warn_unshared_classes(loss_fn, data.y[:cut], data.y[cut:], validation_split)
        return ArrayDataset(*data[slice(None, cut)]), ArrayDataset(*data[slice(cut, None)])
    train, held = Subset(data, np.arange(cut)), Subset(data, np.arange(cut, n))
    labels = train.labels(), held.labels()
    if labels[0] is not None and labels[1] is not None:
        _warn_unshared_classes(loss_fn, labels[0], labels[1], validation_split)
    return train, held


def _warn_unshared_classes(loss_fn: Any, y: np.ndarray, yv: np.ndarray, split: float) -> None:
    """Warn when a class occurs on one side of a ``validation_split`` only: the data is likely sorted by class."""
    if not (isinstance(loss_fn, CrossEntropyLoss) and np.issubdtype(y.dtype, np.integer)):
        return
    train, val = set(np.unique(y[y >= 0]).tolist()), set(np.unique(yv[yv >= 0]).tolist())
    only_val, only_train = sorted(val - train), sorted(train - val)
    if not (only_val or only_train):
        return
    said = " and ".join(part for part in (
        f"the validation part holds class(es) {only_val[:8]} that training never sees" if only_val else "",
        f"class(es) {only_train[:8]} are never validated" if only_train else "") if part)
    warnings.warn(f"fit: validation_split={split} holds out the last {split:.0%} of the samples as they are, "
                  f"unshuffled (as Keras does), and {said}; the data looks sorted by class: shuffle it first "
                  "(p = rng.permutation(len(x)); x, y = x[p], y[p]) or pass validation_data", UserWarning,
                  stacklevel=3)


def fingerprint(data: Any) -> str:
    """What identifies the training data: a hash of in-memory arrays; a dataset's own ``fingerprint()`` if it
    has one, else its type and length (reading a whole dataset to hash it would defeat streaming)."""
    if not isinstance(data, ArrayDataset):
        own = getattr(data, "fingerprint", None)
        return str(own()) if callable(own) else f"{type(data).__name__}:{len(data)}"
    h = hashlib.sha256()
    for a in (data.x, data.y, data.lengths):
        if a is not None:
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def tbptt_windows(data: Any, tbptt: Any) -> tuple[int, int] | None:
    """(window K, steps T) for ``fit(tbptt=K)``, checked on the data's first sample: sequences (N, T, ...) with
    per-step targets (N, T, ...) and no lengths; None without tbptt."""
    if tbptt is None:
        return None
    if isinstance(tbptt, bool) or not isinstance(tbptt, (int, np.integer)) or tbptt < 1:
        raise ValueError(f"fit: tbptt must be a positive number of steps per window, got {tbptt!r}")
    from .data.dataset import unpack
    x, y, lengths = unpack(data[np.arange(1)], "fit")
    if lengths is not None:
        raise ValueError("fit: tbptt cuts sequences into windows of equal steps and takes no lengths=; give "
                         "sequences of one length (pad and mask the targets with the loss's ignore_index)")
    if x.ndim < 3:
        raise ValueError(f"fit: tbptt needs sequences x (N, T, features); got x of shape (N, {x.shape[1:]})")
    T = x.shape[1]
    if y is None or y.ndim < 2 or y.shape[1] != T:
        raise ValueError(f"fit: tbptt needs a target for every step, y (N, {T}, ...) beside x (N, {T}, ...); got y "
                         f"of shape {None if y is None else ('N', *y.shape[1:])}")
    return int(tbptt), T
