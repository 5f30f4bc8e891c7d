"""lk.gradcheck: every layer's backward passes it in float64, and a deliberately wrong backward is caught
with the worst element named."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.models.charlm import CharLM, CharLMConfig


def f64(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def cases() -> list[tuple[str, object, tuple, dict]]:
    g = np.random.default_rng(0)
    d = "float64"
    return [
        ("Dense", lk.Dense(4, 3, dtype=d, rng=g), (f64(2, 4),), {}),
        ("Activation tanh", lk.Activation("tanh"), (f64(2, 5),), {}),
        ("LSTM ragged", lk.LSTM(3, 4, num_layers=2, dtype=d, rng=g), (f64(2, 5, 3),), {"lengths": np.array([5, 3])}),
        ("BiGRU", lk.GRU(3, 3, bidirectional=True, dtype=d, rng=g), (f64(2, 4, 3),), {}),
        ("SimpleRNN relu", lk.SimpleRNN(3, 4, nonlinearity="relu", dtype=d, rng=g), (f64(2, 4, 3),), {}),
        ("PeepholeLSTM", lk.PeepholeLSTM(3, 3, dtype=d, rng=g), (f64(2, 4, 3),), {}),
        ("LSTMCell", lk.LSTMCell(3, 4, dtype=d, rng=g), (f64(2, 3),), {}),
        ("Conv2D", lk.Conv2D(2, 3, 3, padding="same", dtype=d, rng=g), (f64(2, 5, 4, 2),), {}),
        ("MaxPool2D", lk.MaxPool2D(2), (f64(2, 4, 4, 2),), {}),
        ("BatchNorm2D", lk.BatchNorm2D(2, dtype=d), (f64(3, 3, 3, 2),), {}),
        ("TimeDistributed", lk.TimeDistributed(lk.Dense(3, 2, dtype=d, rng=g)), (f64(2, 4, 3),), {}),
        ("Embedding", lk.Embedding(6, 3, dtype=d, rng=g), (np.array([[1, 5, 0], [2, 2, 3]]),), {}),
        ("CharLM", CharLM(CharLMConfig(vocab_size=7, embed=3, hidden=4, layers=2, dropout=0.0, output_dropout=0.0,
                                      input_dropout=0.0, dtype=d), rng=g),
         (np.array([[1, 2, 3, 6], [0, 4, 4, 5]]),), {}),
        ("Dropout (eval)", lk.Dropout(0.5).eval(), (f64(2, 5),), {}),
        ("Flatten", lk.Flatten(), (f64(2, 3, 2),), {}),
        ("GRUCell", lk.GRUCell(3, 4, dtype=d, rng=g), (f64(2, 3),), {}),
        ("SimpleRNNCell", lk.SimpleRNNCell(3, 4, dtype=d, rng=g), (f64(2, 3),), {}),
        ("Bidirectional concat", lk.Bidirectional(lk.LSTM(3, 3, return_sequences=True, dtype=d, rng=g)),
         (f64(2, 4, 3),), {}),
        ("AvgPool2D", lk.AvgPool2D(2), (f64(2, 4, 4, 2),), {}),
        ("GlobalAvgPool2D", lk.GlobalAvgPool2D(), (f64(2, 3, 3, 2),), {}),
        ("CNN+LSTM", lk.models.CNNLSTM(3, 1, 8, (2,), 4, 3, dtype=d, rng=g), (f64(2, 3, 8, 8, 1),), {}),
        ("SLSTM", lk.models.TreeClassifier(5, 3, 3, 4, "slstm", dtype=d, rng=g),
         (np.array([[[1, -1], [2, 0], [3, 0]]], np.int32),), {}),
    ]


@pytest.mark.parametrize("name,layer,inputs,kw", cases(), ids=[c[0] for c in cases()])
def test_every_layer_passes(name, layer, inputs, kw):
    report = lk.gradcheck(layer, inputs, **kw)
    assert report.ok and sum(report.checked.values()) > 0 and report.worst.error < 1e-6, str(report)


def test_a_wrong_backward_is_caught_and_the_worst_element_named():
    class Scaled(lk.Layer):                                   # y = w * x, with a backward that forgets a term
        def __init__(self) -> None:
            super().__init__()
            self.w = lk.Parameter(np.array([1.5, -2.0, 0.5]), "w")

        def forward(self, x: np.ndarray) -> np.ndarray:
            self.x = x
            return self.w.value * x

        def backward(self, dy: np.ndarray) -> np.ndarray:
            self.w.grad += (dy * self.x).sum(axis=0)
            dx = dy * self.w.value
            dx[:, 1] = 0.0                                    # the deliberate mistake
            return dx

    with pytest.raises(lk.GradcheckError, match=r"(?s)FAILED.*worst: input\[\d, 1\]: backward 0, finite differences"):
        lk.gradcheck(Scaled(), f64(4, 3))
    report = lk.gradcheck(Scaled(), f64(4, 3), raise_exception=False)
    assert not report.ok and {m.index[1] for m in report.failures} == {1} and report.checked == {"input": 12, "w": 3}
    with pytest.raises(ValueError, match="parameter weight is float32; build the layer with dtype='float64'"):
        lk.gradcheck(lk.Dense(2, 2), f64(1, 2))
    np.testing.assert_allclose(                               # a plain function with its backward
        lk.gradcheck(np.sin, f64(5), backward=lambda dy: dy * np.cos(f64(5))).worst.analytic,
        lk.gradcheck(np.sin, f64(5), backward=lambda dy: dy * np.cos(f64(5))).worst.numeric, atol=1e-7)
