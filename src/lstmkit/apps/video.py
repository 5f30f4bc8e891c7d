"""The video classifier: folders of clips -> CNN per frame -> LSTM over frames -> class.

    lstmkit video make-synthetic --out data/moving --per-class 200
    lstmkit video train data/moving --out runs/video --frames 16 --size 32 --epochs 10
    lstmkit video predict runs/video clip.mp4
    lstmkit video eval runs/video data/moving_test
    lstmkit video train --resume runs/video

Training is ``model.fit`` on the shared loop (``lstmkit.training``): AdamW, a seeded
per-class train/validation split, validation accuracy each epoch, ``best.npz`` by
validation loss, early stopping, resume, Ctrl-C, NaN stop. The run's header
(``meta["video"]``) records the data folder, frame count, size, classes and every
setting, so ``predict``, ``eval`` and ``--resume`` need nothing but the run folder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional, modelfile
from ..data.dataset import Subset
from ..data.video import VideoError, VideoFolder, class_folders, decode
from ..distributed import Comm, launched, world
from ..fitting import fit
from ..history import History, pyplot, save_figure
from ..losses import CrossEntropyLoss
from ..models import CNNLSTM
from ..optim import AdamW, decay_groups
from ..runs import RunError, run_file
from .common import budget, open_run

FORMAT = "lstmkit-video"


@dataclass
class VideoConfig:
    """Everything a video run is made of; stored in its checkpoints."""

    data: str
    frames: int = 16
    size: list[int] = field(default_factory=lambda: [32, 32])
    grayscale: bool = False
    classes: list[str] = field(default_factory=list)
    conv_channels: list[int] = field(default_factory=lambda: [16, 32])
    features: int = 64
    hidden: int = 64
    dropout: float = 0.0
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    val_fraction: float = 0.2
    patience: int | None = 5
    seed: int = 0


def _folder(cfg: VideoConfig, root: str | None = None, progress: bool = True) -> VideoFolder:
    return VideoFolder(root or cfg.data, cfg.frames, tuple(cfg.size), cfg.grayscale, progress=progress)


def _folder_once(cfg: VideoConfig, progress: bool) -> VideoFolder:
    """The data folder; under mpirun rank 0 decodes and caches it while the others wait, then they open it."""
    comm = world() if launched() else Comm()
    ds = _folder(cfg, progress=progress) if comm.rank == 0 else None
    comm.barrier()
    return ds if ds is not None else _folder(cfg, progress=False)


def train(cfg: VideoConfig | None, out: str | Path, epochs: int | None = None, steps: int | None = None,
          minutes: float | None = None, resume: bool = False, progress: bool = True) -> tuple[History, VideoConfig]:
    """Train a new run in ``out`` from ``cfg``, or (``resume``) continue the run there with its own settings."""
    out = Path(out)
    meta = open_run(out, resume, _run_meta)
    if meta is not None:
        cfg = VideoConfig(**meta["video"])
    ds = _folder_once(cfg, progress)
    if meta is not None and ds.classes != cfg.classes:
        raise VideoError(f"{cfg.data}: its classes {ds.classes} differ from the run's {cfg.classes}")
    cfg.classes = ds.classes
    if len(ds.classes) < 2:
        raise VideoError(f"{cfg.data}: found one class folder ({ds.classes[0]}); a classifier needs at least two")
    train_idx, val_idx = ds.split(cfg.val_fraction, cfg.seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise VideoError(f"{cfg.data}: {len(ds)} clips are too few to hold out {cfg.val_fraction:.0%} for validation")
    rng = np.random.default_rng(cfg.seed)
    if meta is not None:
        model = modelfile.layer_from_config(meta[modelfile.HEADER]["architecture"], rng)
    else:
        try:
            model = CNNLSTM(len(ds.classes), 1 if cfg.grayscale else 3, tuple(cfg.size), tuple(cfg.conv_channels),
                            cfg.features, cfg.hidden, cfg.dropout, rng=rng)
        except ValueError as e:
            raise RunError(f"bad model option: {e}") from None
    opt = AdamW(decay_groups(model.parameters(), cfg.weight_decay), lr=cfg.lr)
    train_set, val_set = Subset(ds, train_idx), Subset(ds, val_idx)       # read a batch at a time from the cache
    hist = fit(model, train_set, loss=CrossEntropyLoss(), optimizer=opt, epochs=budget(epochs, steps, minutes),
               steps=steps, minutes=minutes, batch_size=cfg.batch_size,
               validation_data=val_set, metrics=["accuracy"], clip=cfg.clip,
               schedule="cosine", warmup=min(50, 2 * math.ceil(len(train_set) / cfg.batch_size)), min_lr_frac=0.05,
               early_stopping=cfg.patience, run_dir=out, resume=resume, seed=cfg.seed, progress=progress,
               meta={"app": FORMAT, "video": asdict(cfg)}, unit="clips", distributed=launched())
    return hist, cfg


def _run_meta(path: Path) -> dict[str, Any]:
    return modelfile.app_meta(path, FORMAT, "video", "video-classifier")


def load(run: str | Path) -> tuple[Any, VideoConfig]:
    """The best model of a run folder (or a checkpoint file) and its settings; model in eval mode."""
    path = run_file(run)
    meta = _run_meta(path)
    model = modelfile.load_model(path)
    try:
        return model, VideoConfig(**meta["video"])
    except TypeError as e:
        raise modelfile.ModelFileError(f"{path}: damaged video settings ({e})") from None


def probabilities(model: Any, clips: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax class probabilities (N, classes) for clips (N, T, H, W, C) in [0, 1]."""
    return functional.softmax(model.predict(clips, batch_size=batch_size), axis=-1)


def predict(run: str | Path, files: list[str], top: int = 3) -> list[tuple[str, list[tuple[str, float]]] | VideoError]:
    """(file, the ``top`` classes with their probabilities) for each video file; a file that cannot be read
    as a video (missing, damaged, a still image) gets its VideoError (which names it) instead, in its place."""
    model, cfg = load(run)
    clips: dict[int, np.ndarray] = {}
    out: list[Any] = []
    for i, f in enumerate(files):
        try:
            clips[i] = decode(f, cfg.frames, tuple(cfg.size), cfg.grayscale)
            out.append(None)                            # (filled below, once all clips are scored together)
        except VideoError as e:
            out.append(e)
    if clips:
        probs = probabilities(model, np.stack(list(clips.values())).astype(np.float32) / 255.0)
        for i, p in zip(clips, probs):
            order = np.argsort(-p, kind="stable")[:top]
            out[i] = (files[i], [(cfg.classes[k], float(p[k])) for k in order])
    return out


def evaluate(run: str | Path, data: str, png: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Accuracy, per-class precision and recall, and the confusion matrix on the clips under ``data``."""
    model, cfg = load(run)
    unknown = sorted(set(class_folders(data)) - set(cfg.classes))   # before any clip is decoded or cached
    if unknown:
        raise VideoError(f"{data}: class folders {unknown} are not among the model's classes {cfg.classes}")
    ds = _folder(cfg, data, progress)
    y = np.array([cfg.classes.index(ds.classes[c]) for c in ds.labels])
    pred = model.predict(ds, batch_size=64).argmax(axis=1)          # read a batch at a time from the cache
    K = len(cfg.classes)
    cm = np.zeros((K, K), np.int64)
    np.add.at(cm, (y, pred), 1)
    rows = []
    for k, name in enumerate(cfg.classes):
        tp, predicted, actual = cm[k, k], cm[:, k].sum(), cm[k].sum()
        rows.append({"class": name, "precision": tp / predicted if predicted else math.nan,
                     "recall": tp / actual if actual else math.nan, "clips": int(actual)})
    report = {"accuracy": float(np.trace(cm) / cm.sum()), "clips": int(cm.sum()), "per_class": rows,
              "confusion": cm.tolist(), "classes": cfg.classes}
    if png is not None:
        report["png"] = str(png) if confusion_png(cm, cfg.classes, Path(png)) else None
    return report


def confusion_png(cm: np.ndarray, classes: list[str], path: Path) -> bool:
    """Write the confusion matrix (rows: true class, columns: predicted) as a PNG; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(classes), 1 + 0.6 * len(classes)), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_title(f"accuracy {np.trace(cm) / max(1, cm.sum()):.1%} on {cm.sum()} clips")
    save_figure(fig, path)
    return True
