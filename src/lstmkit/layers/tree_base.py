"""The frame the tree cells share: a batch of trees as levels, and the level loop.

A batch of trees is given by ``parents`` (B, N): node j of tree b has parent
``parents[b, j]`` (a smaller index: nodes are in pre-order, so children come
after their parent, left to right), the root has -1 and padding -2. The real
nodes are numbered 0..M-1 across the batch ("rows"); row M is a zero state that
stands in for a missing child. ``schedule`` groups the rows by height (leaves 0,
a parent one above its highest child), so one level of the whole batch is a
few GEMMs: the Python loop runs over levels, never over nodes. With
``one_by_one=True`` every node is its own level (the same arithmetic, node by
node: the baseline the batching is measured against).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_dtype_name, check_float_input
from ..init import uniform
from ..parameter import Parameter
from .base import Layer


@dataclass
class Level:
    """Rows evaluated together, and their children (grouped by parent, left to right)."""

    nodes: np.ndarray     # (n,) rows of this level's nodes
    kids: np.ndarray      # (k,) rows of their children; empty for a level of leaves
    seg: np.ndarray       # (k,) each child's parent, as a position in ``nodes``
    starts: np.ndarray    # (n,) where each node's children start in ``kids`` (for np.add.reduceat)
    left: np.ndarray      # (n,) first child (binary cells)
    right: np.ndarray     # (n,) second child, or the zero row M where there is none


@dataclass
class Schedule:
    rows: np.ndarray      # (M,) flat indices into (B·N) of the real nodes
    levels: list[Level]
    size: int             # M


def schedule(parents: np.ndarray, max_children: int | None = None, one_by_one: bool = False,
             owner: str = "tree") -> Schedule:
    """Levels of a batch of trees given as ``parents`` (B, N); see the module docstring."""
    parents = np.asarray(parents)
    if parents.ndim != 2 or not np.issubdtype(parents.dtype, np.integer):
        raise ValueError(f"{owner}: expected parents as integers of shape (B, N), got {parents.dtype} of shape "
                         f"{parents.shape}")
    B, N = parents.shape
    P = parents.astype(np.int64).reshape(-1)
    local = np.tile(np.arange(N), B)
    real = P != -2
    bad = (P < -2) | (real & (P >= local)) | (real & ((P == -1) != (local == 0))) | ((local == 0) & ~real)
    if bad.any():
        b, j = divmod(int(np.flatnonzero(bad)[0]), N)
        raise ValueError(f"{owner}: tree {b}, node {j} has parent {P[b * N + j]}; expected -1 for node 0 (the root) "
                         "and an earlier node's index for the others (pre-order), -2 for padding")
    rows = np.flatnonzero(real)
    M = len(rows)
    compact = np.full(B * N, -1, np.int64)
    compact[rows] = np.arange(M)
    prow = np.where(P[rows] >= 0, compact[rows - local[rows] + np.maximum(P[rows], 0)], -1)
    if (P[rows] >= 0).any() and (prow[P[rows] >= 0] < 0).any():
        r = int(rows[np.flatnonzero((P[rows] >= 0) & (prow < 0))[0]])
        raise ValueError(f"{owner}: tree {r // N}, node {r % N} names padding node {P[r]} as its parent")
    child = np.flatnonzero(prow >= 0)
    height = np.zeros(M, np.int64)
    while child.size:                        # one pass per level of the tallest tree
        new = np.zeros(M, np.int64)
        np.maximum.at(new, prow[child], height[child] + 1)
        if np.array_equal(new, height):
            break
        height = new
    nkids = np.bincount(prow[child], minlength=M)
    if max_children is not None and (nkids > max_children).any():
        r = int(np.flatnonzero(nkids > max_children)[0])
        raise ValueError(f"{owner}: tree {rows[r] // N}, node {rows[r] % N} has {nkids[r]} children; this cell takes "
                         f"at most {max_children} (binarise the trees)")
    order = np.argsort(height, kind="stable")             # rows by height, then position
    if one_by_one:
        level_of = np.empty(M, np.int64)
        level_of[order] = np.arange(M)
    else:
        level_of = height
    counts = np.bincount(level_of, minlength=int(level_of.max()) + 1 if M else 0)
    pos = np.empty(M, np.int64)                           # position of each row within its level
    pos[order] = np.arange(M) - np.repeat(np.cumsum(counts) - counts, counts)
    kid_order = child[np.lexsort((child, pos[prow[child]], level_of[prow[child]]))]
    kid_counts = np.bincount(level_of[prow[kid_order]], minlength=len(counts))
    levels, off, koff = [], 0, 0
    for n, k in zip(counts, kid_counts):
        nodes = order[off:off + n]
        kids = kid_order[koff:koff + k]
        if k:
            seg = pos[prow[kids]]
            starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
            two = np.diff(np.r_[starts, k]) >= 2
            left, right = kids[starts], np.where(two, kids[np.minimum(starts + 1, k - 1)], M)
        else:
            seg = starts = np.zeros(0, np.int64)
            left = right = np.full(n, M)
        levels.append(Level(nodes, kids, seg, starts, left, right))
        off, koff = off + n, koff + k
    return Schedule(rows, levels, M)


class _TreeLayer(Layer):
    """A tree cell over a batch of trees: x (B, N, D) node inputs + parents (B, N) -> h (B, N, H).

    Subclasses give the gate count, the extra weights, and one level's forward and
    backward; this class projects every node's input in one GEMM, runs the levels
    (leaves first), scatters the states back to (B, N, H) with zeros on padding, and
    does the reverse for the gradients.
    """

    _name = "TreeLayer"
    gates = 4
    max_children: int | None = None

    def __init__(self, input_size: int, hidden_size: int, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        self.dtype = check_dtype_name(self._name, dtype)
        self.input_size, self.hidden_size = input_size, hidden_size
        self._bound = 1.0 / np.sqrt(hidden_size)
        self._rng = rng
        G, H = self.gates, hidden_size
        self.weight_ih = self._param((G * H, input_size), "weight_ih")
        self._cache: dict[str, Any] | None = None
        self.one_by_one = False              # evaluate node by node (for measuring the batching)

    def _param(self, shape: tuple[int, ...], name: str) -> Parameter:
        return Parameter(uniform(shape, self._bound, self.dtype, self._rng), name)

    def config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "dtype": self.dtype.name}

    def forward(self, x: np.ndarray, parents: np.ndarray) -> np.ndarray:
        """Node inputs x (B, N, D) and parents (B, N) -> hidden states h (B, N, H) (zeros on padding)."""
        x = check_float_input(self._name, x, self.dtype, 3, f"(B, N, {self.input_size})", last=self.input_size)
        if np.shape(parents) != x.shape[:2]:
            raise ValueError(f"{self._name}: parents must be (B, N) = {x.shape[:2]} like x's first axes, got shape "
                             f"{np.shape(parents)}")
        sch = schedule(parents, self.max_children, self.one_by_one, self._name)
        B, N, D = x.shape
        H, M = self.hidden_size, sch.size
        xr = x.reshape(B * N, D)[sch.rows]                                  # (M, D)
        z = xr @ self.weight_ih.value.T + self.bias.value                   # (M, G·H): every node's input part
        h = np.zeros((M + 1, H), self.dtype)                                # row M: the missing child's state
        c = np.zeros((M + 1, H), self.dtype)
        saved = [self._level_forward(lv, z, h, c) for lv in sch.levels]
        self._cache = {"sch": sch, "xr": xr, "h": h, "c": c, "saved": saved, "shape": x.shape}
        out = np.zeros((B * N, H), self.dtype)
        out[sch.rows] = h[:M]
        return out.reshape(B, N, H)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dL/dh (B, N, H) -> dL/dx (B, N, D); adds into every parameter's grad."""
        if self._cache is None:
            raise RuntimeError(f"{self._name}.backward called before forward")
        cc = self._cache
        sch, (B, N, D) = cc["sch"], cc["shape"]
        H, M = self.hidden_size, sch.size
        dh = np.zeros((M + 1, H), self.dtype)
        dh[:M] = np.asarray(dy, self.dtype).reshape(B * N, H)[sch.rows]
        dc = np.zeros((M + 1, H), self.dtype)
        dz = np.zeros((M, self.gates * H), self.dtype)
        for lv, saved in zip(reversed(sch.levels), reversed(cc["saved"])):
            self._level_backward(lv, saved, cc["h"], cc["c"], dh, dc, dz)
        self.weight_ih.grad += dz.T @ cc["xr"]
        self.bias.grad += dz.sum(axis=0)
        dx = np.zeros((B * N, D), self.dtype)
        dx[sch.rows] = dz @ self.weight_ih.value
        return dx.reshape(B, N, D)

    def _level_forward(self, lv: Level, z: np.ndarray, h: np.ndarray, c: np.ndarray) -> Any:
        raise NotImplementedError

    def _level_backward(self, lv: Level, saved: Any, h: np.ndarray, c: np.ndarray, dh: np.ndarray,
                        dc: np.ndarray, dz: np.ndarray) -> None:
        raise NotImplementedError
