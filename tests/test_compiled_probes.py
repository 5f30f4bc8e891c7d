"""The machine probes the benchmarks print beside their tables (``lstmkit.compiled_probes``)."""

from __future__ import annotations

import math
import os

import pytest

from lstmkit import compiled, compiled_probes

from .conftest import needs_core


@needs_core
@pytest.mark.parametrize("simd", compiled.SIMD)
def test_the_fma_peak_is_a_rate_and_the_vector_paths_beat_the_scalar_bound(simd: str) -> None:
    compiled.set_simd(simd)
    try:
        gflops = compiled_probes.fma_peak(0.01)
    finally:
        compiled.set_simd(None)
    assert math.isfinite(gflops) and gflops > 0
    # any x86-64 core at 1 GHz or more does at least 4 float32 lanes of multiply and add a cycle
    assert gflops > 2.0


@needs_core
@pytest.mark.skipif((os.cpu_count() or 1) < 2 and not os.environ.get("CI"), reason="the round trip needs two CPUs")
def test_the_round_trip_between_the_scan_threads_is_measured() -> None:
    ns = compiled_probes.round_trip_ns(2000)
    assert ns is not None and 5 < ns < 1e6          # a cache line's trip between two CPUs: tens to hundreds of ns
