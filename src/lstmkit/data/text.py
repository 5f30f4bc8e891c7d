"""Character-level text: vocabulary, loading, and batched truncated-BPTT windows.

The batching follows char-rnn: the text is cut into B contiguous streams, and
consecutive windows of T characters are taken from all streams at once, so the
hidden state at the end of one window is the right initial state for the next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np


class TextError(ValueError):
    """A text file or prompt that cannot be used; the message names the file and the problem."""


class Vocab:
    """A character vocabulary: the sorted distinct characters of a text."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = sorted(set(chars))
        if not self.chars:
            raise TextError("Vocab: no characters")
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        """str -> (N,) int64 ids; unknown characters raise TextError listing them."""
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise TextError(f"{what} has characters not in the model's vocabulary: "
                            f"{''.join(unknown)!r} (known: {''.join(self.chars)!r})")
        table = np.zeros(max(map(ord, self.chars)) + 1, np.int64)
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        return table[np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        return "".join(self.chars)

    @classmethod
    def from_json(cls, s: str) -> Vocab:
        return cls(s)


def bundled_shakespeare() -> str:
    """The bundled corpus (~1.1 MB of Shakespeare's plays, "NAME:\\nline" layout)."""
    return resources.files("lstmkit.data").joinpath("bundled/shakespeare.txt").read_text(encoding="utf-8")


def load_text(path: str | Path) -> str:
    """Read a UTF-8 text file; missing, binary, non-UTF-8 or empty files raise TextError."""
    p = Path(path)
    if not p.is_file():
        raise TextError(f"{p}: no such file")
    raw = p.read_bytes()
    if b"\x00" in raw[:65536]:
        raise TextError(f"{p}: looks binary (contains NUL bytes); expected a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TextError(f"{p}: not valid UTF-8 (byte {e.start}: {e.reason}); expected a UTF-8 text file") from None
    if not text:
        raise TextError(f"{p}: the file is empty")
    return text


def split_train_val(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The last ``val_fraction`` of the ids is validation, the rest training (a fixed split)."""
    cut = int(round(len(ids) * (1 - val_fraction)))
    return ids[:cut], ids[cut:]


@dataclass
class Windows:
    """B parallel streams of ``ids``, cut into windows of T.

    ``window(k)`` gives inputs x (B, T) and next-character targets y (B, T);
    ``len(self)`` windows make one pass (epoch).
    """

    streams: np.ndarray          # (B, L)
    seq_len: int
    offset: int = 0              # where in the text the first stream starts

    @classmethod
    def make(cls, ids: np.ndarray, batch_size: int, seq_len: int, what: str = "text", offset: int = 0) -> Windows:
        """The streams of ``ids[offset:]`` (an offset that would leave too little text is taken as 0)."""
        if len(ids) - offset < batch_size * (seq_len + 1):
            offset = 0
        L = (len(ids) - offset) // batch_size
        if L < seq_len + 1:
            raise TextError(f"{what} is too short: {len(ids)} characters give {batch_size} streams of {L}, "
                            f"but a window needs {seq_len + 1} (lower --batch or --seq-len, or use more text)")
        return cls(ids[offset:offset + batch_size * L].reshape(batch_size, L), seq_len, offset)   # (a view)

    def __len__(self) -> int:
        return (self.streams.shape[1] - 1) // self.seq_len

    def window(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``k``: inputs and targets (B, T) int64 (copied out of the streams, which may be a memory
        map of a cached text in a small dtype)."""
        T = self.seq_len
        s = np.asarray(self.streams[:, k * T:(k + 1) * T + 1], np.int64)
        return s[:, :-1], s[:, 1:]
