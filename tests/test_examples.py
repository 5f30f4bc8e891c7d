"""The examples run and reproduce what they claim."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_numeric_lstm_reproduces_the_worked_example():
    ex = load("numeric_lstm.py")
    out = ex["run"](verbose=False)
    s1 = out["steps"][0]
    np.testing.assert_allclose(s1["pre_f"], [0.875, 0.625], atol=1e-12)
    np.testing.assert_allclose(s1["c"], [0.2950, 0.1557], atol=5e-5)
    np.testing.assert_allclose(s1["h"], [0.1664, 0.0878], atol=5e-5)
    # Recompute all three steps independently, straight from the equations on [x, h].
    W = {g: np.array(v) for g, v in ex["W"].items()}
    b = {g: np.array(v) for g, v in ex["B"].items()}
    h, c = np.zeros(2), np.zeros(2)
    for x, st in zip(ex["XS"], out["steps"]):
        z = np.r_[x, h]
        gates = {g: W[g] @ z + b[g] for g in "ifgo"}
        i, f, o = (np.vectorize(sigmoid)(gates[g]) for g in "ifo")
        g = np.tanh(gates["g"])
        c = f * c + i * g
        h = o * np.tanh(c)
        np.testing.assert_allclose(st["c"], c, atol=1e-14)
        np.testing.assert_allclose(st["h"], h, atol=1e-14)
    assert abs(out["y"] - (np.array(ex["W_Y"]) @ h + ex["B_Y"][0])[0]) < 1e-14


def test_numeric_lstm_prints_each_gate(capsys):
    load("numeric_lstm.py")["run"]()
    text = capsys.readouterr().out
    assert "forget gate  pre = [0.875 0.625]" in text
    assert "output y = W_y · h_3 + b_y" in text


def test_sequence_tagging_learns_at_tiny_size():
    ex = load("sequence_tagging.py")
    cfg = ex["Config"](steps=300, hidden=32, layers=1, max_len=10, lr=0.02, batch=48)
    _, tags, _ = ex["make_batch"](cfg, 1000, np.random.default_rng(1))
    valid = tags[tags != ex["PAD"]]
    majority = max(valid.mean(), 1 - valid.mean())          # what always predicting one tag scores (~0.7)
    result = ex["train"](cfg, progress=False)
    assert majority < 0.8
    assert result["heldout_accuracy"] >= 0.93, result
    assert result["train_loss"] < 0.25, result
