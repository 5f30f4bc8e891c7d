"""A real data set nobody here made, shipped small: the UEA/UCI JapaneseVowels series.

Nine male speakers saying the vowel pair /ae/; each utterance is 7-29 frames of 12 LPC cepstrum
coefficients and the task is to name the speaker (Kudo, Toyama and Shimbo, 1999; UCI Machine Learning
Repository, CC BY 4.0). Built by ``scripts/build_japanese_vowels.py`` from the ``.ts`` files in aeon's
wheel; nothing is downloaded at run time.
"""

from __future__ import annotations

import numpy as np

from ._bundled import bundled_arrays


def japanese_vowels() -> dict[str, np.ndarray]:
    """The UEA split: ``x_train`` (270, 29, 12) float32 padded with zeros, ``len_train`` (270,) frames,
    ``y_train`` (270,) speakers 0-8; ``x_test`` (370, 29, 12), ``len_test``, ``y_test`` likewise."""
    return bundled_arrays("japanese_vowels.npz")
