"""The fused scans against the plain reference steps (``kernel.step``, the equations and nothing else):
a second oracle beside PyTorch, for every kind, both directions, initial states, float64 and float32,
and both weight paths (pre-scaled copies when T·B >= H, per-step scaling otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk

from .recurrent_oracles import KINDS


def by_steps(layer, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """y (B, T, D·H) and h_n from ``layer.kernel.step`` one step at a time (no lengths, one layer)."""
    B, T, _ = x.shape
    ys, h_n = [], []
    for d, sfx in enumerate(("", "_reverse")[:layer.num_directions]):
        w = {k[:-len(f"_l0{sfx}")]: p.value for k, p in layer.params.items() if k.endswith(f"_l0{sfx}")}
        h, c = h0[d], None if c0 is None else c0[d]
        out = np.empty((B, T, layer.state_size), x.dtype)
        for t in (range(T - 1, -1, -1) if d else range(T)):
            h, c = layer.kernel.step(x[:, t], h, c, w)
            out[:, t] = h
        ys.append(out)
        h_n.append(h)
    return np.concatenate(ys, -1), np.stack(h_n)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "LSTM_BY_STEP"])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("dtype,B,T,H,tol", [("float64", 3, 6, 5, 1e-13), ("float64", 1, 2, 16, 1e-13),
                                           ("float32", 4, 9, 8, 1e-5)])
def test_fused_scan_equals_reference_steps(kind, bi, dtype, B, T, H, tol):
    k = KINDS[kind]
    rng = np.random.default_rng(3)
    layer = k.ours(4, H, bidirectional=bi, dtype=dtype, **k.kwargs)
    layer.load_torch_state_dict({n: rng.standard_normal(v.shape) * 0.5 for n, v in layer.torch_state_dict().items()})
    D = 2 if bi else 1
    x = rng.standard_normal((B, T, 4)).astype(dtype)
    h0 = rng.standard_normal((D, B, layer.state_size)).astype(dtype)
    c0 = rng.standard_normal((D, B, layer.cell_size)).astype(dtype) if layer.kernel.has_cell else None
    y, state = layer.forward(x, (h0, c0) if c0 is not None else h0)
    y_ref, h_ref = by_steps(layer, x, h0, c0)
    np.testing.assert_allclose(y, y_ref, atol=tol, rtol=tol)
    np.testing.assert_allclose(state[0] if c0 is not None else state, h_ref, atol=tol, rtol=tol)


def test_a_wrong_step_is_caught():
    """The comparison above can fail: a reference step with the forget gate's bias dropped differs."""
    k = KINDS["LSTM"]
    layer = k.ours(4, 5, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y, _ = layer.forward(x)
    right = layer.kernel.step

    def wrong(x, h, c, w):
        return right(x, h, c, {**w, "bias_ih": w["bias_ih"] * 0})

    object.__setattr__(layer.kernel, "step", wrong)
    try:
        assert np.abs(by_steps(layer, x, np.zeros((1, 2, 5)), np.zeros((1, 2, 5)))[0] - y).max() > 1e-3
    finally:
        object.__setattr__(layer.kernel, "step", right)


KIND_NAMES = [k for k in KINDS if k != "LSTM_BY_STEP"]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_round_trips_through_a_model_file(kind, tmp_path):
    k = KINDS[kind]
    rnn = k.ours(3, 4, num_layers=2, bidirectional=True, return_sequences=True, dtype="float64", **k.kwargs)
    model = lk.Sequential(rnn, lk.Dense(rnn.output_size, 2, dtype="float64"))
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    model.save(tmp_path / "m.npz")
    again = lk.load_model(tmp_path / "m.npz")
    assert type(again[0]) is k.ours and again[0].config() == model[0].config()
    lengths = np.array([5, 2])
    np.testing.assert_array_equal(again.forward(x, lengths=lengths), model.forward(x, lengths=lengths))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_is_traced_by_its_gate_names(kind):
    k = KINDS[kind]
    layer = k.ours(3, 4, bidirectional=True, return_sequences=True, dtype="float64", **k.kwargs)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    tr = lk.inspect.trace(lk.Sequential(layer), x)
    units = {**{g: 4 for g in layer.kernel.gate_names}, **({"c": layer.cell_size} if layer.kernel.has_cell else {}),
             "h": layer.state_size}                       # the sizes the kind gives (h may be narrower: LSTM_PROJ)
    assert sorted(tr) == ["0/l0", "0/l0/reverse"]
    for key in tr:
        assert {name: a.shape for name, a in tr[key].items()} == {name: (2, 5, n) for name, n in units.items()}
        assert list(tr[key]) == list(units)
    np.testing.assert_array_equal(np.concatenate([tr["0/l0"]["h"], tr["0/l0/reverse"]["h"]], -1), tr.output)
