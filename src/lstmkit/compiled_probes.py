"""Two measurements of the machine under the compiled core (``_core/kernels.c``, ``_core/pool.c``), for the
benchmarks' headers: what no product can beat, and how far apart the two CPUs a scan runs on are.

    >>> from lstmkit import compiled_probes
    >>> compiled_probes.fma_peak()          # doctest: +SKIP
    117.1
"""

from __future__ import annotations

import ctypes

from . import compiled


def fma_peak(seconds: float = 0.05) -> float | None:
    """One core's float32 FMA peak in GFLOP/s on the SIMD path in use, measured (twelve independent chains of FMAs
    for about ``seconds`` on the calling thread): the floor under every product the core makes. None without the
    core."""
    lib = compiled._load()
    if lib is None:
        return None
    lib.lk_fma_peak.restype, lib.lk_fma_peak.argtypes = ctypes.c_double, [ctypes.c_double]
    return float(lib.lk_fma_peak(seconds))


def round_trip_ns(rounds: int = 20000) -> float | None:
    """Nanoseconds for a cache line to go from the core's first thread to its second (each pinned to a CPU of its
    own, as a scan's are) and back, the mean of ``rounds``: what each step's barrier costs at least. 60-80 ns
    within one core complex on the machines measured; a VM whose two vCPUs sit in different ones reads several
    times that, and its scans run slower. None without the core or a second CPU."""
    lib = compiled._load()
    if lib is None:
        return None
    lib.lk_round_trip_ns.restype, lib.lk_round_trip_ns.argtypes = ctypes.c_double, [ctypes.c_long]
    ns = float(lib.lk_round_trip_ns(rounds))
    return ns if ns >= 0 else None
