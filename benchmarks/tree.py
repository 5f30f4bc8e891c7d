"""Tree LSTMs, forward + backward over a batch of 64 boolean formulas (depths 1-6), float32.

lstmkit evaluates the batch level by level (every node of one height in one set of
GEMMs) and, for comparison, node by node (the same arithmetic, one node per level).
PyTorch has no tree LSTM; its side is the usual recursive implementation with
autograd (one tree at a time, node by node), written here from the papers' equations
(the tests use it, in float64, as the gradient oracle).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import time_ms

B, EMBED, HIDDEN = 64, 32, 64
CELLS = ("slstm", "childsum")
TARGET = 5.0                      # level-batched at least this many times faster than node by node


def _batch() -> tuple[np.ndarray, int]:
    from lstmkit.data.boolean import make_boolean
    from lstmkit.data.trees import TreeVocab, encode
    trees = make_boolean(B, 1, 6, seed=0)
    x, y = encode(trees, TreeVocab.from_trees(trees))
    return x, int((y >= 0).sum())


def children(parents: np.ndarray, b: int, j: int) -> list[int]:
    return [k for k in range(parents.shape[1]) if parents[b, k] == j]


def torch_childsum(p: dict[str, Any], x: Any, parents: np.ndarray, H: int) -> Any:
    """Child-sum Tree-LSTM, node by node: params by lstmkit's names, x (B, N, D) -> h (B, N, H)."""
    import torch
    Wi, Wh, bias = p["weight_ih"], p["weight_hh"], p["bias"]
    sl = {g: slice(k * H, (k + 1) * H) for k, g in enumerate("iouf")}
    zero = torch.zeros(H, dtype=x.dtype)
    hs = {}

    def node(b: int, j: int) -> tuple[Any, Any]:
        kids = [node(b, k) for k in children(parents, b, j)]
        xj = x[b, j]
        h_sum = sum((h for h, _ in kids), zero)

        def pre(g: str, hh: Any) -> Any:
            return Wi[sl[g]] @ xj + Wh[sl[g]] @ hh + bias[sl[g]]

        i, o, u = torch.sigmoid(pre("i", h_sum)), torch.sigmoid(pre("o", h_sum)), torch.tanh(pre("u", h_sum))
        c = i * u
        for hk, ck in kids:
            c = c + torch.sigmoid(pre("f", hk)) * ck
        h = o * torch.tanh(c)
        hs[b, j] = h
        return h, c

    return _stack(node, hs, zero, x.shape[:2])


def torch_slstm(p: dict[str, Any], x: Any, parents: np.ndarray, H: int) -> Any:
    """Binary S-LSTM, node by node: params by lstmkit's names, x (B, N, D) -> h (B, N, H)."""
    import torch
    Wi, Whh, Wch, Wco, bias = p["weight_ih"], p["weight_hh"], p["weight_ch"], p["weight_co"], p["bias"]
    sl = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(["i", "fL", "fR", "o", "g"])}
    zero = torch.zeros(H, dtype=x.dtype)
    hs = {}

    def node(b: int, j: int) -> tuple[Any, Any]:
        kids = [node(b, k) for k in children(parents, b, j)] + [(zero, zero)] * 2
        (hL, cL), (hR, cR) = kids[0], kids[1]
        xj = x[b, j]

        def pre(g: str, with_c: bool) -> Any:
            s = Wi[sl[g]] @ xj + Whh[sl[g], :H] @ hL + Whh[sl[g], H:] @ hR + bias[sl[g]]
            return s + Wch[sl[g], :H] @ cL + Wch[sl[g], H:] @ cR if with_c else s

        i, fL, fR = (torch.sigmoid(pre(g, True)) for g in ("i", "fL", "fR"))
        c = fL * cL + fR * cR + i * torch.tanh(pre("g", False))
        o = torch.sigmoid(pre("o", False) + Wco @ c)
        h = o * torch.tanh(c)
        hs[b, j] = h
        return h, c

    return _stack(node, hs, zero, x.shape[:2])


def _stack(node: Any, hs: dict[tuple[int, int], Any], zero: Any, shape: tuple[int, int]) -> Any:
    import torch
    for b in range(shape[0]):
        node(b, 0)
    return torch.stack([torch.stack([hs.get((b, j), zero) for j in range(shape[1])]) for b in range(shape[0])])


def run_lstmkit(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    x, nodes = _batch()
    out: dict[str, Any] = {}
    for cell in CELLS:
        model = lk.models.TreeClassifier(8, 2, EMBED, HIDDEN, cell, rng=np.random.default_rng(0))
        for mode in ("levels", "nodes"):
            model.cell.one_by_one = mode == "nodes"

            def step(model: Any = model) -> None:
                logits = model.forward(x)
                model.backward(np.ones_like(logits))

            out[f"{cell} {mode}"] = time_ms(step, repeat if mode == "levels" else 5) | {"nodes": nodes}
    return out


def run_torch(repeat: int) -> dict[str, Any]:
    import torch

    import lstmkit as lk
    x, nodes = _batch()
    out: dict[str, Any] = {}
    for cell, fn in (("slstm", torch_slstm), ("childsum", torch_childsum)):
        ours = lk.models.TreeClassifier(8, 2, EMBED, HIDDEN, cell, rng=np.random.default_rng(0))
        p = {k: torch.tensor(v, requires_grad=True) for k, v in ours.cell.state_dict().items()}
        emb = torch.tensor(ours.embedding.weight.value, requires_grad=True)
        head = torch.nn.Linear(HIDDEN, 2)
        tokens = torch.from_numpy(np.where(x[..., 0] < 0, 8, x[..., 0]).astype(np.int64))

        def step(p: Any = p, fn: Any = fn, head: Any = head, emb: Any = emb, tokens: Any = tokens) -> None:
            head(fn(p, emb[tokens], x[..., 1], HIDDEN)).sum().backward()

        out[f"{cell} recursive"] = time_ms(step, 5)
    return out


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    rows = []
    for cell in CELLS:
        lv, nb, rec = ours[f"{cell} levels"], ours[f"{cell} nodes"], theirs[f"{cell} recursive"]
        n = lv["nodes"]
        speedup = nb["median_ms"] / lv["median_ms"]
        rows.append({"cell": cell, "trees,nodes": f"{B},{n}",
                     "levels ms (min)": f"{lv['median_ms']:.2f} ({lv['min_ms']:.2f})",
                     "nodes/s": f"{n / lv['median_ms'] * 1e3:,.0f}",
                     "node-by-node ms": f"{nb['median_ms']:.1f}", "speed-up": speedup,
                     "torch recursive ms": f"{rec['median_ms']:.1f}",
                     "torch / levels": rec["median_ms"] / lv["median_ms"], "target": f"speed-up >= {TARGET:g}",
                     "ok": "yes" if speedup >= TARGET else "NO"})
    return rows
