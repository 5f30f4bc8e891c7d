"""A run in use is locked, and a full disk stops training naming the file and the checkpoint kept."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.cli import main
from lstmkit.runs import LOCK, RunError, lock_run, release_run

HOLD = ("import sys, time; from lstmkit.runs import lock_run; lock_run(sys.argv[1]); print('held', flush=True); "
        "time.sleep(60)")


def _holder(run: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _data() -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(0)
    return g.standard_normal((16, 5, 3)).astype(np.float32), g.integers(0, 2, 16)


def _fit(run: Path, resume: bool = False, steps: int = 2) -> lk.History:
    g = np.random.default_rng(1)
    m = lk.Sequential(lk.LSTM(3, 4, return_sequences=False, rng=g), lk.Dense(4, 2, rng=g))
    x, y = _data()
    return m.fit(x, y, steps=steps, batch_size=8, eval_every=1, run_dir=run, resume=resume, progress=False)


def test_a_run_in_use_is_refused_naming_the_process_for_fit_and_every_app(tmp_path, capsys):
    run = tmp_path / "run"
    _fit(run)                                          # a finished run: its lock was given up
    assert not (run / LOCK).exists()
    p = _holder(run)
    try:
        with pytest.raises(RunError, match=rf"run: in use by process {p.pid} \(on .*: -c "):
            _fit(run, resume=True, steps=4)
        for argv in (["charlm", "train", "--resume", str(run)], ["video", "train", "unused", "--out", str(run)],
                     ["ctc", "train", "unused", "--out", str(run)], ["tree", "train", "unused", "--out", str(run)],
                     ["charlm", "train", "--out", str(run), "--steps", "1"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and f"in use by process {p.pid}" in err, (argv, err)
        assert lk.load_model(run / "latest.npz")                 # reading a run in use is fine
    finally:
        p.kill()
        p.wait()
    h = _fit(run, resume=True, steps=4)                # its holder is dead: the lock is taken over
    assert h.history["loss"] and checkpoint.load(run / "latest.npz")[1]["position"]["step"] == 4


def test_a_stale_lock_file_is_taken_over_and_a_process_may_lock_twice(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text("999999 on elsewhere: lstmkit charlm train\n")      # its process is gone
    assert lock_run(run) is True and lock_run(run) is False
    assert (run / LOCK).read_text().startswith(f"{os.getpid()} on ")
    release_run(run)
    fresh = tmp_path / "never-used"
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint to resume from"):
        lk.runs.check_run_dir(fresh / "x", resume=True)          # a refused run leaves no folder behind
    assert not fresh.exists()


def test_a_full_disk_stops_training_naming_the_file_and_the_checkpoint_kept(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 3:                             # the first saves succeed, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    with pytest.raises(RunError) as e:
        _fit(run, steps=5)
    msg = str(e.value)
    assert "No space left on device" in msg and "training stopped at step 2" in msg, msg
    assert f"the checkpoint kept is {run / 'latest.npz'} (step 1)" in msg, msg
    assert msg.split(":")[0].endswith(".npz") or msg.split(":")[0].endswith(".csv"), msg
    assert checkpoint.load(run / "latest.npz")[1]["position"]["step"] == 1
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []   # no temp file left


def test_a_full_disk_at_the_command_line_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question. " * 60)
    real, calls = os.fsync, []

    out = tmp_path / "run"

    def fsync(fd: int) -> None:                        # the run's files: the first two saves succeed
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out)):
            calls.append(fd)
            if len(calls) > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    assert main(["charlm", "train", "--text", str(text), "--out", str(out), "--steps", "6", "--eval-every", "2",
                 "--hidden", "8", "--embed", "4", "--batch-size", "2", "--seq-len", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"lstmkit: error: {out}") and "No space left on device" in err, err
    assert f"the checkpoint kept is {out / 'latest.npz'} (step 2)" in err, err
