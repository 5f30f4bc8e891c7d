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
    ("LSTM-P128", 64, 100, 128, 256, 1.0),     # issue 31: proj_size=128, against nn.LSTM(proj_size=128)
    ("LayerNormLSTM", 64, 100, 128, 256, 1.0),  # issue 31: against torch_layer_norm_lstm's formulation
]


def _layer(lib: Any, kind: str, I: int, H: int, **kw: Any) -> Any:
    """The layer a case names in lstmkit or torch.nn: [Bi]LSTM, GRU, LSTM-P<proj_size>, LayerNormLSTM."""
    name, _, proj = kind.removeprefix("Bi").partition("-P")
    if proj:
        kw["proj_size"] = int(proj)
    if name == "LayerNormLSTM" and lib.__name__ == "torch.nn":
        from .torch_layer_norm import TorchLayerNormLSTM
        kw.pop("batch_first")
        return TorchLayerNormLSTM(I, H)
    return getattr(lib, name)(I, H, bidirectional=kind.startswith("Bi"), **kw)


def _width(kind: str, H: int) -> int:
    """Units of each direction's output: H, or the projection's."""
    return int(kind.partition("-P")[2] or H)


def key(kind: str, B: int, T: int, I: int, H: int) -> str:
    return f"{kind} {B},{T},{I},{H}"


def _data(B: int, T: int, I: int, H: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, T, I)).astype(np.float32), rng.standard_normal((B, T, D * H)).astype(np.float32))


def gemm_only(gates: int, B: int, T: int, I: int, H: int, directions: int = 1, h: int | None = None
              ) -> Callable[[], None]:
    """Just the whole-sequence matrix products the frame makes around the scans, same shapes and buffers.

    Per direction: the input projection (T·B, I) @ (I, G·H) before the scan; dW_hh, dW_ih and dx over
    all steps after it. These run in NumPy's BLAS whichever kernel runs the scan, so with the compiled
    core they are the floor under the layer: its time minus theirs is what the scans and the rest cost.
    ``h``: units of the state (a projection's), H by default.
    """
    rng = np.random.default_rng(0)
    G = gates * H
    h = H if h is None else h

    def one() -> Callable[[], None]:
        x, w_ih = (rng.standard_normal(s).astype(np.float32) for s in ((T * B, I), (G, I)))
        hs, dpre = np.ones((T + 1, B, h), np.float32), np.ones((T, B, G), np.float32)
        xproj, dx = (np.empty(s, np.float32) for s in ((T * B, G), (T * B, I)))
        d2 = dpre.reshape(T * B, G)

        def run() -> None:
            np.matmul(x, w_ih.T, out=xproj)
            d2.T @ hs[:-1].reshape(T * B, h)
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
        layer = _layer(lk, kind, I, H, rng=np.random.default_rng(0))
        x, dy = _data(B, T, I, _width(kind, H), 2 if bi else 1)

        def step(layer: Any = layer, x: np.ndarray = x, dy: np.ndarray = dy) -> None:
            layer.forward(x)
            layer.backward(dy)

        out[key(kind, B, T, I, H)] = both_kernels(step, repeat)
        out[key(kind, B, T, I, H)]["gemm_ms"] = time_ms(
            gemm_only(layer.gates, B, T, I, H, 2 if bi else 1, _width(kind, H)), repeat)["median_ms"]
    return out


def run_torch(repeat: int) -> dict[str, Any]:
    import torch
    torch.manual_seed(0)
    out = {}
    for kind, B, T, I, H, _ in CASES:
        bi = kind.startswith("Bi")
        layer = _layer(torch.nn, kind, I, H, batch_first=True)
        x, dy = _data(B, T, I, _width(kind, H), 2 if bi else 1)
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
