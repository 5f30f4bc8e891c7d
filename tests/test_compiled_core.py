"""The compiled core (src/lstmkit/_core) against the NumPy reference kernels: every SIMD path this CPU can run,
both precisions, ragged lengths and directions; its thread count, its pool under concurrent callers, the switch
back to NumPy, and an install without a C compiler. (The oracle tests against PyTorch run on whichever kernel is
active: `make test` runs the whole suite once compiled and once with LSTMKIT_KERNEL=numpy.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import compiled

from .conftest import assert_close, needs_core
from .recurrent_oracles import KINDS

ROOT = Path(__file__).resolve().parent.parent


def test_ci_builds_the_core():
    """In CI (CI=true) the core must have been built: a silent fallback to NumPy would hide a broken build."""
    if os.environ.get("CI"):
        assert compiled.available(), compiled.info()
    assert compiled.info()["kernel"] in ("compiled", "numpy")


def run_layer(kind: str, dtype: str, bi: bool, lengths: list[int] | None, kernel: str, seed: int = 0,
              B: int = 4, I: int = 5, H: int = 11, **options: float):
    """Output, dx, state gradients and parameter gradients of one forward + backward on the given kernel
    (``options``: constructor arguments over the oracle table's)."""
    k = KINDS[kind]
    rng = np.random.default_rng(seed)
    layer = k.ours(I, H, num_layers=2, bidirectional=bi, dtype=dtype, rng=np.random.default_rng(seed + 1),
                   **{**k.kwargs, **options})           # (its own generator: both kernels draw the same masks)
    # weights of scale 0.3 (over √(H/11) for wide layers): large enough for nonlinear gates, small enough that
    # float32 gradients do not explode
    scale = 0.3 / max(1.0, (H / 11) ** 0.5)
    layer.load_torch_state_dict({n: rng.standard_normal(v.shape) * scale for n, v in layer.torch_state_dict().items()})
    T = 7
    x = rng.standard_normal((B, T, I)).astype(dtype)
    D = 2 if bi else 1
    h0 = rng.standard_normal((2 * D, B, layer.state_size)).astype(dtype)       # P units with a projection
    state = (h0, rng.standard_normal((2 * D, B, H)).astype(dtype)) if layer.kernel.has_cell else h0
    before = os.environ.get("LSTMKIT_KERNEL")
    os.environ["LSTMKIT_KERNEL"] = kernel
    try:
        y, st = layer.forward(x, state, lengths=lengths)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy, st)
    finally:
        if before is None:
            del os.environ["LSTMKIT_KERNEL"]
        else:
            os.environ["LSTMKIT_KERNEL"] = before
    grads = [p.grad for p in layer.parameters()]
    init = layer.initial_state_grad
    return [y, dx, *(init if isinstance(init, tuple) else (init,)), *grads]


NATIVE = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU", "PEEPHOLE", "LSTM_PROJ", "LAYER_NORM"]


def assert_core_equals_numpy(kind: str, dtype: str, tol: float, cases: list[tuple[int, bool, list[int] | None]],
                             threads: int | None = None, **shape: int) -> None:
    """Each (B, bidirectional, lengths) case: every output and gradient of the core equals the NumPy kernel's."""
    for B, bi, lengths in cases:
        with compiled.threads_held(threads) if threads else contextlib.nullcontext():
            ours = run_layer(kind, dtype, bi, lengths, "", B=B, **shape)
        ref = run_layer(kind, dtype, bi, lengths, "numpy", B=B, **shape)
        for j, (a, b) in enumerate(zip(ours, ref)):
            assert_close(a, b, tol, what=f"B {B}: output {j}")


@needs_core
@pytest.mark.parametrize("simd", compiled.SIMD)
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_every_simd_path_equals_the_numpy_kernel(simd, kind, dtype, tol):
    best = compiled.set_simd(None)
    runs = compiled.SIMD[min(compiled.SIMD.index(simd), compiled.SIMD.index(best))]
    try:
        assert compiled.set_simd(simd) == runs          # a path above this CPU's best is clamped to the best
        # two directions without lengths: each scan writes its half of the output in place, the second reading its
        # input reversed where it lies; with lengths: gathered per sequence
        # (B 10: AVX2's products take a block of six rows, then one of four)
        assert_core_equals_numpy(kind, dtype, tol, [(4, False, None), (4, True, None), (4, True, [7, 3, 1, 6]),
                                                    (10, False, None)])
    finally:
        compiled.set_simd(None)


@needs_core
@pytest.mark.parametrize("rows", [False, True])
@pytest.mark.parametrize("kind", NATIVE)
def test_threads_by_rows_or_by_units_equal_the_numpy_kernel(monkeypatch, kind, rows):
    """Each thread a slice of the units for every row (a barrier a step) or whole rows of the batch and every unit
    (compiled.by_rows; no barrier): both equal the NumPy kernel, three threads on 7 and 9 rows (uneven splits),
    ragged lengths, recurrent dropout (the masked h_{t-1} of each thread's rows)."""
    monkeypatch.setattr(compiled, "by_rows", lambda B, weight_bytes: rows)
    cases = [(7, False, [7, 3, 1, 6, 2, 7, 5]), (9, False, None)]
    assert_core_equals_numpy(kind, "float64", 1e-12, cases, threads=3, recurrent_dropout=0.3)
    assert_core_equals_numpy(kind, "float32", 1e-5, cases, threads=3)


def test_the_scans_go_by_rows_for_small_weights_and_enough_rows(monkeypatch):
    """The rule of compiled.by_rows on two threads: four rows a thread and weights of a few MB at most."""
    monkeypatch.setattr(compiled, "threads", lambda: 2)
    small, large = 4 * 256 * (256 + 128) * 4, 4 * 512 * (512 + 512) * 4     # LSTM 128 -> 256, 512 -> 512 (float32)
    assert compiled.by_rows(64, small) and compiled.by_rows(8, small)
    assert not compiled.by_rows(4, small) and not compiled.by_rows(64, large)
    monkeypatch.setattr(compiled, "threads", lambda: 1)
    assert not compiled.by_rows(64, small)


@needs_core
@pytest.mark.parametrize("simd", compiled.SIMD)
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_small_batches_step_on_the_unpacked_weights_as_the_numpy_kernel(simd, kind, dtype, tol):
    """Batches of 1-3 with wide layers run matrix-vector steps (compiled.direct): each thread its own rows of
    W_hh and W_ih, the shares summed across threads (three here, an uneven split). H = 259 and I = 21 leave tails
    after every vector width."""
    compiled.set_simd(simd)
    try:
        cases = [(1, False, None), (2, True, [7, 4]), (3, False, [2, 7, 5])]
        assert all(compiled.direct(B, 259) for B, _, _ in cases)
        assert_core_equals_numpy(kind, dtype, tol, cases, threads=3, I=21, H=259)
    finally:
        compiled.set_simd(None)


@needs_core
@pytest.mark.parametrize("simd", compiled.SIMD)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_a_projected_state_of_any_width_on_any_threads_equals_the_numpy_kernel(simd, dtype, tol):
    """LSTM(proj_size=P): the core forms h_t = W_hr m_t and its gradient in the scan, each thread a slice of h's
    P units and of the cell's H (two barriers a step). P and H off every vector width, more threads than some
    slices have units, batches off the register blocks, one and two directions, ragged."""
    compiled.set_simd(simd)
    try:
        for threads, H, P, I in ((3, 40, 17, 9), (2, 21, 1, 4), (4, 7, 5, 30)):
            cases = [(13, False, None), (2, True, [7, 4]), (5, False, [2, 7, 5, 1, 6])]
            assert_core_equals_numpy("LSTM_PROJ", dtype, tol, cases, threads=threads, I=I, H=H, proj_size=P)
    finally:
        compiled.set_simd(None)


@needs_core
@pytest.mark.parametrize("simd", compiled.SIMD)
@pytest.mark.parametrize("kind", NATIVE)
def test_the_regularisers_on_every_simd_path_equal_the_numpy_kernel(simd, kind):
    """Recurrent dropout's mask in the core's products (the packed steps, whole rows, the small batches'
    matrix-vector steps on three threads), zoneout in its scans, with weight drop and the sequence masks around
    them."""
    reg = {"input_dropout": 0.2, "output_dropout": 0.3, "recurrent_dropout": 0.4, "weight_drop": 0.3}
    if kind != "LSTM_PROJ":                              # zoneout: the core's zone_row against layers/zoneout.py
        reg["zoneout"] = 0.3
        if kind not in ("GRU", "RNN_TANH", "RNN_RELU"):
            reg["zoneout_cell"] = 0.4
    compiled.set_simd(simd)
    try:
        assert_core_equals_numpy(kind, "float64", 1e-12, [(5, True, [7, 3, 1, 6, 2])], **reg)
        assert_core_equals_numpy(kind, "float64", 1e-12, [(2, True, [7, 4])], threads=3, I=21, H=259, **reg)
    finally:
        compiled.set_simd(None)


@needs_core
@pytest.mark.parametrize("simd", compiled.SIMD)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-13), ("float32", 1e-5)])
def test_weight_gradients_add_a_transposed_product_in_place(simd, dtype, tol):
    """compiled.weight_grads: c += aᵀ·b for one or two products, shared or separate a, rows further apart than
    their length, sizes off every block (K over two step blocks, M and N off the register tiles), 1-3 threads."""
    rng = np.random.default_rng(3)
    compiled.set_simd(simd)
    try:
        for K, M, n0, n1, shared, threads in ((7, 44, 5, 11, True, 2), (1100, 37, 3, 129, False, 3),
                                              (28, 300, 65, 33, True, 1)):
            a0 = rng.standard_normal((K, M + 3)).astype(dtype)[:, :M]           # rows M + 3 apart
            a1 = a0 if shared else rng.standard_normal((K, M)).astype(dtype)
            b0, b1 = (rng.standard_normal((K, n)).astype(dtype) for n in (n0, n1))
            c0 = rng.standard_normal((M, n0 + 5)).astype(dtype)[:, :n0]
            c1 = rng.standard_normal((M, n1)).astype(dtype)
            want0, want1 = c0 + a0.T @ b0, c1 + a1.T @ b1
            with compiled.threads_held(threads):
                compiled.weight_grads([(a0, b0, c0), (a1, b1, c1)])
            assert_close(c0, want0, tol, what=f"K {K}: first product")
            assert_close(c1, want1, tol, what=f"K {K}: second product")
            compiled.weight_grads([(a1, b1, c1)])
            assert_close(c1, want1 + a1.T @ b1, tol, what=f"K {K}: one product")
    finally:
        compiled.set_simd(None)


@needs_core
def test_the_core_really_runs_and_the_switch_turns_it_off(monkeypatch):
    monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    calls = []
    real = compiled.scan_forward
    monkeypatch.setattr(compiled, "scan_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    lk.LSTM(3, 4).forward(np.ones((2, 3, 3), np.float32))
    assert calls == [1]
    monkeypatch.setenv("LSTMKIT_KERNEL", "numpy")
    lk.LSTM(3, 4).forward(np.ones((2, 3, 3), np.float32))
    assert calls == [1] and compiled.info()["kernel"] == "numpy" and not compiled.active()


def test_threads_are_shared_among_the_mpi_ranks_on_a_machine(monkeypatch):
    monkeypatch.setattr(compiled, "_threads", None)
    monkeypatch.setattr(compiled.parallel, "cores", lambda: 8)
    monkeypatch.setattr(compiled._blas, "IDLE_SLEEPS", True)
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    assert compiled.threads() == 4
    monkeypatch.setattr(compiled, "_threads", None)
    monkeypatch.delenv("OMPI_COMM_WORLD_LOCAL_SIZE")
    assert compiled.threads() == 8
    monkeypatch.setattr(compiled, "_threads", None)


@needs_core
def test_concurrent_callers_share_the_pool_with_identical_results():
    """Two Python threads scanning at once (one gets the pool, the other runs on its own thread)."""
    layers = [lk.GRU(6, 40, dtype="float64", rng=np.random.default_rng(i)) for i in range(2)]
    xs = [np.random.default_rng(10 + i).standard_normal((8, 30, 6)) for i in range(2)]
    alone = [layer.forward(x)[0].copy() for layer, x in zip(layers, xs)]
    out: list = [None, None]

    def go(i: int) -> None:
        for _ in range(5):
            out[i] = layers[i].forward(xs[i])[0].copy()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(out, alone):
        np.testing.assert_array_equal(a, b)


@needs_core
def test_ctc_on_the_core_equals_the_numpy_recursion(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 12, 6))
    targets = rng.integers(1, 6, (5, 4))
    il, tl = np.array([12, 9, 12, 5, 11]), np.array([4, 2, 3, 1, 4])
    results = []
    for kernel in ("", "numpy"):
        monkeypatch.setenv("LSTMKIT_KERNEL", kernel)
        loss = lk.CTCLoss(reduction="none")
        results.append((loss(x, targets, il, tl), loss.backward()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-12)


def test_install_without_a_compiler_runs_on_numpy(tmp_path):
    """CC=false makes every compile fail: the install still succeeds, says so in one line, and lstmkit runs."""
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    src = tmp_path / "src"                            # the sources alone: no build/ or library left from before
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "runs", "*.so", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".ruff_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(tmp_path / "site"), str(src)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "the compiled core was not built" in r.stdout + r.stderr
    assert not list((tmp_path / "site" / "lstmkit" / "_core").glob("_lstmcore*"))
    code = ("import numpy as np, lstmkit as lk; i = lk.compiled.info(); assert i['kernel'] == 'numpy', i; "
            "print(i['why']); print(lk.LSTM(3, 4).forward(np.ones((2, 5, 3), np.float32))[0].shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert r.returncode == 0, r.stderr
    assert "not built" in r.stdout and "(2, 5, 4)" in r.stdout


@needs_core
def test_a_forked_child_runs_scans_after_the_parent_started_the_pool():
    """Worker threads do not survive fork: the child must start its own pool, not wait on the parent's."""
    import multiprocessing as mp
    layer = lk.LSTM(6, 64, dtype="float64", rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((16, 20, 6))
    want = layer.forward(x)[0]                                  # the parent's pool is running now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_forward_in_child, (layer, x)).get(timeout=60)
    np.testing.assert_array_equal(got, want)


def _forward_in_child(layer: lk.LSTM, x: np.ndarray) -> np.ndarray:
    return layer.forward(x)[0]


@needs_core
def test_streamed_and_cached_stores_give_the_same_forward():
    """The forward streams the gates past the caches only into whole, 64-byte-aligned vectors; buffers off that
    alignment (a user's own arrays) take ordinary stores. Both give the same bits, and workspaces are aligned."""
    from lstmkit.workspace import aligned_empty
    rng = np.random.default_rng(5)
    T, B, I, H = 5, 8, 6, 64
    x, w_ih = rng.standard_normal((T, B, I)).astype(np.float32), rng.standard_normal((4 * H, I)).astype(np.float32)
    w_hh, bias = rng.standard_normal((4 * H, H)).astype(np.float32) * 0.1, np.zeros(4 * H, np.float32)
    results = []
    for offset in (0, 1):                       # 0: aligned; 1: one float past a 64-byte boundary
        bufs = []
        for shape in ((T, B, 4 * H), (T + 1, B, H), (T + 1, B, H), (T, B, H)):
            raw = aligned_empty((int(np.prod(shape)) + 16,), np.float32)
            assert raw.ctypes.data % 64 == 0
            bufs.append(raw[offset:offset + int(np.prod(shape))].reshape(shape))
        acts, hs, cs, tcs = bufs
        hs[0], cs[0] = 0.5, -0.25
        args = compiled.Forward(
            kind=compiled.kinds()["lstm"].id, f64=0, T=T, B=B, H=H, I=I, threads=2, gates=acts.ctypes.data,
            w_hh_t=w_hh.ctypes.data, wk=1, wn=H, x=x.ctypes.data, w_ih=w_ih.ctypes.data, bias=bias.ctypes.data,
            hs=hs.ctypes.data, cs=cs.ctypes.data, tanh_cs=tcs.ctypes.data)
        assert compiled._load().lk_scan_forward(args) >= 1           # by field name, straight into the core
        results.append([a.copy() for a in bufs])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _planted(kind: str, name: str = "Planted", **change):
    """An LSTM layer whose kernel names ``kind`` to the core (with its own shape changed by ``change``)."""
    import dataclasses
    layer = lk.LSTM(3, 4, dtype="float64")
    layer.kernel = dataclasses.replace(layer.kernel, name=name, compiled=kind, **change)
    return layer


@needs_core
def test_a_kind_the_core_does_not_know_is_refused_never_run_as_another(monkeypatch):
    import dataclasses
    monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    x = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match=r"Planted: lstmkit's compiled core has no cell kind 'no_such_kind' "
                                         r"\(it runs lstm, gru, rnn_tanh, rnn_relu, peephole_lstm, projected_lstm, "
                                         r"layer_norm_lstm\)"):
        _planted("no_such_kind").forward(x)
    # a name the core knows, on a kernel of another shape (a cell state the GRU lacks; extra weights the LSTM lacks;
    # a projection the LSTM lacks, or lacking the projected LSTM's)
    with pytest.raises(ValueError, match=r"kind 'gru' has \(gates, cell, split, extra rows, projection\) = "
                                         r"\(3, False, True, 0, False\)"):
        _planted("gru").forward(x)
    with pytest.raises(ValueError, match="kind 'lstm' has"):
        _planted("lstm", extra=(("weight_peephole", 3),)).forward(x)
    with pytest.raises(ValueError, match=r"kind 'projected_lstm' has .* = \(4, True, False, 0, True\), but this "
                                         r"kernel has \(4, True, False, 0, False\)"):
        _planted("projected_lstm").forward(x)
    with pytest.raises(ValueError, match="kind 'lstm' has"):
        layer = lk.LSTM(3, 4, proj_size=2, dtype="float64")
        layer.kernel = dataclasses.replace(layer.kernel, compiled="lstm")
        layer.forward(x)
    # a kind of the right shape whose layer has other weights is refused too
    with pytest.raises(ValueError, match=r"runs W_hh of shape \(16, 4\) and the extra parameters \[\]; this layer "
                                         r"has W_hh \(16, 2\) and \['weight_hr'\]"):
        layer = lk.LSTM(3, 4, proj_size=2, dtype="float64")
        layer.kernel = dataclasses.replace(layer.kernel, compiled="lstm", projection=None)
        layer.forward(x)
    # the core's own guard: an id past its table is an error, not another kind's equations
    assert compiled._load().lk_scan_forward(compiled.Forward(kind=99, T=1, B=1, H=1, threads=1)) == -2
    monkeypatch.setenv("LSTMKIT_KERNEL", "numpy")            # the NumPy kernel needs no name from the core
    assert _planted("no_such_kind").forward(x)[0].shape == (2, 3, 4)


def test_the_core_names_its_kinds_and_each_python_kind_is_one_of_them():
    from lstmkit.layers.peephole import _PEEPHOLE
    from lstmkit.layers.recurrent import _GRU, _LSTM, _RNN
    if not compiled.available():
        assert compiled.kinds() == {}
        return
    from lstmkit.layers.layernorm import _LAYER_NORM
    from lstmkit.layers.projected import PROJECTED
    assert list(compiled.kinds()) == ["lstm", "gru", "rnn_tanh", "rnn_relu", "peephole_lstm", "projected_lstm",
                                      "layer_norm_lstm"]
    for kernel in (_LSTM, _GRU, _RNN["tanh"], _RNN["relu"], _PEEPHOLE, PROJECTED, _LAYER_NORM):
        assert compiled.kind_of(kernel).gates == kernel.gates


@needs_core
def test_lstmkit_simd_picks_the_path_for_the_whole_process():
    """LSTMKIT_SIMD=avx2 runs an AVX2 machine's code here (make bench --emulate avx2); a bad name: one line, exit 2."""
    code = ("import lstmkit as lk; c = lk.compiled; "
            "print(c.simd(), c.set_simd('generic'), c.set_simd(None))")
    for name in ("generic", "avx2"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "LSTMKIT_SIMD": name})
        want = compiled.SIMD[min(compiled.SIMD.index(name), compiled.SIMD.index(compiled.set_simd(None)))]
        assert r.stdout.split() == [want, "generic", want], r.stderr     # None goes back to LSTMKIT_SIMD's path
    r = subprocess.run([sys.executable, "-m", "lstmkit.cli", "info"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LSTMKIT_SIMD": "avx9"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "LSTMKIT_SIMD must be one of generic, avx2, avx512" \
        in r.stderr and "Traceback" not in r.stderr, r.stderr
