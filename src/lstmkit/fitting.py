"""``fit`` / ``evaluate`` / ``predict`` for in-memory arrays or datasets, on the shared loop (``lstmkit.training``).

    hist = model.fit(x, y, loss=lk.CrossEntropyLoss(), optimizer=lk.optim.AdamW(model.parameters(), lr=3e-3),
                     epochs=20, batch_size=32, validation_data=(xv, yv), metrics=["accuracy"], run_dir="runs/mine")
    model.evaluate(xv, yv)                 # {"loss": ..., "accuracy": ...}
    model.predict(x_new, batch_size=256)

Samples are the first axis of ``x`` and ``y``; or ``x`` is a dataset read a batch at a
time (``lstmkit.data.dataset``: ``len(ds)``, ``ds[index_array] -> (x, y[, lengths])``). Padded sequence batches pass
``lengths`` (N,), which reach every layer that takes them; pad class targets
with the loss's ``ignore_index`` (-100) so padding is neither scored nor counted.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, compiled, modelfile
from .ctc import CTCLoss
from .data.dataset import ArrayDataset, Prefetcher, unpack
from .distributed import Comm, shard, world
from .fit_data import as_dataset, fingerprint, tbptt_windows, training_data
from .layers.base import Layer, takes_lengths
from .layers.inference import inference
from .losses import CrossEntropyLoss, MSELoss
from .metrics import Metric, metric_fns
from .optim import Adam, Optimizer
from .random import get_rng
from .runs import RunError, check_run_dir, release_run
from .tbptt import StateCarry
from .training import History, TrainConfig, Trainer

_LOSSES = {"cross_entropy": CrossEntropyLoss, "mse": MSELoss, "ctc": CTCLoss}


def _loss_fn(loss: Any) -> Any:
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"fit: unknown loss {loss!r}; expected one of {sorted(_LOSSES)} or a loss object")
        return _LOSSES[loss]()
    if not (callable(loss) and hasattr(loss, "backward")):
        raise ValueError(f"fit: loss must be a loss object such as lk.CrossEntropyLoss(), got {type(loss).__name__}")
    return loss


# ---- batches ------------------------------------------------------------------------------------


def _batch(model: Layer, data: Any, idx: np.ndarray, what: str, loader: Prefetcher | None = None
           ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    x, y, lengths = unpack(loader.get(idx) if loader is not None else data[idx], what)
    if lengths is not None and not takes_lengths(model):
        raise ValueError(f"{what}: the data carries lengths but {type(model).__name__}.forward takes none")
    return x, y, lengths


def _forward(model: Layer, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    out = model.forward(x) if lengths is None else model.forward(x, lengths=lengths)
    if isinstance(out, tuple):
        raise ValueError(f"fit: {type(model).__name__} returned a tuple; give recurrent layers "
                         "return_sequences=True or False")
    return out


def _batches(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [indices[s:s + batch_size] for s in range(0, len(indices), batch_size)]


def _loader(data: Any) -> Prefetcher | None:
    """A read-ahead thread for a dataset that reads from disk; in-memory arrays need none."""
    return None if isinstance(data, ArrayDataset) else Prefetcher(data)


def predict(model: Layer, x: Any, batch_size: int = 256, lengths: Any = None) -> np.ndarray:
    """Outputs for every sample of ``x`` (arrays (N, ...) or a dataset) in eval mode, ``batch_size`` at a
    time, concatenated on axis 0."""
    data = as_dataset(model, x, None, lengths, "predict")
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    return _scan(model, data, _batches(np.arange(len(data)), batch_size), "predict",
                 lambda pred, y, lengths: pred)


def _scan(model: Layer, data: Any, batches: list[np.ndarray], what: str, each: Callable[..., Any]) -> Any:
    """``each(pred, y, lengths)`` for every batch in eval mode (reading ahead from a dataset); the results
    concatenated when they are arrays."""
    was, loader = model.training, _loader(data)
    model.eval()
    outs = []
    try:
        with compiled.holding_blas(), inference():                 # (nothing kept for a backward)
            for k, idx in enumerate(batches):
                x, y, lengths = _batch(model, data, idx, what, loader)
                if loader is not None and k + 1 < len(batches):
                    loader.ask(batches[k + 1])           # read the next batch while this one computes
                outs.append(each(_forward(model, x, lengths), y, lengths))
    finally:
        model.train(was)
        if loader is not None:
            loader.close()
    return np.concatenate(outs, axis=0) if outs and isinstance(outs[0], np.ndarray) else outs


def evaluate(model: Layer, x: Any, y: Any = None, loss: Any = None,
             metrics: Sequence[Any] | dict[str, Metric] | None = None, batch_size: int = 256, lengths: Any = None,
             prefix: str = "", comm: Comm | None = None, steps: int | None = None) -> dict[str, float]:
    """``{"loss": ..., metric: ...}`` over all of ``(x, y)`` (or a dataset ``x``) in eval mode.

    ``Model.evaluate`` fills ``loss`` and ``metrics`` with those the model was last fit with. The loss is
    the batch losses' mean weighted by batch size; metrics are exact over all samples. ``steps`` bounds
    the work to the first ``steps`` batches (a fixed sample of a large validation set). With ``comm``
    (a distributed run), each rank scores its share of the samples and the sums are all-reduced, so
    every rank returns the same figures.
    """
    if loss is None:
        raise ValueError("evaluate: no loss given and the model has not been fit; pass loss=...")
    loss_fn = _loss_fn(loss)
    metrics = metrics if metrics is not None else ()
    fns = metrics if isinstance(metrics, dict) else metric_fns(metrics)
    data = as_dataset(model, x, y, lengths, "evaluate")
    comm = comm if comm is not None else Comm()
    n_all = len(data) if steps is None else min(len(data), steps * batch_size)
    sums = np.zeros(1 + 2 * len(fns), np.float64)            # loss total, then each metric's sum and count

    def score(pred: np.ndarray, yb: np.ndarray | None, lb: np.ndarray | None) -> None:
        if yb is None:
            raise ValueError("evaluate: the data has no targets (its batches' y is None)")
        sums[0] += float(loss_fn(pred, yb)) * len(pred)
        for k, fn in enumerate(fns.values()):
            a, c = fn(pred, yb, lb)
            sums[1 + k] += a
            sums[1 + len(fns) + k] += c

    _scan(model, data, _batches(np.arange(n_all)[shard(n_all, comm)], batch_size), "evaluate", score)
    packed = comm.allreduce_(sums)
    n = len(fns)
    out = {f"{prefix}loss": float(packed[0] / n_all)}         # Python floats, as the history's training loss
    out.update({f"{prefix}{k}": (float(packed[1 + i] / packed[1 + n + i]) if packed[1 + n + i] else math.nan)
                for i, k in enumerate(fns)})
    return out


def _loss_terms(loss_fn: Any, y: np.ndarray) -> float:
    """How many terms the loss's mean runs over for targets ``y``: the non-ignored class targets for a
    cross-entropy on class indices, else the samples' elements (MSE) or the samples (CTC)."""
    if isinstance(loss_fn, CrossEntropyLoss) and np.issubdtype(y.dtype, np.integer):
        return float(np.count_nonzero(y != loss_fn.ignore_index))
    if isinstance(loss_fn, MSELoss):
        return float(y.size)
    return float(len(y))


# ---- the trainer for datasets and arrays ---------------------------------------------------------


class ArrayTrainer(Trainer):
    """Shuffled mini-batches over a dataset (arrays are one); an epoch is one pass; checkpoints hold the
    permutation. Under MPI each rank reads only its share of a batch; the next batch of the epoch is
    read on a background thread while the current step computes. With ``tbptt`` = K each batch is run as
    windows of K steps, one training step each, the recurrent layers' state carried from one window to the
    next (``lstmkit.tbptt``)."""

    def __init__(self, out: Path | None, model: Layer, optimizer: Optimizer, tcfg: TrainConfig,
                 rngs: list[np.random.Generator], data: Any, val: Any, loss: Any, metrics: dict[str, Metric],
                 batch_size: int, shuffle: bool, run_meta: dict[str, Any], validation_steps: int | None = None,
                 tbptt: tuple[int, int] | None = None, **kwargs: Any) -> None:
        self.data, self.val, self.loss_fn, self.metric_fns = data, val, loss, metrics
        self.batch_size, self.shuffle, self.run_meta = batch_size, shuffle, run_meta
        self.validation_steps = validation_steps
        self.tbptt = tbptt                               # (window K, steps T) or None
        self.windows = 1 if tbptt is None else math.ceil(tbptt[1] / tbptt[0])
        self.carry = None if tbptt is None else StateCarry(model, "fit(tbptt=...)")
        self.n_batches = math.ceil(len(data) / batch_size)
        names = [*metrics]
        cols = ["loss", *names] + (["val_loss", *(f"val_{m}" for m in names)] if val is not None else [])
        super().__init__(out, model, optimizer, tcfg, rngs, steps_per_epoch=self.n_batches * self.windows,
                         items_per_step=batch_size, metrics=cols, **kwargs)
        self.batch = 0                                   # next batch within the epoch
        self.window = 0                                  # next window within the batch (tbptt)
        self._current: tuple[Any, ...] | None = None    # the batch its windows are cut from
        self.perm: np.ndarray | None = None              # this epoch's sample order
        self.running = {"loss": 0.0, "n": 0.0, **{f"{k}/sum": 0.0 for k in names}, **{f"{k}/n": 0.0 for k in names}}
        self.loader = _loader(data)

    def _mine(self, k: int) -> np.ndarray:
        """This rank's share of batch ``k`` of the epoch."""
        idx = self.perm[k * self.batch_size:(k + 1) * self.batch_size]
        return idx[shard(len(idx), self.comm)] if self.comm.size > 1 else idx

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """This step's (idx, x, y, lengths): the batch, or (tbptt) this window of it."""
        if self._current is None:
            idx = self._mine(self.batch)
            x, y, lengths = _batch(self.model, self.data, idx, "fit", self.loader)    # (read ahead, or now)
            if self.loader is not None and self.batch + 1 < self.n_batches:
                self.loader.ask(self._mine(self.batch + 1))  # read the next batch while this step computes
            if y is None:
                raise ValueError("fit: the data has no targets (its batches' y is None)")
            self._current = (idx, x, y, lengths)
        idx, x, y, lengths = self._current
        if self.tbptt is None:
            return idx, x, y, lengths
        K = self.tbptt[0]
        window = slice(self.window * K, (self.window + 1) * K)
        return idx, x[:, window], y[:, window], lengths

    def batch_loss(self) -> float:
        if self.perm is None:
            n = len(self.data)
            self.perm = self.rngs[0].permutation(n) if self.shuffle else np.arange(n)
        if self.carry is not None and self.window == 0:
            self.carry.reset()                           # a new batch of sequences starts from zero state
        idx, x, y, lengths = self._read()
        if self.comm.size > 1 or self.carry is not None:        # the step's loss terms, on every rank
            terms = _loss_terms(self.loss_fn, y) if len(idx) else 0.0
            everyone = float(self.comm.allreduce_(np.array([terms]))[0]) if self.comm.size > 1 else terms
            if self.comm.size > 1:               # this rank's share of the batch, weighted by its loss terms
                self.share = terms / everyone if everyone else 0.0
            if self.carry is not None and not everyone:          # (tbptt) a window of ignored targets only:
                self.update = False                              # nothing to learn, but the state moves on
        if not len(idx):
            return 0.0
        with self.carry.active() if self.carry is not None else contextlib.nullcontext():
            pred = _forward(self.model, x, lengths)
        if not self.update:
            return 0.0
        loss = float(self.loss_fn(pred, y))
        if math.isfinite(loss):
            self.model.input_grad = False                # the data needs no gradient: layers may skip it
            try:
                self.model.backward(self.loss_fn.backward())
            finally:
                del self.model.input_grad
            r = self.running
            r["loss"] += loss * len(idx)
            r["n"] += len(idx)
            for k, fn in self.metric_fns.items():
                a, c = fn(pred, y, lengths)
                r[f"{k}/sum"] += a
                r[f"{k}/n"] += c
        return loss

    def advance(self) -> None:
        self.window += 1
        if self.window < self.windows:                   # (tbptt) the next window of the same batch
            return
        self.window, self._current = 0, None
        self.batch += 1
        if self.batch == self.n_batches:
            self.batch, self.perm = 0, None
            self.epoch += 1

    def validate(self) -> dict[str, float]:
        r = self.running
        if self.comm.size > 1:                   # the ranks' running sums, added up
            r = dict(zip(r, self.comm.allreduce_(np.array(list(r.values()), np.float64)).tolist()))
        out = {"loss": r["loss"] / r["n"] if r["n"] else None}
        out.update({k: (r[f"{k}/sum"] / r[f"{k}/n"] if r[f"{k}/n"] else None) for k in self.metric_fns})
        self.running = dict.fromkeys(r, 0.0)
        if self.val is not None:
            out.update(evaluate(self.model, self.val, None, self.loss_fn, self.metric_fns, self.batch_size,
                                prefix="val_", comm=self.comm, steps=self.validation_steps))
        return out

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"  epoch {self.epoch}" + super().describe(metrics)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        arrays = {} if self.perm is None else {"data/perm": self.perm}
        if self.carry is not None:
            arrays.update(self.carry.arrays())
        return arrays, {"batch": self.batch, "window": self.window, "running": self.running}, {"fit": self.run_meta}

    def load_state(self, arrays: dict[str, np.ndarray], position: dict[str, Any], meta: dict[str, Any]) -> None:
        self.batch, self.running = position["batch"], dict(position["running"])
        self.window, self._current = position.get("window", 0), None
        self.perm = arrays.get("data/perm")
        if self.carry is not None:
            self.carry.load(arrays)


def _generators(model: Layer) -> list[np.random.Generator]:
    """The global generator and every generator a layer holds (dropout draws from them), each once."""
    found: dict[int, np.random.Generator] = {id(get_rng()): get_rng()}
    stack = [model]
    while stack:
        layer = stack.pop(0)
        g = getattr(layer, "rng", None)
        if isinstance(g, np.random.Generator):
            found.setdefault(id(g), g)
        stack.extend(layer.sublayers())
    return list(found.values())


# Settings fixed when a run starts: resuming with others would not continue the same run.
_RUN_SHAPING = ("batch_size", "shuffle", "n_train", "loss", "optimizer", "metrics", "validation_split", "tbptt")


def fit(model: Layer, x: Any, y: Any = None, loss: Any = "cross_entropy", optimizer: Optimizer | None = None,
        epochs: int | None = None, steps: int | None = None, minutes: float | None = None, batch_size: int = 32,
        validation_data: tuple[Any, ...] | None = None, validation_split: float = 0.0,
        metrics: Sequence[str | Callable[..., Any]] = (), lengths: Any = None, shuffle: bool = True,
        clip: float | None = None, schedule: str = "constant", warmup: int = 0, min_lr_frac: float = 0.1,
        eval_every: int | None = None, early_stopping: int | None = None, monitor: str | None = None,
        mode: str | None = None, min_delta: float = 0.0, restore_best_weights: bool = False,
        run_dir: str | Path | None = None, resume: bool = False, seed: int = 0, progress: bool = True,
        meta: dict[str, Any] | None = None, unit: str = "samples", distributed: bool = False,
        validation_steps: int | None = None, tbptt: int | None = None) -> History:
    """Train ``model`` on ``(x, y)`` (or a dataset ``x``) and return its History (``history.history["val_loss"]``).

    Args:
        x, y: inputs and targets, samples on the first axis (N, ...); or ``x`` a dataset (``len(ds)``,
            ``ds[index_array] -> (x, y[, lengths])``, see ``lstmkit.data.dataset``) read a batch at a
            time, the next batch on a background thread, so the data need not fit in memory.
        loss: a loss object (``lk.CrossEntropyLoss()``, ``lk.MSELoss()``) or "cross_entropy" / "mse".
        optimizer: any ``lk.optim`` optimizer over ``model.parameters()`` (default Adam, lr 1e-3).
        epochs, steps, minutes: the budget; training stops at the first one reached (default 1 epoch).
        batch_size: samples per step; the last batch of an epoch may be smaller.
        validation_data: ``(xv, yv)``, or ``(xv, yv, lengths_v)`` — required when ``lengths`` is given,
            so validation never scores padding — or a dataset. Or ``validation_split``: the last
            fraction of the samples held out as they are, before any shuffling (Keras' rule); a warning
            says when a class falls on one side only (class-sorted data: shuffle it first).
        validation_steps: validate on the first N batches of the validation data only (a fixed sample
            of a large set; default all).
        metrics: names ("accuracy", "mae", "mse") or functions ``fn(pred, y) -> float``.
        lengths: (N,) lengths of padded sequences, handed to every layer that takes them.
        shuffle: a new order each epoch, drawn from the run's generator (``seed``).
        clip: global gradient-norm clip. schedule, warmup, min_lr_frac: the LR over the budget
            ("constant", "cosine", "linear" or "step"; see ``TrainConfig``).
        eval_every: validate every N steps instead of at each epoch's end.
        early_stopping: patience, in evaluations without improvement of ``monitor`` (default
            "val_loss", or "loss" without validation data) by more than ``min_delta``;
            ``mode`` "min" or "max" (default: "max" for accuracy, else "min").
        restore_best_weights: end with the weights of the best evaluation.
        run_dir: keep ``latest.npz``, ``best.npz``, ``history.csv`` and ``loss.png`` there; with
            ``resume=True`` an interrupted run there continues exactly where it stopped.
        progress: show a progress bar.
        meta: JSON entries of your own for the checkpoints' headers (e.g. class names).
        unit: what the progress bar counts per second ("samples", "clips", ...).
        distributed: data-parallel over the ranks of an MPI launch (``mpirun -n N python script.py``):
            every rank calls ``fit`` with the same data and settings, takes its share of each batch
            and of the validation data, and all hold identical weights after every step; only
            rank 0 writes ``run_dir`` and shows progress (see ``lstmkit.distributed``).
        tbptt: truncated backpropagation through time for sequences too long to backpropagate whole: x (N, T, F)
            and per-step targets y (N, T, ...) are run as windows of ``tbptt`` steps, each window one training
            step, the recurrent layers carrying their state from one window of a batch to the next and no
            gradient crossing a window's edge (``lstmkit.tbptt``; each batch starts from zero state). Validation
            runs whole sequences.

    A first Ctrl-C stops after the current step (saving when there is a ``run_dir``); a
    non-finite loss stops training with a warning, keeping the last good checkpoint.
    """
    loss_fn = _loss_fn(loss)
    fns = metric_fns(metrics)
    if batch_size < 1:
        raise ValueError(f"fit: batch_size must be >= 1, got {batch_size}")
    data, val = training_data(model, x, y, lengths, validation_data, validation_split, loss_fn)
    windows = tbptt_windows(data, tbptt)
    if epochs is None and steps is None and minutes is None:
        epochs = 1
    tcfg = TrainConfig(steps=steps, minutes=minutes, epochs=epochs, warmup=warmup, schedule=schedule,
                       min_lr_frac=min_lr_frac, eval_every=eval_every, clip=clip, seed=seed)
    tcfg.validate()
    monitor = monitor or ("val_loss" if val is not None else "loss")
    mode = mode or ("max" if "acc" in monitor else "min")
    optimizer = optimizer if optimizer is not None else Adam(model.parameters(), lr=1e-3)
    run_meta = {"batch_size": batch_size, "shuffle": shuffle, "n_train": len(data), "loss": type(loss_fn).__name__,
                "optimizer": type(optimizer).__name__, "metrics": list(fns), "validation_split": validation_split,
                "data_sha256": fingerprint(data), "tbptt": tbptt}
    comm = world(required=True) if distributed else Comm()
    comm.agree(run_meta, "the training data and settings")
    rngs = [np.random.default_rng(seed), *_generators(model)]
    model.train()
    trainer = ArrayTrainer(None if run_dir is None else Path(run_dir), model, optimizer, tcfg, rngs,
                           data, val, loss_fn, fns, batch_size, shuffle, run_meta, validation_steps, windows,
                           monitor=monitor, mode=mode, patience=early_stopping, min_delta=min_delta,
                           restore_best=restore_best_weights, comm=comm)
    trainer.meta, trainer.unit = dict(meta or {}), unit
    if run_dir is not None:
        try:
            _open_run(trainer, Path(run_dir), resume, tcfg)
        except BaseException:
            release_run(run_dir)
            raise
    try:
        reason = trainer.fit(progress=progress)
    finally:
        if trainer.loader is not None:
            trainer.loader.close()
    if reason == "nan" and comm.is_root:
        kept = trainer.out / "latest.npz" if trainer.out is not None else None
        warnings.warn(f"fit: the loss became non-finite (nan/inf) at step {trainer.step + 1}; training stopped"
                      + (f" and the last good checkpoint is {kept}" if kept and kept.is_file() else ""),
                      RuntimeWarning, stacklevel=3)
    trainer.history.stop_reason = reason
    trainer.history.loss_fn, trainer.history.metric_fns = loss_fn, fns
    model.eval()
    return trainer.history


def _open_run(trainer: ArrayTrainer, out: Path, resume: bool, tcfg: TrainConfig) -> None:
    """Refuse to overwrite a run; with ``resume`` continue it (after checking it is the same run)."""
    path = check_run_dir(out, resume, "run_dir", "pass resume=True to continue it,", required=False)
    if path is None:
        return
    arrays, meta = modelfile.read(path)
    head = meta.get(modelfile.HEADER, {})
    ours = modelfile.layer_to_config(trainer.model)
    if head.get("architecture") != ours:
        raise RunError(f"{path}: the run's model differs from this one (run: {str(head.get('architecture'))[:200]}; "
                       f"this: {str(ours)[:200]})")
    saved = meta.get("fit", {})
    changed = [k for k in _RUN_SHAPING if saved.get(k) != trainer.run_meta[k]]
    saved_t = meta.get("train", {})
    changed += [k for k in ("warmup", "schedule", "min_lr_frac", "clip", "seed") if saved_t.get(k) != asdict(tcfg)[k]]
    if changed:
        raise RunError(f"{path}: {', '.join(changed)} cannot change when resuming (the run keeps the settings it "
                       "started with)")
    if saved.get("data_sha256") != trainer.run_meta["data_sha256"]:
        warnings.warn(f"fit: the training data differs from the data the run in {out} started on; continuing on it",
                      stacklevel=4)
    try:
        trainer.model.load_state_dict(modelfile.weights_from(arrays))
    except ValueError as e:
        raise checkpoint.CheckpointError(f"{path}: damaged checkpoint ({e})") from None
    trainer.restore(path, arrays, meta)
