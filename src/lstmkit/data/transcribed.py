"""Transcribed examples for a CTC recogniser: a folder with a transcripts table and the files it names::

    DATA/transcripts.tsv          file<TAB>text[<TAB>split]   (or transcripts.csv, comma-separated)
    DATA/a.png  DATA/b.flac  ...  images, audio files or feature arrays (.npy, (T, F)), all of one kind

The table's first row names its columns: the file (``file``, ``path``, ``filename``, ``audio`` or ``image``),
its transcript (``text``, ``sentence``, ``transcript`` or ``transcription``) and, optionally, ``split``
(``train``, ``val`` or ``test``: which examples validate a run — give it when examples share a source, a
speaker or a page, so that validation does not flatter). Paths are relative to the table's folder (or its
``clips/`` folder, Common Voice's layout). A table file can also be given instead of the folder.

Every file becomes a sequence of frames (T, F): an image (Pillow: any size, dark ink on light paper or the
reverse) is scaled to ``height`` rows and read column by column (F = height); an audio file (PyAV: WAV,
FLAC, MP3, OGG, ...) is decoded to mono at the setting's rate and becomes speech features
(``lstmkit.data.speech.SpeechFeatures``: 13 MFCCs and their deltas, F = 39); an ``.npy`` array (T, F) is
read as it is. Decoded images and audio are cached once per file and setting in ``DATA/.lstmkit-cache``
(only new or changed files are read again). The alphabet is the characters of the transcripts, sorted;
class 0 is CTC's blank and character i of the alphabet is class i + 1. A file that cannot be used — it is
missing or unreadable, its transcript is empty or has a character outside a given alphabet, or it is too
short for its transcript — is left out with one warning line naming it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import checkpoint, parallel
from ..ctc import pack_targets
from .dataset import holdout
from .speech import AudioError, SpeechFeatures, read_audio
from .strips import StripError, read_array, read_image, to_height

TABLES = ("transcripts.tsv", "transcripts.csv")
FILE_COLUMNS = ("file", "path", "filename", "audio", "image")
TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription")
SPLITS = ("train", "val", "test")
KINDS = {**dict.fromkeys((".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"),
                         "image"),
         **dict.fromkeys((".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm"), "audio"),
         ".npy": "array"}
CACHE_VERSION = 1
PER_WORKER = 32                                # files to read before another process is worth starting


class TranscriptError(ValueError):
    """A transcripts table, or a data folder, that cannot be used; the message names it."""


def find_table(data: str | Path) -> Path:
    """The transcripts table of a data folder (or the table file itself)."""
    data = Path(data)
    if data.is_file():
        return data
    for name in TABLES:
        if (data / name).is_file():
            return data / name
    if not data.exists():
        raise TranscriptError(f"{data}: no such folder")
    raise TranscriptError(f"{data}: no transcripts table in it (expected {' or '.join(TABLES)} with the columns "
                          "file and text)")


def read_table(data: str | Path) -> tuple[list[Path], list[str], list[str] | None]:
    """(files, transcripts, splits or None) of a data folder's table; paths resolved against its folder."""
    table = find_table(data)
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TranscriptError(f"{table}: not a readable UTF-8 table ({e})") from None
    rows = list(csv.reader(io.StringIO(text), delimiter="," if table.suffix.lower() == ".csv" else "\t"))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise TranscriptError(f"{table}: empty (expected a header row naming the columns file and text)")
    head = [c.strip().lower() for c in rows[0]]
    col = {}
    for key, names in (("file", FILE_COLUMNS), ("text", TEXT_COLUMNS), ("split", ("split",))):
        found = [head.index(n) for n in names if n in head]
        if found:
            col[key] = found[0]
        elif key != "split":
            raise TranscriptError(f"{table}: its first row has no {key} column (expected one of "
                                  f"{', '.join(names)}; it has {', '.join(head) or 'nothing'})")
    files, texts, splits = [], [], []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) <= max(col.values()):
            raise TranscriptError(f"{table}: line {n} has {len(r)} columns, expected {len(head)}")
        name = r[col["file"]].strip()
        path = table.parent / name
        if not path.exists() and (table.parent / "clips" / name).exists():
            path = table.parent / "clips" / name
        files.append(path)
        texts.append(r[col["text"]].strip())
        if "split" in col:
            split = r[col["split"]].strip().lower()
            if split not in SPLITS:
                raise TranscriptError(f"{table}: line {n}: split must be one of {', '.join(SPLITS)}, got {split!r}")
            splits.append(split)
    if not files:
        raise TranscriptError(f"{table}: names no files")
    return files, texts, splits if "split" in col else None


def write_table(folder: str | Path, files: list[str], texts: list[str], splits: list[str] | None = None) -> Path:
    """Write ``folder/transcripts.tsv`` (atomically): one row per file, with its transcript and split."""
    out = io.StringIO()
    w = csv.writer(out, delimiter="\t", lineterminator="\n")
    w.writerow(["file", "text"] + (["split"] if splits is not None else []))
    for i, (f, t) in enumerate(zip(files, texts)):
        w.writerow([f, t] + ([splits[i]] if splits is not None else []))
    path = Path(folder) / TABLES[0]
    checkpoint.atomic_write(path, lambda f: f.write(out.getvalue().encode("utf-8")))
    return path


def kind_of(files: list[Path]) -> str:
    """"image", "audio" or "array": what the files are, by their suffixes (one kind a folder)."""
    kinds = {}
    for f in files:
        k = KINDS.get(f.suffix.lower())
        if k is None:
            raise TranscriptError(f"{f}: not an image, audio file or .npy array by its suffix (expected one of "
                                  f"{' '.join(sorted(KINDS))})")
        kinds.setdefault(k, f)
    if len(kinds) > 1:
        a, b = list(kinds.items())[:2]
        raise TranscriptError(f"one kind of file a data folder: {a[1]} is {a[0]} but {b[1]} is {b[0]}")
    return next(iter(kinds))


def read_frames(path: Path, kind: str, height: int = 32, speech: SpeechFeatures | None = None) -> np.ndarray:
    """One file as frames (T, F) float32: image columns, speech features or the array itself."""
    if kind == "image":
        img = read_image(path)
        return np.ascontiguousarray(to_height(img, height).T, np.float32)
    if kind == "audio":
        setting = speech or SpeechFeatures()
        return setting.extract(read_audio(path, setting.rate)).astype(np.float32)
    a = read_array(path)
    if a.ndim != 2 or not a.size or not np.isfinite(a).all():
        raise TranscriptError(f"{path}: expected a 2-D array of finite frames (T, F), got shape {a.shape}")
    return a.astype(np.float32)


def ctc_frames_needed(labels: list[int]) -> int:
    """The fewest frames CTC can align ``labels`` to: one per label, one more between repeated labels."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


class Transcribed:
    """A data folder as a dataset for ``fit`` with ``lk.CTCLoss``: a batch is (frames (n, T, F) float32,
    normalised and zero-padded to the batch's longest, packed targets (``lstmkit.ctc.pack_targets``),
    lengths (n,)).

    Args:
        data: the folder (or its table file).
        alphabet: the characters to recognise (a run's); default: every character of the transcripts.
        height: rows an image is scaled to (images only).
        speech: the audio feature setting (audio only; default ``SpeechFeatures()``).
        cache: keep decoded images and audio in ``DATA/.lstmkit-cache``.
        progress: a progress bar while files are read.
        training: leave out what CTC cannot learn from (characters outside ``alphabet``, files too short
            for their transcript); False keeps them, to be read and scored (their targets are not usable).
    """

    def __init__(self, data: str | Path, alphabet: str | None = None, height: int = 32,
                 speech: SpeechFeatures | None = None, cache: bool = True, progress: bool = True,
                 training: bool = True) -> None:
        self.table = find_table(data)
        files, texts, splits = read_table(self.table)
        self.kind = kind_of(files)
        self.height, self.speech = int(height), (speech or SpeechFeatures()) if self.kind == "audio" else None
        if self.kind == "image" and not 4 <= self.height <= 1024:
            raise TranscriptError(f"Transcribed: height must be in [4, 1024] rows, got {height}")
        frames, errors = self._read(files, cache, progress)
        self.alphabet = alphabet if alphabet is not None else "".join(sorted(set("".join(texts))))
        index = {c: i + 1 for i, c in enumerate(self.alphabet)}
        keep, kept_labels = [], []
        for i, (f, t) in enumerate(zip(files, texts)):
            if i in errors:
                continue
            bad = sorted(set(t) - index.keys())
            labels = [index.get(c, 0) for c in t]
            if not t:
                errors[i] = f"{f}: its transcript is empty"
            elif bad and training:
                errors[i] = f"{f}: its transcript has {''.join(bad)!r}, not in the alphabet {self.alphabet!r}"
            elif training and len(frames[i]) < ctc_frames_needed(labels):
                errors[i] = (f"{f}: {len(frames[i])} frames are too few for the {len(t)} characters of its "
                             f"transcript (CTC needs {ctc_frames_needed(labels)})")
            else:
                keep.append(i)
                kept_labels.append(labels)
        for i in sorted(errors):
            warnings.warn(f"skipping {errors[i]}", stacklevel=2)
        if not keep:
            raise TranscriptError(f"{self.table}: none of its {len(files)} files can be used")
        self.files = [files[i] for i in keep]
        self.texts = [texts[i] for i in keep]
        self.splits = [splits[i] for i in keep] if splits is not None else None
        self.frames = [frames[i] for i in keep]
        self.lengths = np.array([len(f) for f in self.frames], np.int64)
        self.size = int(self.frames[0].shape[1])
        for f, x in zip(self.files, self.frames):
            if x.shape[1] != self.size:
                raise TranscriptError(f"{f}: {x.shape[1]} features a frame, but {self.files[0]} has {self.size}")
        S = max(len(t) for t in self.texts)
        targets = np.zeros((len(keep), S), np.int64)
        for i, labels in enumerate(kept_labels):
            targets[i, :len(labels)] = labels
        self.packed = pack_targets(self.lengths, targets, np.array([len(t) for t in self.texts]))
        self.mean = np.zeros(self.size, np.float32)
        self.std = np.ones(self.size, np.float32)

    # ---- dataset protocol ------------------------------------------------------

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.atleast_1d(np.asarray(index, np.int64))
        lengths = self.lengths[idx]
        x = np.zeros((len(idx), int(lengths.max()), self.size), np.float32)
        for k, i in enumerate(idx):
            x[k, :lengths[k]] = (self.frames[i] - self.mean) / self.std
        return x, self.packed[idx], lengths

    def fingerprint(self) -> str:
        """What identifies these examples: the table, every file and transcript, the setting."""
        key = json.dumps([str(self.table.resolve()), self.kind, self.height, str(self.speech), self.alphabet,
                          [str(f) for f in self.files], self.texts, self.lengths.tolist()])
        return hashlib.sha256(key.encode()).hexdigest()

    # ---- splits and normalisation --------------------------------------------------

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
        """(training, validation indices, how): the table's split column where it has one (its "val" rows;
        "test" rows are in neither), else a seeded ``val_fraction`` of the examples."""
        if self.splits is not None:
            s = np.array(self.splits)
            tr, va = np.flatnonzero(s == "train"), np.flatnonzero(s == "val")
            if len(tr) and len(va):
                return tr, va, "the table's split column"
            raise TranscriptError(f"{self.table}: its split column needs train and val rows (has "
                                  f"{len(tr)} train, {len(va)} val)")
        if not 0 < val_fraction < 1:
            raise TranscriptError(f"Transcribed.split: val_fraction must be in (0, 1), got {val_fraction}")
        tr, va = holdout(len(self), val_fraction, seed, self.table, "examples", TranscriptError)
        return tr, va, f"a random {val_fraction:.0%} of the examples"

    def statistics(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) (F,) of every frame of the examples ``index`` (constant features: 1)."""
        allx = np.concatenate([self.frames[i] for i in np.asarray(index, np.int64)]).astype(np.float64)
        std = allx.std(0)
        return allx.mean(0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def normalise(self, mean: Any, std: Any) -> None:
        """Batches from now on are (frames - mean) / std."""
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if self.mean.shape != (self.size,) or self.std.shape != (self.size,) or (self.std <= 0).any():
            raise TranscriptError(f"Transcribed.normalise: expected a mean and a positive deviation of "
                                  f"{self.size} features, got shapes {self.mean.shape}, {self.std.shape}")

    # ---- reading and the cache -------------------------------------------------------

    def _setting(self) -> str:
        return json.dumps([CACHE_VERSION, self.kind, self.height if self.kind == "image" else None,
                           self.speech.as_dict() if self.speech else None])

    def _read(self, files: list[Path], cache: bool, progress: bool) -> tuple[list[np.ndarray], dict[int, str]]:
        """Every file's frames (an empty array where it failed) and the errors, through the cache."""
        cache_path = None
        if cache and self.kind != "array":
            key = hashlib.sha256(self._setting().encode()).hexdigest()[:16]
            cache_path = self.table.parent / ".lstmkit-cache" / f"frames-{key}.npz"
        old = _load_cache(cache_path)
        names = [_name(f, self.table.parent) for f in files]
        stale = set(old) != set(names)
        cached = [old.get(n) for n in names]
        stamps = [_stamp(f) for f in files]
        todo = [i for i, (hit, stamp) in enumerate(zip(cached, stamps)) if hit is None or hit[0] != stamp]
        got = dict(zip(todo, self._read_many([files[i] for i in todo], progress)))
        frames: list[np.ndarray] = []
        errors: dict[int, str] = {}
        for i in range(len(files)):
            one = got[i] if i in got else cached[i][1]          # type: ignore[index]
            if isinstance(one, str):
                errors[i] = one
                frames.append(np.zeros((0, 1), np.float32))
            else:
                frames.append(one)
        if cache_path is not None and (todo or stale):
            _save_cache(cache_path, stamps, names, frames, errors)
        return frames, errors

    def _read_many(self, files: list[Path], progress: bool) -> list[np.ndarray | str]:
        """Each file's frames or error message, in order: in a pool of processes (one per core) when there are
        many, so a large folder's first reading takes all the cores."""
        jobs = [(f, self.kind, self.height, self.speech) for f in files]
        bar = {"total": len(jobs), "unit": "file", "desc": f"reading {self.table.parent}",
               "disable": not progress or len(jobs) < 50}
        workers = min(parallel.cores(), len(jobs) // PER_WORKER)
        if workers < 2:
            return [_read_or_error(j) for j in tqdm(jobs, **bar)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(tqdm(pool.map(_read_or_error, jobs, chunksize=8), **bar))


def _read_or_error(job: tuple[Path, str, int, SpeechFeatures | None]) -> np.ndarray | str:
    try:
        return read_frames(*job)
    except (TranscriptError, StripError, AudioError) as e:
        return str(e)


def _name(path: Path, root: Path) -> str:
    """A file's key in the cache: its path from the table's folder (the folder may move or be named otherwise)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _stamp(path: Path) -> list[int]:
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [-1, -1]


def _load_cache(path: Path | None) -> dict[str, tuple[list[int], np.ndarray | str]]:
    """file -> (stamp, frames or error) of a cache file; empty when there is none or it cannot be read."""
    if path is None or not path.is_file():
        return {}
    try:
        arrays, meta = checkpoint.load(path)
        ends = np.cumsum(arrays["lengths"])
        out: dict[str, tuple[list[int], np.ndarray | str]] = {}
        for k, e in enumerate(meta["files"]):
            n = int(arrays["lengths"][k])
            out[e["file"]] = (e["stamp"], e["error"] if e["error"] else arrays["frames"][ends[k] - n:ends[k]])
        return out
    except (checkpoint.CheckpointError, KeyError, TypeError, ValueError):
        return {}


def _save_cache(path: Path, stamps: list[list[int]], names: list[str], frames: list[np.ndarray],
                errors: dict[int, str]) -> None:
    ok = [f for f in frames if f.shape[0]]
    width = ok[0].shape[1] if ok else 1
    body = np.concatenate([f if f.shape[0] else np.zeros((0, width), np.float32) for f in frames]) \
        if ok else np.zeros((0, width), np.float32)
    meta = {"format": "lstmkit-frames", "files": [{"file": n, "stamp": st, "error": errors.get(i)}
                                                  for i, (st, n) in enumerate(zip(stamps, names))]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if any(f.shape[0] and f.shape[1] != width for f in frames):
            return                             # features of several widths: an error the caller reports
        checkpoint.save(path, {"frames": body, "lengths": np.array([len(f) for f in frames], np.int64)}, meta)
    except OSError as e:                       # a read-only data folder: nothing is cached
        warnings.warn(f"{path.parent}: cannot cache the decoded files ({e.strerror or e})", stacklevel=3)
