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

from . import _blas

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


_holds = 0


def blas_is_held() -> bool:
    """Whether a ``blas_held`` block is running (BLAS is on one thread there)."""
    return _holds > 0


@contextlib.contextmanager
def blas_held() -> Iterator[None]:
    """Inside the block (lstmkit's training loop, a recurrent layer's pass), NumPy's BLAS runs on one thread when its
    idle threads would spin: NumPy was imported before lstmkit, so OpenBLAS's threads spin for ~0.1 s after each
    multi-threaded product (``lstmkit._blas``) and take the core a compiled scan runs on. With BLAS on one thread none
    wakes, and the compiled scans keep every core (``compiled.threads``). Elsewhere, and when nested, a no-op."""
    global _holds
    outer = not _blas.IDLE_SLEEPS and _holds == 0
    with blas_threads(1) if outer else contextlib.nullcontext():
        with _lock:
            _holds += 1
        try:
            yield
        finally:
            with _lock:
                _holds -= 1


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
