"""Video data and the CNN+LSTM classifier end to end: decoding real .mp4 files, the cache, bad files,
a tiny training run that must learn, predict/eval, resume, and every bad input at the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit import checkpoint
from lstmkit.cli import main
from lstmkit.data import video as V
from lstmkit.data.synthetic_video import CLASSES, make_moving_set, render_clip, write_mp4


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips") / "moving"
    make_moving_set(root, per_class=3, frames=6, size=16, seed=0, progress=False)
    return root


def test_decoding_real_files_samples_resizes_and_scales(clips, tmp_path):
    ds = V.VideoFolder(clips, frames=4, size=(8, 12), cache_dir=tmp_path / "cache", progress=False)
    assert ds.classes == sorted(CLASSES) and len(ds) == 18
    x, label = ds[4]
    assert x.shape == (4, 8, 12, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert ds.classes[label] == "left" and ds.paths[4].parent.name == "left"
    gray = V.VideoFolder(clips, frames=9, size=16, grayscale=True, cache_dir="", progress=False)
    xg, _ = gray[0]
    assert xg.shape == (9, 16, 16, 1)
    np.testing.assert_array_equal(xg[6], xg[8])          # 6 frames, 9 asked: the last frame repeats
    assert list(V.sample_indices(10, 4)) == [0, 3, 6, 9] and list(V.sample_indices(2, 4)) == [0, 1, 1, 1]


def test_split_is_seeded_and_per_class(clips):
    ds = V.VideoFolder(clips, frames=2, size=8, cache_dir="", progress=False)
    tr, va = ds.split(1 / 3, seed=4)
    assert list(va) == list(ds.split(1 / 3, seed=4)[1]) and sorted([*tr, *va]) == list(range(len(ds)))
    assert sorted(ds.labels[va]) == list(range(6))          # one clip of each class held out


def test_bad_files_are_skipped_with_a_warning_and_an_empty_folder_is_an_error(clips, tmp_path):
    root = tmp_path / "mixed"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    write_mp4(root / "a" / "good.mp4", render_clip("left", np.random.default_rng(0), 4, 16))
    (root / "a" / "empty.mp4").write_bytes(b"")
    (root / "b" / "corrupt.mp4").write_bytes(os.urandom(2000))
    with pytest.warns(UserWarning) as record:
        ds = V.VideoFolder(root, frames=4, size=16, cache_dir="", progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert "empty.mp4" in messages and "corrupt.mp4" in messages
    assert len(ds) == 1 and ds.classes == ["a", "b"]
    (root / "a" / "good.mp4").unlink()
    with pytest.warns(UserWarning), pytest.raises(V.VideoError, match="no readable video clips"):
        V.VideoFolder(root, frames=4, size=16, cache_dir="", progress=False)
    with pytest.raises(V.VideoError, match="no class folders"):
        V.VideoFolder(tmp_path / "mixed" / "a", progress=False)


def test_the_cache_is_used_and_invalidated_when_a_file_changes(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "x").mkdir(parents=True)
    (root / "y").mkdir()
    write_mp4(root / "x" / "c.mp4", render_clip("left", np.random.default_rng(1), 4, 16))
    write_mp4(root / "y" / "d.mp4", render_clip("up", np.random.default_rng(2), 4, 16))
    first = V.VideoFolder(root, frames=4, size=16, workers=1, progress=False)
    cached = sorted((root / ".lstmkit-cache").iterdir(), key=lambda p: p.suffix)
    assert [p.suffix for p in cached] == [".json", ".u8"]                                    # index and data
    assert cached[1].stat().st_size == 2 * 4 * 16 * 16 * 3                                  # two uint8 clips

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(V, "_decode_or_error", no_decoding)
    again = V.VideoFolder(root, frames=4, size=16, workers=1, progress=False)
    np.testing.assert_array_equal(again.arrays()[0], first.arrays()[0])
    monkeypatch.undo()
    write_mp4(root / "x" / "c.mp4", render_clip("zoom", np.random.default_rng(3), 4, 16))   # the file changes
    decoded = []
    monkeypatch.setattr(V, "_decode_or_error", lambda job: decoded.append(job[0]) or V.decode(*job))
    changed = V.VideoFolder(root, frames=4, size=16, workers=1, progress=False)
    assert decoded == [str(root / "x" / "c.mp4")]                   # only the changed file is decoded again
    assert not np.array_equal(changed.arrays()[0][0], first.arrays()[0][0])
    np.testing.assert_array_equal(changed.arrays()[0][1], first.arrays()[0][1])
    assert len(list((root / ".lstmkit-cache").iterdir())) == 2       # the old data file went
    write_mp4(root / "y" / "e.mp4", render_clip("down", np.random.default_rng(4), 4, 16))    # a new file
    grown = V.VideoFolder(root, frames=4, size=16, workers=1, progress=False)
    assert len(grown) == 3 and decoded[1:] == [str(root / "y" / "e.mp4")]
    np.testing.assert_array_equal(grown.arrays([0, 1])[0], changed.arrays()[0])


def run(args: list[str]) -> int:
    return main(["video", *args])


def bad(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    assert run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lstmkit: error:") and "\n" not in err, err
    for n in needles:
        assert n in err, (n, err)


def test_tiny_training_learns_then_predict_eval_and_resume(tmp_path, capsys):
    data = tmp_path / "moving"
    assert run(["make-synthetic", "--out", str(data), "--per-class", "24", "--frames", "8", "--size", "16"]) == 0
    out = tmp_path / "run"
    tiny = ["--frames", "8", "--size", "16", "--batch-size", "16", "--lr", "0.005", "--val-fraction", "0.25",
            "--no-progress"]
    assert run(["train", str(data), "--out", str(out), "--epochs", "30", *tiny]) == 0
    _, meta = checkpoint.load(out / "latest.npz")
    acc = [r["val_accuracy"] for r in meta["history"] if r.get("val_accuracy") is not None]
    # 6 classes: chance is 1/6; a model that learned the motions gets most of the 36 held-out clips right
    assert max(acc) >= 0.7, acc
    capsys.readouterr()
    files = [str(data / "left" / "clip_0000.mp4"), str(data / "zoom" / "clip_0003.mp4")]
    assert run(["predict", str(out), *files, "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(files[0]) and lines[0].count(",") == 1
    probs = [float(part.split()[-1]) for part in lines[0].split(": ")[1].split(", ")]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert run(["eval", str(out), str(data), "--no-progress"]) == 0
    report = capsys.readouterr().out
    assert "accuracy" in report and "precision" in report and (out / "confusion.png").stat().st_size > 1000
    epochs = meta["position"]["epoch"]
    assert run(["train", "--resume", str(out), "--epochs", str(epochs + 2), "--no-progress"]) == 0
    capsys.readouterr()
    _, resumed = checkpoint.load(out / "latest.npz")
    assert resumed["position"]["epoch"] > epochs and resumed["video"] == meta["video"]   # it went on, as it was
    bad(["train", "--resume", str(out), "--size", "32"], capsys, "--size", "cannot change")
    bad(["train", str(data), "--out", str(out), *tiny], capsys, "already holds a run")


def test_bad_input_at_the_cli(tmp_path, capsys):
    notvideo = tmp_path / "notes.mp4"
    notvideo.write_text("not a video")
    bad(["make-synthetic", "--out", str(tmp_path), "--per-class", "1"], capsys, str(tmp_path), "not empty")
    bad(["train", str(tmp_path / "none"), "--out", str(tmp_path / "r")], capsys, "none", "no such folder")
    bad(["train"], capsys, "data folder")
    one = tmp_path / "one"
    make_moving_set(tmp_path / "six", per_class=1, frames=2, size=16, progress=False)
    (one / "left").mkdir(parents=True)
    (tmp_path / "six" / "left" / "clip_0000.mp4").rename(one / "left" / "a.mp4")
    bad(["train", str(one), "--out", str(tmp_path / "r"), "--no-progress"], capsys, "at least two")
    bad(["predict", str(tmp_path / "norun"), str(notvideo)], capsys, "norun")
    bad(["eval", str(tmp_path / "norun"), str(tmp_path / "six")], capsys, "norun")
    r = subprocess.run([sys.executable, "-m", "lstmkit", "video", "predict", str(tmp_path / "norun"), str(notvideo)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def tiny_run(tmp_path, *budget: str):
    """A folder of 12 small clips and a run trained on it for ``budget``: (data, run)."""
    data, out = tmp_path / "d", tmp_path / "run"
    make_moving_set(data, per_class=2, frames=4, size=16, progress=False)
    assert run(["train", str(data), "--out", str(out), *budget, "--frames", "4", "--size", "16",
                "--val-fraction", "0.5", "--no-progress"]) == 0
    return data, out


def test_predict_on_a_file_that_is_not_a_video(tmp_path, capsys):
    data, out = tiny_run(tmp_path, "--epochs", "1")
    capsys.readouterr()
    notvideo = tmp_path / "notes.mp4"
    notvideo.write_text("not a video")
    bad(["predict", str(out), str(notvideo)], capsys, str(notvideo), "cannot be decoded")
    bad(["predict", str(out), str(tmp_path / "missing.mp4")], capsys, "missing.mp4", "no such file")
    good = [str(data / "left" / "clip_0000.mp4"), str(data / "right" / "clip_0001.mp4")]
    png = tmp_path / "still.png"
    from PIL import Image  # a still image is not a one-frame video
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(png)
    assert run(["predict", str(out), good[0], str(notvideo), str(png), good[1]]) == 2
    got = capsys.readouterr()
    lines, errors = got.out.strip().splitlines(), got.err.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == good, lines
    assert len(errors) == 2 and "notes.mp4: cannot be decoded" in errors[0] and "a still image (png)" in errors[1]
    # skipped clips: one plain line each on stderr, no Python source line
    (data / "left" / "broken.mp4").write_bytes(os.urandom(500))
    r = subprocess.run([sys.executable, "-m", "lstmkit", "video", "eval", str(out), str(data), "--no-progress"],
                       capture_output=True, text=True)
    warned = [ln for ln in r.stderr.splitlines() if "broken.mp4" in ln]
    assert r.returncode == 0 and len(warned) == 1 and warned[0].startswith("lstmkit: warning: skipping"), r.stderr
    assert "warnings.warn" not in r.stderr and "UserWarning" not in r.stderr, r.stderr


def test_eval_refuses_a_folder_of_other_classes_before_decoding_or_caching_anything(tmp_path, capsys):
    data, out = tiny_run(tmp_path, "--steps", "1")
    other = tmp_path / "other"
    (other / "left").mkdir(parents=True)
    (other / "sideways").mkdir()
    shutil.copy(data / "left" / "clip_0000.mp4", other / "left" / "a.mp4")
    shutil.copy(data / "right" / "clip_0000.mp4", other / "sideways" / "b.mp4")
    capsys.readouterr()
    bad(["eval", str(out), str(other), "--no-progress"], capsys, "['sideways']", "not among the model's classes")
    assert not (other / ".lstmkit-cache").exists()            # refused before the folder was decoded or cached
