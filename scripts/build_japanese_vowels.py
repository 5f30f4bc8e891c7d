"""Build src/lstmkit/data/bundled/japanese_vowels.npz from the UEA/UCI JapaneseVowels series in aeon's wheel.

    pip download --no-deps -d /tmp/aeon aeon==1.6.0
    python scripts/build_japanese_vowels.py /tmp/aeon/aeon-1.6.0-py3-none-any.whl

Nine male speakers saying the vowel pair /ae/; each utterance is a series of 7-29 frames of 12 LPC cepstrum
coefficients, and the task is the speaker (M. Kudo, J. Toyama, M. Shimbo, Pattern Recognition Letters 20,
1999; UCI Machine Learning Repository, CC BY 4.0). The UEA archive's split: 270 training series (30 per
speaker), 370 test series. The files are aeon's ``.ts`` text files
(``aeon/datasets/data/JapaneseVowels/JapaneseVowels_{TRAIN,TEST}.ts``), read from the wheel as a zip;
nothing is downloaded at run time. Stored padded with zeros to 29 frames, float32, with the lengths.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "src" / "lstmkit" / "data" / "bundled" / "japanese_vowels.npz"
MEMBER = "aeon/datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"


def read_ts(text: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Series (T, 12) and labels 0..8 from a multivariate ``.ts`` file (dimensions split by ':')."""
    series, labels, data = [], [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            data = True
            continue
        if not data:
            continue
        *dims, label = line.split(":")
        series.append(np.array([[float(v) for v in d.split(",")] for d in dims], np.float32).T)
        labels.append(int(label) - 1)
    return series, np.array(labels, np.int64)


def main(wheel: str) -> None:
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for part in ("TRAIN", "TEST"):
            series, labels = read_ts(z.read(MEMBER.format(part)).decode("utf-8"))
            lengths = np.array([len(s) for s in series], np.int64)
            x = np.zeros((len(series), 29, 12), np.float32)
            for i, s in enumerate(series):
                x[i, :len(s)] = s
            out[f"x_{part.lower()}"], out[f"len_{part.lower()}"], out[f"y_{part.lower()}"] = x, lengths, labels
    assert out["x_train"].shape == (270, 29, 12) and out["x_test"].shape == (370, 29, 12)
    assert out["len_train"].min() >= 7 and out["len_test"].max() <= 29 and set(out["y_train"]) == set(range(9))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main(sys.argv[1])
