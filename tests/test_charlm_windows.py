"""The char LM's passes: every pass after the first cuts its windows from an offset of its own, drawn from the
seed and the pass, so a resumed run cuts the same windows as an uninterrupted one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from lstmkit import checkpoint
from lstmkit.apps import charlm as ct
from lstmkit.data import Windows

from .test_charlm_cli import grammar_text

SHAPE = {"hidden": 16, "layers": 1, "embed": 8, "dropout": 0.0, "output_dropout": 0.0, "input_dropout": 0.0}


@pytest.fixture
def short(tmp_path: Path) -> Path:
    p = tmp_path / "short.txt"
    p.write_text(grammar_text(60, seed=1), encoding="utf-8")      # ~1,800 characters: a few windows per pass
    return p


def make(out: Path, text: Path, steps: int, **train: object) -> ct.Trainer:
    tcfg = ct.TrainConfig(batch_size=4, seq_len=32, lr=0.01, warmup=2, steps=steps, eval_every=100, seed=5, **train)
    return ct.Trainer.new(out, str(text), SHAPE, tcfg)


def test_windows_from_an_offset_are_the_text_from_there_and_too_large_an_offset_is_none():
    ids = np.arange(1000)
    w = Windows.make(ids, batch_size=4, seq_len=10, offset=7)
    assert w.streams.shape == (4, 248) and w.offset == 7 and w.streams[0, 0] == 7 and w.streams[1, 0] == 7 + 248
    x, y = w.window(2)
    np.testing.assert_array_equal(x[3], ids[7 + 3 * 248 + 20:7 + 3 * 248 + 30])
    np.testing.assert_array_equal(y, x + 1)
    assert Windows.make(np.arange(50), batch_size=4, seq_len=10, offset=7).offset == 0


def test_each_pass_cuts_its_windows_from_its_own_offset(tmp_path, short):
    t = make(tmp_path / "run", short, steps=1)
    offsets = [t.pass_windows(e).offset for e in range(8)]
    assert offsets[0] == 0 and all(0 <= o < 32 for o in offsets) and len(set(offsets[1:])) > 3
    for e, o in enumerate(offsets):
        streams = t.pass_windows(e).streams
        np.testing.assert_array_equal(streams.ravel(), t.train_ids[o:o + streams.size])
    fixed = make(tmp_path / "fixed", short, steps=1, shift_windows=False)
    assert all(fixed.pass_windows(e).offset == 0 for e in range(8))
    # the trainer moves to the next pass's windows when a pass ends
    n = len(t.windows)
    for _ in range(n):
        t.advance()
    assert t.epoch == 1 and t.window == 0 and t.windows.offset == offsets[1]


def test_a_run_resumed_in_a_later_pass_cuts_the_same_windows(tmp_path, short):
    steps = 3 * len(make(tmp_path / "probe", short, steps=1).windows) + 2       # into the fourth pass
    whole = make(tmp_path / "whole", short, steps)
    assert whole.fit(progress=False) == "budget" and whole.epoch == 3

    def ctrl_c(t: ct.Trainer) -> None:
        if t.step == steps - 3:
            os.kill(os.getpid(), signal.SIGINT)

    cut = make(tmp_path / "cut", short, steps)
    assert cut.fit(progress=False, on_step=ctrl_c) == "interrupted" and cut.epoch >= 2
    resumed = ct.Trainer.resume(tmp_path / "cut")
    assert resumed.fit(progress=False) == "budget"
    a, _ = checkpoint.load(tmp_path / "whole" / "latest.npz")
    b, _ = checkpoint.load(tmp_path / "cut" / "latest.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
