"""Tree cells against a PyTorch autograd reference (benchmarks/tree.py: the papers' equations, node by node,
in float64, by recursion over each tree), and against central finite differences; on trees of one, two
and many leaves, balanced and unbalanced, with unary and n-ary nodes, padding, and nonzero biases."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.tree import torch_childsum, torch_slstm

import lstmkit as lk
from lstmkit.data.trees import PAD, TreeVocab, encode, parse_tree

from .conftest import assert_close, t64

BINARY = ["(0 a)",                                               # a single leaf
          "(1 (0 a) (1 b))",                                     # two leaves
          "(1 (0 (1 (0 (1 a) (0 b)) (1 c)) (0 d)) (1 e))",       # unbalanced (left-deep)
          "(1 (0 (1 a) (0 b)) (1 (0 c) (1 d)))",                 # balanced
          "(1 X (0 (1 a)) (1 Y (0 b) (0 c)))"]                   # a unary node; inputs on internal nodes
NARY = BINARY + ["(2 (0 a) (1 b) (2 c) (0 (1 d) (1 e) (0 f) (2 g)))", "(0 (1 a) (1 (2 (0 b))))"]


def batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    trees = [parse_tree(t) for t in texts]
    x, _ = encode(trees, TreeVocab.from_trees(trees))
    return x[:, :, 1], x[:, :, 0]                                 # parents (B, N), tokens (B, N)


CELLS = [(lk.ChildSumTreeLSTM, torch_childsum, NARY), (lk.SLSTM, torch_slstm, BINARY)]


@pytest.mark.parametrize("cls,reference,texts", CELLS)
@pytest.mark.parametrize("one_by_one", [False, True])
@pytest.mark.parametrize("which", ["each", "batch"])
def test_tree_cells_match_torch_node_by_node(cls, reference, texts, one_by_one, which, rng):
    groups = [[t] for t in texts] if which == "each" else [texts]
    D, H = 3, 4
    for group in groups:
        parents, _ = batch(group)
        cell = cls(D, H, dtype="float64", rng=np.random.default_rng(5))
        for p in cell.parameters():                                  # nonzero weights and biases
            p.value[...] = rng.standard_normal(p.shape) * 0.6
        cell.one_by_one = one_by_one
        x = rng.standard_normal(parents.shape + (D,))
        x[parents == PAD] = 0
        params = {k: t64(v, True) for k, v in cell.state_dict().items()}
        xt = t64(x, True)
        ht = reference(params, xt, parents, H)
        dy = rng.standard_normal(ht.shape)
        (ht * t64(dy)).sum().backward()
        h = cell.forward(x, parents)
        assert_close(h, ht, what=f"{cls.__name__} h {group}")
        assert np.all(h[parents == PAD] == 0)
        dx = cell.backward(dy)
        dx_ref = xt.grad.numpy().copy()
        dx_ref[parents == PAD] = 0                                   # padding is no input
        assert_close(dx, dx_ref, what=f"{cls.__name__} dx {group}")
        for name, p in cell.named_parameters():
            assert_close(p.grad, params[name].grad, what=f"{cls.__name__} d{name} {group}")


@pytest.mark.parametrize("cls,texts", [(lk.ChildSumTreeLSTM, NARY), (lk.SLSTM, BINARY)])
def test_tree_cells_match_finite_differences(cls, texts, rng):
    parents, _ = batch(texts)
    D, H = 2, 3
    cell = cls(D, H, dtype="float64", rng=np.random.default_rng(1))
    x = rng.standard_normal(parents.shape + (D,)) * (parents != PAD)[..., None]
    w = rng.standard_normal(parents.shape + (H,))

    def loss() -> float:
        return float((cell.forward(x, parents) * w).sum())

    loss()
    dx = cell.backward(w)
    eps = 1e-6
    for name, p in cell.named_parameters():
        for idx in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(4)]:
            old = p.value[idx]
            p.value[idx] = old + eps
            up = loss()
            p.value[idx] = old - eps
            down = loss()
            p.value[idx] = old
            assert abs((up - down) / (2 * eps) - p.grad[idx]) <= 1e-8 * max(1.0, abs(p.grad[idx])), name
    real = np.argwhere(parents != PAD)
    for b, j in real[rng.choice(len(real), 6, replace=False)]:
        k = rng.integers(0, D)
        old = x[b, j, k]
        x[b, j, k] = old + eps
        up = loss()
        x[b, j, k] = old - eps
        down = loss()
        x[b, j, k] = old
        assert abs((up - down) / (2 * eps) - dx[b, j, k]) <= 1e-8 * max(1.0, abs(dx[b, j, k]))
