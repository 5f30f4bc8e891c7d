"""The compiled core (``src/lstmkit/_core``, C), loaded with ctypes when the install built it, and the one way into
it: each entry point takes one struct (core.h), mirrored here as a ``ctypes.Structure`` and filled by field name.

    lk.compiled.active()        # True when the recurrent scans run compiled
    lk.compiled.info()          # {"kernel": "compiled", "simd": "avx512", "threads": 2, ...}
    lk.compiled.kinds()         # the cell kinds the core runs, by name

A ``Kernel`` (``layers/scan.py``) that the core runs names its kind (``Kernel.compiled``); the frame
(``layers/rnn_base.py``) then calls ``scan_forward`` / ``scan_backward`` here in place of the kernel's own scans.
Both fill the same ``ScanRecord``, so either backward reads either forward, and cells and ``lk.inspect`` do not
know which ran. The NumPy kernels (``layers/recurrent.py``) are the readable reference and the fallback: they run
when the core was not built (no compiler at install time), with ``LSTMKIT_KERNEL=numpy``, and for kinds the core
does not have.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from . import _blas, parallel
from ._boundary import _I, _L, ENTRIES, STRUCTS, Backward, CtcForward, CtcOccupancy, Forward, Grad, KindInfo
from .layers.scan import Kernel as ScanKernel
from .layers.scan import ScanGrads, ScanRecord, Weights
from .workspace import Workspace

R = TypeVar("R")
_HERE = Path(__file__).parent / "_core"
_lib: Any = None
_why = ""
_loaded = False
_kinds: dict[str, Kind] | None = None
SIMD = ("generic", "avx2", "avx512")                       # the core's SIMD paths, lowest first


class Kind(NamedTuple):
    """One line of core.h's LK_KINDS: id, gate blocks, whether a cell state, whether split, extra rows, whether the
    state is a projection of the step's h; then how the core runs it: whether its step needs whole rows, and the
    rows of H it saves per step (``saved``)."""

    id: int
    gates: int
    cell: bool
    split: bool
    extra: int
    proj: bool = False
    whole: bool = False
    saved: int = 0




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
    sizes = None
    if hasattr(lib, "lk_struct_size"):
        lib.lk_struct_size.restype = _L
        lib.lk_struct_size.argtypes = [_I]
        sizes = [lib.lk_struct_size(k) for k in range(len(STRUCTS))]
    if sizes != [ctypes.sizeof(c) for c in STRUCTS]:
        _why = f"built from other sources than this lstmkit (its boundary structs: {sizes}; reinstall lstmkit)"
        return None
    for name, struct in ENTRIES:
        getattr(lib, name).argtypes = [ctypes.POINTER(struct)]
    lib.lk_kind.restype = ctypes.POINTER(KindInfo)
    lib.lk_kind.argtypes = [_I]
    lib.lk_set_simd.argtypes = [_I]
    try:
        wanted = _env_simd()
    except SimdError as e:
        _why = str(e)
        raise
    lib.lk_set_simd(_level(wanted))
    _lib = lib
    return lib


class SimdError(ValueError):
    """LSTMKIT_SIMD names no SIMD path of the core."""


def _level(name: str | None) -> int:
    """lk_set_simd's argument for a SIMD path's name (-1: the CPU's best)."""
    return -1 if name is None else SIMD.index(name)


def _env_simd() -> str | None:
    """LSTMKIT_SIMD, the SIMD path asked for (to time another machine's code here), or None; a name that is not a
    path raises SimdError."""
    name = os.environ.get("LSTMKIT_SIMD", "").strip().lower()
    if name and name not in SIMD:
        raise SimdError(f"LSTMKIT_SIMD must be one of {', '.join(SIMD)} (or unset for the CPU's best), got {name!r}")
    return name or None


def available() -> bool:
    """Whether the compiled core was built and loads."""
    return _load() is not None


def active() -> bool:
    """Whether the recurrent scans run compiled (built, and not turned off with ``LSTMKIT_KERNEL=numpy``)."""
    return os.environ.get("LSTMKIT_KERNEL", "").lower() != "numpy" and available()


_threads: int | None = None
_blas_n: int | None = None           # NumPy's BLAS threads, read once
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

    One when OpenBLAS runs several threads whose idle spinning was not turned off (NumPy was imported before
    lstmkit, see ``lstmkit._blas``) and BLAS is not held to one thread (``parallel.blas_held``: lstmkit's training
    loop and recurrent layers hold it): a spinning BLAS thread would take the second core mid-scan, and one thread
    measured faster then.
    """
    global _threads, _blas_n
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
        _threads = max(1, n)
    if not _blas.IDLE_SLEEPS and not parallel.blas_is_held():
        if _blas_n is None:
            _blas_n = _blas.threads()
        if _blas_n > 1:
            return 1
    return _threads


blas_description = _blas.description                     # for `lstmkit info` and the benchmarks


def holding_blas(core: bool | None = None) -> contextlib.AbstractContextManager[None]:
    """``parallel.blas_held()`` when the compiled core runs (``core``; by default, whether it is active), else
    nothing (the NumPy kernels' per-step products want BLAS's threads): what lstmkit's training loop, batched
    predictions and compiled recurrent passes run inside."""
    return parallel.blas_held() if (active() if core is None else core) else contextlib.nullcontext()




def simd() -> str:
    """The SIMD path the core runs: "avx512", "avx2" or "generic" (chosen at run time from the CPU)."""
    lib = _load()
    return "none" if lib is None else SIMD[lib.lk_simd()]


def set_simd(name: str | None) -> str:
    """Force a SIMD path no higher than the CPU's best (``None``: the default again, LSTMKIT_SIMD's or the CPU's
    best); returns the one in use."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"lstmkit's compiled core is {_why}")
    if name is not None and name not in SIMD:
        raise ValueError(f"set_simd: expected one of {SIMD} or None, got {name!r}")
    return SIMD[lib.lk_set_simd(_level(name or _env_simd()))]


def info() -> dict[str, Any]:
    """Which kernel runs the recurrent scans and on what: kernel, simd, threads, cpu, why not when NumPy, and bf16:
    whether bfloat16 products can run (``lk.set_float32_matmul_precision("medium")``)."""
    on = active()
    why = "" if on else ("LSTMKIT_KERNEL=numpy" if available() else _why)
    bf16 = on and bf16_possible()
    return {"kernel": "compiled" if on else "numpy", "simd": simd() if available() else "none",
            "threads": threads(), "cpu": cpu_name(), "why": why, "blas_idle_threads_sleep": _blas.IDLE_SLEEPS,
            "bf16": bf16}


def bf16_possible() -> bool:
    """Whether the core can run bfloat16 products here: built with AVX512-BF16, on such a CPU, on the AVX-512 path."""
    lib = _load()
    return lib is not None and hasattr(lib, "lk_bf16_possible") and bool(lib.lk_bf16_possible()) and simd() == "avx512"


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
    lie, each thread its own rows, with the input projection one GEMM before the scan. Packing W_hh (a copy of the
    whole matrix per sequence) pays from batch 4 up, and below H = 256, where the packed weights stay in L2
    (docs/speed.md has the measurements)."""
    return B <= 3 and H >= 256


def by_rows(B: int, weight_bytes: int) -> bool:
    """Whether the scans of batch B give each thread whole rows of the batch and every unit (no barrier a step, and
    nothing read from another thread's cache) rather than a slice of the units for every row (one barrier a step:
    the next product needs every thread's units of h). By rows, each thread packs and streams all the weights
    (``weight_bytes``: W_hh and W_ih together) and its products have B / threads rows. Measured on Zen 4 (two
    threads, float32, forward + backward): by rows wins from 4 rows a thread up while the weights are small
    (LSTM 64,100,128,256 79.7 -> 76.9 ms, 32,50,64,128 6.25 -> 5.65, 8,100,128,256 13.2 -> 11.1, 64,50,128,384
    86.8 -> 76.9; GRU 64,100,128,256 63.3 -> 61.0) and loses when they are large (32,64,512,512 128.4 -> 132.1,
    64,50,256,384 95.1 -> 97.1, 64,100,256,1024 1023 -> 1073) or the rows few (4,100,128,256 5.8 -> 10.0)."""
    n = threads()
    return n > 1 and B >= 4 * n and weight_bytes * n <= 7 << 20


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _steps(a: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, int, int]:
    """a (T, B, N) in any layout whose rows are contiguous (else a contiguous copy), with its element strides
    between steps and between batch rows: (B, T, N) data seen time-major is read and written in place."""
    item = dt.itemsize
    if a.dtype != dt or a.shape[2] > 1 and a.strides[2] != item or any(s % item for s in a.strides):
        a = np.ascontiguousarray(a, dt)
    return a, a.strides[0] // item, a.strides[1] // item


# ---- the cell kinds ------------------------------------------------------------------------------------------


def kinds() -> dict[str, Kind]:
    """The core's cell kinds by name (core.h's LK_KINDS), each with its id and shape; {} without the core."""
    global _kinds
    if _kinds is None:
        lib = _load()
        found = {}
        for k in range(64 if lib is not None else 0):
            info = lib.lk_kind(k)
            if not info:
                break
            v = info.contents
            found[v.name.decode()] = Kind(k, v.gates, bool(v.cell), bool(v.split), v.extra, bool(v.proj),
                                          bool(v.whole), v.saved)
        _kinds = found
    return _kinds


def kind_of(kernel: ScanKernel) -> Kind:
    """The core's kind for ``kernel`` (by ``kernel.compiled``), checked against the kernel's own shape: a name the
    core does not know, or a kind of another shape, is refused and never run as another."""
    known = kinds()
    kind = known.get(kernel.compiled or "")
    if kind is None:
        raise ValueError(f"{kernel.name}: lstmkit's compiled core has no cell kind {kernel.compiled!r} (it runs "
                         f"{', '.join(known) or 'none'}); set Kernel.compiled to one of those, or to None to run this "
                         "kind on its NumPy kernel")
    mine = (kernel.gates, kernel.has_cell, kernel.split, sum(rows for _, rows in kernel.extra),
            kernel.projection is not None)
    if mine != kind[1:6]:
        raise ValueError(f"{kernel.name}: the compiled core's kind {kernel.compiled!r} has (gates, cell, split, extra "
                         f"rows, projection) = {kind[1:6]}, but this kernel has {mine}")
    return kind


def runs(kernel: ScanKernel) -> bool:
    """Whether this kernel's scans run compiled: it names a kind of the core and the core is active (every shape:
    small batches take the core's matrix-vector steps, ``direct``). A name the core lacks raises ValueError."""
    if kernel.compiled is None or not active():
        return False
    kind_of(kernel)
    return True


def one_thread(fn: Callable[[int], R], d: int) -> R:
    """``fn(d)`` with this thread's compiled scans held to one thread (two directions running side by side)."""
    with threads_held(1):
        return fn(d)


def _check(used: int, args: ctypes.Structure) -> None:
    """Raise for what an entry point's return value says went wrong (-1: no memory, -2: no such kind)."""
    if used == -2:
        raise ValueError(f"lstmkit's compiled core has no cell kind {args.kind}")
    if used < 0:
        raise MemoryError("lstmkit's compiled core could not allocate its buffers")


def _contiguous(a: np.ndarray | None, dt: np.dtype) -> np.ndarray | None:
    """A mask the frame drew, as the core reads it (never a temporary copy: the pointer must outlive the call)."""
    assert a is None or (a.dtype == dt and a.flags.c_contiguous)
    return a


def _zone_args(zone: Any, raw: dict[str, np.ndarray], dt: np.dtype) -> dict[str, Any]:
    """The boundary's zoneout fields: the steps' own h̃, c̃ buffers, the drawn d (or the eval-mode p)."""
    if zone is None:
        return {}
    return {"h_raw": _ptr(raw["h_raw"]), "c_raw": _ptr(raw.get("c_raw")), "zh": _ptr(_contiguous(zone.h, dt)),
            "zc": _ptr(_contiguous(zone.c, dt)), "zh_p": zone.p_h, "zc_p": zone.p_c}


def _projection(kernel: ScanKernel, w: Weights, H: int, dt: np.dtype) -> tuple[np.ndarray | None, int]:
    """(W_hr (P, H) contiguous, P) for a kind whose state is projected, else (None, H)."""
    if kernel.projection is None:
        return None, H
    w_hr = np.ascontiguousarray(w.extra[kernel.projection], dt)
    return w_hr, w_hr.shape[0]


def _stacked(kernel: ScanKernel, extra: dict[str, np.ndarray], dt: np.dtype) -> np.ndarray | None:
    """The kernel's extra parameters one above the other, (rows, H) contiguous, as the core reads them."""
    if not kernel.extra:
        return None
    return np.ascontiguousarray(np.concatenate([extra[name] for name, _ in kernel.extra]), dt)


# ---- the scans -----------------------------------------------------------------------------------------------


def scan_forward(kernel: ScanKernel, w: Weights, inp: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                 ws: Workspace, y: np.ndarray | None = None, rmask: np.ndarray | None = None,
                 zone: Any = None) -> ScanRecord:
    """One layer and direction forward on the core: inp (T, B, I), h0 (B, P) and c0 (B, H) -> the kernel's record
    (P = H but for kinds whose state is projected: the record's aux then also holds m (T, B, H), which h projects).

    W_ih x_t is formed inside the scan, step by step (kept apart from W_hh h for split kinds), except for small
    batches (``direct``), where one GEMM before the scan measured faster; the scan adds the biases as it goes.
    With ``y`` (T, B, P) (a time-major view of the layer's (B, T, P) output) h_1..h_T are written there too.
    ``rmask`` (B, P): recurrent dropout's mask on h_{t−1} where it enters W_hh, or None; ``zone``: zoneout
    (``layers.zoneout.Zone``) or None — the record's hs, cs are then the zoned states and aux keeps the steps' own
    h̃, c̃ ("h_raw", "c_raw").
    """
    kind = kind_of(kernel)
    T, B, _ = inp.shape
    dt = inp.dtype
    GH = w.w_ih.shape[0]
    H = GH // kind.gates
    w_hr, P = _projection(kernel, w, H, dt)
    if w.w_hh.shape != (GH, P) or set(w.extra) - {kernel.projection} != {name for name, _ in kernel.extra}:
        raise ValueError(f"{kernel.name}: the compiled core's kind {kernel.compiled!r} runs W_hh of shape {(GH, P)} "
                         f"and the extra parameters {[n for n, _ in kernel.extra]}; this layer has W_hh "
                         f"{w.w_hh.shape} and {sorted(w.extra)}")
    small = direct(B, H) and not (kind.proj or kind.whole)  # W_ih x_t: one GEMM first; else the scan forms it
    gates = ws.empty("xproj", (T, B, GH), dt)
    w_ih = np.ascontiguousarray(w.w_ih, dt)
    x, x_t, x_b = (None, 0, 0) if small else _steps(inp, dt)    # (B, T, I) data seen time-major: read as it lies
    if small:
        np.matmul(inp.reshape(T * B, -1), w_ih.T, out=gates.reshape(T * B, GH))
    bias, b_loop = w.folded_biases(kernel.loop_bias_gates * H)
    bias = np.zeros(GH, dt) if bias is None else np.ascontiguousarray(bias, dt)
    hs = ws.empty("hs", (T + 1, B, P), dt)
    hs[0] = h0
    ms = ws.empty("m", (T, B, H), dt) if kind.proj else None
    saved = ws.empty("saved", (T, B, kind.saved * H + 4), dt) if kind.saved else None
    raw = {} if zone is None else {"h_raw": ws.empty("h_raw", (T, B, H), dt)}
    if zone is not None and kind.cell:
        raw["c_raw"] = ws.empty("c_raw", (T, B, H), dt)
    cs = tanh_cs = hproj = None
    if kind.cell:
        cs, tanh_cs = ws.empty("cs", (T + 1, B, H), dt), ws.empty("tanh_cs", (T, B, H), dt)
        cs[0] = c0
    if kind.split:
        hproj = ws.empty("hp_n", (T, B, H), dt)
    y_t = y_b = 0
    if y is not None:
        y2, y_t, y_b = _steps(y, dt)
        assert y2 is y and y.shape == (T, B, P) and y.flags.writeable
    extra = _stacked(kernel, w.extra, dt)
    w_t = w.w_hh.T                      # a view: the core packs it, or reads W_hh's rows as they lie (small batches)
    item = dt.itemsize
    args = Forward(
        kind=kind.id, f64=int(item == 8), T=T, B=B, H=H, I=0 if small else inp.shape[2], direct=int(small),
        threads=threads(), gates=_ptr(gates), w_hh_t=_ptr(w_t), wk=w_t.strides[0] // item, wn=w_t.strides[1] // item,
        x=_ptr(x), w_ih=_ptr(None if small else w_ih), x_t=x_t, x_b=x_b, bias=_ptr(bias),
        b_loop=_ptr(None if b_loop is None else np.ascontiguousarray(b_loop, dt)), extra=_ptr(extra), hs=_ptr(hs),
        cs=_ptr(cs), tanh_cs=_ptr(tanh_cs), hproj=_ptr(hproj), y=_ptr(y), y_t=y_t, y_b=y_b, P=P, w_hr=_ptr(w_hr),
        ms=_ptr(ms), saved=_ptr(saved), rmask=_ptr(_contiguous(rmask, dt)), **_zone_args(zone, raw, dt),
        by_rows=int(by_rows(B, (w_ih.size + w.w_hh.size) * item)))
    _check(_lib.lk_scan_forward(ctypes.byref(args)), args)
    if not kernel.gate_names:
        return ScanRecord(hs, aux=raw)
    aux = {name: a for name, a in (("tanh_c", tanh_cs), ("hproj_n", hproj), ("m", ms), ("saved", saved))
           if a is not None}
    return ScanRecord(hs, gates, cs, {**aux, **raw})


def scan_backward(kernel: ScanKernel, record: ScanRecord, w: Weights, dhs: np.ndarray, inject: dict,
                  ws: Workspace, dinp: np.ndarray, rmask: np.ndarray | None = None, zone: Any = None) -> ScanGrads:
    """As ``kernel.backward``, on the core: the pre-activations' gradients (T, B, G·H), the initial state's, the
    biases' and the kind's extra parameters' (and the projection's: Σ_t dL/dh_tᵀ m_t); the input's gradient dinp
    (T, B, I) = dpre_x,t · W_ih is formed in the same scan, step by step. dhs (T, B, P) and dinp may be time-major
    views of (B, T, ·) arrays; ``rmask`` the forward's."""
    kind = kind_of(kernel)
    T, B, P = dhs.shape
    dt = record.hs.dtype
    GH = w.w_ih.shape[0]
    H = GH // kind.gates
    w_hr, _ = _projection(kernel, w, H, dt)
    dpre_x = ws.empty("dpre", (T, B, GH), dt)
    dpre_h = ws.empty("dhp", (T, B, GH), dt) if kind.split else dpre_x
    dh_all = ws.empty("dh_all", (T, B, P), dt) if kind.proj else None
    last = np.full(B, -1, np.intc)
    dh_n = np.zeros((B, P), dt)
    dc_n = np.zeros((B, H), dt) if kind.cell else None
    for t, (idx, dh, dc) in inject.items():
        last[idx] = t
        dh_n[idx] += dh
        if dc_n is not None and dc is not None:
            dc_n[idx] += dc
    dhs, dhs_t, dhs_b = _steps(dhs, dt)
    w_ih = np.ascontiguousarray(w.w_ih, dt)
    assert dinp.shape == (T, B, w_ih.shape[1]) and dinp.flags.writeable
    dinp2, dx_t, dx_b = _steps(dinp, dt)
    assert dinp2 is dinp
    extra = _stacked(kernel, w.extra, dt)
    dh0 = np.empty((B, P), dt)
    dc0 = np.empty((B, H), dt) if kind.cell else None
    db_x, db_h = np.empty(GH, dt), np.empty(GH, dt)
    d_extra = None if extra is None else np.empty_like(extra)
    gates = record.gates if record.gates is not None else dpre_x     # Elman keeps no gates (the core reads none)
    args = Backward(
        kind=kind.id, f64=int(dt.itemsize == 8), T=T, B=B, H=H, I=w_ih.shape[1], direct=int(direct(B, H)),
        threads=threads(), gates=_ptr(gates), hs=_ptr(record.hs), cs=_ptr(record.cs),
        tanh_cs=_ptr(record.aux.get("tanh_c")), hproj=_ptr(record.aux.get("hproj_n")),
        w_hh=_ptr(np.ascontiguousarray(w.w_hh, dt)), w_ih=_ptr(w_ih), extra=_ptr(extra), dhs=_ptr(dhs), dhs_t=dhs_t,
        dhs_b=dhs_b, last=last.ctypes.data, dh_n=_ptr(dh_n), dc_n=_ptr(dc_n), dpre_x=_ptr(dpre_x), dpre_h=_ptr(dpre_h),
        dh0=_ptr(dh0), dc0=_ptr(dc0), db_x=_ptr(db_x), db_h=_ptr(db_h), d_extra=_ptr(d_extra), dx=_ptr(dinp),
        dx_t=dx_t, dx_b=dx_b, P=P, w_hr=_ptr(w_hr), ms=_ptr(record.aux.get("m")), dh_all=_ptr(dh_all),
        saved=_ptr(record.aux.get("saved")), rmask=_ptr(_contiguous(rmask, dt)),
        **_zone_args(zone, {k: v for k, v in record.aux.items() if k in ("h_raw", "c_raw")}, dt),
        by_rows=int(by_rows(B, (w_ih.size + w.w_hh.size) * dt.itemsize)))
    _check(_lib.lk_scan_backward(ctypes.byref(args)), args)
    grads = {}
    if d_extra is not None:
        at = 0
        for name, rows in kernel.extra:
            grads[name] = d_extra[at:at + rows]
            at += rows
    if kernel.projection is not None:                   # d W_hr = Σ_t dL/dh_tᵀ m_t, over all steps at once
        d_hr = np.zeros((P, H), dt)
        weight_grads([(dh_all.reshape(T * B, P), record.aux["m"].reshape(T * B, H), d_hr)])
        grads[kernel.projection] = d_hr
    return ScanGrads(dpre_x, dpre_h, dh0, dc0, grads, bias=(db_x, db_h))


def weight_grads(products: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """For each (a, b, c) of one or two products: c (M, N) += aᵀ · b, with a (K, M) and b (K, N) over all K steps
    (the weight gradients dW_ih += dpre_xᵀ x, dW_hh += dpre_hᵀ h). a and c 2-d, rows contiguous; b 2-d likewise, or
    (T, B, N) with K = T·B in any layout (a (B, T, N) input seen time-major, or one reversed in time: read as it
    lies when its rows are contiguous, else copied as ``_steps`` does); one dtype (float32 or float64); all a share
    M and K."""
    K, M = products[0][0].shape
    dt = products[0][0].dtype
    item = dt.itemsize
    g = Grad(f64=int(item == 8), M=M, K=K, nprod=len(products), threads=threads())
    kept = []                                           # (b as the core reads it: alive until the call returns)
    for q, (a, b, c) in enumerate(products):
        assert a.shape == (K, M) and c.shape == (M, b.shape[-1]) and int(np.prod(b.shape[:-1])) == K
        if b.ndim == 3:                                 # row k = (t, b): per batch rows a step
            b, g.ldb_t[q], g.ldb[q] = _steps(b, dt)
            g.per[q] = b.shape[1]
        else:
            g.ldb[q] = b.strides[0] // item
        kept.append(b)
        assert all(v.dtype == dt and v.strides[-1] == item and not any(s % item for s in v.strides) for v in (a, b, c))
        g.a[q], g.b[q], g.c[q] = _ptr(a), _ptr(b), _ptr(c)
        g.lda[q], g.ldc[q] = a.strides[0] // item, c.strides[0] // item
        g.N[q] = b.shape[-1]
    _check(_lib.lk_weight_grads(ctypes.byref(g)), g)


def ctc_forward(A: np.ndarray, pre: np.ndarray, skip: np.ndarray, emit: np.ndarray, scale: np.ndarray) -> None:
    """CTC's scaled recursion (``ctc.py``) in place: A (T + 1, R, W) with A[0] set, pre (T, R·W), skip (R·W − 2,),
    emit (T, R, W), scale (T, R); all float64 and contiguous."""
    T, R, W = emit.shape
    for a in (A, pre, skip, emit, scale):
        assert a.flags.c_contiguous and a.dtype == np.float64
    _lib.lk_ctc_forward(CtcForward(T=T, R=R, W=W, threads=threads(), A=_ptr(A), pre=_ptr(pre), skip=_ptr(skip),
                                   emit=_ptr(emit), scale=_ptr(scale)))


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
    _lib.lk_ctc_occupancy(CtcOccupancy(T=T, B=B, W=W, C=C, threads=threads(), A=_ptr(A), pre=_ptr(pre),
                                       log_scale=_ptr(log_scale), Tl=_ptr(Tl), Ll=_ptr(Ll), ext=_ptr(ext),
                                       logP=_ptr(logP), feasible=_ptr(ok), occ=_ptr(occ)))
