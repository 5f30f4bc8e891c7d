"""The compiled core's Adam / AdamW update equals the NumPy reference (``optim._adam_update``) bit for bit, in
float32 and float64, with and without weight decay (decoupled or L2) and amsgrad; NaNs travel as in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import compiled_optim

from .conftest import needs_core

pytestmark = needs_core


def run(cls: type, dtype: type, core: bool, monkeypatch: pytest.MonkeyPatch, nan_at: int | None = None,
        **kw: object) -> tuple[list[np.ndarray], int]:
    calls = []
    real = compiled_optim.adam_update

    def spy(*a: object) -> None:
        calls.append(1)
        real(*a)

    with monkeypatch.context() as m:
        m.setattr(compiled_optim, "adam_update", spy)
        if core:                                            # (whichever suite runs: the core, then NumPy's path)
            m.delenv("LSTMKIT_KERNEL", raising=False)
        else:
            m.setenv("LSTMKIT_KERNEL", "numpy")
        r = np.random.default_rng(1)
        params = [lk.Parameter(r.standard_normal(shape).astype(dtype)) for shape in ((37, 19), (5,))]
        opt = cls(lk.optim.decay_groups(params, kw.pop("weight_decay", 0.0)), lr=3e-3, betas=(0.9, 0.99), **kw)
        for k in range(6):
            for p in params:
                p.grad[...] = r.standard_normal(p.shape).astype(dtype)
                if k == nan_at:
                    p.grad[0] = np.nan
            opt.step()
    state = [a for s in opt.state.values() for a in s.values() if isinstance(a, np.ndarray)]
    return [p.value for p in params] + state, len(calls)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, kw", [(lk.optim.AdamW, {"weight_decay": 0.1}), (lk.optim.Adam, {"weight_decay": 0.05}),
                                     (lk.optim.AdamW, {"weight_decay": 0.1, "amsgrad": True}),
                                     (lk.optim.Adam, {})])
def test_compiled_adam_equals_numpy_bit_for_bit(cls, kw, dtype, monkeypatch):
    ours, calls = run(cls, dtype, True, monkeypatch, **dict(kw))
    ref, ref_calls = run(cls, dtype, False, monkeypatch, **dict(kw))
    assert calls == 12 and ref_calls == 0                  # 2 parameters x 6 steps, all in the core
    assert len(ours) == len(ref) >= 6
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_a_nan_gradient_spreads_as_in_numpy(monkeypatch):
    ours, _ = run(lk.optim.AdamW, np.float32, True, monkeypatch, nan_at=3, weight_decay=0.1, amsgrad=True)
    ref, _ = run(lk.optim.AdamW, np.float32, False, monkeypatch, nan_at=3, weight_decay=0.1, amsgrad=True)
    assert np.isnan(ours[0][0]).all() and np.isfinite(ours[0][1:]).all()
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)


def test_only_contiguous_arrays_of_one_float_dtype_go_to_the_core(monkeypatch):
    monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    a = np.zeros((4, 6), np.float32)
    assert compiled_optim.usable(a, a, a, a, None)
    assert not compiled_optim.usable(a, a[:, ::2].copy().T, a, a, None)       # Fortran order
    assert not compiled_optim.usable(a, a.astype(np.float64), a, a, None)
    assert not compiled_optim.usable(a.astype(np.float16), a, a, a, None)
    monkeypatch.setenv("LSTMKIT_KERNEL", "numpy")
    assert not compiled_optim.usable(a, a, a, a, None)
