"""``lk.gradcheck``: a layer's ``backward`` against central finite differences, in float64.

    report = lk.gradcheck(layer, x)                 # raises GradcheckError naming the worst element
    report = lk.gradcheck(layer, x, lengths=l)      # keyword arguments go to forward, undifferentiated
    print(report)                                   # what was checked and the worst agreement

As ``torch.autograd.gradcheck`` does: the objective is ``L = sum(forward(x) * R)`` for a fixed random ``R``
(so every output element counts), the analytic gradient is what ``backward(R)`` returns for the inputs
and leaves in every parameter's ``grad``, and the numeric one is ``(L(θ + ε) − L(θ − ε)) / 2ε`` for each
element θ of each floating-point input and parameter. An element passes when
``|analytic − numeric| <= atol + rtol · |numeric|``. The layer must be float64 and deterministic (no
dropout in training mode); integer inputs (token ids, tree structure) are not differentiated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class GradcheckError(AssertionError):
    """A backward that disagrees with finite differences; the message names the worst element."""


@dataclass
class Mismatch:
    """One checked element: where it is, both gradients and how far apart."""

    name: str
    index: tuple[int, ...]
    analytic: float
    numeric: float

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric)

    def __str__(self) -> str:
        where = f"{self.name}[{', '.join(map(str, self.index))}]"
        return (f"{where}: backward {self.analytic:.10g}, finite differences {self.numeric:.10g} "
                f"(difference {self.error:.3g})")


@dataclass
class GradcheckReport:
    """The outcome: how many elements were checked, which failed, and the worst of all."""

    checked: dict[str, int] = field(default_factory=dict)      # tensor name -> elements checked
    failures: list[Mismatch] = field(default_factory=list)
    worst: Mismatch | None = None
    atol: float = 1e-6
    rtol: float = 1e-4

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        n = sum(self.checked.values())
        head = (f"gradcheck {'passed' if self.ok else 'FAILED'}: {n} elements of {len(self.checked)} tensors "
                f"({', '.join(f'{k} {v}' for k, v in self.checked.items())}); tolerance {self.atol:g} + "
                f"{self.rtol:g}·|numeric|")
        lines = [head]
        if self.worst is not None:
            lines.append(f"  worst: {self.worst}")
        if self.failures:
            lines.append(f"  {len(self.failures)} element(s) disagree, e.g. " + "; ".join(map(str, self.failures[:3])))
        return "\n".join(lines)


def gradcheck(layer: Any, inputs: Any, *, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
              seed: int = 0, backward: Callable[..., Any] | None = None, raise_exception: bool = True,
              **forward_kwargs: Any) -> GradcheckReport:
    """Check ``layer.backward`` (every input and parameter gradient) against central finite differences.

    Args:
        layer: a Layer, anything with ``forward``/``backward`` (and optionally ``parameters()``), or a
            plain function ``f(*inputs) -> array`` together with ``backward=`` (``dout -> input grads``).
        inputs: an array or a tuple of arrays, passed positionally to ``forward``.
        eps, atol, rtol: the step and the tolerance (see the module docstring).
        seed: for the output weighting ``R``.
        raise_exception: raise GradcheckError (naming the worst element) when an element fails.
        forward_kwargs: passed to every ``forward`` call and not differentiated (``lengths=``, ``state=``).

    Returns:
        A GradcheckReport; ``print(report)`` tells what was checked and the worst agreement.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    inputs = tuple(np.ascontiguousarray(a) for a in inputs)     # (perturbed in place, so copies if strided)
    forward = layer.forward if hasattr(layer, "forward") else layer
    back = backward if backward is not None else getattr(layer, "backward", None)
    if back is None:
        raise ValueError("gradcheck: a plain function needs backward= (dout -> the inputs' gradients)")
    params = _named_parameters(layer)
    for i, a in enumerate(inputs):
        if np.issubdtype(a.dtype, np.floating) and a.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} is {a.dtype}; finite differences need float64 "
                             "(x.astype(np.float64))")
    for name, p in params:
        if p.value.dtype != np.float64:
            raise ValueError(f"gradcheck: parameter {name} is {p.value.dtype}; build the layer with dtype='float64'")

    def out_of(*args: np.ndarray) -> np.ndarray:
        out = forward(*args, **forward_kwargs)
        return np.asarray(out[0] if isinstance(out, tuple) else out, np.float64)

    y = out_of(*inputs)
    R = np.random.default_rng(seed).standard_normal(y.shape)
    for _, p in params:
        p.zero_grad()
    grads = back(R)
    grads = grads if isinstance(grads, tuple) else (grads,)
    report = GradcheckReport(atol=atol, rtol=rtol)

    def objective() -> float:
        return float(np.sum(out_of(*inputs) * R))

    targets: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, a in enumerate(inputs):
        if np.issubdtype(a.dtype, np.floating):
            g = grads[i] if i < len(grads) and grads[i] is not None else np.zeros_like(a)
            targets.append((f"input {i}" if len(inputs) > 1 else "input", a, np.asarray(g)))
    targets += [(name, p.value, p.grad.copy()) for name, p in params]
    for name, value, analytic in targets:
        if analytic.shape != value.shape:
            raise GradcheckError(f"gradcheck: the gradient of {name} has shape {analytic.shape}, expected "
                                 f"{value.shape}")
        report.checked[name] = value.size
        flat = value.reshape(-1)                            # (a view: changing it changes the layer's input/weight)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + eps
            up = objective()
            flat[k] = old - eps
            down = objective()
            flat[k] = old
            m = Mismatch(name, tuple(int(v) for v in np.unravel_index(k, value.shape)),
                         float(analytic.reshape(-1)[k]), (up - down) / (2 * eps))
            if report.worst is None or m.error > report.worst.error:
                report.worst = m
            if m.error > atol + rtol * abs(m.numeric):
                report.failures.append(m)
    if raise_exception and not report.ok:
        raise GradcheckError(str(report))
    return report


def _named_parameters(layer: Any) -> list[tuple[str, Any]]:
    if hasattr(layer, "named_parameters"):
        return list(layer.named_parameters())
    if hasattr(layer, "parameters"):
        return [(f"parameter {i}", p) for i, p in enumerate(layer.parameters())]
    return []
