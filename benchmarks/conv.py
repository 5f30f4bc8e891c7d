"""Convolution and pooling, forward + backward in float32: the same shapes timed in lstmkit and in PyTorch.

PyTorch runs NCHW (its native layout), lstmkit NHWC (its own); each gets the layout it is built for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import time_ms

# (name, B, H, W, C_in, C_out or None for pooling, kernel, padding, target ratio): issue 10 set 2.0 for the
# convolutions (im2col + NumPy's GEMM); issue 30 moved them into the core, with 1.0.
CASES = [
    ("Conv2D", 32, 64, 64, 3, 16, 3, 1, 1.0),
    ("Conv2D", 128, 32, 32, 16, 32, 3, 1, 1.0),
    ("MaxPool2D", 128, 32, 32, 16, None, 2, 0, 1.0),
]


def key(name: str, B: int, H: int, W: int, C: int, O: int | None, k: int) -> str:
    return f"{name} {B},{H}x{W},{C}" + (f"->{O}" if O else "") + f",k{k}"


def run_lstmkit(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    out = {}
    rng = np.random.default_rng(0)
    for name, B, H, W, C, O, k, p, _ in CASES:
        layer = lk.Conv2D(C, O, k, padding=p, rng=rng) if O else lk.MaxPool2D(k)
        x = rng.standard_normal((B, H, W, C)).astype(np.float32)
        dy = rng.standard_normal(layer.forward(x).shape).astype(np.float32)

        def step(layer: Any = layer, x: np.ndarray = x, dy: np.ndarray = dy) -> None:
            layer.forward(x)
            layer.backward(dy)

        out[key(name, B, H, W, C, O, k)] = time_ms(step, repeat)
    return out


def run_torch(repeat: int) -> dict[str, Any]:
    import torch
    torch.manual_seed(0)
    out = {}
    for name, B, H, W, C, O, k, p, _ in CASES:
        layer = torch.nn.Conv2d(C, O, k, padding=p) if O else torch.nn.MaxPool2d(k)
        xt = torch.randn(B, C, H, W, requires_grad=True)
        dyt = torch.randn(layer(xt).shape)

        def step(layer: Any = layer, xt: Any = xt, dyt: Any = dyt) -> None:
            layer(xt).backward(dyt)

        out[key(name, B, H, W, C, O, k)] = time_ms(step, repeat)
    return out


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    rows = []
    for name, B, H, W, C, O, k, _, target in CASES:
        kk = key(name, B, H, W, C, O, k)
        o, t = ours[kk], theirs[kk]
        ratio = o["median_ms"] / t["median_ms"]
        rows.append({"layer": name, "B,HxW,C": f"{B},{H}x{W},{C}" + (f"->{O}" if O else ""), "k": k,
                     "lstmkit ms (min)": f"{o['median_ms']:.2f} ({o['min_ms']:.2f})",
                     "torch ms (min)": f"{t['median_ms']:.2f} ({t['min_ms']:.2f})", "ratio": ratio,
                     "ratio of mins": o["min_ms"] / t["min_ms"], "target": f"<= {target}",
                     "ok": "yes" if ratio <= target else "NO"})
    return rows
