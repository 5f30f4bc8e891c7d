"""Strips of handwritten digits in a row, for the CTC recogniser.

The digits are the 1,797 8×8 handwritten digits scikit-learn bundles (UCI "Optical
Recognition of Handwritten Digits"), shipped here as ``bundled/digits8x8.npz``
(``scripts/build_digits.py``). A fixed shuffle splits them in two halves: training
strips use one, test strips the other, so a test strip never shows a digit image seen
in training. Each strip puts 3–8 digits side by side, each scaled to 16 px high and
12–18 px wide, with gaps of 0–5 px and up to 4 px of vertical jitter, on a 20-px-high
canvas with light noise. A strip is read as a sequence of columns (W, 20).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint
from ..ctc import pack_targets
from ._bundled import bundled_arrays

HEIGHT = 20


class StripError(ValueError):
    """A strips file or image that cannot be used; the message names it."""


def digits(half: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 8, 8) float in [0, 1], labels (n,)) of the "train" or "test" half."""
    z = bundled_arrays("digits8x8.npz")
    images, labels = z["images"].astype(np.float32) / 16.0, z["labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    part = order[: len(order) // 2] if half == "train" else order[len(order) // 2:]
    return images[part], labels[part]


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D image."""
    rows = (np.arange(h) * img.shape[0] / h).astype(int)
    cols = (np.arange(w) * img.shape[1] / w).astype(int)
    return img[rows][:, cols]


def make_strip(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, n: int
               ) -> tuple[np.ndarray, list[int]]:
    """One strip of ``n`` random digits: (image (HEIGHT, W) float32 in [0, 1], its digits)."""
    pick = rng.integers(0, len(images), n)
    parts, widths = [], rng.integers(12, 19, n)
    gaps = rng.integers(0, 6, n + 1)
    W = int(widths.sum() + gaps.sum())
    canvas = np.zeros((HEIGHT, W), np.float32)
    x = int(gaps[0])
    for k, i in enumerate(pick):
        y = int(rng.integers(0, HEIGHT - 16 + 1))
        canvas[y:y + 16, x:x + widths[k]] = np.maximum(canvas[y:y + 16, x:x + widths[k]],
                                                      _resize(images[i], 16, int(widths[k])))
        parts.append(int(labels[i]))
        x += int(widths[k] + gaps[k + 1])
    canvas += rng.normal(0, 0.05, canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 1), parts


def make_strips(count: int, half: str = "train", seed: int = 0, min_digits: int = 3, max_digits: int = 8
                ) -> tuple[list[np.ndarray], list[list[int]]]:
    """``count`` strips from the given half of the digit images."""
    images, labels = digits(half)
    rng = np.random.default_rng(seed)
    out = [make_strip(rng, images, labels, int(rng.integers(min_digits, max_digits + 1))) for _ in range(count)]
    return [s for s, _ in out], [d for _, d in out]


def save_strips(path: str | Path, strips: list[np.ndarray], digits_: list[list[int]], half: str) -> None:
    """One ``strips.npz``: images padded to the widest (uint8), widths, digits concatenated, their counts."""
    W = max(s.shape[1] for s in strips)
    images = np.zeros((len(strips), HEIGHT, W), np.uint8)
    for i, s in enumerate(strips):
        images[i, :, :s.shape[1]] = np.round(s * 255)
    checkpoint.save(path, {"images": images, "widths": np.array([s.shape[1] for s in strips]),
                           "digits": np.array([d for ds in digits_ for d in ds], np.int64),
                           "counts": np.array([len(ds) for ds in digits_])}, {"format": "lstmkit-strips", "half": half})


class StripSet:
    """Strips as a dataset: the uint8 images are kept, and a batch ``(columns (n, W, HEIGHT) float32 in [0, 1],
    packed CTC targets (see ``lstmkit.ctc.pack_targets``), widths (n,))`` is made when it is drawn."""

    def __init__(self, images: np.ndarray, widths: np.ndarray, digits: list[list[int]]) -> None:
        self.images, self.widths, self.digits = images, np.asarray(widths), digits
        S = max(len(d) for d in digits)
        targets = np.zeros((len(digits), S), np.int64)
        for i, d in enumerate(digits):
            targets[i, :len(d)] = np.asarray(d) + 1              # class d + 1; 0 is the blank
        self.packed = pack_targets(self.widths, targets, np.array([len(d) for d in digits]))

    @classmethod
    def load(cls, path: str | Path) -> StripSet:
        return cls(*_read_strips(path))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = self.images[index].transpose(0, 2, 1).astype(np.float32)
        x *= 1.0 / 255.0
        return x, self.packed[index], self.widths[index]


def load_strips(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """(images (N, HEIGHT, W) float32 in [0, 1], widths (N,), digits per strip) from a strips file or folder."""
    images, widths, digits = _read_strips(path)
    return images.astype(np.float32) / 255.0, widths, digits


def _read_strips(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """(images (N, HEIGHT, W) uint8, widths (N,), digits per strip) from a strips file or folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "strips.npz"
    try:
        arrays, meta = checkpoint.load(path)
        if meta.get("format") != "lstmkit-strips":
            raise StripError(f"{path}: not a strips file (make one with: lstmkit ctc make-strips)")
        ends = np.cumsum(arrays["counts"])
        digits_ = [arrays["digits"][e - c:e].tolist() for e, c in zip(ends, arrays["counts"])]
        return arrays["images"], arrays["widths"], digits_
    except (checkpoint.CheckpointError, KeyError) as e:
        raise StripError(f"{path}: not a readable strips file ({e})") from None


# ---- image files, through Pillow (the 'ctc' extra) -------------------------------------------


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise StripError("reading and writing images needs Pillow: pip install 'lstmkit[ctc]' (or give a .npy "
                         "array)") from None
    return Image


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a 2-D float image in [0, 1] as an 8-bit grayscale PNG, atomically."""
    a = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    Image = _pillow()
    checkpoint.atomic_write(path, lambda f: Image.fromarray(a, mode="L").save(f, format="PNG"))


def read_array(path: str | Path) -> np.ndarray:
    """The numeric array of a ``.npy`` file (read without pickle); StripError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise StripError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            return checkpoint.read_npy(f, path.name, path.stat().st_size)
    except (ValueError, OSError) as e:
        raise StripError(f"{path}: not a readable .npy array of numbers ({e})") from None


def read_image(path: str | Path) -> np.ndarray:
    """A strip image as float (H, W) in [0, 1], light digits on a dark ground, from a .npy array or any
    image file Pillow reads (PNG of any bit depth, palette or interlacing, JPEG, TIFF, BMP, ...; colour
    becomes luminance, the first frame of a multi-frame file is read). A scan with dark ink on a light
    ground is inverted."""
    path = Path(path)
    if not path.is_file():
        raise StripError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        a = read_array(path)
        if a.ndim != 2:
            raise StripError(f"{path}: expected a 2-D image array (H, W), got shape {a.shape}")
        a = a.astype(np.float32)
        return a / 255.0 if a.max(initial=0) > 1 else a
    Image = _pillow()
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I"):                # 16- or 32-bit grayscale
                raw = np.asarray(im, np.float64)
                a = raw / (65535.0 if im.mode.startswith("I;16") or raw.max(initial=0) > 255 else 255.0)
            else:
                a = np.asarray(im.convert("L"), np.float64) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError) as e:       # (UnidentifiedImageError is an OSError)
        raise StripError(f"{path}: not a readable image or .npy array ({e})") from None
    if a.ndim != 2 or not a.size:
        raise StripError(f"{path}: expected a 2-D image, got shape {a.shape}")
    a = a.astype(np.float32)
    return 1.0 - a if np.median(a) > 0.5 else a


def to_height(image: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    """``image`` (H, W) scaled to ``height`` rows, its width in proportion (Pillow's Lanczos filter)."""
    if image.shape[0] == height:
        return image
    Image = _pillow()
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    scaled = Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(scaled, np.float32), 0, 1)
