"""Data-parallel scaling of the default char LM (2 × 384 LSTM, B 32, T 64) on this machine.

    python -m benchmarks.distributed            # launches the three configurations below and prints a table

1 process with 2 BLAS threads (the usual run), 1 process with 1 BLAS thread, and 2 processes
(mpirun -n 2) with 1 BLAS thread each, the global batch the same in all three: training steps per
second, characters per second, the all-reduce volume and its measured time; then a projection of
ring all-reduce over N machines on 10 and 100 Gb/s links.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(steps: int = 20) -> dict[str, float]:
    from lstmkit.apps import charlm as ct
    from lstmkit.distributed import world
    comm = world()
    out = Path(tempfile.mkdtemp()) / "run"
    trainer = ct.Trainer.new(out, ct.BUNDLED, {}, ct.TrainConfig(steps=10_000), comm=comm)
    for _ in range(3):
        trainer.train_step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - t)
    reduce_s = []
    if trainer.sync is not None:
        for _ in range(30):
            comm.barrier()
            t = time.perf_counter()
            comm.allreduce_(trainer.sync.flat)
            reduce_s.append(time.perf_counter() - t)
    step = statistics.median(times)
    n_params = sum(p.value.size for p in trainer.model.parameters())
    return {"ranks": comm.size, "step_ms": step * 1e3, "chars_per_s": trainer.items_per_step / step,
            "params": n_params, "allreduce_ms": statistics.median(reduce_s) * 1e3 if reduce_s else 0.0,
            "rank": comm.rank}


def launch(n: int, blas: int) -> dict[str, float]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(blas), "OMP_NUM_THREADS": str(blas),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}
    cmd = [sys.executable, "-m", "benchmarks.distributed", "--worker"]
    if n > 1:
        mpirun = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit("no mpirun: pip install 'lstmkit[mpi]'")
        cmd = [mpirun, "-n", str(n), "--bind-to", "core", *cmd]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if r.returncode:
        raise SystemExit(r.stderr)
    return json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][0])


# (link speed in Gb/s, per-message latency in s): TCP over 10 GbE, RDMA-class 100 Gb/s fabrics
LINKS = ((10.0, 25e-6), (100.0, 5e-6))


def projection(params: int, step_s: float, links: tuple[tuple[float, float], ...] = LINKS) -> list[dict[str, object]]:
    """Efficiency of N machines (each as fast as this one) when a ring all-reduce of the float32 gradients,
    not overlapped with compute, takes 2(N−1) messages of latency α plus 2(N−1)/N of the buffer over each
    machine's link: t = 2(N−1)·α + 2(N−1)/N · bytes / bandwidth."""
    rows = []
    nbytes = params * 4

    def comm_s(n: int, gbps: float, alpha: float) -> float:
        return 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes * 8 / (gbps * 1e9)

    for gbps, alpha in links:
        best = max((n for n in range(1, 4097) if step_s / (step_s + comm_s(n, gbps, alpha)) >= 0.9), default=1)
        rows.append({"link": f"{gbps:g} Gb/s, {alpha * 1e6:g} us latency",
                     "all-reduce at N = 8": f"{comm_s(8, gbps, alpha) * 1e3:.1f} ms",
                     "efficiency at N = 8": f"{step_s / (step_s + comm_s(8, gbps, alpha)):.1%}",
                     "at N = 64": f"{step_s / (step_s + comm_s(64, gbps, alpha)):.1%}",
                     "largest N at >= 90 %": best})
    return rows


def main() -> int:
    if "--worker" in sys.argv:
        r = worker()
        if r["rank"] == 0:
            print(json.dumps(r))
        return 0
    from .common import print_table
    from .machine import cpu_model
    runs = [("1 process, 2 BLAS threads", launch(1, 2)), ("1 process, 1 BLAS thread", launch(1, 1)),
            ("2 processes (mpirun -n 2), 1 BLAS thread each", launch(2, 1))]
    base = runs[0][1]["chars_per_s"]
    print(f"CPU: {cpu_model()}; default char LM, {runs[0][1]['params']:,} parameters, global batch 32 x 64")
    print_table("Data-parallel scaling on this machine", [
        {"configuration": name, "ms/step": f"{r['step_ms']:.1f}", "chars/s": f"{r['chars_per_s']:,.0f}",
         "vs 1 process, 2 threads": r["chars_per_s"] / base,
         "all-reduce": f"{r['allreduce_ms']:.2f} ms" if r["ranks"] > 1 else "-"} for name, r in runs])
    params = runs[0][1]["params"]
    print(f"\nall-reduce volume per step: {params:,} parameters x 4 bytes = {params * 4 / 1e6:.1f} MB")
    step_s = runs[2][1]["step_ms"] / 1e3          # one machine like this one: two ranks, a batch of 32 x 64
    print_table(f"Projection: N machines like this one, each a batch of 32 x 64 in {step_s * 1e3:.0f} ms a step "
                "(the 2-process figure), ring all-reduce between them not overlapped", projection(params, step_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
