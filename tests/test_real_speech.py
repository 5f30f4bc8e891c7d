"""A real recording (CMU ARCTIC a0009, "He turned sharply, and faced Gregson across the table."; tests/data) through
the recogniser's audio path: PyAV's decoding against scipy's WAV reader, lstmkit's features against
python_speech_features on the same samples, the features a chunk at a time against the whole file, and the same
speech as FLAC (lossless), MP3 and Opus in OGG (lossy) in a data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import python_speech_features as psf
from scipy.io import wavfile

from lstmkit.data import transcribed as tb
from lstmkit.data.speech import SpeechFeatures, read_audio

WAV = Path(__file__).parent / "data" / "arctic_a0009.wav"
TEXT = "he turned sharply, and faced gregson across the table."


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    rate, x = wavfile.read(WAV)
    assert rate == 16000 and x.dtype == np.int16
    return x.astype(np.float64) / 32768.0


def test_pyav_decodes_the_recording_as_scipy_reads_it(samples):
    got = read_audio(WAV, 16000)
    assert got.dtype == np.float32 and got.shape == samples.shape
    np.testing.assert_allclose(got, samples, atol=1e-7)
    half = read_audio(WAV, 8000)                                     # resampled: half the samples, same sound
    assert abs(len(half) - len(samples) // 2) <= 32
    spec, spec8 = np.abs(np.fft.rfft(samples[:16000])), np.abs(np.fft.rfft(half[:8000]))
    low = slice(100, 3500)                                           # 100-3,500 Hz: 1 Hz bins in both
    assert np.corrcoef(spec[low], spec8[low])[0, 1] > 0.95


def test_features_of_real_speech_equal_python_speech_features(samples):
    s = SpeechFeatures(window="rect")                                # python_speech_features' default window
    ours = s.extract(samples)
    ref = psf.mfcc(samples, 16000, numcep=13, nfilt=26, nfft=512)
    ref = np.concatenate([ref, psf.delta(ref, 2), psf.delta(psf.delta(ref, 2), 2)], axis=1)
    assert ours.shape == ref.shape == (1 + int(np.ceil((len(samples) - 400) / 160)), 39)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    logmel = SpeechFeatures(numcep=0, nfilt=40, deltas=False, window="hamming").extract(samples)
    energies = psf.fbank(samples, 16000, nfilt=40, nfft=512, winfunc=np.hamming)[0]
    np.testing.assert_allclose(logmel, np.log(energies), rtol=1e-9, atol=1e-9)


def test_a_microphones_chunks_give_the_files_features(samples):
    s = SpeechFeatures()
    whole = s.extract(samples)
    for chunk in (320, 1024, 4801):                                  # 20 ms, 64 ms, an odd size
        stream = s.stream()
        got = np.concatenate([stream.push(samples[i:i + chunk]) for i in range(0, len(samples), chunk)]
                             + [stream.end()])
        np.testing.assert_allclose(got, whole, rtol=1e-9, atol=1e-9)


def test_the_recording_as_wav_flac_mp3_and_ogg_in_a_data_folder(tmp_path):
    import av
    (tmp_path / "a.wav").write_bytes(WAV.read_bytes())
    for name, codec in (("b.flac", "flac"), ("c.mp3", "libmp3lame")):
        with av.open(str(WAV)) as src, av.open(str(tmp_path / name), "w") as out:
            stream = out.add_stream(codec, rate=16000, layout="mono")
            for frame in src.decode(audio=0):
                frame.pts = None
                for p in stream.encode(frame):
                    out.mux(p)
            for p in stream.encode(None):
                out.mux(p)
    with av.open(str(WAV)) as src, av.open(str(tmp_path / "d.ogg"), "w") as out:   # Opus in OGG, at 48 kHz
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        up = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for frame in src.decode(audio=0):
            for f in up.resample(frame):
                f.pts = None
                for p in stream.encode(f):
                    out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    tb.write_table(tmp_path, ["a.wav", "b.flac", "c.mp3", "d.ogg"], [TEXT] * 4, ["train", "val", "test", "test"])
    ds = tb.Transcribed(tmp_path, progress=False)
    assert ds.kind == "audio" and ds.size == 39 and len(ds) == 4 and ds.alphabet == "".join(sorted(set(TEXT)))
    wav, flac, mp3, ogg = ds.frames
    np.testing.assert_allclose(flac, wav, atol=1e-5)                 # lossless
    assert len(mp3) == len(wav)                                      # lossy: the same speech, its loudness
    assert np.corrcoef(wav[:, 0], mp3[:, 0])[0, 1] > 0.9             # frame by frame (c0: the log energy)
    assert len(ogg) == len(wav) and np.corrcoef(wav[:, 0], ogg[:, 0])[0, 1] > 0.9      # resampled from 48 kHz
    tr, va, how = ds.split()
    assert tr.tolist() == [0] and va.tolist() == [1] and how == "the table's split column"
