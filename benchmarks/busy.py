"""``python -m benchmarks.busy``: the recurrent layers beside one competing busy process, compiled vs NumPy kernel.

A spin barrier alone collapses when another process wants a core (a waiting thread burns the time slice
the thread it waits for needs); the core's barrier spins briefly, then sleeps. This runs one busy
process for the length of the measurement and times an LSTM forward + backward on both kernels, in
alternation, in this process. The issue's bound: the compiled path at most 1.2x the NumPy path.
"""

# isort: off
import lstmkit as lk  # (before NumPy: OpenBLAS's idle threads sleep, see lstmkit._blas)
import numpy as np
# isort: on

import statistics
import subprocess
import sys
import time

from .common import numpy_kernel
from .machine import cpu_model, simd_level

SHAPES = [(64, 100, 128, 256), (32, 50, 64, 128)]
BOUND = 1.2


def main() -> int:
    spin = "import time\nt = time.time()\nwhile time.time() - t < 300: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    print(f"CPU: {cpu_model()} ({simd_level()}); lstmkit: {lk.compiled.info()}; one busy process beside")
    try:
        for B, T, I, H in SHAPES:
            layer = lk.LSTM(I, H, return_sequences=True, rng=np.random.default_rng(0))
            x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
            dy = np.ones((B, T, H), np.float32)
            times: dict[str, list[float]] = {"compiled": [], "numpy": []}
            for _ in range(2):
                for kernel in times:
                    for i in range(13):
                        t0 = time.perf_counter()
                        if kernel == "numpy":
                            with numpy_kernel():
                                layer.forward(x)
                                layer.backward(dy)
                        else:
                            layer.forward(x)
                            layer.backward(dy)
                        if i >= 3:
                            times[kernel].append(time.perf_counter() - t0)
            c, n = (statistics.median(times[k]) * 1e3 for k in ("compiled", "numpy"))
            print(f"LSTM {B},{T},{I},{H}: compiled {c:.1f} ms, NumPy kernel {n:.1f} ms, ratio {c / n:.2f} "
                  f"(bound {BOUND}: {'yes' if c / n <= BOUND else 'NO'})")
    finally:
        busy.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
