"""A stacked LSTM + Dense trained with AdamW and clipping follows PyTorch step for step."""

from __future__ import annotations

import numpy as np
import torch

import lstmkit as lk

from .conftest import assert_close, randomise_torch, t64, torch_params


def test_stacked_lstm_adamw_training_matches_torch():
    rng = np.random.default_rng(0)
    B, T, I, H, C = 4, 6, 3, 5, 4
    t_lstm = torch.nn.LSTM(I, H, num_layers=2, batch_first=True, dtype=torch.float64)
    t_head = torch.nn.Linear(H, C, dtype=torch.float64)
    randomise_torch(t_lstm, 1)
    randomise_torch(t_head, 2)
    lstm = lk.LSTM(I, H, num_layers=2, return_sequences=True, dtype="float64")
    head = lk.Dense(H, C, dtype="float64")
    lstm.load_torch_state_dict(torch_params(t_lstm))
    head.load_state_dict(torch_params(t_head))
    model = lk.Sequential(lstm, head)
    loss_fn = lk.CrossEntropyLoss()
    opt = lk.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    t_params = list(t_lstm.parameters()) + list(t_head.parameters())
    topt = torch.optim.AdamW(t_params, lr=0.01, weight_decay=0.05)
    losses = []
    for _ in range(8):
        x = rng.standard_normal((B, T, I))
        y = rng.integers(0, C, (B, T))
        opt.zero_grad()
        loss = loss_fn(model.forward(x), y)
        model.backward(loss_fn.backward())
        norm = lk.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        topt.zero_grad()
        out, _ = t_lstm(t64(x))
        tloss = torch.nn.functional.cross_entropy(t_head(out).reshape(-1, C), torch.tensor(y).reshape(-1))
        tloss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(t_params, 1.0)
        topt.step()
        assert abs(loss - tloss.item()) < 1e-10
        assert abs(norm - tnorm.item()) < 1e-10
        losses.append(loss)
    for key, value in torch_params(t_lstm).items():
        assert_close(lstm.torch_state_dict()[key], value, tol=1e-10, what=key)
    assert_close(head.weight.value, t_head.weight, tol=1e-10, what="head")
