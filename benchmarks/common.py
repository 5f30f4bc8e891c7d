"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any


def time_ms(fn: Callable[[], object], repeat: int = 7, warmup: int = 2, budget_s: float = 30.0,
            warmup_s: float = 0.25) -> dict[str, float]:
    """Median and minimum wall time of ``fn`` in milliseconds over ``repeat`` runs after the warm-up.

    At least 5 runs are timed even past the budget. The median is the figure to compare; the
    minimum shows what the code costs when nothing else on a shared machine interferes. A pause
    first lets the BLAS or OpenMP worker threads of whatever ran before stop spinning (OpenBLAS's
    spin for ~0.1 s after a multi-threaded call and would take a core from the case timed next).
    The warm-up is then at least ``warmup`` runs and ``warmup_s`` seconds: on these VMs the first
    ~40 ms after the pause run slow (an idle vCPU coming back), up to 1.5x for a 5 ms case, which
    two warm-up runs did not cover. Both libraries get the same treatment.
    """
    time.sleep(0.3)
    start = time.perf_counter()
    done = 0
    while done < warmup or (time.perf_counter() - start < warmup_s and done < 100):
        fn()
        done += 1
    times = []
    start = time.perf_counter()
    while len(times) < repeat and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, "runs": len(times)}


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    """Print rows (dicts with the same keys) as an aligned table."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[k for k in keys]] + [[_fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    print(f"\n{title}")
    for j, c in enumerate(cells):
        print("  ".join(s.rjust(w) for s, w in zip(c, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


@contextlib.contextmanager
def numpy_kernel() -> Iterator[None]:
    """Inside the block lstmkit runs its NumPy reference kernels (``LSTMKIT_KERNEL=numpy``)."""
    before = os.environ.get("LSTMKIT_KERNEL")
    os.environ["LSTMKIT_KERNEL"] = "numpy"
    try:
        yield
    finally:
        if before is None:
            del os.environ["LSTMKIT_KERNEL"]
        else:
            os.environ["LSTMKIT_KERNEL"] = before


def both_kernels(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    """``time_ms(fn)`` with lstmkit's default kernel (compiled where built), plus ``numpy_ms``: the median with
    the NumPy reference kernels, in the same process."""
    out = time_ms(fn, repeat)
    with numpy_kernel():
        out["numpy_ms"] = time_ms(fn, repeat)["median_ms"]
    return out


def kernel_columns(o: dict[str, Any], t: dict[str, Any], target: float) -> dict[str, object]:
    """The columns every lstmkit-vs-PyTorch row shares: both kernels' times, PyTorch's, the ratios, the target."""
    ratio = o["median_ms"] / t["median_ms"]
    return {"lstmkit ms (min)": f"{o['median_ms']:.2f} ({o['min_ms']:.2f})", "NumPy kernel ms": o["numpy_ms"],
            "torch ms (min)": f"{t['median_ms']:.2f} ({t['min_ms']:.2f})", "ratio": ratio,
            "ratio of mins": o["min_ms"] / t["min_ms"], "NumPy kernel / torch": o["numpy_ms"] / t["median_ms"],
            "target": f"<= {target}", "ok": "yes" if ratio <= target else "NO"}
