"""``lstmkit info``: which kernels run the recurrent scans, on what CPU, SIMD path, threads and BLAS."""

from __future__ import annotations

import argparse
from typing import Any

from .. import _blas, compiled
from .._version import __version__


def add_parser(apps: Any) -> None:
    apps.add_parser("info", help="which kernel, CPU, SIMD level, threads and BLAS lstmkit runs with",
                    description="Print the kernel that runs the recurrent scans (compiled or NumPy), the CPU, the SIMD "
                    "path, the threads a scan uses, NumPy's BLAS and any other thread pool in the process that "
                    "could take the core's cores.")


def run(args: argparse.Namespace) -> int:
    info = compiled.info()
    kernel = "compiled core" if info["kernel"] == "compiled" else f"NumPy ({info['why']})"
    print(f"lstmkit {__version__}")
    print(f"kernel:  {kernel}")
    print(f"cpu:     {info['cpu']}")
    print(f"simd:    {info['simd']}")
    print(f"threads: {info['threads']} per scan")
    bf16 = ('bfloat16 products available (lk.set_float32_matmul_precision("medium"); charlm train uses them)'
            if info["bf16"] else "none (no compiled core, or no AVX512-BF16 on this CPU or path): products in float32")
    print(f"bf16:    {bf16}")
    print(f"blas:    {compiled.blas_description()}")
    others = _blas.other_pools()
    print("others:  " + ("; ".join(others) + " — not held by lstmkit: their threads take cores while they work"
                         if others else "no other thread pool in this process (lstmkit's own pool and BLAS only)"))
    return 0
