"""``lstmkit video ...``: make a synthetic set, train, predict and evaluate a CNN+LSTM video classifier.

    lstmkit video make-synthetic --out data/moving --per-class 200
    lstmkit video train data/moving --out runs/video --frames 16 --size 32 --epochs 10
    lstmkit video predict runs/video clip.mp4
    lstmkit video eval runs/video data/moving_test
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ..apps import video
from ..data.synthetic_video import make_moving_set
from ..runs import RunError
from . import common
from .common import Shaping, add_run, end_of_training, new_or_resumed, run_options, shaping_names, shaping_options

_SPEC: list[Shaping] = [
    ("frames", int, "frames sampled per clip"),
    ("size", int, f"frame width and height after resizing (default {video.VideoConfig(data='').size[0]})"),
    ("grayscale", "flag", "one channel instead of RGB"), ("hidden", int, "LSTM units"),
    ("features", int, "CNN features per frame"), ("batch_size", int, "clips per step"),
    ("lr", float, "peak AdamW learning rate"), ("val_fraction", float, "held out per class"),
    ("patience", int, "early stopping after N epochs without improvement"),
    ("seed", int, "seed for the split, initialisation and shuffling")]


def add_parser(apps: Any) -> None:
    d = video.VideoConfig(data="")
    vp = apps.add_parser("video", help="CNN+LSTM video classifier", description="CNN+LSTM video classifier")
    cmds = vp.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    ms = cmds.add_parser("make-synthetic", help="write a synthetic moving-digits set of .mp4 clips",
                         description="Render digits moving six ways and write them as .mp4, one folder per class.")
    ms.add_argument("--out", required=True, help="folder to create (must be new or empty)")
    ms.add_argument("--per-class", type=int, default=200, help="clips per class (default 200)")
    ms.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    ms.add_argument("--size", type=int, default=32, help="frame width and height (default 32)")
    ms.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tr = cmds.add_parser("train", help="train on a folder of class folders, or continue with --resume",
                         description="Train on DATA/<class>/<videos> (any format FFmpeg reads).")
    tr.add_argument("data", nargs="?", help="folder with one sub-folder of clips per class")
    run_options(tr, "runs/video", "clips")
    shaping_options(tr, d, _SPEC, "data, model and optimisation (fixed when a run starts)")
    pr = cmds.add_parser("predict", help="top classes of video files", description="Classify video files.")
    add_run(pr)
    pr.add_argument("files", nargs="+", help="video files")
    pr.add_argument("--top", type=int, default=3, help="classes to show per file (default 3)")
    ev = cmds.add_parser("eval", help="accuracy, per-class report and confusion matrix on a folder",
                         description="Score a run on DATA/<class>/<videos>; writes a confusion-matrix PNG.")
    add_run(ev)
    ev.add_argument("data", help="folder with one sub-folder of clips per class")
    ev.add_argument("--png", help="confusion-matrix image (default RUN/confusion.png)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.cmd == "make-synthetic":
        classes = make_moving_set(args.out, args.per_class, args.frames, args.size, args.seed)
        print(f"wrote {args.per_class} clips of each of {', '.join(classes)} to {args.out}", file=sys.stderr)
        return 0
    if args.cmd == "predict":
        if args.top < 1:
            raise RunError(f"--top must be >= 1, got {args.top}")
        return common.print_each(video.predict(args.run, args.files, args.top),
                                 lambda r: f"{r[0]}: " + ", ".join(f"{name} {p:.3f}" for name, p in r[1]))
    if args.cmd == "eval":
        run = Path(args.run)
        png = args.png or (run if run.is_dir() else run.parent) / "confusion.png"
        rep = video.evaluate(args.run, args.data, png, progress=not args.no_progress)
        print(f"accuracy {rep['accuracy']:.4f} on {rep['clips']} clips")
        print(f"{'class':>12}  precision  recall  clips")
        for r in rep["per_class"]:
            print(f"{r['class']:>12}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['clips']:5d}")
        print(f"confusion matrix: {rep['png']}" if rep["png"] else "no confusion.png (matplotlib is not installed; "
              "pip install 'lstmkit[plot]')")
        return 0
    return _video_train(args)


def _video_train(args: argparse.Namespace) -> int:
    def config(size: int | None = None, **given: Any) -> video.VideoConfig:
        return video.VideoConfig(**given, **({} if size is None else {"size": [size, size]}))

    out, cfg = new_or_resumed(args, shaping_names(_SPEC), config, "runs/video",
                              "the data folder (DATA/<class>/<videos>)")
    hist, cfg = video.train(cfg, out, args.epochs, args.steps, args.minutes, resume=bool(args.resume),
                            progress=not args.no_progress)
    acc = hist.history.get("val_accuracy") or [math.nan]
    return end_of_training("video", hist.stop_reason, out, f"best validation accuracy {max(acc):.4f} over "
                            f"{len(cfg.classes)} classes; saved {out / 'best.npz'}")
