"""``python -m benchmarks [recurrent] [conv] [ctc] [tree] [video] [charlm] [inference] [order] [data] [--minutes M]
[--json PATH]``:
lstmkit vs PyTorch; lstmkit's speed in either import order (``order``) and its data path on data bigger than memory
(``data``), lstmkit alone.

With no suite named, runs ``recurrent``, ``conv``, ``ctc``, ``tree``, the CNN+LSTM training step (``video``), the
char-LM training-step speed and ``inference`` (generation at batch 1; a long forward's memory). lstmkit's rows
time its default kernels (the compiled core where it was built) and, in the same process, its NumPy reference
kernels; its process imports NumPy first, as a user's script does (``--lstmkit-first``: the CLI's order). Each
library is timed in a process of its own, at the same thread count (``--threads``,
default all cores), PyTorch's OpenMP threads pinned to cores, in alternating rounds
(``--rounds``); every figure is the median (and min) of at least 5 runs after
warm-up, from the quietest round. With ``--minutes M``, ``charlm`` also trains
the default model for M minutes and reports the validation loss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import charlm, conv, ctc, data, inference, order, recurrent, tree, video
from .common import print_table
from .machine import cpu_model, simd_level, thread_env

# glibc returns large freed blocks to the OS and page-faults them in again on the next allocation; PyTorch
# allocates fresh tensors every call, and its convolutions ran 2-2.5x slower here depending on what had run
# before in the process. Both processes keep freed memory instead, so each library runs at its steady state.
SUITES = ("recurrent", "conv", "ctc", "tree", "video", "charlm", "inference", "order", "data")
PEERLESS = ("order", "data")             # lstmkit alone, run from this process
TABLES = {"recurrent": (recurrent, "Recurrent layers, forward + backward, float32"),
          "conv": (conv, "Convolution and pooling, forward + backward, float32 (NHWC here, NCHW in PyTorch)"),
          "ctc": (ctc, "CTC loss, forward + backward from logits, float32"),
          "tree": (tree, "Tree LSTMs, forward + backward, batch of 64 formulas: level-batched vs node by node"),
          "video": (video, "CNN+LSTM training step (forward, loss, backward, clip, AdamW), the video app's model"),
          "charlm": (charlm, "Char-LM training step (forward, loss, backward, clip, AdamW), same model and batches"),
          "inference": (inference, "Inference: generation at batch 1, and a long forward's memory")}
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


# An AVX2 machine's code on this one, fairly on both sides: lstmkit's core at AVX2 with OpenBLAS's Haswell kernel, and
# PyTorch's ATen, oneDNN and MKL at AVX2.
EMULATE = {"avx2": {"lstmkit": {"LSTMKIT_SIMD": "avx2", "OPENBLAS_CORETYPE": "Haswell"},
                    "torch": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                              "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}}


def run_worker(lib: str, suites: list[str], threads: int, repeat: int, native_blas: bool = False,
               lstmkit_first: bool = False, emulate: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), **MALLOC,
           "LSTMKIT_BENCH_ORDER": "lstmkit-first" if lstmkit_first else "numpy-first",
           **(EMULATE[emulate][lib] if emulate else {})}
    if native_blas and not emulate:   # let OpenBLAS pick its kernel for this CPU, not the one the environment forces
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(k, None)
    if lib == "torch":       # unpinned OpenMP threads on these VMs can run several-fold slow
        env.update({"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"})
    r = subprocess.run([sys.executable, "-m", "benchmarks.worker", lib, str(repeat), *suites], env=env,
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if r.returncode != 0:
        raise SystemExit(f"the {lib} benchmark process failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def quietest(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case, the round with the lowest median (every round timed the same code; noise only adds)."""
    best = dict(results[0])
    for r in results[1:]:
        best["gemm_gflops"] = max(best["gemm_gflops"], r["gemm_gflops"])
        best["round_trip_ns"] = best.get("round_trip_ns", []) + r.get("round_trip_ns", [])
        for suite in ("recurrent", "conv", "ctc", "tree", "inference"):
            if suite in r:
                best[suite] = {k: min(best[suite][k], r[suite][k], key=lambda t: t.get("median_ms", t.get("growth_mb")))
                               for k in r[suite]}
        for suite in ("charlm", "video"):
            if suite in r and r[suite]["step"]["median_ms"] < best[suite]["step"]["median_ms"]:
                best[suite] = r[suite]
    return best


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("suites", nargs="*", metavar="SUITE", help="recurrent, conv, ctc, tree, video, charlm and/or "
                   "inference "
                   "(default: all, the char LM's step speed without its timed training)")
    p.add_argument("--minutes", type=float, help="with charlm: also train the default char LM for this many minutes "
                   "and report the validation loss (targets at 10 and 30)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both libraries")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (at least 5)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two libraries' processes; "
                   "each case reports its quietest round (default 2)")
    p.add_argument("--json", metavar="PATH", help="also write the machine and the tables to PATH as JSON")
    p.add_argument("--native-blas", action="store_true", help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the "
                   "lstmkit process, so that OpenBLAS runs the kernel it would choose for this CPU (some machines "
                   "force an older one, e.g. Haswell on AVX-512 CPUs, to work around old OpenBLAS bugs)")
    p.add_argument("--emulate", choices=sorted(EMULATE), help="time another machine's code here, both sides alike: "
                   "avx2 = lstmkit's core at AVX2 with OpenBLAS's Haswell kernel, PyTorch with "
                   "ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2")
    p.add_argument("--lstmkit-first", action="store_true", help="import lstmkit before NumPy in lstmkit's process "
                   "(as the CLI does); by default NumPy comes first, as in a user's script")
    args = p.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        p.error(f"unknown suite(s) {sorted(unknown)}; choose from {', '.join(SUITES)}")
    speed_suites = [s for s in SUITES if s in (args.suites or SUITES) and s not in PEERLESS]
    suites = [s for s in SUITES if s in (args.suites or SUITES)]
    runs: dict[str, list[dict[str, Any]]] = {"lstmkit": [], "torch": []}
    for _ in range(args.rounds):             # alternate the libraries, so a noisy minute does not hit only one
        runs["lstmkit"].append(run_worker("lstmkit", speed_suites, args.threads, max(5, args.repeat),
                                          args.native_blas, args.lstmkit_first, args.emulate))
        runs["torch"].append(run_worker("torch", speed_suites, args.threads, max(5, args.repeat),
                                        emulate=args.emulate))
    ours, theirs = quietest(runs["lstmkit"]), quietest(runs["torch"])
    machine = {"cpu": cpu_model(), "simd": simd_level(), "cores": os.cpu_count(), "threads": args.threads,
               "native_blas": args.native_blas, "emulate": args.emulate, "lstmkit_first": args.lstmkit_first,
               "thread_env": thread_env(), "lstmkit": ours["library"], "kernels": ours["kernels"],
               "torch": theirs["library"],
               "numpy_gemm_gflops": round(ours["gemm_gflops"], 1), "torch_gemm_gflops": round(theirs["gemm_gflops"], 1),
               "fma_gflops_per_core": ours.get("fma_gflops"), "round_trip_ns": ours.get("round_trip_ns", [])}
    print(f"CPU: {machine['cpu']} ({machine['simd']}, {machine['cores']} cores); {args.threads} threads each")
    if args.emulate:
        print(f"emulating {args.emulate}: lstmkit {EMULATE[args.emulate]['lstmkit']}, PyTorch "
              f"{EMULATE[args.emulate]['torch']}")
    print(f"lstmkit side: {machine['lstmkit']}; float32 GEMM {machine['numpy_gemm_gflops']} GFLOP/s")
    print(f"lstmkit kernels: {ours['kernels']}; imported {'before' if args.lstmkit_first else 'after'} NumPy")
    trips = [t for t in machine["round_trip_ns"] if t is not None]
    if machine["fma_gflops_per_core"]:
        print(f"FMA peak (lstmkit's probe, its SIMD path): {machine['fma_gflops_per_core']:.1f} GFLOP/s a core"
              + (f"; the two CPUs' cache-line round trip {min(trips):.0f}-{max(trips):.0f} ns over lstmkit's rounds "
                 "(60-80: one core complex; several hundred: apart, the scans slower)" if trips else ""))
    print(f"PyTorch side: {machine['torch']} (OMP_PROC_BIND=true OMP_PLACES=cores); float32 GEMM "
          f"{machine['torch_gemm_gflops']} GFLOP/s")
    print(f"environment: {' '.join(f'{k}={v}' for k, v in machine['thread_env'].items()) or '(no thread variables)'}"
          f"; both processes: {' '.join(f'{k}={v}' for k, v in MALLOC.items())} (no page faults re-allocating)"
          + ("; --native-blas: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for lstmkit" if args.native_blas else ""))
    if "OPENBLAS_CORETYPE" in machine["thread_env"] and not args.native_blas:
        print("note: OPENBLAS_CORETYPE forces an OpenBLAS kernel; --native-blas times lstmkit with the CPU's own")
    print(f"each library in its own process, {args.rounds} alternating rounds; figures are medians (mins) of >= 5 "
          "timed runs after warm-up, from each case's quietest round")
    tables: dict[str, list[dict[str, object]]] = {}
    for name in speed_suites:
        module, title = TABLES[name]
        tables[name] = module.table(ours[name], theirs[name])
        print_table(title, tables[name])
    if "charlm" in suites and args.minutes is not None:
        tables["charlm_quality"] = charlm.quality(args.minutes,
                                                  env=EMULATE[args.emulate]["lstmkit"] if args.emulate else None)
        print_table(f"Char-LM: default model trained for {args.minutes:g} minutes on the bundled Shakespeare",
                    tables["charlm_quality"])
    if "order" in suites:
        tables["order"] = order.run()
        print_table("A README-style fit, NumPy imported first vs lstmkit first (lstmkit alone)", tables["order"])
    if "data" in suites:
        found = data.run()
        tables["data_streaming"], tables["data_memory"] = found["streaming"], found["memory"]
        print_table("Streaming from a dataset vs arrays in memory (lstmkit alone)", found["streaming"])
        print_table("Data bigger than memory: time to the first step and peak resident memory (lstmkit alone)",
                    found["memory"])
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "tables": tables}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
