"""``fit`` on a dataset read a batch at a time: the same numbers as arrays, bit-for-bit resume, the next
batch read on a background thread, bounded validation, clear errors."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.fitting import ArrayTrainer


class OnDisk:
    """Padded sequences, targets and lengths in .npy files read by memory map: nothing held in memory."""

    def __init__(self, folder: Path, x: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> None:
        for name, a in (("x", x), ("y", y), ("lengths", lengths)):
            np.save(folder / f"{name}.npy", a)
        self.x, self.y, self.lengths = (np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("x", "y", "lengths"))
        self.threads: list[str] = []
        self.read = 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.threads.append(threading.current_thread().name)
        self.read += len(index)
        return self.x[index], self.y[index], self.lengths[index]


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    lengths = g.integers(2, 9, n)
    x = g.standard_normal((n, 8, 3)).astype(np.float32)
    y = np.array([int(x[i, :lengths[i], 0].sum() > 0) for i in range(n)])
    return x, y, lengths


def on_disk(folder: Path, n: int, n_val: int, seed: int) -> tuple[OnDisk, OnDisk, tuple, tuple]:
    """Training and validation sets on disk, and the same arrays: (ds, vs, (x, y, lens), (xv, yv, lv))."""
    train, val = data(n, seed), data(n_val, seed + 1)
    for d in ("t", "v"):
        (folder / d).mkdir()
    return OnDisk(folder / "t", *train), OnDisk(folder / "v", *val), train, val


def model(seed: int = 0) -> lk.Sequential:
    g = np.random.default_rng(seed)
    return lk.Sequential(lk.LSTM(3, 8, return_sequences=False, rng=g), lk.Dropout(0.2, rng=g), lk.Dense(8, 2, rng=g))


def fit(m: lk.Layer, train: tuple, val: object, run: Path | None = None, resume: bool = False) -> lk.History:
    return m.fit(*train, optimizer=lk.optim.AdamW(m.parameters(), lr=1e-2), epochs=3, batch_size=16,
                 validation_data=val, metrics=["accuracy"], progress=False, run_dir=run, resume=resume, seed=4)


def test_a_dataset_trains_exactly_as_the_same_arrays(tmp_path):
    ds, vs, (x, y, lens), (xv, yv, lv) = on_disk(tmp_path, 72, 20, 0)
    a, b = model(), model()
    ha = a.fit(x, y, lengths=lens, optimizer=lk.optim.AdamW(a.parameters(), lr=1e-2), epochs=3, batch_size=16,
               validation_data=(xv, yv, lv), metrics=["accuracy"], progress=False, seed=4)
    hb = fit(b, (ds,), vs)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)
    assert ha.history == hb.history
    assert b.evaluate(vs) == a.evaluate(xv, yv, lengths=lv)
    np.testing.assert_array_equal(b.predict(vs, batch_size=7), a.predict(xv, batch_size=7, lengths=lv))
    # 5 batches an epoch: the first of each epoch is read by the step, the other four ahead of time
    steps = ds.threads[:15]
    assert steps.count("MainThread") == 3 and all(t.startswith("lstmkit-data") for t in steps if t != "MainThread")


def test_resume_on_a_dataset_continues_bit_for_bit(tmp_path, monkeypatch):
    ds, vs, _, _ = on_disk(tmp_path, 72, 20, 2)
    whole = model()
    fit(whole, (ds,), vs, tmp_path / "whole")
    original = ArrayTrainer.advance

    def ctrl_c_at_step_7(self: ArrayTrainer) -> None:
        original(self)
        if self.step == 7:                                # mid-epoch, with a batch already read ahead
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ArrayTrainer, "advance", ctrl_c_at_step_7)
    assert fit(model(), (ds,), vs, tmp_path / "cut").stop_reason == "interrupted"
    monkeypatch.undo()
    again = model(seed=9)
    assert fit(again, (ds,), vs, tmp_path / "cut", resume=True).stop_reason == "budget"
    for k, v in whole.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)
    a, _ = checkpoint.load(tmp_path / "whole" / "latest.npz")
    b, _ = checkpoint.load(tmp_path / "cut" / "latest.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_validation_steps_bound_what_validation_reads(tmp_path):
    ds, vs, _, (xv, yv, lv) = on_disk(tmp_path, 40, 100, 4)
    m = model()
    hist = m.fit(ds, epochs=2, batch_size=10, validation_data=vs, validation_steps=3, progress=False)
    assert vs.read == 2 * 30 and len(hist.history["val_loss"]) == 2      # 3 batches of 10, at each of 2 epochs
    first30 = lk.evaluate(m, xv[:30], yv[:30], lengths=lv[:30], loss="cross_entropy")["loss"]
    assert lk.evaluate(m, vs, loss="cross_entropy", steps=3, batch_size=10)["loss"] == pytest.approx(first30)


def test_a_dataset_split_and_bad_datasets_are_named(tmp_path):
    x, y, lens = data(50, 6)
    (tmp_path / "t").mkdir()
    ds = OnDisk(tmp_path / "t", x, y, lens)
    hist = model().fit(ds, epochs=1, batch_size=10, validation_split=0.2, progress=False)
    assert len(hist.history["val_loss"]) == 1 and ds.read == 50                # 40 trained on, 10 validated
    with pytest.raises(ValueError, match="x is a dataset, whose batches carry their own targets"):
        model().fit(ds, y, progress=False)

    class Bare:
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: np.ndarray) -> np.ndarray:
            return np.zeros((len(index), 8, 3), np.float32)

    with pytest.raises(ValueError, match=r"ds\[index\] must return \(x, y\) or \(x, y, lengths\), got ndarray"):
        model().fit(Bare(), progress=False)
    with pytest.raises(ValueError, match="the data carries lengths but Dense.forward takes none"):
        lk.fit(lk.Dense(3, 2), ds, progress=False)
