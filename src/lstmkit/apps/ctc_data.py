"""Data folders for the recogniser, made on this machine: strips of handwritten digits (images) and connected
spoken digits (real recordings' MFCCs). Each is a folder with a transcripts table (``lstmkit.data.transcribed``)
whose split column keeps validation honest: its "val" rows are made from digit images or utterances that no
"train" row uses, and ``--half test`` folders from the other half of the images (or the test utterances)::

    lstmkit ctc make-strips --out data/strips --count 5000        # PNGs + transcripts.tsv
    lstmkit ctc make-digits --out data/digits --count 4000        # .npy (T, 13) + transcripts.tsv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.fsdd import connected_digits
from ..data.strips import digits as digit_images
from ..data.strips import make_strip, write_png
from ..data.transcribed import write_table
from ..runs import RunError

VAL_FRACTION = 0.1


def _new_folder(out: str | Path, count: int, half: str) -> Path:
    out = Path(out)
    if count < 2 or half not in ("train", "test"):
        raise RunError(f"count must be >= 2 and half 'train' or 'test', got {count}, {half!r}")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out}: not empty; choose a new folder for the data")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _split_counts(count: int, half: str) -> list[tuple[str, int]]:
    """(split, how many) of a folder: train and a tenth held out as val, or all test."""
    if half == "test":
        return [("test", count)]
    n_val = max(1, round(count * VAL_FRACTION))
    return [("train", count - n_val), ("val", n_val)]


def make_strips_folder(out: str | Path, count: int, half: str = "train", seed: int = 0) -> Path:
    """Write ``count`` strips of 3-8 handwritten digits as PNGs (20 px high) and ``out/transcripts.tsv``.
    A training folder's val rows use a tenth of its half's digit images that its train rows never show."""
    out = _new_folder(out, count, half)
    images, labels = digit_images(half)
    rng = np.random.default_rng(seed)
    cut = len(images) // 10
    pools = {"train": (images[cut:], labels[cut:]), "val": (images[:cut], labels[:cut]), "test": (images, labels)}
    files, texts, splits = [], [], []
    for split, n in _split_counts(count, half):
        for _ in range(n):
            strip, digits = make_strip(rng, *pools[split], int(rng.integers(3, 9)))
            name = f"{split}_{len(files):05d}.png"
            write_png(out / name, strip)                 # (without Pillow: a StripError that says to install it)
            files.append(name)
            texts.append("".join(map(str, digits)))
            splits.append(split)
    return write_table(out, files, texts, splits)


def make_digits_folder(out: str | Path, count: int, half: str = "train", seed: int = 0,
                       text: str | Path | None = None) -> Path:
    """Write ``count`` connected spoken-digit sequences (2-7 real FSDD utterances in a row, 13 MFCCs a frame) as
    ``.npy`` arrays (T, 13) and ``out/transcripts.tsv``; val rows from the validation utterances, test rows
    from the test utterances (``lstmkit.data.fsdd``). With ``text`` (a file of lines of digits),
    each sequence says one of its lines, at random, instead of random digits."""
    lines = _digit_lines(text) if text is not None else None
    out = _new_folder(out, count, half)
    files, texts, splits = [], [], []
    for k, (split, n) in enumerate(_split_counts(count, half)):
        seqs, digits = connected_digits(n, split, seed * 3 + k, texts=lines)
        for x, t in zip(seqs, digits):
            name = f"{split}_{len(files):05d}.npy"
            np.save(out / name, x.astype(np.float32))
            files.append(name)
            texts.append(t)
            splits.append(split)
    return write_table(out, files, texts, splits)


def _digit_lines(path: str | Path) -> list[str]:
    """The non-empty lines of a text file, each only digits; RunError naming the file and line otherwise."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: not a readable UTF-8 text file ({getattr(e, 'strerror', None) or e})") from None
    out = []
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if line and not (line.isascii() and line.isdigit()):
            raise RunError(f"{path}: line {n} is not only digits 0-9: {line[:40]!r}")
        if line:
            out.append(line)
    if not out:
        raise RunError(f"{path}: no lines of digits in it")
    return out
