"""CTC loss forward + backward (from logits, log_softmax included) in lstmkit and in PyTorch (float32 logits)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import both_kernels, kernel_columns, time_ms

# (B, T, C, S, target ratio) as set by the compiled-core issue.
CASES = [(32, 100, 30, 20, 0.8), (64, 200, 30, 40, 0.8)]


def key(B: int, T: int, C: int, S: int) -> str:
    return f"CTC {B},{T},{C},{S}"


def _data(B: int, T: int, C: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((B, T, C)).astype(np.float32), rng.integers(1, C, (B, S))


def run_lstmkit(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    out = {}
    for B, T, C, S, _ in CASES:
        x, y = _data(B, T, C, S)
        ctc, lens, slens = lk.CTCLoss(), np.full(B, T), np.full(B, S)

        def step(ctc: Any = ctc, x: np.ndarray = x, y: np.ndarray = y, lens: Any = lens, slens: Any = slens) -> None:
            ctc(x, y, lens, slens)
            ctc.backward()

        out[key(B, T, C, S)] = both_kernels(step, repeat)
    return out


def run_torch(repeat: int) -> dict[str, Any]:
    import torch
    out = {}
    for B, T, C, S, _ in CASES:
        x, y = _data(B, T, C, S)
        xt, yt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(y)
        lens, slens = torch.full((B,), T), torch.full((B,), S)

        def step(xt: Any = xt, yt: Any = yt, lens: Any = lens, slens: Any = slens) -> None:
            lp = torch.nn.functional.log_softmax(xt, dim=-1).transpose(0, 1)
            torch.nn.functional.ctc_loss(lp, yt, lens, slens).backward()

        out[key(B, T, C, S)] = time_ms(step, repeat)
    return out


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    rows = []
    for B, T, C, S, target in CASES:
        k = key(B, T, C, S)
        rows.append({"loss": "CTC", "B,T,C,S": f"{B},{T},{C},{S}", **kernel_columns(ours[k], theirs[k], target)})
    return rows
