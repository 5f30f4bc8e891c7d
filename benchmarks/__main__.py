"""``python -m benchmarks [recurrent]``: lstmkit against PyTorch, measured in one run."""

from __future__ import annotations

import os
import sys

import torch

from . import recurrent
from .common import print_table


def main(argv: list[str]) -> int:
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    print(f"PyTorch {torch.__version__} with {torch.get_num_threads()} threads; NumPy/BLAS with its default threads")
    which = argv or ["recurrent"]
    if "recurrent" in which:
        print_table("Recurrent layers, forward + backward, float32 (best of 5)", recurrent.run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
