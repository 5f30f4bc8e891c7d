"""The recurrent benchmark: its floor runs the frame's whole-sequence products, and the table reports both kernels
and that floor against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks import recurrent
from benchmarks.common import both_kernels


@pytest.mark.parametrize("gates,directions", [(4, 1), (3, 1), (4, 2)])
def test_gemm_only_runs_the_frame_products(gates: int, directions: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    real = np.matmul

    def counting(a: np.ndarray, b: np.ndarray, *args: object, **kw: object) -> np.ndarray:
        calls.append((a.shape, b.shape))
        return real(a, b, *args, **kw)

    run = recurrent.gemm_only(gates, B=3, T=5, I=4, H=2, directions=directions)
    monkeypatch.setattr(np, "matmul", counting)     # the products it makes through np.matmul, per direction
    run()
    G = gates * 2
    assert calls == [((15, 4), (4, G)), ((15, G), (G, 4))] * directions    # x W_ih^T before, dx after (+ the @s)


def test_table_reports_both_kernels_and_the_floor_against_torch() -> None:
    ours = {recurrent.key(k, B, T, I, H): {"median_ms": 30.0, "min_ms": 29.0, "numpy_ms": 45.0, "gemm_ms": 12.0}
            for k, B, T, I, H, _ in recurrent.CASES}
    theirs = {recurrent.key(k, B, T, I, H): {"median_ms": 20.0, "min_ms": 20.0} for k, B, T, I, H, _ in recurrent.CASES}
    rows = recurrent.table(ours, theirs)
    assert [r["sequence GEMMs / torch"] for r in rows] == [0.6] * len(recurrent.CASES)
    assert [r["ratio"] for r in rows] == [1.5] * len(recurrent.CASES)
    assert [r["NumPy kernel / torch"] for r in rows] == [2.25] * len(recurrent.CASES)
    assert [r["ok"] for r in rows] == ["yes" if 1.5 <= c[-1] else "NO" for c in recurrent.CASES]


def test_both_kernels_times_the_numpy_kernel_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    seen: list[str | None] = []
    monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    monkeypatch.setattr("benchmarks.common.time.sleep", lambda s: None)
    out = both_kernels(lambda: seen.append(os.environ.get("LSTMKIT_KERNEL")), 5)
    assert "numpy_ms" in out and "LSTMKIT_KERNEL" not in os.environ
    assert seen.count("numpy") >= 5 and seen.count(None) >= 5


def test_the_bench_torch_layer_norm_lstm_is_lstmkits_equations() -> None:
    """The PyTorch side of the LayerNormLSTM row computes what lstmkit's layer does (same weights, float64): the
    ratio compares one computation."""
    import torch
    from benchmarks.torch_layer_norm import TorchLayerNormLSTM

    import lstmkit as lk
    rng = np.random.default_rng(0)
    theirs = TorchLayerNormLSTM(5, 6).double()
    ours = lk.LayerNormLSTM(5, 6, dtype="float64")
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape))))
    v = {n: p.detach().numpy() for n, p in theirs.named_parameters()}
    ours.load_torch_state_dict({"weight_ih_l0": v["w_ih"], "weight_hh_l0": v["w_hh"], "bias_ih_l0": v["b"][0],
                                "bias_hh_l0": v["b"][1], "ln_ih_l0": v["g_x"].reshape(4, 6),
                                "ln_hh_l0": v["g_h"].reshape(4, 6), "ln_c_l0": np.stack([v["g_c"], v["b_c"]])})
    x = rng.standard_normal((3, 7, 5))
    y, _ = ours.forward(x)
    np.testing.assert_allclose(theirs(torch.from_numpy(x))[0].detach().numpy(), y, rtol=0, atol=1e-12)
