"""Two cores, used where it measurably pays.

NumPy runs elementwise work on one thread; OpenBLAS runs each GEMM on all
cores. Independent pieces of work (the two directions of a bidirectional
layer) can instead run side by side, each on its own core with BLAS held to
one thread, so that the elementwise passes of one overlap those of the other.
NumPy releases the GIL inside ufuncs and BLAS calls, so plain threads do it.
Results are bit-for-bit those of running the pieces one after the other.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

R = TypeVar("R")
_pool: ThreadPoolExecutor | None = None
_controller: Any = None
_lock = threading.Lock()


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                   # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Hold BLAS to ``n`` threads inside the block (threadpoolctl), restoring it after."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    with _controller.limit(limits=n, user_api="blas"):
        yield


def side_by_side(first: Callable[[], R], second: Callable[[], R]) -> tuple[R, R]:
    """Run ``second`` on a worker thread while ``first`` runs here, each with one BLAS thread."""
    global _pool
    if threading.current_thread().name.startswith("lstmkit"):     # already on the worker: no nesting
        return first(), second()
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit")
    with blas_threads(1):
        future = _pool.submit(second)
        try:
            a = first()
        finally:
            b = future.result()
    return a, b
