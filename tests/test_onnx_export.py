"""lk.onnx.export: every exportable layer and the char LM written as ONNX, checked by onnx.checker, run in
onnxruntime and equal to lstmkit's eval-mode output within 1e-5 (float32) — ragged batches through sequence_lens,
stacked and bidirectional layers, initial states in and final states out; what has no ONNX form is refused by
name; the command line writes the same file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lstmkit as lk
from lstmkit.cli import main
from lstmkit.onnx import ExportError, export

RNNS = [(lk.LSTM, {}), (lk.GRU, {}), (lk.SimpleRNN, {"nonlinearity": "tanh"}), (lk.SimpleRNN, {"nonlinearity": "relu"}),
        (lk.PeepholeLSTM, {})]


def _run(path, **feeds) -> list[np.ndarray]:
    onnx.checker.check_model(onnx.load(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def _randomise(model: lk.Layer, seed: int = 0) -> None:
    g = np.random.default_rng(seed)
    for p in model.parameters():
        p.value[...] = g.standard_normal(p.value.shape) * 0.5


def _same_in_onnxruntime(model: lk.Layer, x: np.ndarray, path, seed: int, **export_kw) -> None:
    """``model`` with random weights, exported, run in onnxruntime: lstmkit's eval-mode output within 1e-5."""
    _randomise(model, seed)
    model.eval()
    (y,) = _run(export(model, path, **export_kw), x=x)
    np.testing.assert_allclose(y, model.forward(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,kw", RNNS)
@pytest.mark.parametrize("bi", [False, True])
def test_recurrent_layers_run_in_onnxruntime_as_in_lstmkit(kind, kw, bi, tmp_path):
    model = lk.Sequential(kind(3, 5, num_layers=2, bidirectional=bi, return_sequences=True, **kw),
                          lk.TimeDistributed(lk.Dense(10 if bi else 5, 4)), lk.Activation("tanh"))
    _randomise(model)
    model.eval()
    g = np.random.default_rng(1)
    x = g.standard_normal((4, 9, 3)).astype(np.float32)
    lengths = np.array([9, 2, 6, 5])
    path = export(model, tmp_path / "m.onnx", lengths=True)
    (y,) = _run(path, x=x, lengths=lengths.astype(np.int32))
    np.testing.assert_allclose(y, model.forward(x, lengths=lengths), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,kw", RNNS[:2])
def test_the_last_output_keras_style(kind, kw, tmp_path):
    model = lk.Sequential(kind(3, 5, bidirectional=True, return_sequences=False, **kw), lk.Dense(10, 2))
    x = np.random.default_rng(3).standard_normal((3, 7, 3)).astype(np.float32)
    _same_in_onnxruntime(model, x, tmp_path / "m.onnx", 2)


def test_per_step_layers_first_and_a_flatten(tmp_path):
    """A model that starts with TimeDistributed(Dense) (input_size from it) and ends flattened."""
    model = lk.Sequential(lk.TimeDistributed(lk.Dense(3, 6)), lk.Activation("relu"),
                          lk.LSTM(6, 4, return_sequences=True), lk.Activation("leaky_relu", 0.1), lk.Flatten(),
                          lk.Dense(20, 3), lk.Activation("softmax"))
    x = np.random.default_rng(9).standard_normal((2, 5, 3)).astype(np.float32)
    _same_in_onnxruntime(model, x, tmp_path / "m.onnx", 8)


def test_images_and_the_video_model(tmp_path):
    """Conv2D ("same" with stride and dilation, explicit padding), pooling with padding, BatchNorm2D's running
    statistics, the global mean; and lk.models.CNNLSTM over clips with T left open."""
    net = lk.Sequential(lk.Conv2D(3, 4, 3, stride=2, padding="same"), lk.Activation("relu"),
                        lk.Conv2D(4, 5, 3, padding=1, dilation=2), lk.BatchNorm2D(5), lk.AvgPool2D(3, 2, padding=1),
                        lk.MaxPool2D(2, padding=1), lk.GlobalAvgPool2D(), lk.Dense(5, 2))
    _randomise(net, 10)
    g = np.random.default_rng(11)
    net.train()
    net.forward(g.standard_normal((6, 11, 9, 3)).astype(np.float32))   # running statistics of their own
    net.eval()
    x = g.standard_normal((2, 11, 9, 3)).astype(np.float32)
    (y,) = _run(export(net, tmp_path / "net.onnx", input_shape=(11, 9, 3)), x=x)
    np.testing.assert_allclose(y, net.forward(x), rtol=1e-5, atol=1e-5)
    video = lk.models.CNNLSTM(3, size=16, conv_channels=(4, 6), features=8, hidden=5)
    clips = g.standard_normal((2, 4, 16, 16, 3)).astype(np.float32)
    _same_in_onnxruntime(video, clips, tmp_path / "video.onnx", 12, input_shape=(None, 16, 16, 3))


def test_the_ctc_recogniser_on_ragged_strips(tmp_path):
    """lk.models.CTCRecognizer (a bidirectional 2-layer LSTM and a Dense): per-column logits for ragged strips, which
    lstmkit's CTC decoders then read."""
    model = lk.models.CTCRecognizer(6, 11, hidden=5)
    _randomise(model, 13)
    model.eval()
    x = np.random.default_rng(14).standard_normal((3, 10, 6)).astype(np.float32)
    lengths = np.array([10, 4, 7])
    (y,) = _run(export(model, tmp_path / "ctc.onnx", lengths=True), x=x, lengths=lengths.astype(np.int32))
    ours = model.forward(x, lengths=lengths)
    np.testing.assert_allclose(y, ours, rtol=1e-5, atol=1e-5)
    assert lk.decoding.ctc_greedy(y, input_lengths=lengths) == lk.decoding.ctc_greedy(ours, input_lengths=lengths)


def test_the_char_lm_with_its_state_in_and_out(tmp_path):
    model = lk.models.CharLM(lk.models.CharLMConfig(vocab_size=7, embed=4, hidden=6, layers=2))
    _randomise(model, 4)
    model.eval()
    g = np.random.default_rng(5)
    ids = g.integers(0, 7, (2, 8))
    h0, c0 = (g.standard_normal((2, 2, 6)).astype(np.float32) for _ in range(2))
    logits, (h_n, c_n) = model.forward(ids, (h0, c0))
    path = export(model, tmp_path / "lm.onnx", states=True)
    y, h, c = _run(path, x=ids.astype(np.int64), h0=h0, c0=c0)
    for ours, theirs in ((logits, y), (h_n, h), (c_n, c)):
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)


def test_what_has_no_onnx_form_is_refused_by_name(tmp_path):
    for layer, message in ((lk.LSTM(3, 4, proj_size=2), "LSTM with proj_size has no ONNX operator"),
                           (lk.LayerNormLSTM(3, 4), "LayerNormLSTM has no ONNX operator"),
                           (lk.GRU(3, 4, zoneout=0.1), "GRU with zoneout"),
                           (lk.Sequential(lk.LSTM(3, 4, return_sequences=True), lk.Bidirectional(lk.GRU(4, 3))),
                            "Bidirectional has no ONNX form here"),
                           (lk.Sequential(lk.Conv2D(3, 4, 3)), "give input_shape")):
        with pytest.raises(ExportError, match=message):
            export(layer, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_the_command_line_exports_a_model_file(tmp_path, capsys):
    model = lk.Sequential(lk.GRU(3, 4, return_sequences=False), lk.Dense(4, 2))
    _randomise(model, 6)
    lk.save_model(model, tmp_path / "m.npz")
    assert main(["model", "export", str(tmp_path / "m.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    model.eval()
    x = np.random.default_rng(7).standard_normal((2, 5, 3)).astype(np.float32)
    (y,) = _run(tmp_path / "m.onnx", x=x)
    np.testing.assert_allclose(y, model.forward(x), rtol=1e-5, atol=1e-5)
    assert main(["model", "export", str(tmp_path / "m.npz"), "--onnx", str(tmp_path / "no" / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'no' / 'm.onnx'}: no such folder to write into" in err
    lk.save_model(lk.LayerNormLSTM(3, 4), tmp_path / "ln.npz")
    assert main(["model", "export", str(tmp_path / "ln.npz"), "--onnx", str(tmp_path / "ln.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LayerNormLSTM has no ONNX operator" in err
