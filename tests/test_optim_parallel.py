"""An optimizer step split over two threads gives bit-for-bit the values of one thread."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import optim


@pytest.mark.parametrize("make", [
    lambda ps: lk.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    lambda ps: lk.optim.Adam(ps, lr=1e-2, weight_decay=0.01, amsgrad=True),
    lambda ps: lk.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
])
def test_two_halves_equal_one_thread(make, monkeypatch):
    shapes = [(300, 200), (7,), (64, 64), (1000,), (3, 5, 7), (50,)]

    def run(parallel_min: int) -> list[np.ndarray]:
        monkeypatch.setattr(optim, "_PARALLEL_MIN", parallel_min)
        monkeypatch.setattr(optim.parallel, "cores", lambda: 2)
        params = [lk.Parameter(np.random.default_rng(i).standard_normal(s).astype(np.float32))
                  for i, s in enumerate(shapes)]
        opt = make(params)
        for step in range(3):
            for p in params:
                p.grad[...] = np.random.default_rng(100 * step + p.value.size).standard_normal(p.shape)
            opt.step()
        return [p.value for p in params]

    one, two = run(1 << 40), run(0)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_side_by_side_nested_in_its_own_worker_runs_in_order():
    from lstmkit import parallel
    order: list[str] = []

    def inner() -> tuple[str, str]:
        return parallel.side_by_side(lambda: order.append("a") or "a", lambda: order.append("b") or "b")

    assert parallel.side_by_side(lambda: "outer", inner) == ("outer", ("a", "b"))   # no deadlock
    assert order == ["a", "b"]
