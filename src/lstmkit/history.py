"""A run's history: the logged rows, Keras-style ``history``, the CSV and the loss plot."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint


def _plain(v: Any) -> Any:
    """A NumPy scalar as the Python number it holds (a history prints 0.93, not np.float64(0.93)); others as
    they are."""
    return v.item() if isinstance(v, np.generic) else v


class History:
    """Logged rows: every ``log_every`` steps the mean training loss; at each evaluation the metrics.

    Every row has every column (None where it has no value). ``history`` gives the
    evaluations Keras-style, ``{"val_loss": [...], ...}``.
    """

    BASE = ("step", "elapsed_s", "lr", "train_loss")

    def __init__(self, metrics: list[str], rows: list[dict[str, Any]] | None = None) -> None:
        self.columns = [*self.BASE, *(m for m in metrics if m not in self.BASE)]
        self.rows: list[dict[str, Any]] = rows if rows is not None else []
        self.stop_reason = ""          # set by fit(): "budget", "early_stop", "interrupted" or "nan"
        self.loss_fn: Any = None       # set by fit(): the loss and metric functions it trained with
        self.metric_fns: dict[str, Any] = {}

    def add(self, step: int, elapsed: float, lr: float, train_loss: float | None = None,
            metrics: dict[str, float] | None = None) -> None:
        row: dict[str, Any] = dict.fromkeys(self.columns)
        row.update({"step": int(step), "elapsed_s": round(float(elapsed), 3), "lr": _plain(lr),
                    "train_loss": _plain(train_loss)})
        for k, v in (metrics or {}).items():
            if k not in row:
                self.columns.append(k)
            row[k] = _plain(v)
        self.rows.append(row)

    @property
    def evals(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["train_loss"] is None]

    @property
    def history(self) -> dict[str, list[float]]:
        return {k: [r[k] for r in self.evals] for k in self.columns if k not in self.BASE}

    def wait(self, key: str, mode: str = "min", min_delta: float = 0.0) -> tuple[float, int]:
        """(best value of ``key``, evaluations since it improved by more than ``min_delta``)."""
        sign = 1.0 if mode == "min" else -1.0
        best, wait = math.inf, 0
        for r in self.evals:
            v = r.get(key)
            if v is None:
                continue
            if sign * v < best - min_delta:
                best, wait = sign * v, 0
            else:
                wait += 1
        return sign * best, wait

    def best(self, key: str = "val_loss", mode: str = "min") -> float:
        return self.wait(key, mode)[0]

    def write_csv(self, path: Path) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.rows)
        checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue().encode()))

    def plot(self, path: Path, ylabel: str = "loss", scale: float = 1.0) -> bool:
        """Loss curves (and, beside them, any other metrics) to ``path``; False without matplotlib."""
        plt = pyplot()
        if plt is None:
            return False
        others = [k for k in self.history if "loss" not in k and "bpc" not in k]
        fig, axes = plt.subplots(1, 2 if others else 1, figsize=(12 if others else 7, 4), dpi=100, squeeze=False)
        ax = axes[0, 0]
        tr = [(r["step"], r["train_loss"] * scale) for r in self.rows if r["train_loss"] is not None]
        va = [(r["step"], r["val_loss"] * scale) for r in self.evals if r.get("val_loss") is not None]
        if tr:
            ax.plot(*zip(*tr), lw=1, label="train")
        if va:
            ax.plot(*zip(*va), "o-", lw=1.5, label="validation")
        ax.set_ylabel(ylabel)
        for k in others:
            pts = [(r["step"], r[k]) for r in self.evals if r.get(k) is not None]
            if pts:
                axes[0, 1].plot(*zip(*pts), "o-", lw=1.5, label=k)
        for a in axes[0]:
            a.set_xlabel("step")
            a.grid(alpha=0.3)
            if a.get_legend_handles_labels()[0]:
                a.legend()
        save_figure(fig, path)
        return True


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None without matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure to ``path`` as PNG, atomically, and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    pyplot().close(fig)
    checkpoint.atomic_write(path, lambda f: f.write(buf.getvalue()))
