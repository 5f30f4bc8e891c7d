"""``python -m benchmarks.worker LIB SUITE...``: time one library in a process of its own; JSON on stdout.

Timing each library in its own process keeps the two from disturbing each other:
OpenBLAS worker threads spin for a while after each call and would steal the
second core from PyTorch timed right after NumPy in the same process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# isort: off
if os.environ.get("LSTMKIT_BENCH_ORDER", "numpy-first") == "numpy-first":
    import numpy  # noqa: F401  (what a user's script does; --lstmkit-first times the CLI's order instead)
import lstmkit
import numpy as np
# isort: on

from . import charlm, conv, ctc, inference, recurrent, tree, video
from .machine import gemm_gflops

N_GEMM = 1024


def _lstmkit(suites: list[str], repeat: int) -> dict[str, Any]:
    a = np.random.default_rng(0).standard_normal((N_GEMM, N_GEMM)).astype(np.float32)
    c = np.empty_like(a)
    from lstmkit import compiled_probes as probes
    probe = probes.round_trip_ns                     # where the two CPUs sat, before and after the suites
    trips = [probe()]
    out = _suites(0, suites, repeat)                 # the GEMM last: its spinning threads disturb nothing after it
    trips.append(probe())
    out |= {"fma_gflops": probes.fma_peak(), "round_trip_ns": trips}
    with lstmkit.compiled.holding_blas():           # the threads a scan gets inside lstmkit's work
        info = lstmkit.compiled.info()
    kernels = (f"compiled core, {info['simd']}, {info['threads']} threads" if info["kernel"] == "compiled" else
               f"NumPy only ({info['why']})")
    return out | {"gemm_gflops": gemm_gflops(lambda: np.matmul(a, a, out=c), N_GEMM),
                  "library": f"NumPy {np.__version__}, {lstmkit.compiled.blas_description()}", "kernels": kernels}


def _torch(suites: list[str], repeat: int) -> dict[str, Any]:
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    a = torch.randn(N_GEMM, N_GEMM)
    out = _suites(1, suites, repeat)
    return out | {"gemm_gflops": gemm_gflops(lambda: a @ a, N_GEMM),
                  "library": f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"}


# suite -> (lstmkit's runner, PyTorch's runner), each taking the repeat count
RUNNERS: dict[str, tuple[Any, Any]] = {
    "recurrent": (recurrent.run_lstmkit, recurrent.run_torch),
    "conv": (conv.run_lstmkit, conv.run_torch),
    "ctc": (ctc.run_lstmkit, ctc.run_torch),
    "tree": (tree.run_lstmkit, tree.run_torch),
    "video": (video.run_lstmkit, video.run_torch),
    "charlm": (lambda repeat: charlm.speed_lstmkit(), lambda repeat: charlm.speed_torch()),
    "inference": (inference.run_lstmkit, inference.run_torch),
}


def _suites(side: int, suites: list[str], repeat: int) -> dict[str, Any]:
    return {name: RUNNERS[name][side](repeat) for name in suites}


def main(argv: list[str]) -> int:
    lib, repeat, suites = argv[0], int(argv[1]), argv[2:]
    result = _lstmkit(suites, repeat) if lib == "lstmkit" else _torch(suites, repeat)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
