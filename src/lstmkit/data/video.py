"""Video clips as arrays: a folder of videos, one sub-folder per class (UCF101's layout).

    ds = lk.data.VideoFolder("data/moving", frames=16, size=(32, 32))
    x, label = ds[0]                  # x (frames, H, W, C) float32 in [0, 1]; ds.classes[label]
    train, val = ds.split(0.2, seed=0)

Decoding uses PyAV (FFmpeg; ``pip install 'lstmkit[video]'``), so any container and
codec FFmpeg reads works. Each clip's ``frames`` frames are sampled evenly from
start to end (a shorter clip repeats its last frame), resized by FFmpeg's scaler
and scaled to [0, 1]. Decoded clips are cached as ``.npz`` files (in
``<root>/.lstmkit-cache`` unless a ``cache_dir`` is given), keyed by the file's
path, size and modification time, so a changed file is decoded again. The first
pass decodes in parallel worker processes, with a progress bar. A file that
cannot be decoded is skipped with a warning naming it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import checkpoint, parallel

CACHE_VERSION = 1


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


class VideoFolder:
    """Clips under ``root/<class>/``, labelled by their folder; classes in sorted order.

    Args:
        root: the folder of class folders.
        frames: frames per clip (T).
        size: (H, W) of every frame after resizing.
        grayscale: one channel instead of three.
        cache_dir: where decoded clips are kept (default ``<root>/.lstmkit-cache``); None-like "" disables.
        workers: decoding processes on the first pass (default: the usable cores).
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
        if not self.root.is_dir():
            raise VideoError(f"{self.root}: no such folder (expected a folder with one sub-folder per class)")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise VideoError(f"{self.root}: no class folders in it (expected {self.root}/<class>/<videos>)")
        files = [(p, c) for c, name in enumerate(self.classes)
                 for p in sorted((self.root / name).iterdir()) if p.is_file() and not p.name.startswith(".")]
        self.cache_dir = None if cache_dir == "" else Path(cache_dir) if cache_dir else self.root / ".lstmkit-cache"
        clips = self._load([p for p, _ in files], workers, progress)
        kept = [(p, c, x) for (p, c), x in zip(files, clips) if x is not None]
        if not kept:
            raise VideoError(f"{self.root}: no readable video clips in its class folders")
        self.paths = [p for p, _, _ in kept]
        self.labels = np.array([c for _, c, _ in kept], np.int64)
        self._clips = np.stack([x for _, _, x in kept])              # (N, T, H, W, C) uint8

    # ---- dataset protocol ------------------------------------------------------

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self._clips[i].astype(np.float32) / 255.0, int(self.labels[i])

    def arrays(self, index: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x (N, T, H, W, C) float32 in [0, 1], labels (N,)) for ``index`` (default: every clip)."""
        idx = np.arange(len(self)) if index is None else np.asarray(index)
        x = self._clips[idx].astype(np.float32)
        x *= 1.0 / 255.0
        return x, self.labels[idx]

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

    def _cache_path(self, path: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        key = f"{path.resolve()}|{self.frames}|{self.size}|{self.grayscale}"
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def _cached(self, path: Path) -> np.ndarray | None:
        cp = self._cache_path(path)
        if cp is None or not cp.is_file():
            return None
        try:
            arrays, meta = checkpoint.load(cp)
        except checkpoint.CheckpointError:
            return None
        if meta.get("version") != CACHE_VERSION or meta.get("stamp") != self._stamp(path):
            return None                                       # the video changed since it was cached
        return arrays.get("clip")

    def _store(self, path: Path, clip: np.ndarray) -> None:
        cp = self._cache_path(path)
        if cp is not None:
            try:
                checkpoint.save(cp, {"clip": clip}, {"version": CACHE_VERSION, "stamp": self._stamp(path),
                                                     "file": str(path)})
            except OSError as e:                              # a read-only data folder: decode again next time
                warnings.warn(f"{cp}: cannot cache the decoded clip ({e.strerror or e})", stacklevel=3)
                self.cache_dir = None

    def _load(self, paths: list[Path], workers: int | None, progress: bool) -> list[np.ndarray | None]:
        clips: list[np.ndarray | None] = [self._cached(p) for p in paths]
        todo = [i for i, c in enumerate(clips) if c is None]
        if not todo:
            return clips
        jobs = [(str(paths[i]), self.frames, self.size, self.grayscale) for i in todo]
        workers = workers or parallel.cores()
        bar = tqdm(total=len(jobs), unit="clip", desc=f"decoding {self.root}", disable=not progress)
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                results = []
                for r in pool.map(_decode_or_error, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                    results.append(r)
                    bar.update(1)
        else:
            results = []
            for job in jobs:
                results.append(_decode_or_error(job))
                bar.update(1)
        bar.close()
        for i, r in zip(todo, results):
            if isinstance(r, str):
                warnings.warn(f"skipping {r}", stacklevel=3)
                continue
            clips[i] = r
            self._store(paths[i], r)
        return clips
