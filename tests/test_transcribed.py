"""Data folders for the recogniser: the transcripts table, files of every kind, the cache, one warning per bad
file; speech features a chunk at a time; the spoken digits' pools; the folders make-strips and make-digits
write keep validation apart from training."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from lstmkit.apps import ctc_data
from lstmkit.data import fsdd as sd
from lstmkit.data import transcribed as tb
from lstmkit.data.speech import AudioError, SpeechFeatures, read_audio


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(samples * 32767).astype("<i2").tobytes())


def test_the_table_in_its_layouts_and_its_errors(tmp_path):
    (tmp_path / "clips").mkdir()
    for name in ("a.npy", "clips/b.npy"):
        np.save(tmp_path / name, np.ones((9, 3), np.float32))
    (tmp_path / "transcripts.csv").write_text('path,sentence,split\na.npy,"hi, there",train\nb.npy,yo,VAL\n')
    files, texts, splits = tb.read_table(tmp_path)
    assert files == [tmp_path / "a.npy", tmp_path / "clips" / "b.npy"]      # Common Voice's clips/ folder
    assert texts == ["hi, there", "yo"] and splits == ["train", "val"]
    for body, needle in (("file\tx\n", "no text column"), ("", "empty"), ("file\ttext\n", "names no files"),
                         ("file\ttext\nz.npy\n", "line 2 has 1 columns"),
                         ("file\ttext\tsplit\na.npy\tq\tdev\n", "split must be one of train, val, test")):
        (tmp_path / "t.tsv").write_text(body)
        with pytest.raises(tb.TranscriptError, match=needle):
            tb.read_table(tmp_path / "t.tsv")
    with pytest.raises(tb.TranscriptError, match="no transcripts table"):
        tb.read_table(tmp_path / "clips")
    with pytest.raises(tb.TranscriptError, match="no such folder"):
        tb.read_table(tmp_path / "nope")


def test_every_bad_file_is_one_warning_and_left_out(tmp_path):
    np.save(tmp_path / "good.npy", np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32))
    np.save(tmp_path / "short.npy", np.zeros((2, 4), np.float32))
    np.save(tmp_path / "wide.npy", np.zeros((9, 4, 2), np.float32))
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    np.save(tmp_path / "empty.npy", np.zeros((5, 4), np.float32))
    tb.write_table(tmp_path, ["good.npy", "short.npy", "wide.npy", "broken.npy", "missing.npy", "empty.npy"],
                   ["abba", "aab", "a", "a", "a", ""])
    with pytest.warns(UserWarning) as got:
        ds = tb.Transcribed(tmp_path, progress=False)
    lines = sorted(str(w.message) for w in got)
    assert len(lines) == 5 and all(line.startswith("skipping ") for line in lines)
    for name, needle in (("short.npy", "2 frames are too few for the 3 characters"), ("wide.npy", "2-D array"),
                         ("broken.npy", "not a readable .npy"), ("missing.npy", "no such file"),
                         ("empty.npy", "transcript is empty")):
        assert any(name in line and needle in line for line in lines), (name, lines)
    assert len(ds) == 1 and ds.alphabet == "ab" and ds.kind == "array"
    x, packed, lengths = ds[np.array([0])]
    assert x.shape == (1, 12, 4) and lengths.tolist() == [12]
    assert packed[0].tolist() == [12, 4, 1, 2, 2, 1]                     # [T, S, a b b a as classes 1 2 2 1]
    with pytest.raises(tb.TranscriptError, match="one kind of file a data folder"):
        tb.kind_of([tmp_path / "a.png", tmp_path / "b.wav"])
    with pytest.raises(tb.TranscriptError, match="not an image, audio file or .npy"):
        tb.kind_of([tmp_path / "a.txt"])


def test_images_of_any_size_become_columns_and_are_cached(tmp_path, monkeypatch):
    from PIL import Image
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate(((40, 90), (20, 33), (64, 64))):
        Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)).save(tmp_path / f"l{i}.png")
    tb.write_table(tmp_path, ["l0.png", "l1.png", "l2.png"], ["x", "yé", "zz"])
    ds = tb.Transcribed(tmp_path, height=16, progress=False)
    assert ds.size == 16 and ds.lengths.tolist() == [36, 26, 16] and ds.alphabet == "xyzé"
    first = [f.copy() for f in ds.frames]

    def refuse(*_a, **_k):
        raise AssertionError("read again although cached")
    monkeypatch.setattr(tb, "read_frames", refuse)
    again = tb.Transcribed(tmp_path, height=16, progress=False)           # all from the cache
    assert all(np.array_equal(a, b) for a, b in zip(first, again.frames))
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    tmp_path.rename(moved)                                                 # a folder moved or renamed: still cached
    monkeypatch.chdir(moved.parent)
    assert all(np.array_equal(a, b) for a, b in zip(first, tb.Transcribed(moved.name, height=16,
                                                                           progress=False).frames))
    moved.rename(tmp_path)
    monkeypatch.undo()
    Image.fromarray(np.zeros((16, 5), np.uint8)).save(tmp_path / "l1.png")  # one file changes: only it is read
    read = []
    monkeypatch.setattr(tb, "read_frames", lambda p, *a: read.append(p.name) or np.zeros((5, 16), np.float32))
    changed = tb.Transcribed(tmp_path, height=16, progress=False)
    assert read == ["l1.png"] and changed.lengths.tolist() == [36, 5, 16]


def test_audio_files_decode_to_the_setting_and_match_the_features(tmp_path):
    import av
    rate = 16000
    t = np.arange(int(0.4 * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_wav(tmp_path / "a.wav", tone, rate)
    back = read_audio(tmp_path / "a.wav", rate)
    assert back.shape == tone.shape and np.abs(back - tone).max() < 1e-4
    write_wav(tmp_path / "low.wav", tone[::2], 8000)                        # resampled 8 kHz -> 16 kHz
    assert abs(len(read_audio(tmp_path / "low.wav", rate)) - len(tone)) <= 64
    with av.open(str(tmp_path / "b.flac"), "w") as out:                      # FLAC, stereo: mixed down to mono
        s = out.add_stream("flac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.round(np.stack([tone, tone]) * 32767).astype(np.int16)
                                           .reshape(1, -1, order="F"), format="s16", layout="stereo")
        frame.sample_rate = rate
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    assert np.abs(read_audio(tmp_path / "b.flac", rate) - tone).max() < 1e-3
    (tmp_path / "c.wav").write_bytes(b"RIFF nothing")
    tb.write_table(tmp_path, ["a.wav", "b.flac", "c.wav"], ["ab", "ba", "a"])
    with pytest.warns(UserWarning, match="c.wav: not a readable audio file"):
        ds = tb.Transcribed(tmp_path, progress=False)
    feats = SpeechFeatures().extract(back)                                 # the file's own samples
    assert ds.size == 39 and len(ds) == 2 and np.abs(ds.frames[0] - feats).max() < 1e-4 * np.abs(feats).max()
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "none.wav")


@pytest.mark.parametrize("setting", [SpeechFeatures(), SpeechFeatures(deltas=False, numcep=0, window="rect"),
                                     SpeechFeatures(rate=8000, winlen=0.032, winstep=0.016)])
def test_features_a_chunk_at_a_time_equal_the_whole_signal(setting):
    rng = np.random.default_rng(5)
    for n in (50, setting.frame_len, setting.frame_len + 1, 7777):
        x = rng.normal(size=n)
        whole = setting.extract(x)
        for chunk in (13, 160, 1000):
            stream = setting.stream()
            got = np.concatenate([stream.push(x[i:i + chunk]) for i in range(0, n, chunk)] + [stream.end()])
            assert got.shape == whole.shape and np.abs(got - whole).max() < 1e-9, (n, chunk)


def test_spoken_digit_pools_share_no_utterance_and_folders_keep_their_splits(tmp_path):
    pools = sd._pools()
    together = np.concatenate(list(pools.values()))
    assert len(together) == 3000 == len(set(together.tolist()))
    frames, digits = sd.spoken_digits("val")
    assert len(frames) == 240 and all(f.shape[1] == 13 for f in frames) and set(digits.tolist()) <= set(range(10))
    seqs, texts = sd.connected_digits(30, "test", seed=2)
    assert all(2 <= len(t) <= 7 and t.isdigit() for t in texts)
    test_frames = {f.tobytes() for f in sd.spoken_digits("test")[0]}
    assert all(len(s) >= 2 * 6 for s in seqs)
    path = ctc_data.make_digits_folder(tmp_path / "d", 50)
    files, texts, splits = tb.read_table(path)
    assert splits.count("val") == 5 and splits.count("train") == 45
    train_frames = {f.tobytes() for f in sd.spoken_digits("train")[0]}
    val_seq = np.load(files[splits.index("val")])
    assert not any(val_seq[:k].tobytes() in train_frames for k in range(1, len(val_seq) + 1))
    assert not any(f in test_frames for f in train_frames)


def test_strip_folders_validate_on_digit_images_training_never_shows(tmp_path, monkeypatch):
    seen: dict[str, set] = {}
    real = ctc_data.make_strip

    def spy(rng, images, labels, n):
        seen.setdefault(spy.split, set()).update(x.tobytes() for x in images)
        return real(rng, images, labels, n)
    spy.split = ""
    orig_counts = ctc_data._split_counts

    def counts(count, half):
        for split, n in orig_counts(count, half):
            spy.split = split
            yield split, n
    monkeypatch.setattr(ctc_data, "make_strip", spy)
    monkeypatch.setattr(ctc_data, "_split_counts", counts)
    ctc_data.make_strips_folder(tmp_path / "s", 20)
    assert set(seen) == {"train", "val"} and not seen["train"] & seen["val"]


def test_make_digits_says_the_lines_of_a_text(tmp_path, capsys):
    from lstmkit.cli import main
    (tmp_path / "numbers.txt").write_text("1987\n\n0915\n")
    assert main(["ctc", "make-digits", "--out", str(tmp_path / "d"), "--count", "20", "--text",
                 str(tmp_path / "numbers.txt")]) == 0
    _, texts, _ = tb.read_table(tmp_path / "d")
    assert set(texts) == {"1987", "0915"}
    (tmp_path / "bad.txt").write_text("12\n3a4\n")
    assert main(["ctc", "make-digits", "--out", str(tmp_path / "e"), "--text", str(tmp_path / "bad.txt")]) == 2
    err = capsys.readouterr().err
    assert "bad.txt: line 2 is not only digits" in err and not (tmp_path / "e").exists()


def test_spec_augment_masks_bands_of_features_and_of_time(tmp_path):
    from lstmkit.apps.ctc import SpecAugment
    from lstmkit.data.dataset import Subset
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(tmp_path / f"s{i}.npy", (rng.normal(size=(60, 20)) + 5).astype(np.float32))
    tb.write_table(tmp_path, [f"s{i}.npy" for i in range(4)], ["ab"] * 4)
    ds = tb.Transcribed(tmp_path, progress=False)
    plain = ds[np.arange(4)][0]
    aug = SpecAugment(Subset(ds, np.arange(4)), masks=2, seed=1)
    x, packed, lengths = aug[np.arange(4)]
    assert x.shape == plain.shape and np.array_equal(packed, ds.packed) and lengths.tolist() == [60] * 4
    zero = x == 0
    cols, rows = zero.all(axis=1), zero.all(axis=2)           # whole feature bands, whole frames
    assert (zero == (cols[:, None, :] | rows[:, :, None])).all()          # nothing else is touched
    assert cols.sum(1).max() <= 2 * 3 and rows.sum(1).max() <= 2 * 6 and zero.any()
    assert np.array_equal(x[~zero], plain[~zero])
    again = SpecAugment(Subset(ds, np.arange(4)), masks=2, seed=1)[np.arange(4)][0]
    assert np.array_equal(again, x)


def test_a_large_folder_is_read_by_a_pool_as_one_process_reads_it(tmp_path, monkeypatch):
    from PIL import Image
    rng = np.random.default_rng(3)
    names = []
    for i in range(70):
        Image.fromarray((rng.random((12, int(rng.integers(8, 30)))) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
        names.append(f"{i}.png")
    (tmp_path / "69.png").write_bytes(b"broken")
    tb.write_table(tmp_path, names, ["ab"] * 70)
    with pytest.warns(UserWarning, match="69.png: not a readable image"):
        pooled = tb.Transcribed(tmp_path, height=12, cache=False, progress=False)       # 2 processes (2+ cores)
    monkeypatch.setattr(tb, "PER_WORKER", 10 ** 6)
    with pytest.warns(UserWarning, match="69.png"):
        alone = tb.Transcribed(tmp_path, height=12, cache=False, progress=False)
    assert len(pooled) == len(alone) == 69
    assert all(np.array_equal(a, b) for a, b in zip(pooled.frames, alone.frames))
