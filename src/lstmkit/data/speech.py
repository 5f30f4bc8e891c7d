"""From an audio file to the frames a recogniser reads: decoding (PyAV), one feature setting, and the same
features a chunk at a time for streaming::

    setting = SpeechFeatures()                     # 16 kHz mono, 13 MFCCs (Hamming window) + deltas: 39 a frame
    feats = setting.extract(read_audio("a.flac"))  # (frames, 39) float64
    stream = setting.stream()
    parts = [stream.push(chunk) for chunk in chunks] + [stream.end()]   # np.concatenate(parts) == feats

The features are ``lstmkit.data.audio``'s (equal to python_speech_features); normalisation is left to the caller
(a recogniser uses one mean and deviation from its training set, so a stream is normalised as a file is).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import audio


class AudioError(ValueError):
    """An audio file that cannot be read, or a bad feature setting; the message names it."""


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise AudioError("reading audio files needs PyAV: pip install 'lstmkit[video]' (or give feature arrays "
                         "as .npy files)") from None
    return av


def read_audio(path: str | Path, rate: int = 16000) -> np.ndarray:
    """The samples of an audio file (WAV, FLAC, MP3, OGG/Vorbis or Opus, M4A, ... : what FFmpeg decodes) as
    float32 in [-1, 1], the channels averaged to mono, resampled to ``rate`` Hz: shape (samples,)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    av = _av()
    parts: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: has no audio stream")
            resampler = av.AudioResampler(format="fltp", rate=rate)      # planar: (channels, samples)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().mean(axis=0))          # mono: the channels' mean
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().mean(axis=0))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        if isinstance(e, AudioError):
            raise
        raise AudioError(f"{path}: not a readable audio file ({e})") from None
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if not len(samples):
        raise AudioError(f"{path}: holds no audio samples")
    return samples.astype(np.float32, copy=False)


@dataclass(frozen=True)
class SpeechFeatures:
    """One feature setting: ``rate`` Hz; frames of ``winlen`` s every ``winstep`` s under ``window``;
    ``numcep`` MFCCs from ``nfilt`` mel filters (or, with ``numcep=0``, the ``nfilt`` log-mel energies); and
    with ``deltas`` their deltas and delta-deltas (±2 frames)."""

    rate: int = 16000
    winlen: float = 0.025
    winstep: float = 0.01
    window: str = "hamming"
    nfilt: int = 26
    numcep: int = 13
    deltas: bool = True

    def __post_init__(self) -> None:
        if self.rate < 1000 or not 0 < self.winstep <= self.winlen or self.window not in ("rect", "hamming", "hann") \
                or not 0 <= self.numcep <= self.nfilt or self.nfilt < 1:
            raise AudioError(f"SpeechFeatures: a positive rate (>= 1000 Hz), 0 < winstep <= winlen, a window of "
                             f"rect/hamming/hann and 0 <= numcep <= nfilt expected, got {self}")

    @property
    def size(self) -> int:
        """Features a frame."""
        return (self.numcep or self.nfilt) * (3 if self.deltas else 1)

    @property
    def nfft(self) -> int:
        """The FFT length: the frame's samples rounded up to a power of two."""
        return 1 << max(0, math.ceil(math.log2(self.frame_len)))

    @property
    def frame_len(self) -> int:
        return int(np.floor(self.winlen * self.rate + 0.5))

    @property
    def frame_step(self) -> int:
        return int(np.floor(self.winstep * self.rate + 0.5))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def base(self, samples: np.ndarray, preemph: float = 0.97) -> np.ndarray:
        """The per-frame features (frames, numcep or nfilt) of a whole signal, without deltas (``preemph`` 0:
        a signal already pre-emphasised)."""
        framing = {"winlen": self.winlen, "winstep": self.winstep, "window": self.window, "preemph": preemph}
        if self.numcep:
            return audio.mfcc(samples, self.rate, self.numcep, self.nfilt, self.nfft, **framing)
        return audio.log_mel(samples, self.rate, self.nfilt, self.nfft, **framing)[0]

    def extract(self, samples: np.ndarray) -> np.ndarray:
        """The features (frames, size) float64 of a whole signal (samples,) at ``rate``."""
        feats = self.base(samples)
        return audio.with_deltas(feats) if self.deltas else feats

    def stream(self) -> FeatureStream:
        """A new stream of this setting's features, fed a chunk of samples at a time."""
        return FeatureStream(self)


class FeatureStream:
    """Features of a signal that arrives a chunk at a time; the chunks' outputs put together equal
    ``extract`` of the whole signal. A frame is out once its samples are in (with deltas, 4 frames later:
    the delta-deltas look ±4 frames ahead); ``end()`` gives the rest (the last frame zero-padded, as for
    a file). Pre-emphasis carries its previous sample across chunks."""

    LOOK = 4                                   # frames a delta-delta looks ahead (±2, twice)

    def __init__(self, setting: SpeechFeatures) -> None:
        self.setting = setting
        self._pending = np.zeros(0)            # samples not yet in a complete frame (pre-emphasised later)
        self._base: list[np.ndarray] = []      # per-frame features computed so far (kept for the deltas)
        self._out = 0                          # frames handed out
        self._seen = 0                         # samples seen
        self._done = False
        self._last: float | None = None        # the sample before the pending ones (pre-emphasis)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Features (n, size) of the frames this chunk completes (n may be 0)."""
        if self._done:
            raise AudioError("FeatureStream: push after end(); make a new stream for the next signal")
        x = np.asarray(samples, np.float64).reshape(-1)
        self._seen += len(x)
        self._pending = np.concatenate([self._pending, x])
        s = self.setting
        ready = 0 if len(self._pending) < s.frame_len else 1 + (len(self._pending) - s.frame_len) // s.frame_step
        if ready:
            take = (ready - 1) * s.frame_step + s.frame_len
            self._add(self._pending[:take], ready)
            self._pending = self._pending[ready * s.frame_step:]
        return self._emit(final=False)

    def end(self) -> np.ndarray:
        """The remaining frames (the signal's last, zero-padded, frame included)."""
        if self._done:
            return np.zeros((0, self.setting.size))
        s = self.setting
        total = 1 if self._seen <= s.frame_len else 1 + math.ceil((self._seen - s.frame_len) / s.frame_step)
        left = total - sum(len(b) for b in self._base)
        if left > 0:
            self._add(self._pending, left, (left - 1) * s.frame_step + s.frame_len - len(self._pending))
        self._done = True
        return self._emit(final=True)

    def _add(self, chunk: np.ndarray, n: int, pad: int = 0) -> None:
        """Base features of the ``n`` frames that start in ``chunk`` (followed by ``pad`` zeros after the
        pre-emphasis, as a file's last frame is), its pre-emphasis continuing from the sample before it."""
        s = self.setting
        emph = np.empty(len(chunk) + pad)
        if len(chunk):
            emph[0] = chunk[0] - 0.97 * self._last if self._last is not None else chunk[0]
            emph[1:len(chunk)] = chunk[1:] - 0.97 * chunk[:-1]
            self._last = chunk[min(n * s.frame_step, len(chunk)) - 1]
        emph[len(chunk):] = 0.0
        self._base.append(s.base(emph, preemph=0.0)[:n])

    def _emit(self, final: bool) -> np.ndarray:
        s = self.setting
        known = sum(len(b) for b in self._base)
        upto = known if final or not s.deltas else max(self._out, known - self.LOOK)
        if upto <= self._out:
            return np.zeros((0, s.size))
        base = np.concatenate(self._base)
        self._base = [base]
        if not s.deltas:
            out = base[self._out:upto]
        else:
            lo = max(0, self._out - self.LOOK)
            out = audio.with_deltas(base[lo:min(known, upto + self.LOOK)])[self._out - lo:upto - lo]
        self._out = upto
        return out
