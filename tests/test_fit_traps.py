"""Traps a new user hit with ``fit`` on real data: padded validation, class-sorted validation splits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lstmkit as lk


def padded(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sign-of-sum sequences of 3..12 real steps padded to 12 with large noise (wrong to read as data)."""
    g = np.random.default_rng(seed)
    lengths = g.integers(3, 13, n)
    x = g.standard_normal((n, 12, 2)).astype(np.float32)
    y = np.array([int(x[i, :lengths[i], 0].sum() > 0) for i in range(n)])
    for i in range(n):
        x[i, lengths[i]:] = 5 * g.standard_normal((12 - lengths[i], 2))
    return x, y, lengths


def model() -> lk.Sequential:
    g = np.random.default_rng(0)
    return lk.Sequential(lk.LSTM(2, 12, return_sequences=False, rng=g), lk.Dense(12, 2, rng=g))


def test_padded_training_refuses_validation_without_lengths_and_scores_with_them():
    x, y, lens = padded(256, 0)
    xv, yv, lv = padded(128, 1)
    m = model()
    with pytest.raises(ValueError, match=r"validation_data has none.*\(x_val, y_val, lengths_val\)"):
        m.fit(x, y, lengths=lens, validation_data=(xv, yv), epochs=1, progress=False)
    hist = m.fit(x, y, lengths=lens, validation_data=(xv, yv, lv), epochs=8, batch_size=32, metrics=["accuracy"],
                 optimizer=lk.optim.Adam(m.parameters(), lr=1e-2), progress=False)
    right = m.evaluate(xv, yv, lengths=lv)
    assert right["accuracy"] == pytest.approx(hist.history["val_accuracy"][-1])
    with pytest.warns(UserWarning, match="fit on padded sequences .* but no lengths are given"):
        wrong = m.evaluate(xv, yv)
    assert wrong["accuracy"] < right["accuracy"] - 0.05        # what the silent version reported
    with pytest.warns(UserWarning, match="predict: the model was fit on padded sequences"):
        m.predict(xv[:3])
    assert m.predict(xv[:3], lengths=lv[:3]).shape == (3, 2)


def test_validation_split_warns_when_a_class_falls_on_one_side_only():
    g = np.random.default_rng(2)
    x = g.standard_normal((100, 5, 2)).astype(np.float32)
    y = np.repeat([0, 1, 2], [40, 40, 20])                       # sorted by class, as the UEA files are
    with pytest.warns(UserWarning, match=r"validation part holds class\(es\) \[2\] that training never sees"):
        model_3 = lk.Sequential(lk.LSTM(2, 4, return_sequences=False), lk.Dense(4, 3))
        model_3.fit(x, y, validation_split=0.2, epochs=1, progress=False)
    p = g.permutation(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                           # shuffled: every class on both sides, no warning
        model_3.fit(x[p], y[p], validation_split=0.2, epochs=1, progress=False)


def test_float_class_labels_train_as_integers_and_fractions_get_a_clear_error():
    """Labels read from a CSV come as floats: whole numbers are class indices (as Keras takes them), trained on and
    scored (loss and accuracy) exactly as their integer form; a fraction is refused with what was expected, not a
    probability-shape error."""
    x, y, lens = padded(128, 0)
    runs = []
    for labels in (y, y.astype(np.float64)):
        m = model()
        runs.append(m.fit(x, labels, lengths=lens, epochs=2, batch_size=32, metrics=["accuracy"],
                          validation_data=(x, labels, lens), progress=False).history)
        runs[-1]["eval"] = [m.evaluate(x, labels, lengths=lens)["loss"]]
    assert runs[0] == runs[1]
    bad = y.astype(np.float64)
    bad[3] = 0.5
    with pytest.raises(ValueError, match=r"class indices, which must be integers; got values such as 0\.5 "
                                         r"\(for class probabilities, give the logits' shape \(128, 2\)\)"):
        lk.CrossEntropyLoss()(np.zeros((128, 2)), bad)


def test_the_history_and_evaluate_hold_plain_python_numbers():
    """Printing a history shows 0.93, not np.float64(0.93): every logged value and evaluate()'s figures are Python
    numbers."""
    x, y, lens = padded(96, 0)
    xv, yv, lv = padded(32, 1)
    m = model()
    hist = m.fit(x, y, lengths=lens, validation_data=(xv, yv, lv), epochs=2, batch_size=32, metrics=["accuracy"],
                 progress=False)
    values = [v for vs in hist.history.values() for v in vs]
    values += [v for row in hist.rows for v in row.values() if v is not None]
    values += list(m.evaluate(xv, yv, lengths=lv).values())
    assert values and all(type(v) in (int, float) for v in values), {type(v) for v in values}
    assert "np." not in repr(hist.history)
