"""Recurrent layers, forward + backward in float32, lstmkit against PyTorch at the same thread count."""

from __future__ import annotations

import numpy as np
import torch

import lstmkit as lk

from .common import best_ms

# (name, B, T, I, H, target ratio) as set by the issues.
CASES = [
    ("LSTM", 64, 100, 128, 256, 1.25),
    ("LSTM", 32, 50, 64, 128, 2.0),
    ("LSTM", 1, 28, 65, 1000, 1.0),
    ("GRU", 64, 100, 128, 256, 1.5),
    ("BiLSTM", 64, 100, 128, 256, 1.5),
]


def _pair(kind: str, I: int, H: int) -> tuple[lk.Layer, torch.nn.Module]:
    bi = kind.startswith("Bi")
    base = kind[2:] if bi else kind
    ours = {"LSTM": lk.LSTM, "GRU": lk.GRU}[base](I, H, bidirectional=bi, dtype="float32")
    theirs = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[base](I, H, bidirectional=bi, batch_first=True)
    ours.load_torch_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def run(repeat: int = 5) -> list[dict[str, object]]:
    rows = []
    rng = np.random.default_rng(0)
    for kind, B, T, I, H, target in CASES:
        ours, theirs = _pair(kind, I, H)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        D = 2 if kind.startswith("Bi") else 1
        dy = rng.standard_normal((B, T, D * H)).astype(np.float32)
        xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)

        def step_ours(ours=ours, x=x, dy=dy) -> None:
            ours.forward(x)
            ours.backward(dy)

        def step_torch(theirs=theirs, xt=xt, dyt=dyt) -> None:
            y, _ = theirs(xt)
            y.backward(dyt)

        ms_o, ms_t = best_ms(step_ours, repeat), best_ms(step_torch, repeat)
        rows.append({"layer": kind, "B,T,I,H": f"{B},{T},{I},{H}", "lstmkit ms": ms_o, "torch ms": ms_t,
                     "ratio": ms_o / ms_t, "target": f"<= {target}", "ok": "yes" if ms_o / ms_t <= target else "NO"})
    return rows
