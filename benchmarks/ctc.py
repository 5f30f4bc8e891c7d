"""CTC loss forward + backward (from logits, log_softmax included) in lstmkit and in PyTorch (float32 logits); and a
training step of the recogniser the spoken-digit tutorial trains (2 × 128 BiLSTM over 13 MFCCs, Dense, CTC, clipping,
AdamW; B 32, 80 frames, 5 digits each), the same model and batch in both."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import both_kernels, kernel_columns, time_ms

# (B, T, C, S, target ratio) as set by the compiled-core issue.
CASES = [(32, 100, 30, 20, 0.8), (64, 200, 30, 40, 0.8)]
STEP = "recogniser step"
RB, RT, RF, RS, RH, RC = 32, 80, 13, 5, 128, 11          # batch, frames, features, digits, hidden, classes


def _step_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((RB, RT, RF)).astype(np.float32), rng.integers(1, RC, (RB, RS))


def _lstmkit_step(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    model = lk.models.CTCRecognizer(RF, RC, RH, 2, rng=np.random.default_rng(0))
    opt = lk.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    x, y = _step_data()
    ctc, lens, slens = lk.CTCLoss(), np.full(RB, RT), np.full(RB, RS)
    model.input_grad = False

    def step() -> None:
        opt.zero_grad()
        ctc(model.forward(x), y, lens, slens)
        model.backward(ctc.backward())
        lk.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return both_kernels(step, repeat)


def _torch_step(repeat: int) -> dict[str, Any]:
    import torch
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(RF, RH, num_layers=2, bidirectional=True, batch_first=True)
    head = torch.nn.Linear(2 * RH, RC)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)
    x, y = (torch.from_numpy(a) for a in _step_data())
    lens, slens = torch.full((RB,), RT), torch.full((RB,), RS)

    def step() -> None:
        opt.zero_grad()
        lp = torch.nn.functional.log_softmax(head(rnn(x)[0]), dim=-1).transpose(0, 1)
        torch.nn.functional.ctc_loss(lp, y, lens, slens).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return time_ms(step, repeat)


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
    out[STEP] = _lstmkit_step(repeat)
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
    out[STEP] = _torch_step(repeat)
    return out


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    rows = []
    for B, T, C, S, target in CASES:
        k = key(B, T, C, S)
        rows.append({"loss": "CTC", "B,T,C,S": f"{B},{T},{C},{S}", **kernel_columns(ours[k], theirs[k], target)})
    rows.append({"loss": f"{STEP} (2 x {RH} BiLSTM, CTC, AdamW)", "B,T,C,S": f"{RB},{RT},{RC},{RS}",
                 **kernel_columns(ours[STEP], theirs[STEP], 1.0)})
    return rows
