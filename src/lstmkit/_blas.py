"""Imported first, before NumPy loads OpenBLAS: its idle threads then sleep at once (after 2^4 cycles)
instead of spinning for ~0.1 s after every multi-threaded product — spinning that takes a core from the
compiled recurrent scan run right after. A value already set is kept. It takes effect only when lstmkit
is imported before NumPy; ``IDLE_SLEEPS`` says whether it did (``lstmkit info`` prints it)."""

import os
import sys
from typing import Any

_timeout = os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# A short timeout counts (OpenBLAS reads 2^n cycles, n clamped to [4, 30]); anything else, or unparsable, does not.
IDLE_SLEEPS = "numpy" not in sys.modules and _timeout.strip().isdigit() and int(_timeout) <= 8


def libraries() -> list[dict[str, Any]]:
    """threadpoolctl's description of each BLAS library loaded in this process."""
    from threadpoolctl import threadpool_info
    return [i for i in threadpool_info() if i["user_api"] == "blas"]


def other_pools() -> list[str]:
    """The thread pools in this process that are not a BLAS (OpenMP runtimes: PyTorch's, scikit-learn's), each as
    "library (N threads)": lstmkit's hold does not reach them, and their threads can take a core while they
    work, or spin just after."""
    from threadpoolctl import threadpool_info
    return [f"{i.get('prefix') or i['internal_api']} ({i['num_threads']} threads)" for i in threadpool_info()
            if i["user_api"] != "blas"]


def threads() -> int:
    """The most threads any loaded BLAS runs its products on (1 without one)."""
    return max((i["num_threads"] for i in libraries()), default=1)


def description() -> str:
    """NumPy's BLAS as the benchmarks and ``lstmkit info`` print it: library, version, kernel, threads, and
    whether its idle threads sleep (see above)."""
    libs = "; ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')} kernel, {i['num_threads']} "
                     "threads)" for i in libraries()) or "none found"
    idle = (f"idle threads sleep (OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', '')})"
            if IDLE_SLEEPS else "idle threads spin (NumPy was loaded before lstmkit), so lstmkit holds BLAS to "
            "one thread while it trains, predicts or runs a compiled scan")
    return f"{libs}; {idle}"
