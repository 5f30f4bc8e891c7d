"""Optimizers, gradient clipping and learning-rate schedules, with PyTorch's
argument names and update rules.

SGD (momentum μ, dampening τ, weight decay λ)::

    g = ∇ + λθ;   b = g (first step) else μb + (1−τ)g;   g = g + μb (Nesterov) else b;   θ −= lr·g

Adam (Kingma & Ba 2015; λ is L2, added to the gradient) and AdamW
(Loshchilov & Hutter 2019; λ decays θ directly, θ −= lr·λ·θ, before the
Adam step)::

    m = β1 m + (1−β1) g;   v = β2 v + (1−β2) g²
    θ −= lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import compiled_optim, parallel
from .parameter import Parameter
from .workspace import Workspace

# Below this many parameter elements one thread updates them all (two cost more than they save).
_PARALLEL_MIN = 1 << 18


class Optimizer:
    """Base: ``param_groups`` is a list of dicts, each with ``params`` and hyper-parameters."""

    defaults: dict[str, Any] = {}

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], **defaults: Any) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict[str, Any]] = []
        for g in groups:
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Parameter):
                    raise ValueError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
            self.param_groups.append(group)
        self.state: dict[int, dict[str, Any]] = {}  # keyed by the parameter's position over all groups
        self._scratch: dict[int, Workspace] = {}

    def _indexed(self) -> Iterable[tuple[int, Parameter, dict[str, Any]]]:
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, p, group
                i += 1

    def zero_grad(self) -> None:
        for _, p, _ in self._indexed():
            p.zero_grad()

    def step(self) -> None:
        """Update every parameter from its gradient. Large models update in two halves side by side
        (elementwise work releases the GIL); each parameter's arithmetic is the same either way."""
        items = [(p, self.state.setdefault(i, {}), group) for i, p, group in self._indexed()]
        total = sum(p.value.size for p, _, _ in items)
        if total < _PARALLEL_MIN or parallel.cores() < 2:
            self._update_all(items, 0)
            return
        halves: tuple[list, list] = ([], [])
        sizes = [0, 0]
        for item in sorted(items, key=lambda it: -it[0].value.size):     # balance the two halves by size
            k = int(sizes[1] < sizes[0])
            halves[k].append(item)
            sizes[k] += item[0].value.size
        parallel.side_by_side(lambda: self._update_all(halves[0], 0), lambda: self._update_all(halves[1], 1))

    def _update_all(self, items: list[tuple[Parameter, dict[str, Any], dict[str, Any]]], k: int) -> None:
        ws = self._scratch.setdefault(k, Workspace())
        for p, state, group in items:
            self._update(p, state, group, ws.empty("tmp", p.shape, p.dtype))

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any], tmp: np.ndarray) -> None:
        """Update ``p`` in place; ``tmp`` is scratch of ``p``'s shape and dtype."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {name: array or number}}, 'param_groups': [hyper-parameters]} (copies)."""
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected {len(self.param_groups)} "
                             f"parameter groups, got {len(groups)}")
        shapes = {i: p.shape for i, p, _ in self._indexed()}
        state: dict[int, dict[str, Any]] = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if i not in shapes:
                raise ValueError(f"{type(self).__name__}.load_state_dict: no parameter at index {i}")
            entry = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.ndim > 0:
                    if v.shape != shapes[i]:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state {k!r} of parameter {i} "
                                         f"expected shape {shapes[i]}, got {v.shape}")
                    v = v.copy()
                elif isinstance(v, np.ndarray):
                    v = v.item()
                entry[k] = v
            state[i] = entry
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = state


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov)

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any], tmp: np.ndarray) -> None:
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.value
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        p.value -= group["lr"] * g


class Adam(Optimizer):
    """Adam with bias correction by step count; ``weight_decay`` is L2 (added to the gradient)."""

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        name = type(self).__name__
        for g in self.param_groups:                  # the defaults and what each group gives in their place
            if g["lr"] < 0 or g["eps"] < 0 or g["weight_decay"] < 0:
                raise ValueError(f"{name}: lr, eps and weight_decay must be >= 0, got {g['lr']}, {g['eps']}, "
                                 f"{g['weight_decay']}")
            if not (0 <= g["betas"][0] < 1 and 0 <= g["betas"][1] < 1):
                raise ValueError(f"{name}: betas must be in [0, 1), got {tuple(g['betas'])}")

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any], tmp: np.ndarray) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p.value), exp_avg_sq=np.zeros_like(p.value))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.value)
        state["step"] += 1
        t = state["step"]
        step_size, bc2_sqrt = lr / (1 - b1 ** t), math.sqrt(1 - b2 ** t)
        g, m, v, vmax = p.grad, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
        if compiled_optim.usable(p.value, g, m, v, vmax):        # the same arithmetic, one pass over memory
            compiled_optim.adam_update(p.value, g, m, v, vmax, 1 - lr * wd if self._decoupled else 1.0,
                                       0.0 if self._decoupled else wd, b1, b2, eps, step_size, bc2_sqrt)
            return
        if wd:
            if self._decoupled:
                p.value *= 1 - lr * wd
            else:
                g = g + wd * p.value
        _adam_update(p.value, g, m, v, tmp, vmax, b1, b2, eps, step_size, bc2_sqrt)


def _adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, tmp: np.ndarray,
                vmax: np.ndarray | None, b1: float, b2: float, eps: float, step_size: float, bc2_sqrt: float) -> None:
    """The same operations, in the same order, as PyTorch's single-tensor Adam; no temporaries."""
    m *= b1
    np.multiply(g, 1 - b1, out=tmp)
    m += tmp                                            # m = β1 m + (1 − β1) g
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v += tmp                                            # v = β2 v + (1 − β2) g²
    if vmax is not None:                                # amsgrad
        np.maximum(vmax, v, out=vmax)
        v = vmax
    np.sqrt(v, out=tmp)
    tmp /= bc2_sqrt
    tmp += eps                                          # denom = sqrt(v) / sqrt(1 − β2^t) + eps
    np.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp                                            # θ −= lr / (1 − β1^t) · m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as PyTorch)."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


# ---- gradient clipping ----------------------------------------------------


def _grads(params: Iterable[Parameter]) -> list[np.ndarray]:
    return [p.grad for p in (params if not isinstance(params, Parameter) else [params])]


def decay_groups(params: Iterable[Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: matrices and kernels (ndim >= 2) decayed by ``weight_decay``, biases, gains and
    other vectors not (as nanoGPT and most LSTM recipes do). ``AdamW(decay_groups(model.parameters(), 0.1))``."""
    params = list(params)
    return [{"params": [p for p in params if p.value.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.value.ndim < 2], "weight_decay": 0.0}]


def clip_grad_norm_(params: Iterable[Parameter], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so their global norm is at most ``max_norm``; return the norm before."""
    grads = _grads(params)
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:                               # one BLAS dot per gradient, no temporaries
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        total = float(sum(float((np.abs(g.astype(np.float64)) ** norm_type).sum()) for g in grads)) ** (1 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise ValueError(f"clip_grad_norm_: the total gradient norm is {total}")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(params: Iterable[Parameter], clip_value: float) -> None:
    """Clip every gradient element into [-clip_value, clip_value]."""
    for g in _grads(params):
        np.clip(g, -clip_value, clip_value, out=g)


# ---- learning-rate schedules ----------------------------------------------


class LRScheduler:
    """Sets each group's ``lr`` to ``base_lr · factor(step)``; call ``step()`` once per
    epoch (or per iteration), as with PyTorch's schedulers."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def factor(self, epoch: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.factor(epoch)

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(b) for b in state["base_lrs"]]
        self._apply()


class StepLR(LRScheduler):
    """lr = base · gamma^(epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def factor(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base · gamma^epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = gamma
        super().__init__(optimizer)

    def factor(self, epoch: int) -> float:
        return self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base − eta_min)(1 + cos(π·epoch/T_max))/2 (PyTorch's closed form)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Factor moves linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps (warm-up)."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer)

    def factor(self, epoch: int) -> float:
        frac = min(epoch, self.total_iters) / self.total_iters
        return self.start_factor + (self.end_factor - self.start_factor) * frac


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> None:
        if total_steps <= warmup_steps:
            raise ValueError(f"WarmupCosineLR: total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        if epoch < self.warmup_steps:
            return base_lr * (epoch + 1) / self.warmup_steps
        frac = min(1.0, (epoch - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * frac)) / 2
