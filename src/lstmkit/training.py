"""The one training loop: every application and ``model.fit`` run on it.

``Trainer`` owns what every run needs: the budget (steps, epochs and/or
minutes), the learning-rate schedule over that budget, gradient clipping,
the progress bar with throughput, validation every N steps or every epoch,
early stopping and best weights, the run directory, Ctrl-C and NaN handling,
and the history with its CSV and plot (``lstmkit.history``). An application subclasses it and says
only what is special to it:

    batch_loss()   forward, loss and backward on the current batch -> loss
    advance()      move to the next batch (and bump ``epoch`` when a pass ends)
    validate()     -> {"val_loss": ..., other metrics}
    state()        extra arrays, position and JSON to checkpoint (data position, carried state)
    load_state()   their inverse, on resume
    header()       what a checkpoint says about the model (how to rebuild it)

A run directory holds ``latest.npz`` (everything needed to continue: weights,
optimizer moments, step, data position, every RNG state, the history),
``best.npz`` (the weights with the best monitored value), ``history.csv`` and
``loss.png`` (with matplotlib). Files are written atomically; a non-finite
loss stops the run before anything is saved, so the last good checkpoint stays.
Restoring every piece of state makes a resumed ``steps``/``epochs`` run end
bit-for-bit where the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import checkpoint, compiled, modelfile
from .distributed import Comm, GradSync
from .history import History
from .layers.base import Layer
from .optim import Optimizer, clip_grad_norm_
from .precision import PRECISIONS, float32_matmul_precision
from .runs import RunError, release_run

SCHEDULES = ("constant", "cosine", "linear", "step")


@dataclass
class TrainConfig:
    """The budget, the LR schedule over it, validation cadence, clipping and the seed.

    The budget is the earliest of ``steps`` optimizer steps, ``epochs`` passes and
    ``minutes`` of wall-clock time (totals over resumes). The learning rate of each
    optimizer group is its ``initial_lr`` times a linear warm-up over ``warmup``
    steps (at most a tenth of a step budget) times the schedule's decay over the
    budget's progress ("cosine" or "linear" to ``min_lr_frac``, "step": ×0.3 at 50 %
    and 75 %, or "constant").
    """

    steps: int | None = None
    minutes: float | None = None
    epochs: int | None = None
    warmup: int = 0
    schedule: str = "constant"
    min_lr_frac: float = 0.1
    eval_every: int | None = None      # validate every N steps; None: at the end of every epoch
    clip: float | None = None          # global gradient-norm clip
    seed: int = 0
    matmul_precision: str | None = None  # the training steps' products (lstmkit.precision); None: as set globally

    def checks(self) -> list[tuple[bool, str]]:
        return [(self.warmup >= 0, "warmup must be >= 0"),
                (self.schedule in SCHEDULES, "schedule must be cosine, linear, step or constant"),
                (self.steps is None or self.steps >= 1, "steps must be >= 1"),
                (self.minutes is None or self.minutes > 0, "minutes must be > 0"),
                (self.epochs is None or self.epochs >= 1, "epochs must be >= 1"),
                (self.eval_every is None or self.eval_every >= 1, "eval-every must be >= 1"),
                (0 <= self.min_lr_frac <= 1, "min lr fraction must be in [0, 1]"),
                (self.clip is None or self.clip > 0, "clip must be > 0"),
                (self.matmul_precision in (None, *PRECISIONS),
                 f"matmul precision must be one of {', '.join(PRECISIONS)}")]

    def validate(self) -> None:
        for ok, msg in self.checks():
            if not ok:
                raise RunError(f"bad option: {msg}")

    def total_steps(self, steps_per_epoch: int | None = None) -> int | None:
        """The step budget (``steps`` and ``epochs`` together), or None for a time budget alone."""
        limits = [s for s in (self.steps, None if self.epochs is None or steps_per_epoch is None
                              else self.epochs * steps_per_epoch) if s is not None]
        return min(limits) if limits else None

    def progress(self, step: int, elapsed_s: float, steps_per_epoch: int | None = None) -> float:
        """How far through the budget the run is, in [0, 1] (the furthest of steps, epochs and time)."""
        p = 0.0
        total = self.total_steps(steps_per_epoch)
        if total is not None:
            p = max(p, step / total)
        if self.minutes is not None:
            p = max(p, elapsed_s / (60.0 * self.minutes))
        return min(p, 1.0)

    def warmup_steps(self, steps_per_epoch: int | None = None) -> int:
        """The warm-up, scaled to the budget: ``warmup`` steps, but at most a tenth of a step budget (a short
        run would otherwise spend its whole budget warming up into an already decayed schedule)."""
        total = self.total_steps(steps_per_epoch)
        return self.warmup if total is None else min(self.warmup, max(1, total // 10))

    def lr_factor(self, step: int, elapsed_s: float, steps_per_epoch: int | None = None) -> float:
        """Warm-up times decay: what multiplies each group's initial learning rate at ``step``."""
        warmup = self.warmup_steps(steps_per_epoch) if self.warmup else 0
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        p = self.progress(step, elapsed_s, steps_per_epoch)
        if self.schedule == "cosine":
            decay = self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p))
        elif self.schedule == "linear":
            decay = self.min_lr_frac + (1 - self.min_lr_frac) * (1 - p)
        elif self.schedule == "step":
            decay = 0.3 ** ((p >= 0.5) + (p >= 0.75))
        else:
            decay = 1.0
        return warm * decay


class Trainer:
    """One run of ``model`` with ``optimizer``; subclasses supply the data (see the module docstring).

    Args:
        out: run directory, or None to keep nothing on disk.
        rngs: every generator the run draws from, the run's own first; their states are checkpointed.
        steps_per_epoch: optimizer steps in one pass over the training data.
        metrics: the keys ``validate`` returns, for the history's columns.
        monitor, mode: the value that decides ``best.npz`` and early stopping ("min" or "max").
        patience: stop after this many evaluations without improvement (None: never).
        restore_best: at the end, put the best weights back into the model.
        comm: the ranks of a distributed run (``lstmkit.distributed.world()``); every rank runs the same
            loop on its shard (``batch_loss`` sets ``share``, its part of the batch's loss terms), the
            gradients are all-reduced each step, and only rank 0 writes files and shows progress.
    """

    unit = "samples"                     # what the progress bar counts per second
    plot_label: tuple[str, float] = ("loss", 1.0)

    def __init__(self, out: str | Path | None, model: Layer, optimizer: Optimizer, tcfg: TrainConfig,
                 rngs: list[np.random.Generator], steps_per_epoch: int, items_per_step: int,
                 metrics: list[str], monitor: str = "val_loss", mode: str = "min", patience: int | None = None,
                 min_delta: float = 0.0, restore_best: bool = False, comm: Comm | None = None) -> None:
        if mode not in ("min", "max"):
            raise RunError(f"bad option: mode must be 'min' or 'max', got {mode!r}")
        if patience is not None and patience < 1:
            raise RunError(f"bad option: patience must be >= 1, got {patience}")
        self.out = None if out is None else Path(out)
        self.model, self.opt, self.tcfg, self.rngs = model, optimizer, tcfg, rngs
        self.steps_per_epoch, self.items_per_step = steps_per_epoch, items_per_step
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.restore_best = restore_best
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.step = 0                  # optimizer steps taken
        self.epoch = 0                 # passes completed
        self.elapsed = 0.0             # wall-clock seconds spent in this run, over all sessions
        self.history = History(metrics)
        self.best_weights: dict[str, np.ndarray] | None = None
        self.saved_step: int | None = None   # the step of the latest.npz on disk
        self.stop_reason = ""
        self.recent: list[float] = []  # training losses since the last history row (checkpointed too)
        self.meta: dict[str, Any] = {}  # an application's own header entries, kept in latest.npz and best.npz
        self.comm = comm if comm is not None else Comm()
        self.sync = GradSync(model.parameters(), self.comm) if self.comm.size > 1 else None
        self.share = 1.0               # this rank's part of the step's loss terms (set by batch_loss)
        self.update = True             # whether this step updates the model (set by batch_loss)
        self._stop_local = self._stop_any = False
        self._clock = time.perf_counter()   # when ``elapsed`` was last brought up to date

    # -- what an application supplies --------------------------------------------

    def batch_loss(self) -> float:
        raise NotImplementedError

    def advance(self) -> None:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        """(arrays, position entries, header entries) that the data needs to continue."""
        return {}, {}, {}

    def load_state(self, arrays: dict[str, np.ndarray], position: dict[str, Any], meta: dict[str, Any]) -> None:
        pass

    def header(self) -> dict[str, Any]:
        return {"format": "lstmkit-run", **modelfile.model_header(self.model), **self.meta}

    def save_best(self, path: Path, metrics: dict[str, float]) -> None:
        modelfile.save_model(self.model, path, extra={**self.meta, "step": self.step, **metrics})

    def describe(self, metrics: dict[str, Any]) -> str:
        """The validation part of the progress bar's text."""
        return "".join(f"  {k} {v:.4g}" for k, v in metrics.items() if k.startswith("val_") and v is not None)

    # -- checkpoints ------------------------------------------------------------------

    def save_latest(self) -> Path | None:
        if self.out is None:
            return None
        o_arrays, o_meta = modelfile.optimizer_payload(self.opt, self.model)
        x_arrays, position, x_meta = self.state()        # (collective where the data is sharded)
        if not self.comm.is_root:
            return None
        arrays = modelfile.model_arrays(self.model) | o_arrays | x_arrays
        meta = {**self.header(), "train": asdict(self.tcfg), "optim": o_meta,
                "position": {"step": self.step, "epoch": self.epoch, "elapsed_s": self.elapsed,
                             "recent": self.recent, **position},
                "rng": [g.bit_generator.state for g in self.rngs], "history": self.history.rows, **x_meta}
        path = self.out / "latest.npz"
        with self._writing(path):
            checkpoint.save(path, arrays, meta)
            self.saved_step = self.step
        with self._writing(self.out / "history.csv"):
            self.history.write_csv(self.out / "history.csv")
        return path

    @contextlib.contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        """A file of the run that cannot be written (a full disk) stops training, naming it and what was kept."""
        try:
            yield
        except OSError as e:
            kept = self.out / "latest.npz" if self.out is not None else None
            kept_s = (f"the checkpoint kept is {kept} (step {self.saved_step})"
                      if kept is not None and self.saved_step is not None and kept.is_file() else
                      "no checkpoint was kept")
            raise RunError(f"{path}: could not write it ({e.strerror or e}); training stopped at step {self.step} "
                           f"and {kept_s}") from None

    def restore(self, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Continue from a ``latest.npz`` whose weights are already in the model."""
        try:
            position, rngs = meta["position"], meta["rng"]
            modelfile.restore_optimizer(self.opt, arrays, meta["optim"])
            rngs = [rngs] if isinstance(rngs, dict) else rngs
            if len(rngs) != len(self.rngs):
                raise ValueError(f"{len(rngs)} random generators saved, the run has {len(self.rngs)}")
            for g, s in zip(self.rngs, rngs):
                g.bit_generator.state = s
            self.step, self.epoch, self.elapsed = position["step"], position["epoch"], position["elapsed_s"]
            self.recent = list(position.get("recent", []))
            self.history = History(self.history.columns, meta["history"])
            self.load_state(arrays, position, meta)
            self.saved_step = self.step
        except Exception as e:          # state from an untrusted file: any failure means a damaged checkpoint
            raise checkpoint.CheckpointError(f"{path}: damaged checkpoint, no usable training state "
                                             f"({type(e).__name__}: {e})") from None
        if self.restore_best and self.out is not None and (self.out / "best.npz").is_file():
            self.best_weights = modelfile.weights_from(checkpoint.load(self.out / "best.npz")[0])

    def _validate_and_save(self) -> dict[str, float]:
        metrics = self.validate()
        self.history.add(self.step, self.elapsed, self.opt.param_groups[0]["lr"], metrics=metrics)
        _, wait = self.history.wait(self.monitor, self.mode, self.min_delta)
        if wait == 0 and metrics.get(self.monitor) is not None:          # improved
            if self.restore_best:
                self.best_weights = self.model.state_dict()
            if self.out is not None and self.comm.is_root:
                with self._writing(self.out / "best.npz"):
                    self.save_best(self.out / "best.npz", metrics)
        elif self.patience is not None and wait >= self.patience:
            self.stop_reason = "early_stop"
        self.save_latest()
        return metrics

    # -- the loop -------------------------------------------------------------------

    def budget_left(self) -> bool:
        t = self.tcfg
        if t.steps is None and t.minutes is None and t.epochs is None:
            raise RunError("no budget: give steps, epochs or minutes")
        return t.progress(self.step, self.elapsed, self.steps_per_epoch) < 1.0

    def train_step(self) -> float:
        """One optimizer step: schedule, loss and gradients, clip, update. Returns the loss; may be non-finite
        (then nothing was applied)."""
        factor = self.tcfg.lr_factor(self.step, self.elapsed, self.steps_per_epoch)
        for g in self.opt.param_groups:
            g["lr"] = g["initial_lr"] * factor
        self.opt.zero_grad()
        self.update = True                       # batch_loss may say this step has nothing to learn from
        precision = self.tcfg.matmul_precision
        with float32_matmul_precision(precision) if precision else contextlib.nullcontext():
            loss = self.batch_loss()
        if self.sync is not None:                # every rank: the whole batch's gradient, and decisions in common
            now = time.perf_counter()
            loss, self._stop_any, bad, self.elapsed = self.sync.reduce(
                self.share, loss, self._stop_local, self.elapsed + now - self._clock)
            self._clock = now
            if bad:
                return float("nan")
        if not math.isfinite(loss):
            return loss
        if not self.update:                      # (counted as a step, the model unchanged)
            self.step += 1
            self.advance()
            return loss
        if self.tcfg.clip is not None and not math.isfinite(clip_grad_norm_(self.model.parameters(),
                                                                             self.tcfg.clip)):
            return float("nan")
        self.opt.step()
        self.step += 1
        self.advance()
        return loss

    def _eval_due(self, epoch_before: int) -> bool:
        """Validate now? At every ``eval_every`` steps (else at each epoch's end); with a step interval and a timed
        budget, also once a tenth of the budget has passed since the last validation, so that a short run which
        never reaches the interval still reports as it goes (``elapsed`` is the ranks' common clock)."""
        every, minutes = self.tcfg.eval_every, self.tcfg.minutes
        if every is None:
            return self.epoch != epoch_before
        last = self.history.evals[-1]["elapsed_s"] if self.history.evals else 0.0
        return self.step % every == 0 or (minutes is not None and self.elapsed - last >= minutes * 6.0)

    def fit(self, progress: bool = True, log_every: int = 10, on_step: Callable[[Trainer], None] | None = None
            ) -> str:
        """Train until the budget is spent, early stopping, Ctrl-C, or a non-finite loss.

        Returns the reason: "budget", "early_stop", "interrupted" or "nan". Latest (and
        best) checkpoints are saved at every evaluation and at the end (after Ctrl-C
        without evaluating, so that a resumed run sees exactly what an uninterrupted
        one would), except after a NaN, which keeps the last good checkpoint untouched. A checkpoint
        that cannot be written (a full disk) stops training with RunError naming the file and the
        checkpoint kept. The run folder's lock is given up at the end.
        """
        try:
            with compiled.holding_blas():               # NumPy's BLAS on one thread: the core's scans keep the cores
                return self._fit(progress, log_every, on_step)
        finally:
            if self.out is not None:
                release_run(self.out)

    def _fit(self, progress: bool, log_every: int, on_step: Callable[[Trainer], None] | None) -> str:
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        self.stop_reason = ""
        self.budget_left()
        bar = self._progress_bar(progress and self.comm.is_root)
        by_steps = self.tcfg.total_steps(self.steps_per_epoch) is not None
        ema = speed = None
        shown = self.describe(self.history.evals[-1]) if self.history.evals else ""
        self._clock = time.perf_counter()
        with _stop_on_sigint() as stop:
            while not self.stop_reason and self.budget_left():
                t0 = time.perf_counter()
                epoch_before = self.epoch
                self._stop_local = stop.requested
                loss = self.train_step()
                rate = self.items_per_step / (time.perf_counter() - t0)
                speed = rate if speed is None else 0.9 * speed + 0.1 * rate
                if not math.isfinite(loss):
                    bar.close()
                    self.stop_reason = "nan"
                    return "nan"
                self.recent.append(loss)
                ema = loss if ema is None else 0.95 * ema + 0.05 * loss
                if len(self.recent) == log_every:
                    self.history.add(self.step, self.elapsed, self.opt.param_groups[0]["lr"],
                                     float(np.mean(self.recent)))
                    self.recent = []
                if self._eval_due(epoch_before):
                    shown = self.describe(self._validate_and_save())
                now = time.perf_counter()
                if self.sync is None:                # (a distributed run keeps the ranks' common clock)
                    self.elapsed += now - self._clock
                    self._clock = now
                bar.update(1 if by_steps else min(self.elapsed, bar.total) - bar.n)
                bar.set_postfix_str(f"loss {ema:.3f}  {speed:,.0f} {self.unit}/s{shown}", refresh=False)
                if on_step is not None:
                    on_step(self)
                if self._interrupted(stop):
                    break
        bar.close()
        interrupted = self._interrupted(stop)
        self.stop_reason = "interrupted" if interrupted else (self.stop_reason or "budget")
        evals = self.history.evals
        if self.stop_reason == "interrupted":
            self.save_latest()          # no extra evaluation: the resumed run must see what the whole run saw
        elif not evals or evals[-1]["step"] != self.step:
            self._validate_and_save()
        if self.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        if self.out is not None and self.comm.is_root and not self.history.plot(self.out / "loss.png",
                                                                                *self.plot_label):
            print("note: no loss.png (matplotlib is not installed; pip install 'lstmkit[plot]')", file=sys.stderr)
        return self.stop_reason

    def _interrupted(self, stop: _StopFlag) -> bool:
        """Ctrl-C seen: here, or (distributed) on any rank as of the last all-reduce, so that all ranks agree."""
        return self._stop_any if self.sync is not None else stop.requested

    def _progress_bar(self, enabled: bool) -> Any:
        total = self.tcfg.total_steps(self.steps_per_epoch)
        if total is not None:
            return tqdm(total=total, initial=self.step, unit="step", disable=not enabled, dynamic_ncols=True)
        return tqdm(total=round(60 * self.tcfg.minutes), initial=round(self.elapsed), unit="s",
                    disable=not enabled, dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")


class _StopFlag:
    requested = False


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[_StopFlag]:
    """The first Ctrl-C asks the loop to stop after the current step (and save); a second one aborts."""
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
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
