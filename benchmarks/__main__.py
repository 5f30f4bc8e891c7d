"""``python -m benchmarks [recurrent] [charlm] [--minutes M]``: lstmkit against PyTorch, measured in one run.

With no suite named, runs ``recurrent`` and the char-LM training speed. ``charlm``
runs the char-LM speed comparison and then trains the default model for
``--minutes`` (default 10) and reports the validation loss it reaches.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from . import charlm, recurrent
from .common import print_table


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("suites", nargs="*", metavar="SUITE", help="recurrent and/or charlm (default: recurrent and "
                   "the char-LM speed comparison, without the timed training)")
    p.add_argument("--minutes", type=float, default=10.0, help="char-LM training budget (targets at 10 and 30)")
    args = p.parse_args(argv)
    unknown = set(args.suites) - {"recurrent", "charlm"}
    if unknown:
        p.error(f"unknown suite(s) {sorted(unknown)}; choose from recurrent, charlm")
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    print(f"PyTorch {torch.__version__} with {torch.get_num_threads()} threads; NumPy/BLAS with its default threads")
    which = args.suites or ["recurrent", "charlm-speed"]
    if "recurrent" in which:
        print_table("Recurrent layers, forward + backward, float32 (best of 5)", recurrent.run())
    if "charlm" in which or "charlm-speed" in which:
        print_table("Char-LM training step (forward, loss, backward, clip, AdamW), same model and batches",
                    charlm.speed())
    if "charlm" in which:
        print_table(f"Char-LM: default model trained for {args.minutes:g} minutes on the bundled Shakespeare",
                    charlm.quality(args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
