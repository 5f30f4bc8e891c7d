"""What machine a benchmark ran on: CPU model, SIMD level, thread settings, float32 GEMM speed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

THREAD_VARS = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
               "OPENBLAS_L2_SIZE", "MKL_NUM_THREADS")


def cpu_model() -> str:
    from lstmkit.compiled import cpu_name
    return cpu_name()


def simd_level() -> str:
    """The widest x86 vector extension the CPU reports (from /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2")):
        if flag in flags:
            extra = " (+BF16)" if flag == "avx512f" and "avx512_bf16" in flags else ""
            return name + extra
    return "unknown"


def thread_env() -> dict[str, str]:
    return {k: os.environ[k] for k in THREAD_VARS if k in os.environ}


def gemm_gflops(matmul: Callable[[], object], n: int, repeat: int = 10) -> float:
    """Best float32 GFLOP/s of an n×n by n×n product over ``repeat`` runs."""
    matmul()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9
