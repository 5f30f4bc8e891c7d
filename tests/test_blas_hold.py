"""Speed that does not depend on the import order: when NumPy was imported before lstmkit (OpenBLAS's idle threads
then spin after each product), lstmkit's training loop, batched predictions and compiled recurrent passes hold
NumPy's BLAS to one thread, so the compiled scans keep every core. The speed itself is ``make bench``'s; here, that
the hold happens where it should, and only there."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import lstmkit as lk
from lstmkit import _blas, compiled, parallel

from .conftest import needs_core


def blas_threads() -> int:
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


@pytest.fixture
def numpy_came_first(monkeypatch):
    """This process as if NumPy had been imported first, on two cores with a two-thread BLAS."""
    monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    monkeypatch.setattr(_blas, "IDLE_SLEEPS", False)
    monkeypatch.setattr(compiled, "_threads", None)
    monkeypatch.setattr(compiled, "_blas_n", 2)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    seen: list[tuple[int, int]] = []
    real = compiled.scan_forward

    def spy(*a, **k):
        seen.append((compiled.threads(), blas_threads()))
        return real(*a, **k)

    monkeypatch.setattr(compiled, "scan_forward", spy)
    yield seen
    monkeypatch.setattr(compiled, "_threads", None)


@needs_core
def test_a_compiled_pass_holds_blas_to_one_thread_and_keeps_both_cores(numpy_came_first):
    before = blas_threads()
    assert compiled.threads() == 1                     # outside lstmkit's work, a spinning BLAS would take a core
    layer = lk.LSTM(3, 8, num_layers=2)
    y, _ = layer.forward(np.ones((2, 5, 3), np.float32))
    assert numpy_came_first == [(2, 1), (2, 1)]        # both layers' scans: two threads, BLAS held to one
    assert blas_threads() == before                    # and given back after
    layer.backward(np.ones_like(y))
    assert blas_threads() == before and compiled.threads() == 1


@needs_core
def test_fit_and_predict_hold_blas_for_the_whole_loop(numpy_came_first):
    g = np.random.default_rng(0)
    x, y = g.standard_normal((40, 6, 3)).astype(np.float32), g.integers(0, 2, 40)
    model = lk.Sequential(lk.LSTM(3, 8, return_sequences=False), lk.Dense(8, 2))
    before = blas_threads()
    seen_in_dense = []
    real_dense = model[1].forward

    def dense(x, *a, **k):                              # the products between the scans run held too
        seen_in_dense.append(blas_threads())
        return real_dense(x, *a, **k)

    model[1].forward = dense
    model.fit(x, y, epochs=1, batch_size=20, progress=False)
    model.predict(x, batch_size=20)
    assert numpy_came_first and all(t == (2, 1) for t in numpy_came_first)
    assert seen_in_dense and set(seen_in_dense) == {1}
    assert blas_threads() == before


def test_the_numpy_kernel_keeps_blas_threads(numpy_came_first, monkeypatch):
    """The NumPy kernels' per-step products want BLAS's threads: no hold there."""
    monkeypatch.setenv("LSTMKIT_KERNEL", "numpy")
    before = blas_threads()
    seen = []
    monkeypatch.setattr(parallel, "blas_threads", lambda n: seen.append(n) or pytest.fail("held"))
    with compiled.holding_blas():
        lk.LSTM(3, 8).forward(np.ones((2, 5, 3), np.float32))
    assert seen == [] and blas_threads() == before


def test_the_hold_is_a_no_op_when_idle_threads_sleep(monkeypatch):
    monkeypatch.setattr(_blas, "IDLE_SLEEPS", True)
    monkeypatch.setattr(parallel, "blas_threads", lambda n: pytest.fail("held although the threads sleep"))
    with parallel.blas_held():
        assert parallel.blas_is_held()
        with parallel.blas_held():                      # nested: counted, nothing more
            assert parallel.blas_is_held()
    assert not parallel.blas_is_held()


def test_a_script_that_imports_numpy_first_is_seen_as_such():
    code = ("import numpy, lstmkit, sys; from lstmkit import _blas; "
            "sys.stdout.write(str(_blas.IDLE_SLEEPS))")
    for order, want in ((code, "False"), (code.replace("import numpy, lstmkit", "import lstmkit, numpy"), "True")):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
        r = subprocess.run([sys.executable, "-c", order], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0 and r.stdout == want, (order, r.stdout, r.stderr)


@needs_core
def test_convolutions_dense_layers_and_pooling_run_on_the_core_with_blas_held(numpy_came_first, monkeypatch):
    """The video model's products outside the scans (Conv2D, Dense, MaxPool2D) go to the core, each call with
    NumPy's BLAS on one thread and the core on both cores: nothing in a training step is left to a spinning BLAS."""
    from lstmkit import compiled_images
    calls: list[tuple[str, int, int]] = []
    real = compiled_images._run

    def spy(name, args):
        real(name, args)
        calls.append((name, args.threads, blas_threads()))

    monkeypatch.setattr(compiled_images, "_run", spy)
    rng = np.random.default_rng(0)
    model = lk.models.CNNLSTM(3, 3, 16, (8, 16), 32, 16, rng=rng)
    x = rng.random((4, 8, 16, 16, 3), dtype=np.float32)
    model.fit(x, rng.integers(0, 3, 4), epochs=1, batch_size=4, progress=False)
    names = {n for n, _, _ in calls}
    assert {"lk_conv_forward", "lk_conv_wgrad", "lk_maxpool_forward", "lk_maxpool_backward"} <= names
    assert all(threads == 2 and blas == 1 for _, threads, blas in calls), calls


def test_info_names_the_thread_pools_lstmkit_does_not_hold():
    """`lstmkit info` in a process where PyTorch is loaded names its OpenMP pool (lstmkit's hold reaches BLAS
    only); alone, it says there is none."""
    import torch  # noqa: F401  (the test process has it: its OpenMP runtime is what must be named)
    assert any("omp" in p.lower() for p in _blas.other_pools()), _blas.other_pools()
    r = subprocess.run([sys.executable, "-m", "lstmkit", "info"], capture_output=True, text=True, timeout=120)
    assert "others:  no other thread pool" in r.stdout, r.stdout + r.stderr
