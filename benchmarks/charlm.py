"""The character LM: training speed against PyTorch, and the loss reached in a wall-clock budget.

``speed_lstmkit()`` / ``speed_torch()`` time training steps of the default model
(same architecture, batches and optimizer) on the bundled Shakespeare, each
library in its own process; ``table()`` reports chars/s for both. On a CPU with
AVX512-BF16 both also time the step with bfloat16 products (what ``charlm train``
runs by default): lstmkit at ``set_float32_matmul_precision("medium")``, PyTorch
under ``torch.autocast("cpu", torch.bfloat16)`` (oneDNN's bf16 LSTM). ``quality(minutes)``
runs ``lstmkit charlm train`` with the default settings for ``minutes`` and reports the
validation loss.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.apps import charlm as ct
from lstmkit.data.text import Vocab, Windows, bundled_shakespeare
from lstmkit.models.charlm import CharLM, CharLMConfig

from . import recurrent
from .common import kernel_columns, numpy_kernel, time_ms

SPEED_TARGET = 0.9                          # issue 30 (the compiled core's issue had 1.0)
QUALITY_TARGETS = {10: 1.80, 30: 1.37}      # nats/char after that many minutes (30: issue 31)


def _setup() -> tuple[ct.TrainConfig, Windows, CharLMConfig]:
    t = ct.TrainConfig()
    text = bundled_shakespeare()
    vocab = Vocab.from_text(text)
    windows = Windows.make(vocab.encode(text), t.batch_size, t.seq_len)
    return t, windows, CharLMConfig(vocab_size=len(vocab))


def _timed_steps(step: Callable[[int, list], None], steps: int, warmup: int) -> dict[str, float]:
    """Median and min seconds of one step over ``steps`` consecutive windows (after ``warmup``)."""
    state: list = [None]                                # the carried (h, c)
    for k in range(warmup):
        step(k, state)
    times = []
    for k in range(warmup, warmup + steps):
        t0 = time.perf_counter()
        step(k, state)
        times.append(time.perf_counter() - t0)
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, "runs": steps}


def speed_lstmkit(steps: int = 20, warmup: int = 3) -> dict[str, object]:
    """One training step (forward, loss, backward, clip, AdamW) of the default model."""
    t, windows, cfg = _setup()
    ours = CharLM(cfg, rng=np.random.default_rng(0))
    opt = lk.optim.AdamW(ours.parameters(), lr=t.lr, betas=(0.9, 0.99), weight_decay=t.weight_decay)
    loss_fn = lk.CrossEntropyLoss()

    def step(k: int, state: list) -> None:
        x, y = windows.window(k)
        opt.zero_grad()
        logits, state[0] = ours.forward(x, state[0])
        loss_fn(logits, y)
        ours.backward(loss_fn.backward())
        lk.optim.clip_grad_norm_(ours.parameters(), t.clip)
        opt.step()

    n = sum(p.value.size for p in ours.parameters())
    timed = _timed_steps(step, steps, warmup)
    with numpy_kernel():
        timed["numpy_ms"] = _timed_steps(step, steps, warmup)["median_ms"]
    out = {"step": timed, "params": n, "gemm_ms": _gemm_only_ms(t, cfg)}
    if has_bf16():
        with lk.float32_matmul_precision("medium"):
            out["bf16"] = {**_timed_steps(step, steps, warmup), "numpy_ms": math.nan,
                           "runs_bf16": lk.precision.bf16_products()}
    return out


def has_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 (both libraries' bfloat16 products need it) and this process is not held
    below AVX-512 (``--emulate avx2``: lstmkit's LSTMKIT_SIMD, oneDNN's ONEDNN_MAX_CPU_ISA, under which PyTorch's
    bfloat16 LSTM has no primitive)."""
    if os.environ.get("LSTMKIT_SIMD", "avx512") != "avx512" or "AVX512" not in os.environ.get("ONEDNN_MAX_CPU_ISA",
                                                                                                "AVX512").upper():
        return False
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _gemm_only_ms(t: ct.TrainConfig, cfg: CharLMConfig) -> float:
    """The step's whole-sequence matrix products alone (each LSTM layer's, see ``recurrent.gemm_only``, and the
    head's): what stays in NumPy's BLAS around the scans."""
    B, T, H, V = t.batch_size, t.seq_len, cfg.hidden, cfg.vocab_size
    layers = [recurrent.gemm_only(4, B, T, cfg.embed if k == 0 else H, H) for k in range(cfg.layers)]
    rng = np.random.default_rng(0)
    h, w, dlogits = (rng.standard_normal(s).astype(np.float32) for s in ((B * T, H), (V, H), (B * T, V)))

    def run() -> None:
        for layer in layers:
            layer()
        h @ w.T                             # the head forward, then its two backward products
        dlogits.T @ h
        dlogits @ w
    return time_ms(run, 5)["median_ms"]


def speed_torch(steps: int = 20, warmup: int = 3) -> dict[str, object]:
    """The same step in PyTorch: same architecture, batches, loss, clipping and AdamW settings."""
    import torch

    class TorchCharLM(torch.nn.Module):
        def __init__(self, cfg: CharLMConfig) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.embed)
            self.rnn = torch.nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, dropout=cfg.dropout, batch_first=True)
            self.drop = torch.nn.Dropout(cfg.output_dropout)
            self.drop_in = torch.nn.Dropout(cfg.input_dropout)
            self.head = torch.nn.Linear(cfg.hidden, cfg.vocab_size)
            self.weight_drop = cfg.weight_drop

        def forward(self, ids: Any, state: Any) -> Any:
            x = self.drop_in(self.embed(ids))
            if self.weight_drop:                    # AWD-LSTM's WeightDrop: W_hh dropped once per batch, as lstmkit
                params = {n: torch.nn.functional.dropout(p, self.weight_drop) if n.startswith("weight_hh") else p
                          for n, p in self.rnn.named_parameters()}
                h, state = torch.func.functional_call(self.rnn, params, (x, state))
            else:
                h, state = self.rnn(x, state)
            return self.head(self.drop(h)), state

    t, windows, cfg = _setup()
    torch.manual_seed(0)
    theirs = TorchCharLM(cfg)
    topt = torch.optim.AdamW(theirs.parameters(), lr=t.lr, betas=(0.9, 0.99), weight_decay=t.weight_decay)

    def step(k: int, state: list) -> None:
        x, y = (torch.from_numpy(a.astype(np.int64)) for a in windows.window(k))
        topt.zero_grad()
        logits, (h, c) = theirs(x, state[0])
        state[0] = (h.detach(), c.detach())                 # truncated BPTT, as in lstmkit
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), t.clip)
        topt.step()

    out = {"step": _timed_steps(step, steps, warmup)}
    if has_bf16():
        def step_bf16(k: int, state: list) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                step(k, state)
        out["bf16"] = _timed_steps(step_bf16, steps, warmup)
    return out


def table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, object]]:
    t, _, cfg = _setup()
    chars = t.batch_size * t.seq_len
    o, th = ours["step"], theirs["step"]
    rows = [{"model": f"{cfg.layers}x{cfg.hidden} LSTM, {ours['params'] / 1e6:.2f}M params, float32",
             "B,T": f"{t.batch_size},{t.seq_len}", "steps": o["runs"],
             "lstmkit chars/s": f"{chars / o['median_ms'] * 1e3:,.0f}",
             "torch chars/s": f"{chars / th['median_ms'] * 1e3:,.0f}", **kernel_columns(o, th, SPEED_TARGET),
             "sequence GEMMs / torch": ours["gemm_ms"] / th["median_ms"]}]
    if "bf16" in ours and "bf16" in theirs:             # both lowered to bfloat16 products: like against like
        ob, tb = ours["bf16"], theirs["bf16"]
        rows.append({"model": "the same, bfloat16 products (lstmkit \"medium\", torch autocast)"
                     + ("" if ob["runs_bf16"] else " (lstmkit: float32 ran)"),
                     "B,T": f"{t.batch_size},{t.seq_len}", "steps": ob["runs"],
                     "lstmkit chars/s": f"{chars / ob['median_ms'] * 1e3:,.0f}",
                     "torch chars/s": f"{chars / tb['median_ms'] * 1e3:,.0f}", **kernel_columns(ob, tb, SPEED_TARGET),
                     "sequence GEMMs / torch": math.nan})
    return rows


def quality(minutes: float, out: str | Path | None = None, env: dict[str, str] | None = None
            ) -> list[dict[str, object]]:
    """Train the default model with the CLI for ``minutes``; report the validation loss it reaches. ``env``: what
    the training process runs with besides this one's environment (``--emulate``'s settings)."""
    out = Path(out or f"runs/bench-charlm-{minutes:g}min")
    if out.exists():
        shutil.rmtree(out)          # a benchmark run always starts from scratch
    # In a process of its own, as a user runs it: lstmkit is imported before NumPy there (see lstmkit._blas).
    code = subprocess.run([sys.executable, "-m", "lstmkit.cli", "charlm", "train", "--out", str(out), "--minutes",
                           str(minutes)], env={**os.environ, **(env or {})}).returncode
    if code != 0:
        raise SystemExit(f"charlm training exited with {code}")
    _, meta = checkpoint.load(out / "latest.npz")
    best, _, _, _ = ct.load_run(out / "best.npz")       # on the whole held-out part (validation during
                                                          # training may score a sample of it)
    whole = ct.evaluate(best, ct.split_train_val(ct.load_corpus(ct.BUNDLED).ids, meta["train"]["val_fraction"])[1],
                        meta["train"]["batch_size"], meta["train"]["seq_len"])
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
             "best.npz, whole held-out part": f"{whole:.3f}",
             "target nats": "-" if target is None else f"<= {target}",
             "ok": "-" if target is None else ("yes" if whole <= target else "NO"),
             "run": str(out)}]
