"""Video clips as arrays: a folder of videos, one sub-folder per class (UCF101's layout).

    ds = lk.data.VideoFolder("data/moving", frames=16, size=(32, 32))
    x, label = ds[0]                  # x (frames, H, W, C) float32 in [0, 1]; ds.classes[label]
    train, val = ds.split(0.2, seed=0)

Decoding uses PyAV (FFmpeg; ``pip install 'lstmkit[video]'``), so any container and
codec FFmpeg reads works. Each clip's ``frames`` frames are sampled evenly from
start to end (a shorter clip repeats its last frame), resized by FFmpeg's scaler
and scaled to [0, 1]. Decoded clips are cached as uint8 on disk, one file per
folder and setting (in ``<root>/.lstmkit-cache`` unless a ``cache_dir`` is given;
``lstmkit.data.clipstore``), with each file's size and modification time, so a
changed file is decoded again; a batch is read from it and made float32 only when
asked for, so a folder larger than memory trains (``model.fit(folder)``). The
first pass decodes in parallel worker processes, with a progress bar. A file that
cannot be decoded is skipped with a warning naming it.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import parallel
from .clipstore import ClipStore


class VideoError(ValueError):
    """A video, folder or option that cannot be used; the message names it."""


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoError("reading videos needs PyAV: pip install 'lstmkit[video]'") from None
    return av


def sample_indices(n: int, frames: int) -> np.ndarray:
    """``frames`` indices spread evenly over a clip of n frames; a shorter clip repeats its last frame."""
    if n >= frames:
        return np.round(np.linspace(0, n - 1, frames)).astype(np.int64)
    return np.minimum(np.arange(frames), n - 1)


def decode(path: str | Path, frames: int, size: tuple[int, int], grayscale: bool = False) -> np.ndarray:
    """The clip at ``path`` as uint8 (frames, H, W, C), C = 1 or 3. Raises VideoError naming the file."""
    av = _av()
    H, W = size
    fmt = "gray" if grayscale else "rgb24"
    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream in this file")
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise VideoError(f"{path}: a still image ({container.streams.video[0].codec_context.name}), not a "
                                 "video; give video files (mp4, avi, webm, ...)")
            imgs = [f.reformat(width=W, height=H, format=fmt).to_ndarray()
                    for f in container.decode(video=0)]
    except VideoError:
        raise
    except Exception as e:                           # PyAV raises its own error types for bad data
        raise VideoError(f"{path}: cannot be decoded as a video ({type(e).__name__}: {e})") from None
    if not imgs:
        raise VideoError(f"{path}: the video has no frames")
    clip = np.stack([imgs[i] for i in sample_indices(len(imgs), frames)])
    return clip[..., None] if grayscale else clip


def _decode_or_error(args: tuple[str, int, tuple[int, int], bool]) -> np.ndarray | str:
    try:
        return decode(*args)
    except VideoError as e:
        return str(e)


class _InMemory:
    """The clips held in memory (no cache folder): the same ``read(slots)`` as a ``ClipStore``."""

    def __init__(self, clips: np.ndarray) -> None:
        self.clips = clips

    def read(self, slots: np.ndarray) -> np.ndarray:
        return self.clips[np.asarray(slots, np.int64)]


def class_folders(root: str | Path) -> list[str]:
    """The class names under ``root`` (its sub-folders, sorted, hidden ones left out), read without opening a
    video: what a caller can check before anything is decoded or cached."""
    root = Path(root)
    if not root.is_dir():
        raise VideoError(f"{root}: no such folder (expected a folder with one sub-folder per class)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise VideoError(f"{root}: no class folders in it (expected {root}/<class>/<videos>)")
    return classes


class VideoFolder:
    """Clips under ``root/<class>/``, labelled by their folder; classes in sorted order. A dataset: a batch
    is read from the decoded cache on disk and made float32 only when asked for.

    Args:
        root: the folder of class folders.
        frames: frames per clip (T).
        size: (H, W) of every frame after resizing.
        grayscale: one channel instead of three.
        cache_dir: where decoded clips are kept (default ``<root>/.lstmkit-cache``), one uint8 file per
            folder and setting (``lstmkit.data.clipstore``); "" keeps them in memory instead.
        workers: decoding processes on the first pass (default: the usable cores); at most twice as
            many clips as workers are in flight.
        progress: show a progress bar while decoding.
    """

    def __init__(self, root: str | Path, frames: int = 16, size: int | tuple[int, int] = (32, 32),
                 grayscale: bool = False, cache_dir: str | Path | None = None, workers: int | None = None,
                 progress: bool = True) -> None:
        self.root = Path(root)
        size = (size, size) if isinstance(size, int) else tuple(size)
        if frames < 1 or len(size) != 2 or min(size) < 1:
            raise VideoError(f"VideoFolder: frames and size must be positive, got frames={frames}, size={size}")
        self.frames, self.size, self.grayscale = int(frames), (int(size[0]), int(size[1])), bool(grayscale)
        self.classes = class_folders(self.root)
        files = [(p, c) for c, name in enumerate(self.classes)
                 for p in sorted((self.root / name).iterdir()) if p.is_file() and not p.name.startswith(".")]
        self.cache_dir = None if cache_dir == "" else Path(cache_dir) if cache_dir else self.root / ".lstmkit-cache"
        self.shape = (self.frames, *self.size, 1 if self.grayscale else 3)
        slots, errors = self._open([p for p, _ in files], workers, progress)
        for i in sorted(errors):
            warnings.warn(f"skipping {errors[i]}", stacklevel=2)
        kept = [i for i in range(len(files)) if slots[i] >= 0]
        if not kept:
            raise VideoError(f"{self.root}: no readable video clips in its class folders")
        self.paths = [files[i][0] for i in kept]
        self.labels = np.array([files[i][1] for i in kept], np.int64)
        self._slots = slots[kept]
        self._stamps = [self._stamp(p) for p in self.paths]

    # ---- dataset protocol ------------------------------------------------------

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, Any]:
        """Clip ``index`` as (x (T, H, W, C) float32 in [0, 1], label); or for an index array the batch
        (x (n, T, H, W, C), labels (n,))."""
        if np.ndim(index) == 0:
            x, y = self.arrays([int(index)])
            return x[0], int(y[0])
        return self.arrays(index)

    def arrays(self, index: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x (N, T, H, W, C) float32 in [0, 1], labels (N,)) for ``index`` (default: every clip — all in
        memory at once; train and score through the dataset protocol instead for a large folder)."""
        idx = np.arange(len(self)) if index is None else np.asarray(index, np.int64)
        x = self._store.read(self._slots[idx]).astype(np.float32)
        x *= 1.0 / 255.0
        return x, self.labels[idx]

    def fingerprint(self) -> str:
        """What identifies these clips: the folder, the setting, every file's name, size and time."""
        key = json.dumps([str(self.root.resolve()), self.shape, [str(p) for p in self.paths], self._stamps])
        return hashlib.sha256(key.encode()).hexdigest()

    def split(self, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation indices: a seeded shuffle within each class, ``val_fraction`` of each held out."""
        if not 0 < val_fraction < 1:
            raise VideoError(f"VideoFolder.split: val_fraction must be in (0, 1), got {val_fraction}")
        rng = np.random.default_rng(seed)
        train, val = [], []
        for c in range(len(self.classes)):
            idx = rng.permutation(np.flatnonzero(self.labels == c))
            n_val = int(round(len(idx) * val_fraction))
            val += list(idx[:n_val])
            train += list(idx[n_val:])
        return np.sort(np.array(train, np.int64)), np.sort(np.array(val, np.int64))

    # ---- decoding and the cache ------------------------------------------------------

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def _open(self, paths: list[Path], workers: int | None, progress: bool) -> tuple[np.ndarray, dict[int, str]]:
        """Every file's slot (or -1) and the errors of those that could not be decoded."""
        decode_many = functools.partial(self._decode_many, workers=workers or parallel.cores(), progress=progress)
        if self.cache_dir is not None:
            key = hashlib.sha256(f"{self.root.resolve()}|{self.shape}".encode()).hexdigest()[:16]
            try:
                self._store = ClipStore.open(self.cache_dir, key, self.shape, paths, [self._stamp(p) for p in paths],
                                             decode_many)
                return self._store.slots, self._store.errors
            except OSError as e:                       # a read-only data folder: keep the clips in memory
                warnings.warn(f"{self.cache_dir}: cannot cache the decoded clips ({e.strerror or e}); holding them "
                              "in memory", stacklevel=3)
        clips = np.zeros((len(paths), *self.shape), np.uint8)
        slots, errors = np.full(len(paths), -1, np.int64), {}
        for k, got in decode_many(paths):
            if isinstance(got, str):
                errors[k] = got
            else:
                clips[k], slots[k] = got, k
        self._store = _InMemory(clips)
        return slots, errors

    def _decode_many(self, paths: list[Path], workers: int, progress: bool
                     ) -> Iterator[tuple[int, np.ndarray | str]]:
        """(position, clip or error) for each path as it is decoded: in ``workers`` processes, at most
        ``2 * workers`` clips in flight, so memory holds a few clips however large the folder."""
        jobs = [(str(p), self.frames, self.size, self.grayscale) for p in paths]
        if not jobs:
            return
        bar = tqdm(total=len(jobs), unit="clip", desc=f"decoding {self.root}", disable=not progress)
        try:
            if workers > 1 and len(jobs) > 1:
                with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                    waiting = iter(enumerate(jobs))
                    flying: dict[Future[Any], int] = {}
                    while True:
                        for k, job in itertools.islice(waiting, 2 * workers - len(flying)):
                            flying[pool.submit(_decode_or_error, job)] = k
                        if not flying:
                            break
                        done, _ = wait(flying, return_when=FIRST_COMPLETED)
                        for f in done:
                            bar.update(1)
                            yield flying.pop(f), f.result()
            else:
                for k, job in enumerate(jobs):
                    bar.update(1)
                    yield k, _decode_or_error(job)
        finally:
            bar.close()
