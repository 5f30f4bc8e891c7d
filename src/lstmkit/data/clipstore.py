"""A folder's decoded clips on disk: one file of raw uint8 slots per folder and setting, read by offset.

    store = ClipStore.open(cache_dir, key, shape, files, stamps, decode_many)   # decodes what is missing
    batch = store.read(slots)           # (n, T, H, W, C) uint8: only the asked clips are read

Why one file of fixed-size slots: a batch of 32 random clips is 32 reads at known offsets of one open
file (measured faster than opening 32 per-clip files; see ``benchmarks``), and nothing but the batch
being read is in the process's memory. The file is read with ``os.preadv``, not memory-mapped: pages of
a memory map count in the process's resident size as they are touched, so one epoch over a map would
show the whole cache as the process's memory although the kernel may drop it; read by offset, the
clips stay in the page cache, which the kernel shares and reclaims.

Beside the data file an index (JSON) names every file with its size and modification time, its slot
or the reason it could not be decoded. Opening again reuses every slot whose file is unchanged, copies
those into a new data file when the folder changed, and decodes only new or changed files; the index is
replaced atomically after the data is complete, so a crash leaves the old cache or the new one.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint

VERSION = 2
# decode_many(paths) yields (position in paths, clip uint8 or an error message) as clips are ready
Decoder = Callable[[list[Path]], Iterator[tuple[int, np.ndarray | str]]]


class ClipStore:
    """Clips of one shape in slots of one file; ``slots[i]`` of file i, or -1 where it could not be read."""

    def __init__(self, path: Path, shape: tuple[int, ...], slots: np.ndarray, errors: dict[int, str]) -> None:
        self.path, self.shape, self.slots, self.errors = path, tuple(shape), slots, errors
        self.slot_bytes = math.prod(self.shape)
        self._fd = os.open(path, os.O_RDONLY)

    @classmethod
    def open(cls, cache_dir: Path, key: str, shape: tuple[int, ...], files: list[Path], stamps: list[list[int]],
             decode_many: Decoder) -> ClipStore:
        """The store for ``files`` (their ``stamps``: size, mtime), made or brought up to date."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        index_path = cache_dir / f"clips-{key}.json"
        old = _read_index(index_path, shape)
        names = [str(p) for p in files]
        entries = [old["files"].get(n) if old else None for n in names]
        fresh = [e is not None and e["stamp"] == s for e, s in zip(entries, stamps)]
        if old is not None and all(fresh) and len(old["files"]) == len(names):
            slots = np.array([-1 if e["slot"] is None else e["slot"] for e in entries], np.int64)
            errors = {i: e["error"] for i, e in enumerate(entries) if e["error"]}
            return cls(cache_dir / old["data"], shape, slots, errors)
        data_name = f"clips-{key}-{secrets.token_hex(4)}.u8"
        slot_bytes = math.prod(shape)
        slots = np.full(len(files), -1, np.int64)
        errors: dict[int, str] = {}
        fd = os.open(cache_dir / data_name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            nxt = 0
            old_fd = os.open(cache_dir / old["data"], os.O_RDONLY) if old is not None else None
            try:
                for i, (e, ok) in enumerate(zip(entries, fresh)):
                    if not ok:
                        continue
                    if e["slot"] is None:
                        errors[i] = e["error"]
                        continue
                    clip = os.pread(old_fd, slot_bytes, e["slot"] * slot_bytes)
                    if len(clip) != slot_bytes:                    # (an old cache cut short: decode again)
                        fresh[i] = False
                        continue
                    os.pwrite(fd, clip, nxt * slot_bytes)
                    slots[i], nxt = nxt, nxt + 1
            finally:
                if old_fd is not None:
                    os.close(old_fd)
            todo = [i for i, ok in enumerate(fresh) if not ok]
            for k, got in decode_many([files[i] for i in todo]):
                i = todo[k]
                if isinstance(got, str):
                    errors[i] = got
                    continue
                os.pwrite(fd, np.ascontiguousarray(got, np.uint8).tobytes(), nxt * slot_bytes)
                slots[i], nxt = nxt, nxt + 1
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            (cache_dir / data_name).unlink(missing_ok=True)
            raise
        os.close(fd)
        index = {"version": VERSION, "shape": list(shape), "data": data_name,
                 "files": {n: {"stamp": s, "slot": None if slots[i] < 0 else int(slots[i]), "error": errors.get(i)}
                           for i, (n, s) in enumerate(zip(names, stamps))}}
        checkpoint.atomic_write(index_path, lambda f: f.write(json.dumps(index).encode("utf-8")))
        if old is not None and old["data"] != data_name:
            (cache_dir / old["data"]).unlink(missing_ok=True)
        return cls(cache_dir / data_name, shape, slots, errors)

    def read(self, slots: np.ndarray) -> np.ndarray:
        """The clips in ``slots`` (n,) as uint8 (n, *shape), read at their offsets."""
        slots = np.asarray(slots, np.int64)
        out = np.empty((len(slots), *self.shape), np.uint8)
        flat = out.reshape(len(slots), -1)
        for j, s in enumerate(slots):
            got = os.preadv(self._fd, [flat[j]], int(s) * self.slot_bytes)
            if got != self.slot_bytes:
                raise OSError(f"{self.path}: the clip cache is cut short (slot {s}); delete it to decode again")
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:           # (interpreter shutdown)
            pass


def _read_index(path: Path, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """A usable index for clips of ``shape`` (its data file present), or None."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        ok = (index.get("version") == VERSION and tuple(index["shape"]) == tuple(shape)
              and (path.parent / index["data"]).is_file() and isinstance(index["files"], dict))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return index if ok else None
