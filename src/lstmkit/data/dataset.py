"""Datasets: what ``fit``, ``evaluate`` and ``predict`` read a batch at a time, so data need not fit in memory.

The protocol (PyTorch's map-style ``Dataset`` with batched indexing, Keras' ``PyDataset`` by index):

    len(ds)                 -> the number of samples N
    ds[index]               -> a batch for an integer array ``index`` (n,): (x, y) or (x, y, lengths),
                               each with n samples on its first axis (y may be None for predict-only data)

Anything with those two does: a class of your own that reads samples from disk, ``VideoFolder``,
``ArrayDataset`` over in-memory arrays, or a ``Subset`` of another dataset. ``fit`` draws the order of
the indices from its seeded generator (so a resumed run continues bit for bit), each MPI rank asks
only for its share of a batch, and the next batch is read on a background thread while the current
step computes (``Prefetcher``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np

Batch = tuple[Any, ...]


@runtime_checkable
class Dataset(Protocol):
    """What ``fit`` reads: ``len(ds)`` samples, ``ds[index_array]`` -> ``(x, y)`` or ``(x, y, lengths)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: np.ndarray) -> Batch: ...


def is_dataset(obj: Any) -> bool:
    """Whether ``obj`` is a dataset rather than an array (or a list/tuple of samples)."""
    return (not isinstance(obj, (np.ndarray, list, tuple, np.generic)) and hasattr(obj, "__len__")
            and hasattr(obj, "__getitem__"))


class ArrayDataset:
    """In-memory arrays as a dataset: ``x`` (N, ...), ``y`` (N, ...) or None, ``lengths`` (N,) or None."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, lengths: np.ndarray | None = None) -> None:
        self.x, self.y, self.lengths = x, y, lengths

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: np.ndarray) -> Batch:
        y = None if self.y is None else self.y[index]
        return (self.x[index], y) if self.lengths is None else (self.x[index], y, self.lengths[index])


def holdout(n: int, fraction: float, seed: int, source: Any, items: str, error: type[Exception] = ValueError
            ) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices of ``n`` items, sorted: a seeded ``fraction`` (at least one) held out;
    ``error`` naming ``source`` when too few would be left to train on."""
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 1:
        raise error(f"{source}: {n} {items} are too few to hold out {fraction:.0%}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class Subset:
    """The samples ``indices`` of ``dataset``, renumbered 0..len(indices)-1 (a train or validation part)."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: np.ndarray) -> Batch:
        return self.dataset[self.indices[np.asarray(index)]]

    def fingerprint(self) -> str:
        """The inner dataset's fingerprint (or type and length) with these indices."""
        own = getattr(self.dataset, "fingerprint", None)
        inner = str(own()) if callable(own) else f"{type(self.dataset).__name__}:{len(self.dataset)}"
        return hashlib.sha256(inner.encode() + self.indices.tobytes()).hexdigest()

    def labels(self) -> np.ndarray | None:
        """The class labels of the samples, when the dataset knows them without reading samples."""
        inner = getattr(self.dataset, "labels", None)
        inner = inner() if callable(inner) else inner
        return None if inner is None else np.asarray(inner)[self.indices]


def unpack(batch: Any, what: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(x, y)`` or ``(x, y, lengths)`` from a dataset's batch, checked; a clear error otherwise."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError(f"{what}: a dataset's ds[index] must return (x, y) or (x, y, lengths), got "
                         f"{type(batch).__name__}{f' of {len(batch)}' if isinstance(batch, (tuple, list)) else ''}")
    x, y = np.asarray(batch[0]), None if batch[1] is None else np.asarray(batch[1])
    lengths = None if len(batch) == 2 or batch[2] is None else np.asarray(batch[2])
    return x, y, lengths


class Prefetcher:
    """Reads ``dataset[index]`` on one background thread, so the next batch loads while a step computes."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-data")
        self._pending: tuple[bytes, Future[Any]] | None = None

    def ask(self, index: np.ndarray) -> None:
        """Start reading the batch ``index`` (replacing any batch asked for and not taken)."""
        self._pending = (np.asarray(index).tobytes(), self._pool.submit(self.dataset.__getitem__, index))

    def get(self, index: np.ndarray) -> Any:
        """The batch ``index``: the one read ahead if it was asked for, else read now."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == np.asarray(index).tobytes():
            return pending[1].result()
        return self.dataset[index]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending = None
