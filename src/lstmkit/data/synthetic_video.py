"""A synthetic video set: a digit moving in one of six ways, written as real .mp4 files.

    lstmkit video make-synthetic --out data/moving --per-class 200

Classes: ``left``, ``right``, ``up``, ``down`` (the digit slides that way),
``rotate`` (it turns clockwise in place) and ``zoom`` (it grows). Every clip draws
its digit, start position, speed, brightness and background noise from a seeded
generator. Digits come from a 5 × 7 bitmap font drawn here (no data download);
clips are encoded with FFmpeg through PyAV, so training reads them back through
the same decoder as any user's videos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .video import VideoError, _av

CLASSES = ("down", "left", "right", "rotate", "up", "zoom")

# 5 × 7 glyphs of the digits 0-9, one string of 7 rows of 5 pixels each.
_FONT = {
    0: "01110 10001 10011 10101 11001 10001 01110", 1: "00100 01100 00100 00100 00100 00100 01110",
    2: "01110 10001 00001 00010 00100 01000 11111", 3: "11110 00001 00001 01110 00001 00001 11110",
    4: "00010 00110 01010 10010 11111 00010 00010", 5: "11111 10000 11110 00001 00001 10001 01110",
    6: "00110 01000 10000 11110 10001 10001 01110", 7: "11111 00001 00010 00100 01000 01000 01000",
    8: "01110 10001 10001 01110 10001 10001 01110", 9: "01110 10001 10001 01111 00001 00010 01100",
}


def glyph(digit: int) -> np.ndarray:
    """The digit as a (7, 5) float mask."""
    return np.array([[float(c) for c in row] for row in _FONT[digit].split()])


def _draw(canvas: np.ndarray, mask: np.ndarray, cy: float, cx: float, scale: float, angle: float,
          value: np.ndarray) -> None:
    """Paint ``mask`` centred at (cy, cx), scaled and turned by ``angle`` (radians), nearest-neighbour."""
    S = canvas.shape[0]
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u = (c * dx + s * dy) / scale + mask.shape[1] / 2        # glyph coordinates of every canvas pixel
    v = (-s * dx + c * dy) / scale + mask.shape[0] / 2
    ui, vi = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (ui >= 0) & (ui < mask.shape[1]) & (vi >= 0) & (vi < mask.shape[0])
    hit = np.zeros((S, S), bool)
    hit[inside] = mask[vi[inside], ui[inside]] > 0
    canvas[hit] = value


def render_clip(motion: str, rng: np.random.Generator, frames: int = 16, size: int = 32,
                channels: int = 3) -> np.ndarray:
    """One clip of ``motion`` (one of CLASSES) as uint8 (frames, size, size, channels)."""
    mask = glyph(int(rng.integers(0, 10)))
    scale = size / 16 * rng.uniform(0.9, 1.2)               # pixels per glyph pixel
    half = 3.5 * scale                                       # half the glyph's height
    travel = rng.uniform(0.45, 0.7) * (size - 2 * half)      # how far a sliding digit moves in the clip
    colour = rng.uniform(0.6, 1.0, channels)
    noise = rng.uniform(0.03, 0.15)
    background = rng.uniform(0.0, 0.3, channels)
    centre = size / 2
    along = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
    if motion in along:
        (my, mx), lo = along[motion], half
        start = rng.uniform(lo + (travel if (my + mx) < 0 else 0), size - lo - (travel if (my + mx) > 0 else 0))
        other = rng.uniform(half, size - half)
        cy0, cx0 = (start, other) if my else (other, start)
    else:
        cy0, cx0 = centre + rng.uniform(-2, 2), centre + rng.uniform(-2, 2)
    turn = rng.uniform(0.5, 1.0) * np.pi                     # total rotation over the clip
    grow = rng.uniform(1.6, 2.2)                             # final / initial size when zooming
    out = np.empty((frames, size, size, channels), np.uint8)
    for t in range(frames):
        p = t / max(1, frames - 1)
        cy, cx, s, a = cy0, cx0, scale, 0.0
        if motion in along:
            cy, cx = cy0 + along[motion][0] * travel * p, cx0 + along[motion][1] * travel * p
        elif motion == "rotate":
            a = turn * p
        elif motion == "zoom":
            s = scale / grow * (1 + (grow - 1) * p)
        img = np.broadcast_to(background, (size, size, channels)).copy()
        _draw(img, mask, cy, cx, s, a, colour)
        img += rng.normal(0, noise, img.shape)
        out[t] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out


def write_mp4(path: str | Path, clip: np.ndarray, fps: int = 8) -> None:
    """Encode uint8 (frames, H, W, 3) as H.264 (or MPEG-4 Part 2 where FFmpeg has no H.264 encoder)."""
    av = _av()
    T, H, W, _ = clip.shape
    try:
        av.codec.Codec("libx264", "w")
        codec, opts = "libx264", {"crf": "18", "preset": "veryfast"}
    except Exception:
        codec, opts = "mpeg4", {"qscale": "3"}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for img in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_moving_set(out: str | Path, per_class: int = 200, frames: int = 16, size: int = 32, seed: int = 0,
                    progress: bool = True, write: Callable[[Path, np.ndarray], None] = write_mp4) -> list[str]:
    """Write ``per_class`` clips of each motion to ``out/<class>/clip_0000.mp4``...; returns the classes."""
    if per_class < 1 or frames < 1 or size < 16 or size % 2:
        raise VideoError(f"make-synthetic: per-class and frames must be >= 1 and size an even number >= 16, got "
                         f"per_class={per_class}, frames={frames}, size={size}")
    if write is write_mp4:
        _av()                                             # say so before any work if PyAV is missing
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise VideoError(f"{out}: exists and is not empty; choose a new folder for the synthetic set")
    rng = np.random.default_rng(seed)
    bar = tqdm(total=per_class * len(CLASSES), unit="clip", desc=f"writing {out}", disable=not progress)
    for name in CLASSES:
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write(out / name / f"clip_{i:04d}.mp4", render_clip(name, rng, frames, size))
            bar.update(1)
    bar.close()
    return list(CLASSES)
