"""The compiled recurrent core (``src/lstmkit/_core``, C), loaded with ctypes when the install built it.

    lk.compiled.active()        # True when the recurrent scans run compiled
    lk.compiled.info()          # {"kernel": "compiled", "simd": "avx512", "threads": 2, ...}

The NumPy kernels (``layers/recurrent.py``) are the readable reference and the fallback:
they run when the core was not built (no compiler at install time), when
``LSTMKIT_KERNEL=numpy`` is set, and for the shapes where they are faster. Both fill the
same ``ScanRecord``, so either backward reads either forward, and cells, ``lk.inspect``
and the weight-gradient GEMMs of the frame do not know which ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import _blas, parallel

_HERE = Path(__file__).parent / "_core"
_lib: Any = None
_why = ""
_loaded = False
_P = ctypes.c_void_p
_I = ctypes.c_int
_L = ctypes.c_long


def _load() -> Any:
    global _lib, _why, _loaded
    if _loaded:
        return _lib
    _loaded = True
    found = sorted(_HERE.glob("_lstmcore*.so")) + sorted(_HERE.glob("_lstmcore*.pyd"))
    if not found:
        _why = "not built (no C compiler when lstmkit was installed)"
        return None
    try:
        lib = ctypes.CDLL(str(found[0]))
    except OSError as e:
        _why = f"could not be loaded ({e})"
        return None
    lib.lk_scan_forward.argtypes = [_I, _I, _I, _I, _I, _I, _P, _P, _L, _L, _P, _P, _P, _P, _P, _P, _I, _P, _P, _I,
                                    _P, _L, _L, _I, _I]
    lib.lk_scan_backward.argtypes = [_I, _I, _I, _I, _I, _I, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P,
                                     _P, _P, _P, _P, _I, _P, _L, _L, _L, _L, _I, _I]
    lib.lk_weight_grads.argtypes = [_I, _I, _I, _I, _P, _L, _P, _L, _I, _P, _L, _P, _L, _P, _L, _I, _P, _L, _I]
    lib.lk_set_simd.argtypes = [_I]
    lib.lk_ctc_forward.argtypes = [_I, _I, _I, _P, _P, _P, _P, _P, _I]
    lib.lk_ctc_occupancy.argtypes = [_I, _I, _I, _I, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I]
    _lib = lib
    return lib


def available() -> bool:
    """Whether the compiled core was built and loads."""
    return _load() is not None


def active() -> bool:
    """Whether the recurrent scans run compiled (built, and not turned off with ``LSTMKIT_KERNEL=numpy``)."""
    return os.environ.get("LSTMKIT_KERNEL", "").lower() != "numpy" and available()


_threads: int | None = None
_held = threading.local()


@contextlib.contextmanager
def threads_held(n: int) -> Iterator[None]:
    """Inside the block (on this Python thread) scans use at most ``n`` threads."""
    before = getattr(_held, "n", None)
    _held.n = n
    try:
        yield
    finally:
        _held.n = before


def threads() -> int:
    """Threads a scan uses: the cores this process may run on, shared among the MPI ranks on this machine.

    One when OpenBLAS runs several threads whose idle spinning was not turned off (NumPy was imported
    before lstmkit, see ``lstmkit._blas``): a spinning BLAS thread would take the second core mid-scan,
    and one thread measured faster then (131 vs 152 ms at LSTM 64,100,128,256; 9 vs 21 ms at 32,50,64,128).
    """
    global _threads
    held = getattr(_held, "n", None)
    if held is not None:
        return held
    if _threads is None:
        n = parallel.cores()
        for var in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MPI_LOCAL_NRANKS"):
            local = os.environ.get(var, "")
            if local.isdigit() and int(local) > 0:
                n = max(1, n // int(local))
                break
        if not _blas.IDLE_SLEEPS and _blas_threads() > 1:
            n = 1
        _threads = max(1, n)
    return _threads


def _blas_libraries() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info
    return [i for i in threadpool_info() if i["user_api"] == "blas"]


def _blas_threads() -> int:
    return max((i["num_threads"] for i in _blas_libraries()), default=1)


def blas_description() -> str:
    """NumPy's BLAS as the benchmarks and ``lstmkit info`` print it: library, version, kernel, threads, and
    whether its idle threads sleep (see ``lstmkit._blas``)."""
    libs = "; ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')} kernel, {i['num_threads']} "
                     "threads)" for i in _blas_libraries()) or "none found"
    idle = (f"idle threads sleep (OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', '')})"
            if _blas.IDLE_SLEEPS else "idle threads spin (NumPy was loaded before lstmkit)")
    return f"{libs}; {idle}"


SIMD = ("generic", "avx2", "avx512")


def simd() -> str:
    """The SIMD path the core runs: "avx512", "avx2" or "generic" (chosen at run time from the CPU)."""
    lib = _load()
    return "none" if lib is None else SIMD[lib.lk_simd()]


def set_simd(name: str | None) -> str:
    """Force a SIMD path no higher than the CPU's best (``None``: the best again); returns the one in use."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"lstmkit's compiled core is {_why}")
    if name is not None and name not in SIMD:
        raise ValueError(f"set_simd: expected one of {SIMD} or None, got {name!r}")
    return SIMD[lib.lk_set_simd(-1 if name is None else SIMD.index(name))]


def info() -> dict[str, Any]:
    """Which kernel runs the recurrent scans and on what: kernel, simd, threads, cpu, and why not when NumPy."""
    on = active()
    why = "" if on else ("LSTMKIT_KERNEL=numpy" if available() else _why)
    return {"kernel": "compiled" if on else "numpy", "simd": simd() if available() else "none",
            "threads": threads(), "cpu": cpu_name(), "why": why, "blas_idle_threads_sleep": _blas.IDLE_SLEEPS}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def direct(B: int, H: int) -> bool:
    """Whether a scan of batch B and H units steps as matrix-vector products over the recurrent weights as they
    lie, each thread its own rows (the frame then passes W_hh^T as a view of W_hh and forms the input projection
    with one GEMM before the scan). Packing W_hh (a copy of the whole matrix per sequence) pays from batch 4 up, and
    below H = 256, where the packed weights stay in L2: LSTM forward + backward measured 12.5 (direct) vs 19.7 ms
    (packed) at 1,28,65,1000; 18 vs 25 at 2,28,65,1000; 11.8 vs 12.4 at 3,50,64,512; but 4.5 vs 2.7 at 4,50,64,256
    and 1.05 vs 0.85 at 2,50,64,128."""
    return B <= 3 and H >= 256


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _steps(a: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, int, int]:
    """a (T, B, N) in any layout whose rows are contiguous (else a contiguous copy), with its element strides
    between steps and between batch rows: (B, T, N) data seen time-major is read and written in place."""
    item = dt.itemsize
    if a.dtype != dt or a.shape[2] > 1 and a.strides[2] != item or any(s % item for s in a.strides):
        a = np.ascontiguousarray(a, dt)
    return a, a.strides[0] // item, a.strides[1] // item


def scan_forward(gates: int, act: int, xproj: np.ndarray, w_t: np.ndarray, bias: np.ndarray,
                 b_loop: np.ndarray | None, hs: np.ndarray, cs: np.ndarray | None, tcs: np.ndarray | None,
                 aux: np.ndarray | None, prescaled: bool, x: np.ndarray | None = None,
                 w_ih: np.ndarray | None = None, y: np.ndarray | None = None) -> None:
    """Run the forward scan in place: xproj (T, B, G·H) = W_ih x_t, to which the scan adds ``bias`` (G·H,),
    becomes the gates; hs/cs (T+1, B, H) are filled from h_0/c_0. With ``x`` (T, B, I) and ``w_ih`` (G·H, I)
    (LSTM and Elman) the scan forms W_ih x_t itself, step by step, and xproj is only written. With ``y``
    (T, B, H), any layout with contiguous rows (e.g. a (B, T, H) output seen time-major), h_1..h_T go there too."""
    T, B, GH = xproj.shape
    H = GH // gates
    item = xproj.dtype.itemsize
    for a in (xproj, hs, cs, tcs, aux, b_loop, bias, x, w_ih):
        assert a is None or (a.flags.c_contiguous and a.dtype == xproj.dtype)
    y_t = y_b = 0
    if y is not None:
        y2, y_t, y_b = _steps(y, xproj.dtype)
        assert y2 is y and y.shape == (T, B, H) and y.flags.writeable
    used = _lib.lk_scan_forward(int(item == 8), gates, act, T, B, H, _ptr(xproj), _ptr(w_t),
                                w_t.strides[0] // item, w_t.strides[1] // item, _ptr(bias), _ptr(b_loop), _ptr(hs),
                                _ptr(cs), _ptr(tcs), _ptr(aux), int(prescaled), _ptr(x), _ptr(w_ih),
                                0 if x is None else x.shape[2], _ptr(y), y_t, y_b, int(direct(B, H)), threads())
    if used < 0:
        raise MemoryError("lstmkit's compiled scan could not allocate its buffers")


def scan_backward(gates: int, act: int, acts: np.ndarray, hs: np.ndarray, cs: np.ndarray | None,
                  tcs: np.ndarray | None, aux: np.ndarray | None, w_hh: np.ndarray, dhs: np.ndarray,
                  inject: dict, dxp: np.ndarray, dhp: np.ndarray, w_ih: np.ndarray | None = None,
                  dx: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Run the backward scan: fills dxp, dhp (T, B, G·H); returns dh_0, dc_0 (None but for the LSTM), each (B, H),
    and the sums of dxp and of dhp over steps and batch, each (G·H,) (the gradients of b_ih and b_hh). With
    ``w_ih`` (G·H, I) and ``dx`` (T, B, I), also fills dx with dxp_t · W_ih, step by step. dhs (T, B, H) and dx
    may be in any layout with contiguous rows (a (B, T, ·) array seen time-major is read or written in place)."""
    T, B, GH = acts.shape
    H = GH // gates
    dt = acts.dtype
    last = np.full(B, -1, np.intc)
    dh_n = np.zeros((B, H), dt)
    dc_n = np.zeros((B, H), dt) if cs is not None else None
    for t, (idx, dh, dc) in inject.items():
        last[idx] = t
        dh_n[idx] += dh
        if dc_n is not None and dc is not None:
            dc_n[idx] += dc
    dhs, dhs_t, dhs_b = _steps(dhs, dt)
    w_hh = np.ascontiguousarray(w_hh, dtype=dt)
    dx_t = dx_b = 0
    if w_ih is not None:
        w_ih = np.ascontiguousarray(w_ih, dtype=dt)
        assert dx is not None and dx.shape == (T, B, w_ih.shape[1]) and dx.flags.writeable
        dx2, dx_t, dx_b = _steps(dx, dt)
        assert dx2 is dx
    dh0 = np.empty((B, H), dt)
    dc0 = np.empty((B, H), dt) if cs is not None else None
    db_x, db_h = np.empty(GH, dt), np.empty(GH, dt)
    used = _lib.lk_scan_backward(int(dt.itemsize == 8), gates, act, T, B, H, _ptr(acts), _ptr(hs), _ptr(cs),
                                 _ptr(tcs), _ptr(aux), _ptr(w_hh), _ptr(dhs), last.ctypes.data, _ptr(dh_n),
                                 _ptr(dc_n), _ptr(dxp), _ptr(dhp), _ptr(dh0), _ptr(dc0), _ptr(db_x), _ptr(db_h),
                                 _ptr(w_ih), 0 if w_ih is None else w_ih.shape[1], _ptr(dx), dhs_t, dhs_b, dx_t,
                                 dx_b, int(direct(B, H)), threads())
    if used < 0:
        raise MemoryError("lstmkit's compiled scan could not allocate its buffers")
    return dh0, dc0, db_x, db_h


def weight_grads(products: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """For each (a, b, c) of one or two products: c (M, N) += aᵀ · b, with a (K, M) and b (K, N) over all K steps
    (the weight gradients dW_ih += dxpᵀ x, dW_hh += dhpᵀ h). Every array 2-d, rows contiguous, one dtype (float32
    or float64); all a share M and K."""
    (a0, b0, c0), *rest = products
    a1, b1, c1 = rest[0] if rest else (a0, b0, c0)
    K, M = a0.shape
    dt = a0.dtype
    for a, b, c in products:
        assert a.shape == (K, M) and b.shape[0] == K and c.shape == (M, b.shape[1])
        assert all(v.dtype == dt and v.strides[1] == dt.itemsize for v in (a, b, c))
    item = dt.itemsize
    used = _lib.lk_weight_grads(int(item == 8), M, K, len(products),
                                *(v for a, b, c in ((a0, b0, c0), (a1, b1, c1))
                                  for v in (_ptr(a), a.strides[0] // item, _ptr(b), b.strides[0] // item, b.shape[1],
                                            _ptr(c), c.strides[0] // item)), threads())
    if used < 0:
        raise MemoryError("lstmkit's compiled core could not allocate its buffers for the weight gradients")


def ctc_forward(A: np.ndarray, pre: np.ndarray, skip: np.ndarray, emit: np.ndarray, scale: np.ndarray) -> None:
    """CTC's scaled recursion (``ctc.py``) in place: A (T + 1, R, W) with A[0] set, pre (T, R·W), skip (R·W − 2,),
    emit (T, R, W), scale (T, R); all float64 and contiguous."""
    T, R, W = emit.shape
    for a in (A, pre, skip, emit, scale):
        assert a.flags.c_contiguous and a.dtype == np.float64
    _lib.lk_ctc_forward(T, R, W, _ptr(A), _ptr(pre), _ptr(skip), _ptr(emit), _ptr(scale), threads())


def ctc_occupancy(A: np.ndarray, pre: np.ndarray, log_scale: np.ndarray, Tl: np.ndarray, Ll: np.ndarray,
                  ext: np.ndarray, logP: np.ndarray, feasible: np.ndarray, occ: np.ndarray) -> None:
    """Fill occ (B, T, C) with Σ_{s: l'_s = k} α_t(s) β_t(s) / (y_t(l'_s) p) from the forward's scaled A (T + 1, 2B, W),
    pre (T, 2B·W) and log-scales (T, 2B); zero past each input length and for infeasible samples."""
    B, T, C = occ.shape
    W = A.shape[2]
    Tl, Ll, ext = (np.ascontiguousarray(a, np.int64) for a in (Tl, Ll, ext))
    logP, ok = np.ascontiguousarray(logP, np.float64), np.ascontiguousarray(feasible, np.uint8)
    for a in (A, pre, log_scale, occ):
        assert a.flags.c_contiguous and a.dtype == np.float64
    _lib.lk_ctc_occupancy(T, B, W, C, _ptr(A), _ptr(pre), _ptr(log_scale), _ptr(Tl), _ptr(Ll), _ptr(ext), _ptr(logP),
                          _ptr(ok), _ptr(occ), threads())
