"""The LR schedules of a training run's budget (``TrainConfig.lr_factor``) against PyTorch's schedulers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmkit.runs import RunError
from lstmkit.training import TrainConfig


def torch_factors(make, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_linear_decays_to_its_floor_as_torch_linear_lr(floor):
    cfg = TrainConfig(steps=40, schedule="linear", min_lr_frac=floor)
    ours = [cfg.lr_factor(s, 0.0) for s in range(40)]
    ref = torch_factors(lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, floor, total_iters=40), 40)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert cfg.lr_factor(40, 0.0) == pytest.approx(floor)


def test_cosine_as_torch_cosine_annealing():
    cfg = TrainConfig(steps=30, schedule="cosine", min_lr_frac=0.05)
    ref = torch_factors(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 30, eta_min=0.05), 30)
    np.testing.assert_allclose([cfg.lr_factor(s, 0.0) for s in range(30)], ref, rtol=0, atol=1e-12)


def test_linear_follows_a_time_budget():
    cfg = TrainConfig(minutes=2.0, schedule="linear", min_lr_frac=0.0)
    assert cfg.lr_factor(5, 30.0) == pytest.approx(0.75)
    assert cfg.lr_factor(9, 120.0) == 0.0
    assert math.isclose(cfg.lr_factor(0, 0.0), 1.0)


def test_an_unknown_schedule_is_named_in_the_error():
    with pytest.raises(RunError, match="cosine, linear, step or constant"):
        TrainConfig(steps=5, schedule="exp").validate()
