"""Model files: every layer type round-trips with identical outputs; bad files are refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.cli import main
from lstmkit.modelfile import ModelFileError
from lstmkit.models.charlm import CharLM, CharLMConfig


def models() -> list[tuple[str, Any, tuple[int, ...], str]]:
    """(name, model, one sample's shape, input dtype) for every layer type."""
    g = np.random.default_rng(0)
    return [
        ("Dense", lk.Dense(4, 3, bias=False, dtype="float64", rng=g), (4,), "f"),
        ("Activation", lk.Activation("leaky_relu", negative_slope=0.2), (4,), "f"),
        ("Dropout", lk.Dropout(0.3), (4,), "f"),
        ("Flatten", lk.Flatten(), (2, 3), "f"),
        ("Embedding", lk.Embedding(7, 3, padding_idx=2, rng=g), (5,), "i"),
        ("LSTM", lk.LSTM(3, 4, num_layers=2, bidirectional=True, return_sequences=True, rng=g), (6, 3), "f"),
        ("GRU", lk.GRU(3, 4, bias=False, return_sequences=False, dtype="float64", rng=g), (6, 3), "f"),
        ("SimpleRNN", lk.SimpleRNN(3, 4, nonlinearity="relu", return_sequences=True, rng=g), (6, 3), "f"),
        ("LSTMCell", lk.LSTMCell(3, 4, rng=g), (3,), "f"),
        ("GRUCell", lk.GRUCell(3, 4, rng=g), (3,), "f"),
        ("SimpleRNNCell", lk.SimpleRNNCell(3, 4, nonlinearity="relu", rng=g), (3,), "f"),
        ("Bidirectional", lk.Bidirectional(lk.LSTM(3, 4, return_sequences=True, rng=g), "sum"), (6, 3), "f"),
        ("TimeDistributed", lk.TimeDistributed(lk.Dense(3, 2, rng=g)), (6, 3), "f"),
        ("Sequential", lk.Sequential(lk.Embedding(9, 3, rng=g), lk.GRU(3, 5, return_sequences=True, rng=g),
                                     lk.TimeDistributed(lk.Sequential(lk.Dense(5, 4, rng=g), lk.Activation("tanh"))),
                                     lk.LSTM(4, 2, return_sequences=False, rng=g)), (6,), "i"),
        ("CharLM", CharLM(CharLMConfig(vocab_size=9, embed=4, hidden=6, layers=2, dropout=0.1), rng=g), (6,), "i"),
        ("Conv2D", lk.Conv2D(3, 4, (3, 2), stride=(2, 1), padding="same", dilation=(1, 2), rng=g), (7, 6, 3), "f"),
        ("MaxPool2D", lk.MaxPool2D(3, 2, 1), (7, 6, 3), "f"),
        ("AvgPool2D", lk.AvgPool2D((2, 3)), (7, 6, 3), "f"),
        ("GlobalAvgPool2D", lk.GlobalAvgPool2D(), (7, 6, 3), "f"),
        ("BatchNorm2D", lk.BatchNorm2D(3, momentum=None, affine=True), (7, 6, 3), "f"),
        ("CNN+LSTM", lk.Sequential(lk.TimeDistributed(lk.Sequential(
            lk.Conv2D(1, 4, 3, padding="same", rng=g), lk.Activation("relu"), lk.MaxPool2D(2), lk.Flatten(),
            lk.Dense(16, 5, rng=g))), lk.LSTM(5, 6, return_sequences=False, rng=g), lk.Dense(6, 3, rng=g)),
         (4, 4, 4, 1), "f"),
    ]


def run(model: lk.Layer, x: np.ndarray) -> np.ndarray:
    out = model.forward(x)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name,model,shape,kind", models(), ids=[m[0] for m in models()])
def test_every_layer_type_round_trips_with_identical_outputs(tmp_path, name, model, shape, kind):
    g = np.random.default_rng(1)
    x = g.integers(0, 7, (2, *shape)) if kind == "i" else g.standard_normal((2, *shape))
    model.eval()
    path = tmp_path / f"{name}.npz"
    lk.save_model(model, path)
    same = lk.load_model(path)
    assert type(same) is type(model) and repr(same) == repr(model)
    assert same.config().keys() == model.config().keys()
    for (ka, a), (kb, b) in zip(model.state_dict().items(), same.state_dict().items()):
        assert ka == kb and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, err_msg=ka)
    np.testing.assert_array_equal(run(same, x), run(model, x))


def test_optimizer_state_is_saved_when_asked_and_continues_exactly(tmp_path):
    g = np.random.default_rng(2)
    model = lk.Sequential(lk.LSTM(3, 4, return_sequences=False, dtype="float64"), lk.Dense(4, 2, dtype="float64"))
    decay = [p for p in model.parameters() if p.value.ndim == 2]
    rest = [p for p in model.parameters() if p.value.ndim < 2]
    opt = lk.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=0.01)
    x, y = g.standard_normal((5, 4, 3)), g.integers(0, 2, 5)
    loss = lk.CrossEntropyLoss()

    def step(m: lk.Layer, o: lk.optim.Optimizer) -> None:
        o.zero_grad()
        loss(m.forward(x), y)
        m.backward(loss.backward())
        o.step()

    step(model, opt)
    model.save(tmp_path / "m.npz", optimizer=opt)
    same = lk.load_model(tmp_path / "m.npz")
    same.train()
    opt2 = lk.load_optimizer(tmp_path / "m.npz", same)
    assert type(opt2) is lk.optim.AdamW and [g["weight_decay"] for g in opt2.param_groups] == [0.1, 0.0]
    step(model, opt)
    step(same, opt2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(same.state_dict()[k], v, err_msg=k)
    lk.save_model(lk.Dense(2, 2), tmp_path / "plain.npz")
    with pytest.raises(ModelFileError, match=r"plain.npz: holds no optimizer state"):
        lk.load_optimizer(tmp_path / "plain.npz", lk.Dense(2, 2))


class Scale(lk.Layer):
    """A user's own layer: found by load_model once its class is defined."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def config(self) -> dict[str, Any]:
        return {"factor": self.factor}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.factor


def test_a_users_own_layer_round_trips_and_an_undescribed_one_is_named(tmp_path):
    lk.Sequential(lk.Dense(2, 2), Scale(3.0)).save(tmp_path / "s.npz")
    same = lk.load_model(tmp_path / "s.npz")
    assert isinstance(same[1], Scale) and same[1].factor == 3.0

    class Opaque(lk.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

    with pytest.raises(NotImplementedError, match="Opaque does not describe its constructor arguments"):
        lk.Sequential(Opaque()).save(tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()


def bad_files(tmp_path) -> dict[str, tuple[Any, str]]:
    good = tmp_path / "good.npz"
    lk.Sequential(lk.LSTM(3, 4, return_sequences=False), lk.Dense(4, 2)).save(good)
    arrays, meta = checkpoint.load(good)
    out: dict[str, tuple[Any, str]] = {}
    (tmp_path / "garbage.npz").write_bytes(b"not a zip archive at all" * 20)
    out["garbage"] = (tmp_path / "garbage.npz", "not a readable lstmkit checkpoint")
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:900])
    out["truncated"] = (tmp_path / "truncated.npz", "not a readable lstmkit checkpoint")
    np.savez(tmp_path / "foreign.npz", w=np.zeros(3))
    out["foreign"] = (tmp_path / "foreign.npz", "not a readable lstmkit checkpoint")
    checkpoint.save(tmp_path / "nomodel.npz", {"w": np.zeros(2)}, {"step": 1})
    out["no description"] = (tmp_path / "nomodel.npz", "not an lstmkit model file")
    newer = json.loads(json.dumps(meta))
    newer["lstmkit_model"]["version"] = 99
    checkpoint.save(tmp_path / "newer.npz", arrays, newer)
    out["newer"] = (tmp_path / "newer.npz", "model format version 99 is newer than this lstmkit reads")
    unknown = json.loads(json.dumps(meta))
    unknown["lstmkit_model"]["architecture"]["config"]["layers"][1]["class"] = "Conv7D"
    checkpoint.save(tmp_path / "unknown.npz", arrays, unknown)
    out["unknown layer"] = (tmp_path / "unknown.npz", "layer type 'Conv7D' is not known")
    short = dict(arrays)
    short["model/1.weight"] = short["model/1.weight"][:1]
    checkpoint.save(tmp_path / "shape.npz", short, meta)
    out["wrong shape"] = (tmp_path / "shape.npz", "'1.weight' expected shape (2, 4)")
    out["missing"] = (tmp_path / "missing.npz", "no checkpoint file there")
    return out


def test_bad_model_files_raise_a_value_error_naming_the_file(tmp_path):
    for what, (path, needle) in bad_files(tmp_path).items():
        with pytest.raises(ModelFileError) as e:
            lk.load_model(path)
        assert isinstance(e.value, ValueError), what
        assert str(path) in str(e.value) and needle in str(e.value), (what, str(e.value))


def test_bad_model_files_at_the_cli_one_line_and_exit_2(tmp_path, capsys):
    for what, (path, needle) in bad_files(tmp_path).items():
        assert main(["model", "summary", str(path)]) == 2, what
        err = capsys.readouterr().err.strip()
        assert err.startswith("lstmkit: error:") and "\n" not in err and str(path) in err and needle in err, err
    assert main(["model", "summary", str(tmp_path / "good.npz"), "--input-shape", "7,3"]) == 0
    out = capsys.readouterr().out
    assert "(0): LSTM(3, 4, return_sequences=False)" in out and "(None, 2)" in out and "Total params: 154" in out
    assert main(["model", "summary", str(tmp_path / "good.npz"), "--input-shape", "7,5"]) == 2
    assert "does not fit the model" in capsys.readouterr().err
    assert main(["model", "summary", str(tmp_path / "good.npz"), "--input-shape", "seven"]) == 2
    r = subprocess.run([sys.executable, "-m", "lstmkit", "model", "summary", str(tmp_path / "newer.npz")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
