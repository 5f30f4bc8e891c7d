"""Precision "medium" (lstmkit.precision): the core's products on bfloat16 operands, summed in float32.

Where the CPU has AVX512-BF16 and the core runs, each product equals a float64 reference whose operands were rounded
to bfloat16 (round to nearest even) to float32's summation error; elsewhere "medium" must change nothing at all.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import compiled, precision
from lstmkit.runs import RunError
from lstmkit.training import TrainConfig

from .conftest import needs_core

TOL = 2e-6            # float32 sums of a few dozen exact products; bfloat16 against float32 operands moves ~1e-3


def rb(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 (round to nearest even) -> float64."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32).astype(np.float64)


def bf16_here() -> bool:
    with lk.float32_matmul_precision("medium"):
        return precision.bf16_products()


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def one_step_lstm(B: int, I: int, H: int, seed: int):
    """An LSTM with nonzero biases, one step from a random state: the layer, x (B, 1, I), h0, c0 (1, B, H)."""
    rng = np.random.default_rng(seed)
    m = lk.LSTM(I, H, return_sequences=True, dtype="float32", rng=np.random.default_rng(seed + 1))
    m.load_torch_state_dict({k: (rng.standard_normal(v.shape) * 0.3).astype(np.float32)
                             for k, v in m.torch_state_dict().items()})
    x = rng.standard_normal((B, 1, I)).astype(np.float32)
    h0, c0 = (rng.standard_normal((1, B, H)).astype(np.float32) for _ in range(2))
    return m, x, h0, c0


def run(m, x, h0, c0, dy, prec: str):
    for p in m.parameters():
        p.grad[...] = 0
    with lk.float32_matmul_precision(prec):
        y = m.forward(x, (h0, c0))
        dx = m.backward(dy)
    return y.copy(), dx.copy(), m.initial_state_grad[0].copy(), m.torch_state_dict(grad=True)


def test_medium_changes_nothing_where_bfloat16_does_not_run_and_else_rounds_the_operands():
    m, x, h0, c0 = one_step_lstm(B=1, I=37, H=40, seed=3)        # odd K, partial panels, rows padded to four
    dy = np.random.default_rng(9).standard_normal((1, 1, 40)).astype(np.float32)
    exact = run(m, x, h0, c0, dy, "highest")
    got = run(m, x, h0, c0, dy, "medium")
    if not bf16_here():
        for a, b in zip(exact[:3], got[:3]):
            np.testing.assert_array_equal(a, b)
        for k in exact[3]:
            np.testing.assert_array_equal(exact[3][k], got[3][k])
        return
    w = {k: v.astype(np.float64) for k, v in m.torch_state_dict().items()}
    pre = (rb(x[:, 0]) @ rb(w["weight_ih_l0"]).T + rb(h0[0]) @ rb(w["weight_hh_l0"]).T
           + w["bias_ih_l0"] + w["bias_hh_l0"])
    i, f, g, o = np.split(pre, 4, axis=1)
    c1 = sigmoid(f) * c0[0] + sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(got[0][:, 0], sigmoid(o) * np.tanh(c1), rtol=0, atol=TOL)
    assert np.abs(got[0] - exact[0]).max() > 20 * TOL             # the float32 products are not what ran
    # B = 1: the bias gradient is the step's pre-activation gradient itself, so the backward's products are checked
    # against the core's own dpre (no rounding of a differently computed value can flip)
    dpre = got[3]["bias_ih_l0"].astype(np.float64)
    np.testing.assert_allclose(got[1][0, 0], rb(dpre) @ rb(w["weight_ih_l0"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(got[2][0, 0], rb(dpre) @ rb(w["weight_hh_l0"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(got[3]["weight_ih_l0"], np.outer(rb(dpre), rb(x[0, 0])), rtol=0, atol=TOL)
    np.testing.assert_allclose(got[3]["weight_hh_l0"], np.outer(rb(dpre), rb(h0[0, 0])), rtol=0, atol=TOL)


@needs_core
@pytest.mark.parametrize("K", [1, 37, 1100])                       # odd steps; more than one block of steps
def test_weight_gradients_on_bfloat16_pairs_of_steps(K):
    rng = np.random.default_rng(K)
    M, N1, N2 = 50, 70, 33
    a = rng.standard_normal((K, M)).astype(np.float32)
    bs = [rng.standard_normal((K, n)).astype(np.float32) for n in (N1, N2)]
    cs = [rng.standard_normal((M, n)).astype(np.float32) for n in (N1, N2)]
    before = [c.astype(np.float64) for c in cs]
    with lk.float32_matmul_precision("medium"):
        on = precision.bf16_products()
        compiled.weight_grads([(a, b, c) for b, c in zip(bs, cs)])
    op = rb if on else (lambda v: v.astype(np.float64))
    for c, c0, b in zip(cs, before, bs):
        np.testing.assert_allclose(c, c0 + op(a).T @ op(b), rtol=0, atol=2e-6 * K + 1e-6)


@pytest.mark.parametrize("make", [
    lambda: lk.LSTM(24, 48, num_layers=2, return_sequences=True, dtype="float32", rng=np.random.default_rng(1)),
    lambda: lk.GRU(24, 48, return_sequences=True, dtype="float32", rng=np.random.default_rng(1)),
    lambda: lk.LSTM(24, 48, proj_size=20, return_sequences=True, dtype="float32", rng=np.random.default_rng(1)),
    lambda: lk.LSTM(24, 48, bidirectional=True, return_sequences=True, dtype="float32", rng=np.random.default_rng(1)),
], ids=["stacked-lstm", "gru", "projected-lstm", "bidirectional-lstm"])
def test_every_kind_at_medium_stays_near_float32(make):
    m = make()
    x = np.random.default_rng(0).standard_normal((8, 12, 24)).astype(np.float32)
    outs = {}
    for prec in ("highest", "medium"):
        with lk.float32_matmul_precision(prec):
            y = m.forward(x)
            dx = m.backward(np.ones_like(y))
        outs[prec] = (y.copy(), dx.copy())
    for a, b in zip(outs["highest"], outs["medium"]):
        assert np.abs(a - b).max() < 2e-2 * max(1.0, np.abs(a).max())
        assert (np.abs(a - b).max() > 0) == (bf16_here() and compiled.active())


def test_info_says_whether_bfloat16_products_can_run():
    assert compiled.info()["bf16"] == bf16_here()


def test_precision_names_and_the_context_restoring_the_one_before():
    assert lk.get_float32_matmul_precision() == "highest"
    with lk.float32_matmul_precision("medium"):
        assert lk.get_float32_matmul_precision() == "medium"
        with lk.float32_matmul_precision("high"):
            assert not precision.bf16_products()
        assert lk.get_float32_matmul_precision() == "medium"
    assert lk.get_float32_matmul_precision() == "highest" and not precision.bf16_products()
    with pytest.raises(ValueError, match="highest, high, medium"):
        lk.set_float32_matmul_precision("low")
    with pytest.raises(RunError, match="matmul precision"):
        TrainConfig(steps=3, matmul_precision="bf16").validate()
