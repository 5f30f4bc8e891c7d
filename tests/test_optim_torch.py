"""Optimizers, clipping and schedules against PyTorch: several steps, same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk

from .conftest import assert_close


def run_both(make_ours, make_theirs, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    ours = [lk.Parameter(v.copy()) for v in values]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    opt, topt = make_ours(ours), make_theirs(theirs)
    for _ in range(steps):
        grads = [rng.standard_normal(v.shape) for v in values]
        for p, tp, g in zip(ours, theirs, grads):
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        assert_close(p.value, tp, tol=1e-12, what="parameter")
    return opt, topt, ours


@pytest.mark.parametrize("kw", [
    {}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"momentum": 0.8, "dampening": 0.3},
    {"momentum": 0.9, "weight_decay": 0.1},
])
def test_sgd(kw):
    run_both(lambda p: lk.optim.SGD(p, lr=0.1, **kw), lambda p: torch.optim.SGD(p, lr=0.1, **kw))


@pytest.mark.parametrize("cls,tcls", [(lk.optim.Adam, torch.optim.Adam), (lk.optim.AdamW, torch.optim.AdamW)])
@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.1}, {"amsgrad": True, "betas": (0.8, 0.99), "eps": 1e-6}])
def test_adam_and_adamw(cls, tcls, kw):
    run_both(lambda p: cls(p, lr=0.01, **kw), lambda p: tcls(p, lr=0.01, **kw), steps=10)


def test_param_groups_and_state_dict_round_trip():
    def groups(p):
        return [{"params": [p[0]], "weight_decay": 0.1}, {"params": [p[1]], "weight_decay": 0.0, "lr": 0.05}]
    opt, topt, ours = run_both(lambda p: lk.optim.AdamW(groups(p), lr=0.01),
                               lambda p: torch.optim.AdamW(groups(p), lr=0.01))
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 6
    fresh = lk.optim.AdamW(groups(ours), lr=0.01)
    fresh.load_state_dict(sd)
    for a, b in ((fresh.state[i], opt.state[i]) for i in (0, 1)):
        np.testing.assert_array_equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert fresh.param_groups[1]["lr"] == 0.05
    bad = {"state": {0: {"step": 1, "exp_avg": np.zeros((2, 2)), "exp_avg_sq": np.zeros((2, 2))}},
           "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 0 expected shape \(3, 4\)"):
        fresh.load_state_dict(bad)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm(norm_type, max_norm, rng):
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [lk.Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    total = lk.optim.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert abs(total - float(ttotal)) < 1e-12
    for p, tp in zip(ours, theirs):
        assert_close(p.grad, tp.grad, tol=1e-14, what="clipped grad")


def test_clip_grad_value(rng):
    g = rng.standard_normal((4, 4)) * 3
    p = lk.Parameter(np.zeros_like(g))
    p.grad[...] = g
    lk.optim.clip_grad_value_([p], 1.5)
    np.testing.assert_array_equal(p.grad, np.clip(g, -1.5, 1.5))


@pytest.mark.parametrize("make", [
    (lambda o: lk.optim.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    (lambda o: lk.optim.ExponentialLR(o, 0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    (lambda o: lk.optim.CosineAnnealingLR(o, 10, 0.01),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.01)),
    (lambda o: lk.optim.LinearLR(o, 0.1, 1.0, 4), lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 4)),
])
def test_schedules_match_torch(make):
    opt = lk.optim.SGD([lk.Parameter(np.zeros(2))], lr=0.2)
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.2)
    s, ts = make[0](opt), make[1](topt)
    for _ in range(12):
        assert abs(s.get_last_lr()[0] - ts.get_last_lr()[0]) < 1e-12
        topt.step()
        s.step()
        ts.step()


def test_warmup_cosine():
    opt = lk.optim.SGD([lk.Parameter(np.zeros(2))], lr=1.0)
    s = lk.optim.WarmupCosineLR(opt, warmup_steps=4, total_steps=14, min_lr=0.1)
    lrs = []
    for _ in range(16):
        lrs.append(s.get_last_lr()[0])
        s.step()
    np.testing.assert_allclose(lrs[:4], [0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert abs(lrs[14] - 0.1) < 1e-12 and abs(lrs[15] - 0.1) < 1e-12


def test_optimizer_bad_input():
    with pytest.raises(ValueError, match="Adam: betas must be in"):
        lk.optim.Adam([lk.Parameter(np.zeros(1))], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        lk.optim.SGD([])
    params = [lk.Parameter(np.zeros((2, 2))), lk.Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match=r"AdamW: lr, eps and weight_decay must be >= 0, got 0.001, 1e-08, -1"):
        lk.optim.AdamW(lk.optim.decay_groups(params, -1.0))      # a group's own value is checked, not only the default
    with pytest.raises(ValueError, match="Adam: betas must be in"):
        lk.optim.Adam([{"params": params, "betas": (0.9, 1.5)}])
