r"""Speech features in NumPy: what a recogniser reads from a waveform (issue 33). Each step, for a signal x at
``rate`` Hz:

1. pre-emphasis  y[0] = x[0], y[n] = x[n] − a·x[n−1]  (a = 0.97: lifts the high frequencies speech damps);
2. framing       frames of ``winlen`` seconds every ``winstep`` seconds (lengths rounded half up to samples), the
                 last one zero-padded; each multiplied by a window (rectangular by default, or "hamming", "hann");
3. power         P = |rfft(frame, nfft)|² / nfft per frame (nfft / 2 + 1 bins);
4. mel bank      ``nfilt`` triangles spaced evenly on the mel scale, m = 2595·log10(1 + f / 700), between
                 ``lowfreq`` and ``highfreq``, on the FFT bins floor((nfft + 1)·f / rate); energies E = P·Fᵀ;
5. log-mel       log E (zeros floored at the float epsilon);
6. MFCC          the orthonormal DCT-II of the log-mel energies, first ``numcep`` kept, liftered by
                 1 + (L / 2)·sin(π n / L) (L = 22), the first replaced by the log frame energy;
7. deltas        d_t = Σ_{n=1..N} n (c_{t+n} − c_{t−n}) / (2 Σ n²), the edges repeated;
8. normalisation each coefficient to zero mean and unit variance over the utterance.

The conventions are those of ``python_speech_features`` (the tests' oracle: equal to 1e-10 in float64).

    feats = lk.data.audio.mfcc(signal, 16000)                       # (frames, 13)
    feats = lk.data.audio.with_deltas(feats)                         # (frames, 39): c, Δc, ΔΔc
"""

from __future__ import annotations

import numpy as np

_EPS = np.finfo(float).eps
_WINDOWS = {"rect": np.ones, "hamming": np.hamming, "hann": np.hanning}


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _check(signal: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or not len(x):
        raise ValueError(f"audio: expected a 1-d signal of samples, got shape {x.shape}")
    if not isinstance(rate, (int, np.integer)) or rate < 1:
        raise ValueError(f"audio: the sample rate must be a positive integer (Hz), got {rate!r}")
    return x


def frames(signal: np.ndarray, rate: int, winlen: float = 0.025, winstep: float = 0.01, preemph: float = 0.97,
           window: str = "rect") -> np.ndarray:
    """Pre-emphasised, windowed frames (n_frames, frame_len) of a 1-d signal (steps 1–2)."""
    x = _check(signal, rate)
    if window not in _WINDOWS:
        raise ValueError(f"audio: window must be one of {', '.join(_WINDOWS)}, got {window!r}")
    x = np.append(x[0], x[1:] - preemph * x[:-1])
    flen, fstep = _round_half_up(winlen * rate), _round_half_up(winstep * rate)
    n = 1 if len(x) <= flen else 1 + int(np.ceil((len(x) - flen) / fstep))
    padded = np.concatenate([x, np.zeros((n - 1) * fstep + flen - len(x))])
    idx = np.arange(flen)[None, :] + fstep * np.arange(n)[:, None]
    return padded[idx] * _WINDOWS[window](flen)[None, :]


def power_spectrum(frames_: np.ndarray, nfft: int = 512) -> np.ndarray:
    """|rfft|² / nfft of each frame (n_frames, nfft // 2 + 1) (step 3; frames longer than nfft are cut)."""
    return np.square(np.abs(np.fft.rfft(frames_, nfft))) / nfft


def mel_filterbank(nfilt: int = 26, nfft: int = 512, rate: int = 16000, lowfreq: float = 0.0,
                   highfreq: float | None = None) -> np.ndarray:
    """The triangular mel filters (nfilt, nfft // 2 + 1) (step 4)."""
    highfreq = highfreq or rate / 2
    if not 0 <= lowfreq < highfreq <= rate / 2:
        raise ValueError(f"audio: need 0 <= lowfreq < highfreq <= rate / 2 = {rate / 2}, got {lowfreq}, {highfreq}")
    mels = np.linspace(2595 * np.log10(1 + lowfreq / 700), 2595 * np.log10(1 + highfreq / 700), nfilt + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mels / 2595) - 1)) / rate).astype(int)
    bank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        bank[j, lo:mid] = (np.arange(lo, mid) - lo) / (mid - lo)
        bank[j, mid:hi] = (hi - np.arange(mid, hi)) / (hi - mid)
    return bank


def log_mel(signal: np.ndarray, rate: int, nfilt: int = 26, nfft: int = 512, **framing: float | str
            ) -> tuple[np.ndarray, np.ndarray]:
    """(log mel energies (n_frames, nfilt), log frame energies (n_frames,)) (steps 1–5)."""
    power = power_spectrum(frames(signal, rate, **framing), nfft)          # type: ignore[arg-type]
    energy = power.sum(1)
    mel = power @ mel_filterbank(nfilt, nfft, rate).T
    return np.log(np.where(mel == 0, _EPS, mel)), np.log(np.where(energy == 0, _EPS, energy))


def _dct_ortho(n: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the orthonormal DCT-II matrix of size n."""
    k, i = np.arange(keep)[:, None], np.arange(n)[None, :]
    basis = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2 / n)
    basis[0] /= np.sqrt(2)
    return basis


def mfcc(signal: np.ndarray, rate: int, numcep: int = 13, nfilt: int = 26, nfft: int = 512, ceplifter: int = 22,
         append_energy: bool = True, **framing: float | str) -> np.ndarray:
    """MFCCs (n_frames, numcep) of a 1-d signal (steps 1–6); ``framing``: winlen, winstep, preemph, window."""
    if not 1 <= numcep <= nfilt:
        raise ValueError(f"audio: numcep must be in [1, nfilt] = [1, {nfilt}], got {numcep}")
    logmel, log_energy = log_mel(signal, rate, nfilt, nfft, **framing)
    cep = logmel @ _dct_ortho(nfilt, numcep).T
    if ceplifter > 0:
        cep *= 1 + (ceplifter / 2) * np.sin(np.pi * np.arange(numcep) / ceplifter)
    if append_energy:
        cep[:, 0] = log_energy
    return cep


def deltas(feats: np.ndarray, n: int = 2) -> np.ndarray:
    """Regression deltas of (n_frames, d) features over ±n frames, the edges repeated (step 7)."""
    if n < 1:
        raise ValueError(f"audio: the delta window must be >= 1 frame, got {n}")
    padded = np.pad(feats, ((n, n), (0, 0)), mode="edge")
    T = len(feats)
    out = sum(k * (padded[n + k:n + k + T] - padded[n - k:n - k + T]) for k in range(1, n + 1))
    return out / (2 * sum(k * k for k in range(1, n + 1)))


def with_deltas(feats: np.ndarray, n: int = 2) -> np.ndarray:
    """Features, their deltas and delta-deltas side by side: (n_frames, 3d)."""
    d = deltas(feats, n)
    return np.concatenate([feats, d, deltas(d, n)], axis=1)


def normalise(feats: np.ndarray) -> np.ndarray:
    """Each coefficient to zero mean and unit variance over the utterance (step 8; constant ones to zero)."""
    std = feats.std(0)
    return (feats - feats.mean(0)) / np.where(std == 0, 1, std)
