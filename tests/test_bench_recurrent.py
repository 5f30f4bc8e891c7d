"""The recurrent benchmark's GEMM floor: it runs the layer's products and the table reports it against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks import recurrent


@pytest.mark.parametrize("gates,directions", [(4, 1), (3, 1), (4, 2)])
def test_gemm_only_runs_the_layer_products(gates: int, directions: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    real = np.matmul

    def counting(a: np.ndarray, b: np.ndarray, *args: object, **kw: object) -> np.ndarray:
        calls.append((a.shape, b.shape))
        return real(a, b, *args, **kw)

    run = recurrent.gemm_only(gates, B=3, T=5, I=4, H=2, directions=directions)
    monkeypatch.setattr(np, "matmul", counting)     # the products it makes through np.matmul, per direction
    run()
    G = gates * 2
    per_direction = [((15, 4), (4, G))] + [((3, 2), (2, G))] * 5 + [((3, G), (G, 2))] * 5 + [((15, G), (G, 4))]
    assert calls == per_direction * directions


def test_table_reports_the_gemm_floor_against_torch() -> None:
    ours = {recurrent.key(k, B, T, I, H): {"median_ms": 30.0, "min_ms": 29.0, "gemm_ms": 12.0}
            for k, B, T, I, H, _ in recurrent.CASES}
    theirs = {recurrent.key(k, B, T, I, H): {"median_ms": 20.0, "min_ms": 20.0} for k, B, T, I, H, _ in recurrent.CASES}
    rows = recurrent.table(ours, theirs)
    assert [r["GEMMs alone / torch"] for r in rows] == [0.6] * len(recurrent.CASES)
    assert [r["ratio"] for r in rows] == [1.5] * len(recurrent.CASES)
    assert [r["ok"] for r in rows] == ["yes" if 1.5 <= c[-1] else "NO" for c in recurrent.CASES]
