"""model.fit / evaluate / predict on the shared loop: learning, resume, early stopping, NaN, bad input."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.fitting import ArrayTrainer
from lstmkit.training import RunError


def sign_task(n: int, seed: int, T: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 when the first feature sums to more than zero over the sequence; 50 % chance level."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, T, 3)).astype(np.float32)
    return x, (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)


def small_model(seed: int = 0, dropout: float = 0.0) -> lk.Sequential:
    g = np.random.default_rng(seed)
    return lk.Sequential(lk.LSTM(3, 16, return_sequences=False, rng=g), lk.Dropout(dropout, rng=g),
                         lk.Dense(16, 2, rng=g))


def test_fit_learns_a_sequence_task_and_evaluates_and_predicts(tmp_path):
    x, y = sign_task(512, 0)
    xv, yv = sign_task(256, 1)
    model = small_model()
    hist = model.fit(x, y, loss=lk.CrossEntropyLoss(), optimizer=lk.optim.AdamW(model.parameters(), lr=1e-2),
                     epochs=12, batch_size=32, validation_data=(xv, yv), metrics=["accuracy"], progress=False,
                     run_dir=tmp_path / "run")
    assert hist.stop_reason == "budget" and len(hist.history["val_accuracy"]) == 12
    # chance is 50 %; an LSTM that learned to sum the first feature gets well above 90 %
    assert hist.history["val_accuracy"][-1] >= 0.9, hist.history
    scores = model.evaluate(xv, yv)                        # the loss and metrics fit was given
    assert set(scores) == {"loss", "accuracy"}
    assert scores["accuracy"] == pytest.approx(hist.history["val_accuracy"][-1])
    logits = model.predict(xv, batch_size=100)             # batches of 100, 100, 56
    assert logits.shape == (256, 2)
    assert scores["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == yv))
    assert {"latest.npz", "best.npz", "history.csv", "loss.png"} <= set(os.listdir(tmp_path / "run"))
    best = lk.load_model(tmp_path / "run" / "best.npz")     # the run's best.npz is a model file
    assert best.evaluate(xv, yv, loss=lk.CrossEntropyLoss())["loss"] == pytest.approx(min(hist.history["val_loss"]))


def test_validation_split_holds_out_the_last_samples_before_shuffling(tmp_path):
    x, y = sign_task(100, 2)
    model = small_model()
    hist = model.fit(x, y, epochs=1, batch_size=16, validation_split=0.2, progress=False, run_dir=tmp_path / "r",
                     metrics=["accuracy"])
    _, meta = checkpoint.load(tmp_path / "r" / "latest.npz")
    assert meta["fit"]["n_train"] == 80 and meta["position"]["step"] == 5        # ceil(80 / 16)
    held = model.evaluate(x[80:], y[80:])
    assert hist.history["val_loss"][-1] == pytest.approx(held["loss"])


def run_fit(model: lk.Layer, run_dir, **kw):
    x, y = sign_task(40, 3)
    xv, yv = sign_task(24, 4)
    args = dict(loss=lk.CrossEntropyLoss(), optimizer=lk.optim.AdamW(model.parameters(), lr=5e-3), epochs=4,
                batch_size=8, validation_data=(xv, yv), metrics=["accuracy"], progress=False, run_dir=run_dir,
                schedule="cosine", warmup=3, clip=1.0, seed=5)
    return model.fit(x, y, **{**args, **kw})


def test_resume_after_a_real_interruption_continues_bit_for_bit(tmp_path, monkeypatch):
    whole = small_model(dropout=0.3)                    # dropout and shuffling both draw random numbers
    run_fit(whole, tmp_path / "whole")

    original = ArrayTrainer.advance

    def ctrl_c_at_step_7(self: ArrayTrainer) -> None:
        original(self)
        if self.step == 7:                                # mid-epoch: 5 steps per epoch
            os.kill(os.getpid(), signal.SIGINT)

    cut = small_model(dropout=0.3)
    monkeypatch.setattr(ArrayTrainer, "advance", ctrl_c_at_step_7)
    assert run_fit(cut, tmp_path / "cut").stop_reason == "interrupted"
    monkeypatch.undo()
    _, meta = checkpoint.load(tmp_path / "cut" / "latest.npz")
    assert meta["position"]["step"] == 7
    with pytest.raises(RunError, match="already holds a run; pass resume=True"):
        run_fit(small_model(dropout=0.3), tmp_path / "cut")

    again = small_model(dropout=0.3, seed=99)           # other initial weights: all state must come from the file
    assert run_fit(again, tmp_path / "cut", resume=True).stop_reason == "budget"
    a, meta_a = checkpoint.load(tmp_path / "whole" / "latest.npz")
    b, meta_b = checkpoint.load(tmp_path / "cut" / "latest.npz")
    assert set(a) == set(b) and any(k.startswith("optim.") for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)          # weights and AdamW moments
    pos_a, pos_b = ({k: v for k, v in m["position"].items() if k != "elapsed_s"} for m in (meta_a, meta_b))
    assert meta_a["rng"] == meta_b["rng"] and pos_a == pos_b
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in meta_a["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "elapsed_s"} for r in meta_b["history"]]
    for k, v in whole.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)


def test_resume_refuses_another_model_or_other_run_settings(tmp_path):
    run_fit(small_model(), tmp_path / "run", epochs=1)
    other = lk.Sequential(lk.LSTM(3, 8, return_sequences=False), lk.Dense(8, 2))
    with pytest.raises(RunError, match="the run's model differs"):
        run_fit(other, tmp_path / "run", resume=True, epochs=2)
    with pytest.raises(RunError, match="batch_size cannot change"):
        run_fit(small_model(), tmp_path / "run", resume=True, epochs=2, batch_size=4)
    hist = run_fit(small_model(), tmp_path / "run", resume=True, epochs=2)   # a new budget is fine
    assert len(hist.history["val_loss"]) == 2
    assert run_fit(small_model(), tmp_path / "fresh", resume=True, epochs=1).stop_reason == "budget"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = ArrayTrainer.batch_loss

    def poisoned(self: ArrayTrainer) -> float:
        if self.step == 6:
            self.model[2].weight.value[0, 0] = np.nan
        return original(self)

    monkeypatch.setattr(ArrayTrainer, "batch_loss", poisoned)
    with pytest.warns(RuntimeWarning, match=r"non-finite .* at step 7.*latest.npz"):
        hist = run_fit(small_model(), tmp_path / "run")
    assert hist.stop_reason == "nan"
    _, meta = checkpoint.load(tmp_path / "run" / "latest.npz")
    assert meta["position"]["step"] == 5                  # the end-of-epoch-1 checkpoint, untouched
    assert np.isfinite(lk.load_model(tmp_path / "run" / "latest.npz")[2].weight.value).all()


def test_early_stopping_and_restoring_the_best_weights():
    g = np.random.default_rng(0)
    x, xv = g.standard_normal((64, 5, 3)), g.standard_normal((64, 5, 3))
    y, yv = g.integers(0, 2, 64), g.integers(0, 2, 64)   # noise: validation loss soon stops improving
    model = lk.Sequential(lk.LSTM(3, 32, return_sequences=False, dtype="float64"), lk.Dense(32, 2, dtype="float64"))
    hist = model.fit(x, y, optimizer=lk.optim.Adam(model.parameters(), lr=3e-2), epochs=200, batch_size=8,
                     validation_data=(xv, yv), early_stopping=3, restore_best_weights=True, progress=False)
    vals = hist.history["val_loss"]
    assert hist.stop_reason == "early_stop" and len(vals) < 200
    best = int(np.argmin(vals))
    assert len(vals) == best + 1 + 3                     # stopped after 3 evaluations without improvement
    assert model.evaluate(xv, yv)["loss"] == pytest.approx(vals[best], rel=1e-12)


def test_padded_sequences_pass_their_lengths_through():
    g = np.random.default_rng(1)
    seqs = [g.standard_normal((n, 3)) for n in (4, 1, 6, 2)]
    x, lengths = lk.data.pad_sequences(seqs)
    model = lk.Sequential(lk.GRU(3, 5, return_sequences=True, dtype="float64"), lk.Dense(5, 4, dtype="float64"))
    out = model.predict(x, batch_size=3, lengths=lengths)          # (B, T, 4)
    for b, s in enumerate(seqs):                                    # each as if it were alone, unpadded
        np.testing.assert_allclose(out[b, :len(s)], model.predict(s[None])[0], atol=1e-12)
    # tags: padding carries ignore_index, and accuracy counts only the real positions
    tags = np.full(x.shape[:2], -100)
    for b, s in enumerate(seqs):
        tags[b, :len(s)] = g.integers(0, 4, len(s))
    got = model.evaluate(x, tags, loss=lk.CrossEntropyLoss(), metrics=["accuracy"], lengths=lengths)
    real = tags >= 0
    assert got["accuracy"] == pytest.approx(np.mean(out.argmax(-1)[real] == tags[real]))
    hist = model.fit(x, tags, epochs=2, batch_size=2, lengths=lengths, metrics=["accuracy"], progress=False)
    assert len(hist.history["loss"]) == 2 and np.isfinite(hist.history["loss"]).all()


def test_bad_input_is_named():
    x, y = sign_task(10, 0)
    model = small_model()
    with pytest.raises(ValueError, match="evaluate: no loss given"):
        model.evaluate(x, y)
    with pytest.raises(ValueError, match="x has 10 samples but y has shape"):
        model.fit(x, y[:5], progress=False)
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        model.fit(x, y, metrics=["acc"], progress=False)
    with pytest.raises(ValueError, match="lengths as integers of shape"):
        model.fit(x, y, lengths=np.ones(3, int), progress=False)
    with pytest.raises(ValueError, match="takes no lengths"):
        lk.fit(lk.Dense(3, 2), x[:, 0], y, lengths=np.ones(10, int), progress=False)
    with pytest.raises(ValueError, match="validation_data or validation_split, not both"):
        model.fit(x, y, validation_data=(x, y), validation_split=0.1, progress=False)
    with pytest.raises(RunError, match="epochs must be >= 1"):
        model.fit(x, y, epochs=0, progress=False)
    with pytest.raises(ValueError, match=r"LSTM: expected input of shape \(B, T, 3\)"):
        model.predict(x[..., :2])
