"""Random boolean formulas as labelled trees: the tree model's synthetic task.

Leaves are the words ``T`` and ``F``; an internal node carries its operator
(AND, OR, XOR, NAND) as its input word and has two operands. Every node is
labelled with its truth value, ``1`` or ``0``:

    (0 AND (1 T) (0 XOR (1 T) (1 T)))

A formula of depth d has its deepest leaf d operators down: one operand is of
depth d - 1 and the other of a depth drawn from 0..d - 1 (on a random side), so
sizes vary and no two depths share a shape.
"""

from __future__ import annotations

import numpy as np

from .trees import Tree

OPERATORS = {"AND": lambda a, b: a and b, "OR": lambda a, b: a or b, "XOR": lambda a, b: a != b,
             "NAND": lambda a, b: not (a and b)}


def formula(rng: np.random.Generator, depth: int) -> tuple[Tree, bool]:
    """A random formula of exactly ``depth`` (0: one leaf) and its value."""
    if depth == 0:
        value = bool(rng.integers(2))
        return Tree(str(int(value)), word="T" if value else "F"), value
    deep = formula(rng, depth - 1)
    other = formula(rng, int(rng.integers(depth)))
    (left, a), (right, b) = (deep, other) if rng.integers(2) else (other, deep)
    op = list(OPERATORS)[int(rng.integers(len(OPERATORS)))]
    value = bool(OPERATORS[op](a, b))
    return Tree(str(int(value)), [left, right], op), value


def make_boolean(count: int, min_depth: int = 1, max_depth: int = 6, seed: int = 0) -> list[Tree]:
    """``count`` formulas of depths drawn uniformly from ``min_depth..max_depth``."""
    if count < 1 or not 0 <= min_depth <= max_depth:
        raise ValueError(f"make_boolean: need count >= 1 and 0 <= min_depth <= max_depth, got count {count}, "
                         f"depths {min_depth}..{max_depth}")
    rng = np.random.default_rng(seed)
    return [formula(rng, int(rng.integers(min_depth, max_depth + 1)))[0] for _ in range(count)]
