"""A CNN+LSTM training step (the video application's default model): lstmkit against the same model in PyTorch.

A real model, where the convolutions' BLAS calls come right before the recurrent scan: forward, cross-entropy,
backward, gradient clipping and AdamW on a batch of clips (B, T, H, W, C), each library in its own process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import both_kernels, kernel_columns, time_ms

B, T, SIZE, CHANNELS, CLASSES = 32, 16, 32, 3, 6
CONV, FEATURES, HIDDEN = (16, 32), 64, 64
TARGET = 1.0


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((B, T, SIZE, SIZE, CHANNELS), dtype=np.float32), rng.integers(0, CLASSES, B)


def run_lstmkit(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    model = lk.models.CNNLSTM(CLASSES, CHANNELS, SIZE, CONV, FEATURES, HIDDEN, rng=np.random.default_rng(0))
    opt = lk.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    loss_fn = lk.CrossEntropyLoss()
    x, y = _data()
    model.input_grad = False          # as fit asks: the clips need no gradient (PyTorch's input has no requires_grad)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model.forward(x), y)
        model.backward(loss_fn.backward())
        lk.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return {"step": both_kernels(step, repeat)}


def run_torch(repeat: int) -> dict[str, Any]:
    import torch
    torch.manual_seed(0)
    nn = torch.nn
    layers: list[Any] = []
    c = CHANNELS
    for out in CONV:
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = out
    side = SIZE // 2 ** len(CONV)
    cnn = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, FEATURES), nn.ReLU())
    rnn, head = nn.LSTM(FEATURES, HIDDEN, batch_first=True), nn.Linear(HIDDEN, CLASSES)
    params = [*cnn.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)
    x, y = (torch.from_numpy(a) for a in _data())
    frames = x.reshape(B * T, SIZE, SIZE, CHANNELS).permute(0, 3, 1, 2).contiguous()     # NCHW, as PyTorch wants

    def step() -> None:
        opt.zero_grad()
        feats = cnn(frames).reshape(B, T, FEATURES)
        _, (h, _) = rnn(feats)
        nn.functional.cross_entropy(head(h[-1]), y).backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return {"step": time_ms(step, repeat)}


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    return [{"model": f"CNN {CONV} + LSTM {HIDDEN}", "B,T,HxWxC": f"{B},{T},{SIZE}x{SIZE}x{CHANNELS}",
             **kernel_columns(ours["step"], theirs["step"], TARGET)}]
