"""The recogniser on audio files: a folder of WAVs with transcripts trains a unidirectional run (with
SpecAugment), which reads the files and listens to one a chunk at a time — the streamed transcript equal to
the whole file's, the logits equal frame for frame."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from lstmkit.apps import ctc as ctc_app
from lstmkit.cli import main
from lstmkit.data.transcribed import write_table
from lstmkit.streaming import Stream

RATE = 16000
TONES = {"a": 500.0, "b": 1000.0, "c": 2000.0}


def say(text: str, rng: np.random.Generator) -> np.ndarray:
    """Each character a 0.12 s tone and a 0.05 s gap, over a little noise."""
    parts = []
    for ch in text:
        t = np.arange(int(0.12 * RATE)) / RATE
        parts += [0.4 * np.sin(2 * np.pi * TONES[ch] * t), np.zeros(int(0.05 * RATE))]
    x = np.concatenate(parts)
    return (x + rng.normal(0, 0.01, len(x))).astype(np.float32)


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    files, texts = [], []
    for i in range(40):
        text = "".join(rng.choice(list("abc"), int(rng.integers(2, 5))))
        with wave.open(str(root / f"u{i}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.round(say(text, rng) * 32767).astype("<i2").tobytes())
        files.append(f"u{i}.wav")
        texts.append(text)
    write_table(root, files, texts)
    run = root / "run"
    assert main(["ctc", "train", str(root), "--out", str(run), "--unidirectional", "--hidden", "24", "--layers", "1",
                 "--steps", "200", "--batch-size", "8", "--lr", "0.01", "--spec-augment", "1", "--no-progress"]) == 0
    return root, run, files, texts


def test_a_trained_audio_run_reads_and_listens_as_it_reads(tone_run, capsys):
    root, run, files, texts = tone_run
    capsys.readouterr()
    assert main(["ctc", "predict", str(run), *[str(root / f) for f in files[:6]]]) == 0
    read = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert sum(r == t for r, t in zip(read, texts[:6])) >= 3, (read, texts[:6])       # it learned the tones
    for f, whole in zip(files[:6], read):
        for chunk in (0.013, 0.1, 0.5):
            lines = list(ctc_app.listen(run, root / f, chunk))
            assert lines[-1] == whole, (f, chunk, lines[-1], whole)
            assert all(b.startswith(a) for a, b in zip(lines, lines[1:]))            # it only grows
    assert main(["ctc", "listen", str(run), str(root / files[0]), "--chunk", "0.05"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == read[0]


def test_the_stream_gives_the_whole_files_logits(tone_run):
    root, run, files, _ = tone_run
    rec = ctc_app.Recogniser(run)
    whole = rec.frames(root / files[1])
    logits = rec.model.predict(whole[None])
    from lstmkit.data.speech import read_audio
    samples, feats, stream = read_audio(root / files[1]), rec.speech.stream(), Stream(rec.model)
    got = []
    for start in range(0, len(samples), 999):
        got.append(feats.push(samples[start:start + 999]))
    got.append(feats.end())
    frames = (np.concatenate(got).astype(np.float32) - rec.mean) / rec.std
    np.testing.assert_allclose(frames, whole, atol=1e-4)
    out = [stream(frames[None, a:a + 17]) for a in range(0, len(frames), 17)]
    np.testing.assert_allclose(np.concatenate(out, axis=1), logits, atol=1e-5)


def test_bidirectional_runs_cannot_listen_and_data_errors_are_one_line(tmp_path, tone_run, capsys):
    root, _, files, _ = tone_run
    bi = tmp_path / "bi"
    assert main(["ctc", "train", str(root), "--out", str(bi), "--hidden", "4", "--layers", "1", "--steps", "1",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["ctc", "listen", str(bi), str(root / files[0])]) == 2
    err = capsys.readouterr().err
    assert "bidirectional" in err and "--unidirectional" in err and err.count("\n") == 1
    (tmp_path / "mixed").mkdir()
    write_table(tmp_path / "mixed", ["a.wav", "b.png"], ["a", "b"])
    assert main(["ctc", "train", str(tmp_path / "mixed"), "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "one kind of file a data folder" in err and err.count("\n") == 1
