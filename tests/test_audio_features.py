"""lk.data.audio: speech features in NumPy against python_speech_features (the oracle, float64): frames, the
power spectrum, the mel bank, log-mel energies, MFCCs under several settings, deltas; bad input named."""

from __future__ import annotations

import numpy as np
import pytest
import python_speech_features as psf

from lstmkit.data import audio

RATE = 16000


@pytest.fixture
def signal() -> np.ndarray:
    t = np.arange(int(1.37 * RATE)) / RATE                          # not a whole number of frames
    g = np.random.default_rng(0)
    return np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, len(t)) + 0.3 * g.standard_normal(len(t))


@pytest.mark.parametrize("kw", [{}, {"winlen": 0.032, "winstep": 0.012, "nfft": 1024, "numcep": 20, "nfilt": 40},
                                {"preemph": 0.0, "ceplifter": 0, "append_energy": False}, {"window": "hamming"},
                                {"window": "hann", "rate": 8000}])
def test_mfcc_equals_python_speech_features(signal, kw):
    kw = dict(kw)
    rate = kw.pop("rate", RATE)
    theirs_kw = {{"append_energy": "appendEnergy"}.get(k, k): v for k, v in kw.items() if k != "window"}
    if "window" in kw:
        theirs_kw["winfunc"] = {"hamming": np.hamming, "hann": np.hanning}[kw["window"]]
    ours, theirs = audio.mfcc(signal, rate, **kw), psf.mfcc(signal, rate, **theirs_kw)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


def test_the_steps_equal_theirs(signal):
    np.testing.assert_allclose(audio.log_mel(signal, RATE)[0], psf.logfbank(signal, RATE), rtol=0, atol=1e-10)
    np.testing.assert_allclose(audio.mel_filterbank(26, 512, RATE), psf.get_filterbanks(26, 512, RATE), atol=1e-12)
    fr = audio.frames(signal, RATE)
    theirs = psf.sigproc.framesig(psf.sigproc.preemphasis(signal, 0.97), 0.025 * RATE, 0.01 * RATE)
    np.testing.assert_allclose(fr, theirs, atol=1e-12)
    np.testing.assert_allclose(audio.power_spectrum(fr), psf.sigproc.powspec(theirs, 512), atol=1e-10)
    feats = audio.mfcc(signal, RATE)
    for n in (1, 2, 3):
        np.testing.assert_allclose(audio.deltas(feats, n), psf.delta(feats, n), atol=1e-12)
    both = audio.with_deltas(feats)
    assert both.shape == (len(feats), 39)
    z = audio.normalise(both)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-10)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="expected a 1-d signal"):
        audio.mfcc(np.zeros((2, 100)), RATE)
    with pytest.raises(ValueError, match="sample rate must be a positive integer"):
        audio.mfcc(np.zeros(100), 0)
    with pytest.raises(ValueError, match="window must be one of rect, hamming, hann"):
        audio.mfcc(np.zeros(1000), RATE, window="blackman")
    with pytest.raises(ValueError, match=r"numcep must be in \[1, nfilt\]"):
        audio.mfcc(np.zeros(1000), RATE, numcep=30)
