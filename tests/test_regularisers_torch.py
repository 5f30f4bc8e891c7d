"""The regularisers every recurrent layer takes (layers/regularise.py): each kind, with every regulariser on, equals a
float64 PyTorch step oracle that applies the masks our layer drew where lstmkit applies them — outputs, final
states, the input's and initial state's gradients and every parameter's; ragged, bidirectional, stacked. Then
gradcheck with the masks held, eval mode running none, the options in model files, and bad values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk

from .conftest import assert_close, t64
from .recurrent_oracles import KINDS, STEPS, StepOracle

ALL_ON = {"input_dropout": 0.3, "output_dropout": 0.25, "recurrent_dropout": 0.4, "weight_drop": 0.35}
ZONEOUT = {"zoneout": 0.3, "zoneout_cell": 0.45}         # (the cell's where the kind has one; not with proj_size)


def all_on(kind: str) -> dict[str, float]:
    """Every regulariser the kind takes."""
    if kind == "LSTM_PROJ":
        return ALL_ON
    return {**ALL_ON, **(ZONEOUT if KINDS[kind].ours(1, 1).kernel.has_cell else {"zoneout": 0.3})}
KIND_NAMES = [k for k in KINDS if k != "LSTM_BY_STEP"]


def _pair(kind: str, I: int, H: int, bi: bool, seed: int = 0, **options: float):
    """Our float64 layer (2 layers, dropout between them, ``options``) and a step oracle with the same weights."""
    k = KINDS[kind]
    ours = k.ours(I, H, num_layers=2, bidirectional=bi, dropout=0.2, dtype="float64",
                  rng=np.random.default_rng(seed + 1), **{**k.kwargs, **options})
    g = np.random.default_rng(seed)
    ours.load_torch_state_dict({key: g.standard_normal(v.shape) * 0.5 for key, v in ours.torch_state_dict().items()})
    step = k.step or STEPS[kind]
    return ours, StepOracle(step, ours.torch_state_dict(), 2, bi, ours.kernel.has_cell)


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("bi,lengths", [(False, None), (True, [6, 2, 5])])
def test_every_regulariser_on_equals_torch_with_the_same_masks(kind, bi, lengths):
    ours, oracle = _pair(kind, 4, 5, bi, **all_on(kind))
    rng = np.random.default_rng(3)
    B, T, D = 3, 6, 2 if bi else 1
    x = rng.standard_normal((B, T, 4))
    h0 = rng.standard_normal((2 * D, B, ours.state_size))
    state = (h0, rng.standard_normal((2 * D, B, 5))) if ours.kernel.has_cell else h0
    y, st = ours.forward(x, state, lengths=lengths)
    rec = ours._record
    for ent in (e for layer in rec.layers for e in layer.dirs):       # every mask was drawn, and drops something
        assert ent.rmask is not None and (ent.rmask == 0).any() and ent.wmask is not None and (ent.wmask == 0).any()
        assert kind == "LSTM_PROJ" or 0 < ent.zone.h.mean() < 1
    assert (rec.x_mask == 0).any() and (rec.y_mask == 0).any()
    dy = rng.standard_normal(y.shape)
    dst = tuple(rng.standard_normal(s.shape) for s in st) if isinstance(st, tuple) else rng.standard_normal(st.shape)
    dx = ours.backward(dy, dst)

    xt = t64(x, True)
    st_t = tuple(t64(s, True) for s in state) if isinstance(state, tuple) else t64(state, True)
    yt, stt = oracle.run(xt, st_t, lengths, drops=rec)
    assert_close(y, yt, 1e-12, "y")
    outs = (yt, *stt) if isinstance(stt, tuple) else (yt, stt)
    grads = (dy, *dst) if isinstance(dst, tuple) else (dy, dst)
    torch.autograd.backward(list(outs), [t64(g) for g in grads])
    assert_close(dx, xt.grad, 1e-11, "dx")
    init = ours.initial_state_grad
    for a, b in zip(init if isinstance(init, tuple) else (init,), st_t if isinstance(st_t, tuple) else (st_t,)):
        assert_close(a, b.grad, 1e-11, "initial state")
    for name, p in ours.params.items():
        assert_close(p.grad, oracle.params[name].grad, 1e-11, name)


def test_gradcheck_with_the_masks_held():
    """Finite differences through the regularised layer: the same masks on every evaluation (a fresh generator of
    one seed each forward)."""
    layer = lk.LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", **ALL_ON, **ZONEOUT)

    class Held:
        def forward(self, x):
            layer.rng = np.random.default_rng(11)
            return layer.forward(x)[0]

        def backward(self, dy):
            return layer.backward(dy)

        def parameters(self):
            return layer.parameters()

    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    report = lk.gradcheck(Held(), x)
    assert report.ok and sum(report.checked.values()) > 50


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "LAYER_NORM"])
def test_eval_mode_runs_no_regulariser(kind):
    k = KINDS[kind]
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    plain = k.ours(4, 6, num_layers=2, dtype="float64", rng=np.random.default_rng(1), **k.kwargs)
    ours = k.ours(4, 6, num_layers=2, dtype="float64", rng=np.random.default_rng(1), **{**k.kwargs, **ALL_ON})
    ours.load_torch_state_dict(plain.torch_state_dict())
    ours.eval()
    np.testing.assert_array_equal(ours.forward(x)[0], plain.forward(x)[0])
    ours.train()
    assert not np.allclose(ours.forward(x)[0], plain.forward(x)[0])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "LAYER_NORM"])
def test_zoneout_in_eval_mode_is_its_expectation(kind):
    """Eval mode: h_t = p·h_{t−1} + (1 − p)·h̃_t (and c), against the oracle with d = p; the other regularisers
    are off there."""
    ours, oracle = _pair(kind, 4, 5, True, **all_on(kind))
    ours.eval()
    x = np.random.default_rng(2).standard_normal((3, 6, 4))
    y, _ = ours.forward(x, lengths=[6, 3, 4])
    rec = ours._record
    assert rec.x_mask is None and all(e.rmask is None and e.zone.h is None for ly in rec.layers for e in ly.dirs)
    h0 = np.zeros((4, 3, ours.state_size))
    yt, _ = oracle.run(t64(x), (t64(h0), t64(np.zeros((4, 3, 5)))) if ours.kernel.has_cell else t64(h0), [6, 3, 4],
                       drops=rec)
    assert_close(y, yt, 1e-12, "y")


def test_the_options_travel_in_the_layer_config_and_model_files(tmp_path):
    layer = lk.GRU(3, 4, recurrent_dropout=0.25, weight_drop=0.5)
    assert layer.config()["recurrent_dropout"] == 0.25 and layer.config()["weight_drop"] == 0.5
    assert "input_dropout" not in lk.GRU(3, 4).config()                   # a plain layer writes none
    lk.save_model(layer, tmp_path / "m.npz")
    back = lk.load_model(tmp_path / "m.npz")
    assert back.regularisers == layer.regularisers


@pytest.mark.parametrize("option,value", [("recurrent_dropout", 1.0), ("weight_drop", -0.1), ("input_dropout", 1.5),
                                          ("output_dropout", "0.2"), ("zoneout", 1.0), ("zoneout_typo", 0.1)])
def test_a_bad_value_names_the_layer_and_the_option(option, value):
    err = TypeError if option == "zoneout_typo" else ValueError
    with pytest.raises(err, match=f"PeepholeLSTM: .*{option}"):
        lk.PeepholeLSTM(3, 4, **{option: value})


def test_zoneout_where_the_kind_cannot_have_it_is_refused():
    with pytest.raises(ValueError, match="GRU: zoneout_cell needs a cell state, and GRU has none"):
        lk.GRU(3, 4, zoneout_cell=0.2)
    with pytest.raises(ValueError, match="LSTM: zoneout is not supported with proj_size"):
        lk.LSTM(3, 4, proj_size=2, zoneout=0.1)
