"""Recurrent layers, forward + backward in float32: the same shapes timed in lstmkit and in PyTorch.

Each library runs in its own process (see ``worker.py``); the functions here build
and time one library's cases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .common import both_kernels, kernel_columns, time_ms

# (name, B, T, I, H, target ratio) as set by issue 30 (the speed a user gets: NumPy imported first, any x86 CPU).
CASES = [
    ("LSTM", 64, 100, 128, 256, 0.9),
    ("LSTM", 32, 50, 64, 128, 1.0),
    ("LSTM", 1, 28, 65, 1000, 0.8),
    ("GRU", 64, 100, 128, 256, 0.8),
    ("BiLSTM", 64, 100, 128, 256, 0.9),
]


def key(kind: str, B: int, T: int, I: int, H: int) -> str:
    return f"{kind} {B},{T},{I},{H}"


def _data(B: int, T: int, I: int, H: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, T, I)).astype(np.float32), rng.standard_normal((B, T, D * H)).astype(np.float32))


def gemm_only(gates: int, B: int, T: int, I: int, H: int, directions: int = 1) -> Callable[[], None]:
    """Just the whole-sequence matrix products the frame makes around the scans, same shapes and buffers.

    Per direction: the input projection (T·B, I) @ (I, G·H) before the scan; dW_hh, dW_ih and dx over
    all steps after it. These run in NumPy's BLAS whichever kernel runs the scan, so with the compiled
    core they are the floor under the layer: its time minus theirs is what the scans and the rest cost.
    """
    rng = np.random.default_rng(0)
    G = gates * H

    def one() -> Callable[[], None]:
        x, w_ih = (rng.standard_normal(s).astype(np.float32) for s in ((T * B, I), (G, I)))
        hs, dpre = np.ones((T + 1, B, H), np.float32), np.ones((T, B, G), np.float32)
        xproj, dx = (np.empty(s, np.float32) for s in ((T * B, G), (T * B, I)))
        d2 = dpre.reshape(T * B, G)

        def run() -> None:
            np.matmul(x, w_ih.T, out=xproj)
            d2.T @ hs[:-1].reshape(T * B, H)
            d2.T @ x
            np.matmul(d2, w_ih, out=dx)
        return run

    runs = [one() for _ in range(directions)]

    def all_directions() -> None:
        for r in runs:
            r()
    return all_directions


def run_lstmkit(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    out = {}
    for kind, B, T, I, H, _ in CASES:
        bi = kind.startswith("Bi")
        layer = {"LSTM": lk.LSTM, "GRU": lk.GRU}[kind.removeprefix("Bi")](I, H, bidirectional=bi,
                                                                           rng=np.random.default_rng(0))
        x, dy = _data(B, T, I, H, 2 if bi else 1)

        def step(layer: Any = layer, x: np.ndarray = x, dy: np.ndarray = dy) -> None:
            layer.forward(x)
            layer.backward(dy)

        out[key(kind, B, T, I, H)] = both_kernels(step, repeat)
        out[key(kind, B, T, I, H)]["gemm_ms"] = time_ms(gemm_only(layer.gates, B, T, I, H, 2 if bi else 1),
                                                         repeat)["median_ms"]
    return out


def run_torch(repeat: int) -> dict[str, Any]:
    import torch
    torch.manual_seed(0)
    out = {}
    for kind, B, T, I, H, _ in CASES:
        bi = kind.startswith("Bi")
        layer = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind.removeprefix("Bi")](I, H, bidirectional=bi,
                                                                                       batch_first=True)
        x, dy = _data(B, T, I, H, 2 if bi else 1)
        xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)

        def step(layer: Any = layer, xt: Any = xt, dyt: Any = dyt) -> None:
            y, _ = layer(xt)
            y.backward(dyt)

        out[key(kind, B, T, I, H)] = time_ms(step, repeat)
    return out


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    rows = []
    for kind, B, T, I, H, target in CASES:
        k = key(kind, B, T, I, H)
        o, t = ours[k], theirs[k]
        rows.append({"layer": kind, "B,T,I,H": f"{B},{T},{I},{H}", **kernel_columns(o, t, target),
                     "sequence GEMMs / torch": o["gemm_ms"] / t["median_ms"]})
    return rows
