"""Inference: generation at batch 1 with the default char LM (time per character, the state carried call to call:
``lk.Stream`` here, the LSTM's (h, c) by hand in PyTorch), and the memory a long forward takes (a 2-layer LSTM,
64 -> 256, over 100,000 steps: the process's growth over the output's size; ``lk.inference()`` here,
``torch.inference_mode()`` there), each in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np

from .common import time_ms

CHARS = 200                          # characters generated per timed run
STEPS = 100_000                      # the long forward's steps
MEMORY = """
import numpy as np
def kb(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) * 1024
x = np.random.default_rng(0).standard_normal((1, {steps}, 64)).astype(np.float32)
{setup}
before = kb("VmRSS")
{run}
print(kb("VmHWM") - before, y.nbytes)
"""
SIDES = {"lstmkit": ("import lstmkit as lk\nm = lk.LSTM(64, 256, num_layers=2, return_sequences=True); m.eval()",
                     "with lk.inference():\n    y = m.forward(x)"),
         "torch": ("import torch\nm = torch.nn.LSTM(64, 256, num_layers=2, batch_first=True)\nt = torch.from_numpy(x)",
                   "with torch.inference_mode():\n    y = m(t)[0].numpy()")}


def _memory(side: str) -> dict[str, float]:
    setup, run = SIDES[side]
    out = subprocess.run([sys.executable, "-c", MEMORY.format(steps=STEPS, setup=setup, run=run)], check=True,
                         capture_output=True, text=True).stdout.split()
    return {"growth_mb": int(out[0]) / 1e6, "output_mb": int(out[1]) / 1e6}


def run_lstmkit(repeat: int) -> dict[str, Any]:
    import lstmkit as lk
    model = lk.models.CharLM(lk.models.CharLMConfig(vocab_size=65), rng=np.random.default_rng(0))
    model.eval()
    rng = np.random.default_rng(1)

    def generate() -> None:
        stream = lk.Stream(model)
        logits, _ = stream(np.array([[1]]))
        for _ in range(CHARS):
            nxt = int(lk.decoding.sample_logits(logits[0, -1], rng, 0.8, None))
            logits, _ = stream(np.array([[nxt]]))

    t = time_ms(generate, repeat)
    return {"generate": {k: v / CHARS for k, v in t.items()}, "memory": _memory("lstmkit")}


def run_torch(repeat: int) -> dict[str, Any]:
    import torch

    class TorchCharLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = torch.nn.Embedding(65, 64), torch.nn.Linear(512, 65)
            self.rnn = torch.nn.LSTM(64, 512, 2, batch_first=True)

        def forward(self, ids: Any, state: Any) -> Any:
            h, state = self.rnn(self.embed(ids), state)
            return self.head(h), state

    torch.manual_seed(0)
    model = TorchCharLM().eval()
    gen = torch.Generator().manual_seed(1)

    def generate() -> None:
        with torch.inference_mode():
            logits, state = model(torch.tensor([[1]]), None)
            for _ in range(CHARS):
                nxt = torch.multinomial(torch.softmax(logits[0, -1] / 0.8, -1), 1, generator=gen)
                logits, state = model(nxt.view(1, 1), state)

    t = time_ms(generate, repeat)
    return {"generate": {k: v / CHARS for k, v in t.items()}, "memory": _memory("torch")}


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    g, tg = ours["generate"], theirs["generate"]
    m, tm = ours["memory"], theirs["memory"]
    grow = m["growth_mb"] / m["output_mb"]
    return [{"case": "generation, default char LM (2 x 512), batch 1: ms per character",
             "lstmkit": f"{g['median_ms']:.3f}", "PyTorch": f"{tg['median_ms']:.3f}",
             "ratio": round(g["median_ms"] / tg["median_ms"], 2), "target": "<= 1.0",
             "ok": "yes" if g["median_ms"] <= tg["median_ms"] else "NO"},
            {"case": f"memory, 2-layer LSTM 64->256 over {STEPS:,} steps: growth / output ({m['output_mb']:.0f} MB)",
             "lstmkit": f"{m['growth_mb']:.0f} MB ({grow:.2f}x)",
             "PyTorch": f"{tm['growth_mb']:.0f} MB ({tm['growth_mb'] / tm['output_mb']:.2f}x)",
             "ratio": round(grow, 2), "target": "<= 1.3x output", "ok": "yes" if grow <= 1.3 else "NO"}]
