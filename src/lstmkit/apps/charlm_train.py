"""Training, evaluation and run directories for the character language model.

A run directory holds::

    latest.npz    everything needed to continue: weights, AdamW moments, step, data
                  position, the carried LSTM state, the RNG state, the loss history
    best.npz      the weights with the lowest validation loss so far (for sampling)
    history.csv   step, elapsed seconds, train loss, validation loss (nats and bits per char), lr
    loss.png      the loss curves (needs the optional ``plot`` extra: matplotlib)

Both checkpoints are single ``.npz`` files written atomically (``lstmkit.checkpoint``),
so a crash, a Ctrl-C or a NaN never leaves a broken or half-written run.

Resuming restores every piece of state, so a run stopped at step k and resumed
ends bit-for-bit where the uninterrupted run would (for ``--steps`` budgets; a
``--minutes`` budget depends on the clock by nature).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import checkpoint
from ..checkpoint import CheckpointError
from ..data.text import TextError, Vocab, Windows, bundled_shakespeare, load_text, split_train_val
from ..losses import CrossEntropyLoss
from ..optim import AdamW, clip_grad_norm_
from .charlm import CharLM, CharLMConfig

FORMAT = "lstmkit-charlm"
VERSION = 1
BUNDLED = "bundled:shakespeare"
LN2 = math.log(2.0)


# The default model: the size that reached the lowest validation loss in a 10-30 minute budget on 2 cores.
DEFAULT_MODEL: dict[str, Any] = {"hidden": 384, "layers": 2, "embed": 64, "dropout": 0.2}


class RunError(ValueError):
    """A run directory or option that cannot be used; the message names the path and the problem."""


@dataclass
class TrainConfig:
    """Everything about how a run trains (the model's shape is ``CharLMConfig``)."""

    batch_size: int = 32          # B parallel streams
    seq_len: int = 64             # T characters per truncated-BPTT window
    lr: float = 3e-3
    min_lr_frac: float = 0.1      # the schedule ends at lr * min_lr_frac
    warmup: int = 50              # linear warm-up steps
    schedule: str = "cosine"      # cosine | step | constant, over the budget
    weight_decay: float = 0.1     # AdamW, on matrices only (not biases)
    clip: float = 1.0             # global gradient-norm clip
    steps: int | None = None      # budget in optimizer steps (total over resumes)
    minutes: float | None = None  # budget in wall-clock minutes (total over resumes)
    eval_every: int = 250         # validate (and save latest) every N steps
    val_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        checks = [(self.batch_size >= 1, "batch size must be >= 1"), (self.seq_len >= 1, "seq-len must be >= 1"),
                  (self.lr > 0, "lr must be > 0"), (self.warmup >= 0, "warmup must be >= 0"),
                  (self.schedule in ("cosine", "step", "constant"), "schedule must be cosine, step or constant"),
                  (self.steps is None or self.steps >= 1, "steps must be >= 1"),
                  (self.minutes is None or self.minutes > 0, "minutes must be > 0"),
                  (self.eval_every >= 1, "eval-every must be >= 1"),
                  (0 < self.val_fraction < 1, "val fraction must be in (0, 1)"), (self.clip > 0, "clip must be > 0")]
        for ok, msg in checks:
            if not ok:
                raise RunError(f"bad option: {msg}")

    def progress(self, step: int, elapsed_s: float) -> float:
        """How far through the budget the run is, in [0, 1] (the later of steps and time)."""
        p = 0.0
        if self.steps is not None:
            p = max(p, step / self.steps)
        if self.minutes is not None:
            p = max(p, elapsed_s / (60.0 * self.minutes))
        return min(p, 1.0)

    def lr_at(self, step: int, elapsed_s: float) -> float:
        """Linear warm-up over ``warmup`` steps, then the schedule over the budget's progress."""
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        p = self.progress(step, elapsed_s)
        if self.schedule == "cosine":
            decay = self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p))
        elif self.schedule == "step":
            decay = 0.3 ** ((p >= 0.5) + (p >= 0.75))
        else:
            decay = 1.0
        return self.lr * warm * decay


# ---- text sources --------------------------------------------------------------


def read_source(source: str) -> str:
    """The text of ``source``: a file path, or ``bundled:shakespeare``."""
    return bundled_shakespeare() if source == BUNDLED else load_text(source)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- evaluation ----------------------------------------------------------------


def evaluate(model: CharLM, ids: np.ndarray, batch_size: int = 64, seq_len: int = 100) -> float:
    """Mean next-character loss in nats over ``ids`` (N,), carrying state across windows.

    The text is cut into up to ``batch_size`` streams (fewer for short texts), so
    every character but the last ``< batch_size`` is scored. No dropout.
    """
    n = len(ids) - 1
    if n < 1:
        raise TextError("evaluation text needs at least 2 characters")
    B = max(1, min(batch_size, n // seq_len))
    L = n // B
    x = ids[:B * L].reshape(B, L)                          # (B, L) inputs
    y = ids[1:B * L + 1].reshape(B, L)                     # (B, L) next characters
    loss_fn = CrossEntropyLoss(reduction="sum")
    was_training = model.training
    model.eval()
    total, state = 0.0, None
    try:
        for s in range(0, L, seq_len):
            logits, state = model.forward(x[:, s:s + seq_len], state)
            total += float(loss_fn(logits, y[:, s:s + seq_len]))
    finally:
        model.train(was_training)
    return total / (B * L)


# ---- run directories -----------------------------------------------------------


def _model_meta(model: CharLM, vocab: Vocab) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "model": model.cfg.to_dict(), "vocab": vocab.to_json()}


def _model_arrays(model: CharLM) -> dict[str, np.ndarray]:
    return {f"model/{k}": v for k, v in model.state_dict().items()}


def save_weights(path: Path, model: CharLM, vocab: Vocab, extra: dict[str, Any]) -> None:
    """A weights-only checkpoint (what ``best.npz`` and the pretrained model are)."""
    checkpoint.save(path, _model_arrays(model), {**_model_meta(model, vocab), **extra})


def load_model(path: str | Path, rng: np.random.Generator | None = None
               ) -> tuple[CharLM, Vocab, dict[str, Any], dict[str, np.ndarray]]:
    """Load a char-LM checkpoint file or run directory (its ``best.npz``, else ``latest.npz``).

    Returns (model in eval mode, vocabulary, meta, all arrays); the model's dropout
    draws from ``rng``. Anything that is not a usable char-LM checkpoint raises
    CheckpointError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / "best.npz", path / "latest.npz"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise CheckpointError(f"{path}: no best.npz or latest.npz in this run directory")
        path = found[0]
    arrays, meta = checkpoint.load(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a character-LM checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')} (this lstmkit reads {VERSION})")
    try:
        known = {f.name for f in fields(CharLMConfig)}
        cfg = CharLMConfig(**{k: v for k, v in meta["model"].items() if k in known})
        vocab = Vocab.from_json(meta["vocab"])
        if len(vocab) != cfg.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} characters but the model expects {cfg.vocab_size}")
        model = CharLM(cfg, rng=np.random.default_rng(0) if rng is None else rng)
        model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged character-LM checkpoint ({type(e).__name__}: {e})") from None
    model.eval()
    return model, vocab, meta, arrays


@dataclass
class History:
    """Logged points: every ``log_every`` steps the mean train loss; at each evaluation the val loss."""

    rows: list[dict[str, float | None]]

    def add(self, step: int, elapsed: float, lr: float, train: float | None = None, val: float | None = None) -> None:
        self.rows.append({"step": step, "elapsed_s": round(elapsed, 3), "lr": lr, "train_loss": train,
                          "val_loss": val, "val_bpc": None if val is None else val / LN2})

    def best_val(self) -> float:
        vals = [r["val_loss"] for r in self.rows if r["val_loss"] is not None]
        return min(vals) if vals else math.inf

    def write_csv(self, path: Path) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, ["step", "elapsed_s", "lr", "train_loss", "val_loss", "val_bpc"])
        w.writeheader()
        w.writerows(self.rows)
        checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue().encode()))

    def plot(self, path: Path) -> bool:
        """Write the loss curves to ``path``; False when matplotlib is not installed."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        tr = [(r["step"], r["train_loss"] / LN2) for r in self.rows if r["train_loss"] is not None]
        va = [(r["step"], r["val_bpc"]) for r in self.rows if r["val_bpc"] is not None]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if tr:
            ax.plot(*zip(*tr), lw=1, label="train")
        if va:
            ax.plot(*zip(*va), "o-", lw=1.5, label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("bits per character")
        ax.grid(alpha=0.3)
        ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue()))
        return True


# ---- the trainer ---------------------------------------------------------------


class Trainer:
    """One run: model, optimizer, data, position and history; ``fit()`` trains to the budget.

    Build with ``Trainer.new(...)`` or ``Trainer.resume(run_dir, ...)``.
    """

    def __init__(self, out: Path, model: CharLM, vocab: Vocab, tcfg: TrainConfig, source: str, text: str,
                 rng: np.random.Generator) -> None:
        self.out, self.model, self.vocab, self.tcfg, self.source, self.rng = out, model, vocab, tcfg, source, rng
        self.text_sha = sha256(text)
        train_ids, self.val_ids = split_train_val(vocab.encode(text, what=_name(source)), tcfg.val_fraction)
        what = f"{_name(source)} (training part, {len(train_ids)} characters)"
        self.windows = Windows.make(train_ids, tcfg.batch_size, tcfg.seq_len, what=what)
        if len(self.val_ids) < 2:
            raise TextError(f"{_name(source)}: too short to hold out a validation part "
                            f"({len(self.val_ids)} characters); use a longer text")
        matrices = [p for p in model.parameters() if p.value.ndim >= 2]
        vectors = [p for p in model.parameters() if p.value.ndim < 2]
        self.opt = AdamW([{"params": matrices, "weight_decay": tcfg.weight_decay},
                          {"params": vectors, "weight_decay": 0.0}], lr=tcfg.lr, betas=(0.9, 0.99))
        self.loss_fn = CrossEntropyLoss()
        self.step = 0                 # optimizer steps taken
        self.window = 0               # next window within the pass
        self.epoch = 0
        self.elapsed = 0.0            # wall-clock seconds spent in this run, over all sessions
        self.state: tuple[np.ndarray, np.ndarray] | None = None     # carried (h, c), each (layers, B, H)
        self.history = History([])
        self.stop_reason = ""

    # -- construction -----------------------------------------------------------

    @classmethod
    def new(cls, out: str | Path, source: str, mcfg: dict[str, Any], tcfg: TrainConfig) -> Trainer:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise RunError(f"{out}: exists and is not a directory; --out needs a directory for the run")
        if (out / "latest.npz").exists() or (out / "best.npz").exists():
            raise RunError(f"{out}: already holds a run; continue it with --resume {out} or choose a new --out")
        tcfg.validate()
        text = read_source(source)
        vocab = Vocab.from_text(text)
        rng = np.random.default_rng(tcfg.seed)
        try:
            model = CharLM(CharLMConfig(vocab_size=len(vocab), **mcfg), rng=rng)
        except (TypeError, ValueError) as e:           # e.g. --hidden 0 or --dropout 1.5, as the layer words it
            raise RunError(f"bad model option: {e}") from None
        return cls(out, model, vocab, tcfg, source, text, rng)

    @classmethod
    def resume(cls, out: str | Path, source: str | None = None, steps: int | None = None,
               minutes: float | None = None, eval_every: int | None = None) -> Trainer:
        """Continue the run in ``out``; a new budget (replacing the old one) or text file may be given."""
        out = Path(out)
        path = out / "latest.npz"
        if not path.is_file():
            raise CheckpointError(f"{path}: no checkpoint to resume from")
        rng = np.random.default_rng()                    # its state is restored from the checkpoint below
        model, vocab, meta, arrays = load_model(path, rng=rng)
        model.train()
        try:
            tcfg = TrainConfig(**meta["train"])
            position, rng_state = meta["position"], meta["rng"]
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: damaged checkpoint, no training state ({e})") from None
        if steps is not None or minutes is not None:     # a budget given on resume replaces the old one
            tcfg.steps, tcfg.minutes = steps, minutes
        if eval_every is not None:
            tcfg.eval_every = eval_every
        tcfg.validate()
        source = source or meta["source"]
        text = read_source(source)
        new = Vocab.from_text(text)
        if new != vocab:
            raise TextError(f"{_name(source)}: vocabulary mismatch with the run in {out} "
                            f"(run has {len(vocab)} characters, this text {len(new)}; "
                            f"differing: {''.join(sorted(set(vocab.chars) ^ set(new.chars)))!r})")
        self = cls(out, model, vocab, tcfg, source, text, rng)
        if self.text_sha != meta["text_sha256"]:
            print(f"note: {_name(source)} differs from the text this run started on; continuing on it",
                  file=sys.stderr)
        rng.bit_generator.state = rng_state
        self.opt.load_state_dict(checkpoint.unflatten_optimizer_state(arrays, meta["optim"]))
        self.step, self.window, self.epoch = position["step"], position["window"], position["epoch"]
        self.elapsed = position["elapsed_s"]
        if "state/h" in arrays:
            self.state = (arrays["state/h"], arrays["state/c"])
        if self.window >= len(self.windows):             # a different (shorter) text: start a new pass
            self.window, self.state = 0, None
        self.history = History(meta["history"])
        return self

    # -- checkpoints ------------------------------------------------------------

    def save_latest(self) -> Path:
        o_arrays, o_meta = checkpoint.flatten_optimizer_state(self.opt.state_dict())
        arrays = _model_arrays(self.model) | o_arrays
        if self.state is not None:
            arrays["state/h"], arrays["state/c"] = self.state
        meta = {**_model_meta(self.model, self.vocab), "train": asdict(self.tcfg), "optim": o_meta,
                "position": {"step": self.step, "window": self.window, "epoch": self.epoch,
                             "elapsed_s": self.elapsed},
                "rng": self.rng.bit_generator.state, "source": self.source, "text_sha256": self.text_sha,
                "history": self.history.rows}
        path = self.out / "latest.npz"
        checkpoint.save(path, arrays, meta)
        self.history.write_csv(self.out / "history.csv")
        return path

    def _validate_and_save(self) -> float:
        val = evaluate(self.model, self.val_ids, self.tcfg.batch_size, self.tcfg.seq_len)
        improved = val < self.history.best_val()
        self.history.add(self.step, self.elapsed, self.opt.param_groups[0]["lr"], val=val)
        if improved:
            save_weights(self.out / "best.npz", self.model, self.vocab,
                         {"step": self.step, "val_loss": val, "source": self.source,
                          "train": asdict(self.tcfg)})
        self.save_latest()
        return val

    # -- the loop ---------------------------------------------------------------

    def budget_left(self) -> bool:
        t = self.tcfg
        if t.steps is None and t.minutes is None:
            raise RunError("no budget: give --steps or --minutes")
        return self.tcfg.progress(self.step, self.elapsed) < 1.0

    def train_step(self) -> float:
        """One window: forward, loss, backward, clip, AdamW. Returns the loss (nats/char); may be non-finite."""
        x, y = self.windows.window(self.window)                     # (B, T) each
        for g in self.opt.param_groups:
            g["lr"] = self.tcfg.lr_at(self.step, self.elapsed)
        self.opt.zero_grad()
        logits, state = self.model.forward(x, self.state)           # (B, T, V)
        loss = float(self.loss_fn(logits, y))
        if not math.isfinite(loss):
            return loss
        self.model.backward(self.loss_fn.backward())
        norm = clip_grad_norm_(self.model.parameters(), self.tcfg.clip)
        if not math.isfinite(norm):
            return float("nan")
        self.opt.step()
        self.state = state
        self.step += 1
        self.window += 1
        if self.window == len(self.windows):                        # a new pass starts from zero state
            self.window, self.state = 0, None
            self.epoch += 1
        return loss

    def fit(self, progress: bool = True, log_every: int = 10,
            on_step: Callable[[Trainer], None] | None = None) -> str:
        """Train until the budget is spent, Ctrl-C, or a non-finite loss.

        Returns the reason: "budget", "interrupted" or "nan". Latest (and best)
        checkpoints are saved at every evaluation and at the end, except after a
        NaN, which keeps the last good checkpoint untouched.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        self.budget_left()
        chars = self.tcfg.batch_size * self.tcfg.seq_len
        bar = _progress_bar(self.tcfg, self.step, self.elapsed, progress)
        recent: list[float] = []
        ema = speed = None
        last_val = self.history.rows[-1]["val_bpc"] if self.history.rows else None
        t_prev = time.perf_counter()
        with _stop_on_sigint() as stop:
            while self.budget_left():
                t0 = time.perf_counter()
                loss = self.train_step()
                step_s = time.perf_counter() - t0
                speed = chars / step_s if speed is None else 0.9 * speed + 0.1 * chars / step_s
                if not math.isfinite(loss):
                    bar.close()
                    self.stop_reason = "nan"
                    return "nan"
                recent.append(loss)
                ema = loss if ema is None else 0.95 * ema + 0.05 * loss
                if len(recent) == log_every:
                    self.history.add(self.step, self.elapsed, self.opt.param_groups[0]["lr"], train=float(
                        np.mean(recent)))
                    recent = []
                if self.step % self.tcfg.eval_every == 0:
                    last_val = self._validate_and_save() / LN2
                now = time.perf_counter()
                self.elapsed += now - t_prev
                t_prev = now
                _advance(bar, self.tcfg, self.elapsed)
                bar.set_postfix_str(f"loss {ema:.3f}  {speed:,.0f} chars/s"
                                    + ("" if last_val is None else f"  val {last_val:.3f} bpc"), refresh=False)
                if on_step is not None:
                    on_step(self)
                if stop.requested:
                    break
        bar.close()
        self.stop_reason = "interrupted" if stop.requested else "budget"
        if not self.history.rows or self.history.rows[-1]["step"] != self.step or \
                self.history.rows[-1]["val_loss"] is None:
            self._validate_and_save()
        if not self.history.plot(self.out / "loss.png"):
            print("note: no loss.png (matplotlib is not installed; pip install 'lstmkit[plot]')", file=sys.stderr)
        return self.stop_reason


def _name(source: str) -> str:
    return "the bundled Shakespeare" if source == BUNDLED else source


def _progress_bar(t: TrainConfig, step: int, elapsed: float, enabled: bool) -> Any:
    if t.steps is not None:
        return tqdm(total=t.steps, initial=step, unit="step", disable=not enabled, dynamic_ncols=True)
    return tqdm(total=round(60 * t.minutes), initial=round(elapsed), unit="s", disable=not enabled,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")


def _advance(bar: Any, t: TrainConfig, elapsed: float) -> None:
    if t.steps is not None:
        bar.update(1)
    else:
        bar.update(min(elapsed, bar.total) - bar.n)


class _StopFlag:
    requested = False


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[_StopFlag]:
    """The first Ctrl-C asks the loop to stop after the current step (and save); a second one aborts."""
    flag = _StopFlag()
    if not _in_main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        print("\nstopping after this step and saving (Ctrl-C again to abort without saving)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
