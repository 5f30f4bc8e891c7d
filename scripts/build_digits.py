"""Build src/lstmkit/data/bundled/digits8x8.npz from the 8x8 handwritten digits inside scikit-learn's wheel.

    pip download --no-deps -d /tmp/skl scikit-learn==1.9.1
    python scripts/build_digits.py /tmp/skl/scikit_learn-1.9.1-*.whl

The data (1,797 images of 8x8 pixels, values 0-16, with their digit) is the UCI "Optical Recognition of
Handwritten Digits" test set as scikit-learn bundles it (sklearn/datasets/data/digits.csv.gz). It is read
from the wheel as a zip; nothing is downloaded at run time.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "src" / "lstmkit" / "data" / "bundled" / "digits8x8.npz"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))
    table = np.loadtxt(io.StringIO(raw.decode()), delimiter=",", dtype=np.int64)
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)
    labels = table[:, 64].astype(np.uint8)
    assert images.shape == (1797, 8, 8) and images.max() == 16 and set(labels) == set(range(10))
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {len(images)} digits")


if __name__ == "__main__":
    main(sys.argv[1])
