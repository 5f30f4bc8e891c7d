"""How far float32 matrix products may round their operands, with PyTorch's names
(``torch.set_float32_matmul_precision``)::

    lk.set_float32_matmul_precision("medium")   # bfloat16 operands, float32 sums, where the CPU has them
    with lk.float32_matmul_precision("medium"):  # the same for one block (what charlm train does per step)
        ...

"highest" (the default) and "high" keep every product in float32 (a CPU has no TF32). "medium" lets the compiled
core round the operands of the recurrent scans' products (x·W_ih, h·W_hh, and the backward's products with the
same weights) and of the weight gradients to bfloat16, round to nearest even, summing the products in float32:
one AVX512-BF16 instruction (VDPBF16PS) does the work of two fused multiply-adds, so these products run up to
twice as fast. Only CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later) on
the AVX-512 path have it; elsewhere, in float64, with ``LSTMKIT_KERNEL=numpy`` and in the NumPy kernels the
products stay exact float32 (``bf16_products()`` says which runs). Each rounded operand keeps 8 significant bits
(a relative error up to 2⁻⁹), so results differ from float32's in about the third significant digit: for
training, as mixed precision on GPUs; gradients checked against PyTorch run at "highest".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import compiled

PRECISIONS = ("highest", "high", "medium")
_current = "highest"


def _apply(name: str) -> bool:
    lib = compiled._load() if compiled.active() else None
    if lib is None or not hasattr(lib, "lk_set_bf16"):
        return False
    return bool(lib.lk_set_bf16(1 if name == "medium" else 0))


def set_float32_matmul_precision(name: str) -> None:
    """Set the precision of float32 products: "highest", "high" or "medium" (see the module docstring)."""
    global _current
    if name not in PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: expected one of {', '.join(PRECISIONS)}, got {name!r}")
    _apply(name)
    _current = name


def get_float32_matmul_precision() -> str:
    """The precision set: "highest" unless changed."""
    return _current


def bf16_products() -> bool:
    """Whether the core's products now run in bfloat16 (precision "medium" on a CPU that has it)."""
    return _current == "medium" and compiled.active() and compiled.bf16_possible()


@contextlib.contextmanager
def float32_matmul_precision(name: str) -> Iterator[None]:
    """Inside the block, products run at ``name``'s precision; the one before is restored after."""
    before = _current
    set_float32_matmul_precision(name)
    try:
        yield
    finally:
        set_float32_matmul_precision(before)
