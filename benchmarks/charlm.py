"""The character LM: training speed against PyTorch, and the loss reached in a wall-clock budget.

``speed()`` trains the default model (same architecture, batch and optimizer) for
the same number of steps in lstmkit and in PyTorch on the bundled Shakespeare
and reports chars/s for both. ``quality(minutes)`` runs ``lstmkit charlm train``
with the default settings for ``minutes`` and reports the validation loss.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.apps import charlm_train as ct
from lstmkit.apps.charlm import CharLM, CharLMConfig
from lstmkit.cli import main as cli_main
from lstmkit.data.text import Vocab, Windows, bundled_shakespeare

SPEED_TARGET = 1.3
QUALITY_TARGETS = {10: 1.80, 30: 1.60}      # nats/char after that many minutes


class TorchCharLM(torch.nn.Module):
    """The same network in PyTorch: Embedding -> LSTM x N (dropout between) -> Linear."""

    def __init__(self, cfg: CharLMConfig) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.embed)
        self.rnn = torch.nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, dropout=cfg.dropout, batch_first=True)
        self.head = torch.nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, state = self.rnn(self.embed(ids), state)
        return self.head(h), state


def speed(steps: int = 20, warmup: int = 2) -> list[dict[str, object]]:
    """chars/s of one training step (forward, loss, backward, clip, AdamW) in both libraries."""
    t = ct.TrainConfig()
    text = bundled_shakespeare()
    vocab = Vocab.from_text(text)
    windows = Windows.make(vocab.encode(text), t.batch_size, t.seq_len)
    cfg = CharLMConfig(vocab_size=len(vocab), **ct.DEFAULT_MODEL)
    chars = t.batch_size * t.seq_len

    ours = CharLM(cfg, rng=np.random.default_rng(0))
    opt = lk.optim.AdamW(ours.parameters(), lr=t.lr, betas=(0.9, 0.99), weight_decay=t.weight_decay)
    loss_fn = lk.CrossEntropyLoss()
    theirs = TorchCharLM(cfg)
    topt = torch.optim.AdamW(theirs.parameters(), lr=t.lr, betas=(0.9, 0.99), weight_decay=t.weight_decay)

    def step_ours(k: int, state: list) -> None:
        x, y = windows.window(k)
        opt.zero_grad()
        logits, state[0] = ours.forward(x, state[0])
        loss_fn(logits, y)
        ours.backward(loss_fn.backward())
        lk.optim.clip_grad_norm_(ours.parameters(), t.clip)
        opt.step()

    def step_theirs(k: int, state: list) -> None:
        x, y = (torch.from_numpy(a.astype(np.int64)) for a in windows.window(k))
        topt.zero_grad()
        logits, (h, c) = theirs(x, state[0])
        state[0] = (h.detach(), c.detach())                 # truncated BPTT, as in lstmkit
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), t.clip)
        topt.step()

    def timed(step: Callable[[int, list], None]) -> float:
        state: list = [None]                                # the carried (h, c)
        for k in range(warmup):
            step(k, state)
        t0 = time.perf_counter()
        for k in range(warmup, warmup + steps):
            step(k, state)
        return time.perf_counter() - t0

    s_ours, s_theirs = timed(step_ours), timed(step_theirs)
    ratio = s_ours / s_theirs
    n = sum(p.value.size for p in ours.parameters())
    return [{"model": f"{cfg.layers}x{cfg.hidden} LSTM, {n / 1e6:.2f}M params", "B,T": f"{t.batch_size},{t.seq_len}",
             "steps": steps, "lstmkit chars/s": f"{steps * chars / s_ours:,.0f}",
             "torch chars/s": f"{steps * chars / s_theirs:,.0f}", "ratio": ratio, "target": f"<= {SPEED_TARGET}",
             "ok": "yes" if ratio <= SPEED_TARGET else "NO"}]


def quality(minutes: float, out: str | Path | None = None) -> list[dict[str, object]]:
    """Train the default model with the CLI for ``minutes``; report the validation loss it reaches."""
    out = Path(out or f"runs/bench-charlm-{minutes:g}min")
    if out.exists():
        shutil.rmtree(out)          # a benchmark run always starts from scratch
    code = cli_main(["charlm", "train", "--out", str(out), "--minutes", str(minutes)])
    if code != 0:
        raise SystemExit(f"charlm training exited with {code}")
    _, meta = checkpoint.load(out / "latest.npz")
    rows = meta["history"]
    val = [r for r in rows if r["val_loss"] is not None]
    final = val[-1]
    target = QUALITY_TARGETS.get(round(minutes))
    pos = meta["position"]
    t = meta["train"]
    seen = pos["step"] * t["batch_size"] * t["seq_len"]
    return [{"budget": f"{minutes:g} min", "steps": pos["step"], "chars seen": f"{seen:,}",
             "val nats/char": f"{final['val_loss']:.3f}", "val bits/char": f"{final['val_loss'] / math.log(2):.3f}",
             "best nats/char": f"{min(r['val_loss'] for r in val):.3f}",
             "target nats": "-" if target is None else f"<= {target}",
             "ok": "-" if target is None else ("yes" if final["val_loss"] <= target else "NO"),
             "run": str(out)}]
