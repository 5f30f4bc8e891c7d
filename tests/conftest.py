"""Shared helpers. PyTorch is the oracle: a dev dependency, imported unconditionally."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lstmkit import compiled

TOL = 1e-8  # max abs difference allowed against PyTorch in float64

# Tests of the compiled core: skipped where it was not built (no C compiler), but in CI (CI=true) they run and fail.
needs_core = pytest.mark.skipif(not compiled.available() and not os.environ.get("CI"),
                                reason="the compiled core was not built here (no C compiler); CI builds it")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def t64(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    """A float64 tensor copy of ``a``."""
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def assert_close(ours: np.ndarray, theirs, tol: float = TOL, what: str = "") -> None:
    """Max abs difference, scaled by max(1, |theirs|max), at most ``tol``."""
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    err = float(np.abs(ours - theirs).max(initial=0.0)) / scale
    assert err <= tol, f"{what}: max abs diff {err:.3e} > {tol:.0e}"


def torch_params(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def randomise_torch(module: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    """Nonzero, non-default weights and biases (zero biases hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def torch_vjp(fn, x: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Run ``fn`` on ``x`` in float64 and back-propagate a random cotangent.

    Returns (y, dL/dx, dy) with L = Σ y ⊙ dy, so a layer's ``backward(dy)`` must equal dL/dx.
    """
    xt = t64(x, True)
    yt = fn(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    (yt * t64(dy)).sum().backward()
    return yt, xt.grad, dy
