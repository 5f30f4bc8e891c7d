"""A text encoded once to character ids in the smallest unsigned dtype, cached on disk and memory-mapped.

    corpus = open_corpus("big.txt")          # the first time: two streaming passes; then: instant
    corpus.ids                               # (N,) uint8/uint16/uint32 ids, a read-only memory map
    corpus.vocab, corpus.sha256

The first time, the text is read in chunks twice — once for its characters (the vocabulary, sorted),
its SHA-256 and its checks (binary, not UTF-8, empty), once to write the ids — so memory holds a chunk,
not the text. The ids go to ``.<name>.lstmkit-ids`` beside the text with a JSON header (size and
modification time of the text, vocabulary, hash, dtype); if that folder is not writable, to the
``cache_dir`` given (a run folder). Opening again with the text unchanged reads only the header and
maps the ids; a changed text is encoded again. nanoGPT's way (encode once to uint16, memory-map),
with the vocabulary in the cache so the second start reads nothing else.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checkpoint
from .text import TextError, Vocab

VERSION = 1
CHUNK = 1 << 24                 # 16 MiB of text at a time


@dataclass
class Corpus:
    """A text's ids (N,) (a memory map when cached), its vocabulary and the SHA-256 of its UTF-8 bytes."""

    ids: np.ndarray
    vocab: Vocab
    sha256: str


def id_dtype(n_chars: int) -> np.dtype:
    """The smallest unsigned dtype that holds ``n_chars`` distinct ids."""
    return np.dtype(np.uint8 if n_chars <= 256 else np.uint16 if n_chars <= 65536 else np.uint32)


def from_text(text: str) -> Corpus:
    """An in-memory corpus of a string (a small text, such as the bundled one)."""
    vocab = Vocab.from_text(text)
    return Corpus(vocab.encode(text).astype(id_dtype(len(vocab))), vocab,
                  hashlib.sha256(text.encode("utf-8")).hexdigest())


def open_corpus(path: str | Path, cache_dir: str | Path | None = None) -> Corpus:
    """The corpus of the UTF-8 text file ``path``: from its cache if the text is unchanged, else encoded
    (and cached beside the text, or in ``cache_dir``, or — neither writable — held in memory)."""
    path = Path(path)
    if not path.is_file():
        raise TextError(f"{path}: no such file")
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    places = [path.parent / f".{path.name}.lstmkit-ids"]
    if cache_dir is not None:
        places.append(Path(cache_dir) / f"{path.name}.lstmkit-ids")
    for ids_path in places:
        cached = _cached(ids_path, stamp)
        if cached is not None:
            return cached
    vocab, sha = _scan(path)
    for ids_path in places:
        try:
            _write(path, ids_path, vocab, sha, stamp)
        except OSError:
            continue                               # a read-only folder: try the next place
        cached = _cached(ids_path, stamp)
        if cached is not None:
            return cached
    ids = np.concatenate([_encode(vocab, t) for t in _chunks(path)])    # nowhere to cache: in memory
    return Corpus(ids, vocab, sha)


def _chunks(path: Path) -> Iterator[str]:
    """The text in decoded chunks; binary or non-UTF-8 text raises TextError naming the byte."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            if offset == 0 and b"\x00" in raw[:65536]:
                raise TextError(f"{path}: looks binary (contains NUL bytes); expected a UTF-8 text file")
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                raise TextError(f"{path}: not valid UTF-8 (byte {offset + e.start}: {e.reason}); expected a UTF-8 "
                                "text file") from None
            offset += len(raw)
            if text:
                yield text
            if not raw:
                return


def _scan(path: Path) -> tuple[Vocab, str]:
    """The vocabulary and SHA-256 of a text file, read in chunks."""
    seen: set[int] = set()
    digest = hashlib.sha256()
    for text in _chunks(path):
        digest.update(text.encode("utf-8"))
        seen.update(np.unique(np.frombuffer(text.encode("utf-32-le"), np.uint32)).tolist())
    if not seen:
        raise TextError(f"{path}: the file is empty")
    return Vocab(chr(c) for c in seen), digest.hexdigest()


def _encode(vocab: Vocab, text: str) -> np.ndarray:
    table = np.zeros(ord(vocab.chars[-1]) + 1 if vocab.chars else 1, id_dtype(len(vocab)))
    table[[ord(c) for c in vocab.chars]] = np.arange(len(vocab))
    return table[np.frombuffer(text.encode("utf-32-le"), np.uint32)]


def _write(path: Path, ids_path: Path, vocab: Vocab, sha: str, stamp: list[int]) -> None:
    """Encode ``path`` chunk by chunk into ``ids_path`` (atomically) and its header beside it."""
    ids_path.parent.mkdir(parents=True, exist_ok=True)

    def write(f: object) -> None:
        for text in _chunks(path):
            f.write(_encode(vocab, text).tobytes())           # type: ignore[attr-defined]

    checkpoint.atomic_write(ids_path, write)
    n = os.path.getsize(ids_path) // id_dtype(len(vocab)).itemsize
    head = {"version": VERSION, "stamp": stamp, "vocab": vocab.to_json(), "sha256": sha, "n": n,
            "dtype": id_dtype(len(vocab)).str}
    checkpoint.atomic_write(_header(ids_path), lambda f: f.write(json.dumps(head).encode("utf-8")))


def _header(ids_path: Path) -> Path:
    return ids_path.with_name(ids_path.name + ".json")


def _cached(ids_path: Path, stamp: list[int]) -> Corpus | None:
    try:
        head = json.loads(_header(ids_path).read_text(encoding="utf-8"))
        if head.get("version") != VERSION or head.get("stamp") != stamp:
            return None
        dtype = np.dtype(head["dtype"])
        if os.path.getsize(ids_path) != head["n"] * dtype.itemsize or head["n"] < 1:
            return None
        ids = np.memmap(ids_path, dtype=dtype, mode="r", shape=(head["n"],))
        return Corpus(ids, Vocab.from_json(head["vocab"]), head["sha256"])
    except (OSError, ValueError, KeyError, TypeError, TextError):
        return None
