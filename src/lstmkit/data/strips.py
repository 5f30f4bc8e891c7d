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

import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from .. import checkpoint

HEIGHT = 20


class StripError(ValueError):
    """A strips file or image that cannot be used; the message names it."""


def digits(half: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 8, 8) float in [0, 1], labels (n,)) of the "train" or "test" half."""
    with resources.files("lstmkit.data").joinpath("bundled/digits8x8.npz").open("rb") as f:
        z = np.load(f, allow_pickle=False)
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


def load_strips(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """(images (N, HEIGHT, W) float32 in [0, 1], widths (N,), digits per strip) from a strips file or folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "strips.npz"
    try:
        arrays, meta = checkpoint.load(path)
        if meta.get("format") != "lstmkit-strips":
            raise StripError(f"{path}: not a strips file (make one with: lstmkit ctc make-strips)")
        ends = np.cumsum(arrays["counts"])
        digits_ = [arrays["digits"][e - c:e].tolist() for e, c in zip(ends, arrays["counts"])]
        return arrays["images"].astype(np.float32) / 255.0, arrays["widths"], digits_
    except (checkpoint.CheckpointError, KeyError) as e:
        raise StripError(f"{path}: not a readable strips file ({e})") from None


# ---- PNG, enough for grayscale strips (no imaging dependency) ---------------------------------


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a 2-D float image in [0, 1] as an 8-bit grayscale PNG."""
    a = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in a)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    head = a.shape[1].to_bytes(4, "big") + a.shape[0].to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    checkpoint.atomic_write(path, lambda f: f.write(png))


def read_image(path: str | Path) -> np.ndarray:
    """A strip image as float (H, W) in [0, 1] from a .npy array or an 8-bit, non-interlaced PNG
    (grayscale, grayscale+alpha, RGB or RGBA; colour is averaged)."""
    path = Path(path)
    if not path.is_file():
        raise StripError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise StripError(f"{path}: not a readable .npy array ({e})") from None
        if a.ndim != 2:
            raise StripError(f"{path}: expected a 2-D image array (H, W), got shape {a.shape}")
        a = a.astype(np.float32)
        return a / 255.0 if a.max(initial=0) > 1 else a
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise StripError(f"{path}: not a PNG or .npy image")
    pos, idat, head = 8, b"", None
    while pos + 8 <= len(data):
        n, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(head[9] if head else -1)
    if head is None or head[8] != 8 or channels is None or head[12] != 0:
        raise StripError(f"{path}: only 8-bit, non-interlaced PNGs are read here")
    W, H = int.from_bytes(head[0:4], "big"), int.from_bytes(head[4:8], "big")
    try:
        raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(H, 1 + W * channels)
    except (zlib.error, ValueError) as e:
        raise StripError(f"{path}: damaged PNG data ({e})") from None
    out = np.zeros((H, W * channels), np.int32)
    for y in range(H):                                     # undo the per-row filters (PNG spec, section 9)
        f, row, prev = raw[y, 0], raw[y, 1:].astype(np.int32), out[y - 1] if y else np.zeros(W * channels, np.int32)
        if f == 0 or f == 2:
            out[y] = (row + (prev if f == 2 else 0)) % 256
        else:
            for x in range(W * channels):
                a = out[y, x - channels] if x >= channels else 0
                c = prev[x - channels] if x >= channels else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + prev[x]) // 2
                else:
                    p = a + prev[x] - c
                    pred = min((abs(p - a), 0, a), (abs(p - prev[x]), 1, prev[x]), (abs(p - c), 2, c))[2]
                out[y, x] = (row[x] + pred) % 256
    pixels = out.reshape(H, W, channels).astype(np.float32) / 255.0
    colour = pixels[..., : 3 if channels >= 3 else 1]
    return colour.mean(axis=-1)
