"""``fit`` / ``evaluate`` / ``predict`` for in-memory arrays, on the shared loop (``lstmkit.training``).

    hist = model.fit(x, y, loss=lk.CrossEntropyLoss(), optimizer=lk.optim.AdamW(model.parameters(), lr=3e-3),
                     epochs=20, batch_size=32, validation_data=(xv, yv), metrics=["accuracy"], run_dir="runs/mine")
    model.evaluate(xv, yv)                 # {"loss": ..., "accuracy": ...}
    model.predict(x_new, batch_size=256)

Samples are the first axis of ``x`` and ``y``. Padded sequence batches pass
``lengths`` (N,), which reach every layer that takes them; pad class targets
with the loss's ``ignore_index`` (-100) so padding is neither scored nor counted.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, modelfile
from .ctc import CTCLoss, unpack_targets
from .decoding import ctc_greedy, edit_distance
from .distributed import Comm, shard, world
from .layers.base import Layer, takes_lengths
from .losses import CrossEntropyLoss, MSELoss
from .optim import Adam, Optimizer
from .random import get_rng
from .runs import RunError, check_run_dir, release_run
from .training import History, TrainConfig, Trainer

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], tuple[float, float]]
_LOSSES = {"cross_entropy": CrossEntropyLoss, "mse": MSELoss, "ctc": CTCLoss}


# ---- metrics: each returns (sum, count) over a batch, so batches combine exactly ------------------


def _valid(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Positions that count: targets >= 0 (negative = ignore_index) and, for (B, T, ...) outputs, t < length."""
    ok = y >= 0
    if lengths is not None and pred.ndim >= 3 and ok.ndim >= 2:
        ok = ok & (np.arange(ok.shape[1])[None, :] < lengths[:, None]).reshape(ok.shape[:2] + (1,) * (ok.ndim - 2))
    return ok


def accuracy(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> tuple[float, float]:
    """Class accuracy: argmax of the logits against integer classes (or against one-hot/probability targets)."""
    if np.issubdtype(y.dtype, np.integer) and pred.ndim == y.ndim + 1:
        ok = _valid(pred, y, lengths)
        hit = (pred.argmax(axis=-1) == y) & ok
        return float(hit.sum()), float(ok.sum())
    if pred.shape == y.shape and pred.ndim >= 2:
        return accuracy(pred, y.argmax(axis=-1), lengths)
    raise ValueError(f"accuracy: expected integer class targets of shape {pred.shape[:-1]} (or one-hot of shape "
                     f"{pred.shape}), got {y.dtype} of shape {y.shape}")


def _elementwise(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Metric:
    def metric(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> tuple[float, float]:
        if pred.shape != y.shape:
            raise ValueError(f"{name}: prediction shape {pred.shape} and target shape {y.shape} differ")
        err = fn(pred - y)
        return float(err.sum()), float(err.size)
    return metric


def cer(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> tuple[float, float]:
    """Character error rate of CTC best-path decoding: logits (B, T, C) against ``ctc.pack_targets`` rows."""
    in_lens, targets, t_lens = unpack_targets(y)
    decoded = ctc_greedy(pred, blank=0, input_lengths=in_lens)
    errors = sum(edit_distance(d, list(targets[b, :t_lens[b]])) for b, d in enumerate(decoded))
    return float(errors), float(t_lens.sum())


METRICS: dict[str, Metric] = {"accuracy": accuracy, "mae": _elementwise("mae", np.abs),
                              "mse": _elementwise("mse", np.square), "cer": cer}


def _metric_fns(metrics: Sequence[str | Callable[..., Any]]) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for m in metrics:
        if isinstance(m, str):
            if m not in METRICS:
                raise ValueError(f"fit: unknown metric {m!r}; expected one of {sorted(METRICS)} or a function")
            out[m] = METRICS[m]
        elif callable(m):                 # fn(pred, y) -> batch mean
            out[m.__name__] = lambda p, y, lengths, fn=m: (float(fn(p, y)) * len(p), float(len(p)))
        else:
            raise ValueError(f"fit: a metric must be a name or a function, got {type(m).__name__}")
    return out


def _loss_fn(loss: Any) -> Any:
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"fit: unknown loss {loss!r}; expected one of {sorted(_LOSSES)} or a loss object")
        return _LOSSES[loss]()
    if not (callable(loss) and hasattr(loss, "backward")):
        raise ValueError(f"fit: loss must be a loss object such as lk.CrossEntropyLoss(), got {type(loss).__name__}")
    return loss


# ---- batches ------------------------------------------------------------------------------------


def _check_data(model: Layer, x: Any, y: Any, lengths: Any, what: str) -> tuple[np.ndarray, ...]:
    x = np.asarray(x)
    n = len(x) if x.ndim else 0
    if n == 0:
        raise ValueError(f"{what}: expected x with at least one sample on its first axis, got shape {x.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != n:
            raise ValueError(f"{what}: x has {n} samples but y has shape {y.shape}; expected y with {n} on its "
                             "first axis")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{what}: expected lengths as integers of shape ({n},), got {lengths.dtype} of shape "
                             f"{lengths.shape}")
        if not takes_lengths(model):
            raise ValueError(f"{what}: {type(model).__name__}.forward takes no lengths; use a Sequential or a "
                             "recurrent layer")
    return x, y, lengths


def _forward(model: Layer, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    out = model.forward(x) if lengths is None else model.forward(x, lengths=lengths)
    if isinstance(out, tuple):
        raise ValueError(f"fit: {type(model).__name__} returned a tuple; give recurrent layers "
                         "return_sequences=True or False")
    return out


def _take(a: np.ndarray | None, idx: Any) -> np.ndarray | None:
    return None if a is None else a[idx]


def predict(model: Layer, x: Any, batch_size: int = 256, lengths: Any = None) -> np.ndarray:
    """Outputs for every sample of ``x`` in eval mode, ``batch_size`` at a time (concatenated on axis 0)."""
    x, _, lengths = _check_data(model, x, None, lengths, "predict")
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    was = model.training
    model.eval()
    try:
        outs = [_forward(model, x[s:s + batch_size], _take(lengths, slice(s, s + batch_size)))
                for s in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return np.concatenate(outs, axis=0)


def evaluate(model: Layer, x: Any, y: Any, loss: Any = None, metrics: Sequence[Any] | dict[str, Metric] | None = None,
             batch_size: int = 256, lengths: Any = None, prefix: str = "", comm: Comm | None = None
             ) -> dict[str, float]:
    """``{"loss": ..., metric: ...}`` over all of ``(x, y)`` in eval mode.

    ``Model.evaluate`` fills ``loss`` and ``metrics`` with those the model was last fit with. The loss is
    the batch losses' mean weighted by batch size; metrics are exact over all samples. With
    ``comm`` (a distributed run), each rank scores its share of the samples and the sums are
    all-reduced, so every rank returns the same figures.
    """
    if loss is None:
        raise ValueError("evaluate: no loss given and the model has not been fit; pass loss=...")
    loss_fn = _loss_fn(loss)
    metrics = metrics if metrics is not None else ()
    fns = metrics if isinstance(metrics, dict) else _metric_fns(metrics)
    x, y, lengths = _check_data(model, x, y, lengths, "evaluate")
    comm = comm if comm is not None else Comm()
    n_all = len(x)
    mine = shard(n_all, comm)
    x, y, lengths = x[mine], y[mine], _take(lengths, mine)
    total, sums, counts = 0.0, dict.fromkeys(fns, 0.0), dict.fromkeys(fns, 0.0)
    was = model.training
    model.eval()
    try:
        for s in range(0, len(x), batch_size):
            sl = slice(s, s + batch_size)
            pred = _forward(model, x[sl], _take(lengths, sl))
            total += float(loss_fn(pred, y[sl])) * len(pred)
            for k, fn in fns.items():
                a, c = fn(pred, y[sl], _take(lengths, sl))
                sums[k] += a
                counts[k] += c
    finally:
        model.train(was)
    packed = comm.allreduce_(np.array([total, *sums.values(), *counts.values()], np.float64))
    total, n = packed[0], len(fns)
    sums, counts = dict(zip(fns, packed[1:1 + n])), dict(zip(fns, packed[1 + n:]))
    out = {f"{prefix}loss": total / n_all}
    out.update({f"{prefix}{k}": (sums[k] / counts[k] if counts[k] else math.nan) for k in fns})
    return out


def _loss_terms(loss_fn: Any, y: np.ndarray) -> float:
    """How many terms the loss's mean runs over for targets ``y``: the non-ignored class targets for a
    cross-entropy on class indices, else the samples' elements (MSE) or the samples (CTC)."""
    if isinstance(loss_fn, CrossEntropyLoss) and np.issubdtype(y.dtype, np.integer):
        return float(np.count_nonzero(y != loss_fn.ignore_index))
    if isinstance(loss_fn, MSELoss):
        return float(y.size)
    return float(len(y))


# ---- the trainer for arrays -----------------------------------------------------------------------


class ArrayTrainer(Trainer):
    """Shuffled mini-batches over in-memory arrays; an epoch is one pass; checkpoints hold the permutation."""

    def __init__(self, out: Path | None, model: Layer, optimizer: Optimizer, tcfg: TrainConfig,
                 rngs: list[np.random.Generator], data: tuple[Any, ...], val: tuple[Any, ...] | None,
                 loss: Any, metrics: dict[str, Metric], batch_size: int, shuffle: bool, run_meta: dict[str, Any],
                 **kwargs: Any) -> None:
        self.x, self.y, self.lengths = data
        self.val, self.loss_fn, self.metric_fns = val, loss, metrics
        self.batch_size, self.shuffle, self.run_meta = batch_size, shuffle, run_meta
        names = [*metrics]
        cols = ["loss", *names] + (["val_loss", *(f"val_{m}" for m in names)] if val is not None else [])
        super().__init__(out, model, optimizer, tcfg, rngs, steps_per_epoch=math.ceil(len(self.x) / batch_size),
                         items_per_step=batch_size, metrics=cols, **kwargs)
        self.batch = 0                                   # next batch within the epoch
        self.perm: np.ndarray | None = None              # this epoch's sample order
        self.running = {"loss": 0.0, "n": 0.0, **{f"{k}/sum": 0.0 for k in names}, **{f"{k}/n": 0.0 for k in names}}

    def batch_loss(self) -> float:
        if self.perm is None:
            n = len(self.x)
            self.perm = self.rngs[0].permutation(n) if self.shuffle else np.arange(n)
        idx = self.perm[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
        if self.comm.size > 1:                   # this rank's share of the batch, weighted by its loss terms
            everyone = _loss_terms(self.loss_fn, self.y[idx])
            idx = idx[shard(len(idx), self.comm)]
            self.share = _loss_terms(self.loss_fn, self.y[idx]) / everyone if everyone else 0.0
            if not len(idx):
                return 0.0
        lengths = _take(self.lengths, idx)
        pred = _forward(self.model, self.x[idx], lengths)
        y = self.y[idx]
        loss = float(self.loss_fn(pred, y))
        if math.isfinite(loss):
            self.model.backward(self.loss_fn.backward())
            r = self.running
            r["loss"] += loss * len(idx)
            r["n"] += len(idx)
            for k, fn in self.metric_fns.items():
                a, c = fn(pred, y, lengths)
                r[f"{k}/sum"] += a
                r[f"{k}/n"] += c
        return loss

    def advance(self) -> None:
        self.batch += 1
        if self.batch == self.steps_per_epoch:
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
            xv, yv, lv = self.val
            out.update(evaluate(self.model, xv, yv, self.loss_fn, self.metric_fns, self.batch_size, lv,
                                prefix="val_", comm=self.comm))
        return out

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"  epoch {self.epoch}" + super().describe(metrics)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        arrays = {} if self.perm is None else {"data/perm": self.perm}
        return arrays, {"batch": self.batch, "running": self.running}, {"fit": self.run_meta}

    def load_state(self, arrays: dict[str, np.ndarray], position: dict[str, Any], meta: dict[str, Any]) -> None:
        self.batch, self.running = position["batch"], dict(position["running"])
        self.perm = arrays.get("data/perm")


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


def _warn_unshared_classes(loss_fn: Any, y: np.ndarray, yv: np.ndarray, split: float) -> None:
    """Warn when a class occurs on one side of a ``validation_split`` only: the data is likely sorted by class."""
    if not (isinstance(loss_fn, CrossEntropyLoss) and np.issubdtype(y.dtype, np.integer)):
        return
    train, val = set(np.unique(y[y >= 0]).tolist()), set(np.unique(yv[yv >= 0]).tolist())
    only_val, only_train = sorted(val - train), sorted(train - val)
    if not (only_val or only_train):
        return
    said = " and ".join(part for part in (
        f"the validation part holds class(es) {only_val[:8]} that training never sees" if only_val else "",
        f"class(es) {only_train[:8]} are never validated" if only_train else "") if part)
    warnings.warn(f"fit: validation_split={split} holds out the last {split:.0%} of the samples as they are, "
                  f"unshuffled (as Keras does), and {said}; the data looks sorted by class: shuffle it first "
                  "(p = rng.permutation(len(x)); x, y = x[p], y[p]) or pass validation_data", UserWarning,
                  stacklevel=3)


def _fingerprint(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# Settings fixed when a run starts: resuming with others would not continue the same run.
_RUN_SHAPING = ("batch_size", "shuffle", "n_train", "loss", "optimizer", "metrics", "validation_split")


def fit(model: Layer, x: Any, y: Any, loss: Any = "cross_entropy", optimizer: Optimizer | None = None,
        epochs: int | None = None, steps: int | None = None, minutes: float | None = None, batch_size: int = 32,
        validation_data: tuple[Any, ...] | None = None, validation_split: float = 0.0,
        metrics: Sequence[str | Callable[..., Any]] = (), lengths: Any = None, shuffle: bool = True,
        clip: float | None = None, schedule: str = "constant", warmup: int = 0, min_lr_frac: float = 0.1,
        eval_every: int | None = None, early_stopping: int | None = None, monitor: str | None = None,
        mode: str | None = None, min_delta: float = 0.0, restore_best_weights: bool = False,
        run_dir: str | Path | None = None, resume: bool = False, seed: int = 0, progress: bool = True,
        meta: dict[str, Any] | None = None, unit: str = "samples", distributed: bool = False) -> History:
    """Train ``model`` on ``(x, y)`` and return its History (``history.history["val_loss"]``, ...).

    Args:
        x, y: inputs and targets, samples on the first axis (N, ...).
        loss: a loss object (``lk.CrossEntropyLoss()``, ``lk.MSELoss()``) or "cross_entropy" / "mse".
        optimizer: any ``lk.optim`` optimizer over ``model.parameters()`` (default Adam, lr 1e-3).
        epochs, steps, minutes: the budget; training stops at the first one reached (default 1 epoch).
        batch_size: samples per step; the last batch of an epoch may be smaller.
        validation_data: ``(xv, yv)``, or ``(xv, yv, lengths_v)`` — required when ``lengths`` is given,
            so validation never scores padding. Or ``validation_split``: the last fraction of ``(x, y)``
            held out as it is, before any shuffling (Keras' rule); a warning says when a class falls on
            one side only (class-sorted data: shuffle it first).
        metrics: names ("accuracy", "mae", "mse") or functions ``fn(pred, y) -> float``.
        lengths: (N,) lengths of padded sequences, handed to every layer that takes them.
        shuffle: a new order each epoch, drawn from the run's generator (``seed``).
        clip: global gradient-norm clip. schedule, warmup, min_lr_frac: the LR over the budget
            ("constant", "cosine" or "step"; see ``TrainConfig``).
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

    A first Ctrl-C stops after the current step (saving when there is a ``run_dir``); a
    non-finite loss stops training with a warning, keeping the last good checkpoint.
    """
    loss_fn = _loss_fn(loss)
    fns = _metric_fns(metrics)
    x, y, lengths = _check_data(model, x, y, lengths, "fit")
    if batch_size < 1:
        raise ValueError(f"fit: batch_size must be >= 1, got {batch_size}")
    val = None
    if validation_data is not None:
        if validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, lengths_val)")
        if lengths is not None and len(validation_data) == 2:
            raise ValueError("fit: the training data has lengths but validation_data has none, so validation would "
                             "score the padding as data; pass validation_data=(x_val, y_val, lengths_val) (for "
                             "unpadded sequences, lengths_val = np.full(len(x_val), x_val.shape[1]))")
        val = _check_data(model, validation_data[0], validation_data[1],
                          validation_data[2] if len(validation_data) == 3 else None, "fit (validation_data)")
    elif validation_split:
        if not 0 < validation_split < 1:
            raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
        cut = math.ceil(len(x) * (1 - validation_split))
        if cut >= len(x) or cut < 1:
            raise ValueError(f"fit: validation_split {validation_split} of {len(x)} samples leaves no training or "
                             "no validation samples")
        val = (x[cut:], y[cut:], _take(lengths, slice(cut, None)))
        x, y, lengths = x[:cut], y[:cut], _take(lengths, slice(None, cut))
        _warn_unshared_classes(loss_fn, y, val[1], validation_split)
    if epochs is None and steps is None and minutes is None:
        epochs = 1
    tcfg = TrainConfig(steps=steps, minutes=minutes, epochs=epochs, warmup=warmup, schedule=schedule,
                       min_lr_frac=min_lr_frac, eval_every=eval_every, clip=clip, seed=seed)
    tcfg.validate()
    monitor = monitor or ("val_loss" if val is not None else "loss")
    mode = mode or ("max" if "acc" in monitor else "min")
    optimizer = optimizer if optimizer is not None else Adam(model.parameters(), lr=1e-3)
    run_meta = {"batch_size": batch_size, "shuffle": shuffle, "n_train": len(x), "loss": type(loss_fn).__name__,
                "optimizer": type(optimizer).__name__, "metrics": list(fns), "validation_split": validation_split,
                "data_sha256": _fingerprint(x, y, lengths)}
    comm = world(required=True) if distributed else Comm()
    comm.agree(run_meta, "the training data and settings")
    rngs = [np.random.default_rng(seed), *_generators(model)]
    model.train()
    trainer = ArrayTrainer(None if run_dir is None else Path(run_dir), model, optimizer, tcfg, rngs,
                           (x, y, lengths), val, loss_fn, fns, batch_size, shuffle, run_meta, monitor=monitor,
                           mode=mode, patience=early_stopping, min_delta=min_delta,
                           restore_best=restore_best_weights, comm=comm)
    trainer.meta, trainer.unit = dict(meta or {}), unit
    if run_dir is not None:
        try:
            _open_run(trainer, Path(run_dir), resume, tcfg)
        except BaseException:
            release_run(run_dir)
            raise
    reason = trainer.fit(progress=progress)
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
