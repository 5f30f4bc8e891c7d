"""Padding variable-length sequences into one batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_sequences(sequences: Sequence[np.ndarray], value: float = 0, dtype: str | np.dtype | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of shapes (T_i, ...) into (B, max T_i, ...), padding at the end.

    Returns ``(batch, lengths)`` with lengths (B,) int64, ready for the
    ``lengths=`` argument of the recurrent layers. The dtype is the common
    dtype of the inputs unless given.
    """
    seqs = [np.asarray(s) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequences: got no sequences")
    tails = {s.shape[1:] for s in seqs}
    if any(s.ndim < 1 for s in seqs) or len(tails) != 1:
        raise ValueError(f"pad_sequences: every sequence must have shape (T_i, ...) with the same trailing shape, "
                         f"got shapes {[s.shape for s in seqs][:5]}")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if lengths.min() == 0:
        raise ValueError(f"pad_sequences: sequence {int(np.argmin(lengths))} is empty; every length must be >= 1")
    dt = np.result_type(*seqs) if dtype is None else np.dtype(dtype)
    batch = np.full((len(seqs), int(lengths.max()), *tails.pop()), value, dtype=dt)
    for b, s in enumerate(seqs):
        batch[b, :len(s)] = s
    return batch, lengths
