"""``lstmkit <app> <command>``: the command-line applications.

    lstmkit charlm train --text my.txt --out runs/my --hidden 512 --layers 2 --minutes 30
    lstmkit charlm train --resume runs/my
    lstmkit charlm sample runs/my --prompt "ROMEO:" --length 500 --temperature 0.8 --top-k 20 --seed 1
    lstmkit charlm eval runs/my --text held_out.txt
    lstmkit charlm inspect runs/my --chars 20000 --out report.html
    lstmkit model summary mine.npz --input-shape 20,8
    lstmkit video make-synthetic --out data/moving --per-class 200
    lstmkit video train data/moving --out runs/video --frames 16 --size 32 --epochs 10
    lstmkit video predict runs/video clip.mp4
    lstmkit video eval runs/video data/moving_test
    lstmkit ctc train data/strips --out runs/ctc --minutes 15
    lstmkit tree train data/bool --out runs/bool --cell slstm --epochs 10

Bad input (a missing, empty, binary or too-short text, a missing or damaged
checkpoint, a vocabulary that does not match) prints one line naming the file
and the problem and exits with status 2; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import cli_tree
from .apps import charlm_train as ct
from .apps import ctc as ctc_app
from .apps import video
from .checkpoint import CheckpointError
from .cli_common import add_run, end_of_training, fail, new_or_resumed, run_options
from .data.strips import StripError
from .data.synthetic_video import make_moving_set
from .data.text import TextError, Vocab, load_text, split_train_val
from .data.trees import TreeError
from .data.video import VideoError
from .distributed import DistributedError, launched, world
from .inspect import InspectError, charlm_report, recurrent_layers
from .modelfile import load_model, run_file
from .models.charlm import CharLM

PRETRAINED = "pretrained/charlm_shakespeare.npz"

# Options that shape a run; they are fixed when it starts, so --resume refuses them.
_RUN_SHAPING = ("hidden", "layers", "embed", "dropout", "batch_size", "seq_len", "lr", "warmup", "schedule",
                "weight_decay", "clip", "seed", "dtype")


def pretrained_path() -> Path:
    """The default model shipped with the package (trained with ``lstmkit charlm train``; see the README)."""
    return Path(str(resources.files("lstmkit.data").joinpath(PRETRAINED)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lstmkit", description="lstmkit applications")
    apps = p.add_subparsers(dest="app", required=True, metavar="APP")
    lm = apps.add_parser("charlm", help="character language model", description="character language model")
    cmds = lm.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    d = ct.TrainConfig()
    tr = cmds.add_parser("train", help="train a new run, or continue one with --resume",
                         description="Train on a UTF-8 text file (default: the bundled Shakespeare).")
    tr.add_argument("--text", help="UTF-8 text file to train on (default: the bundled Shakespeare)")
    tr.add_argument("--out", help="run directory for checkpoints, history.csv and loss.png (default: runs/charlm)")
    tr.add_argument("--resume", metavar="RUN", help="continue the run in this directory exactly where it stopped "
                    "(with its budget, or the --steps/--minutes given now)")
    tr.add_argument("--steps", type=int, help="budget: total optimizer steps")
    tr.add_argument("--minutes", type=float, help="budget: total wall-clock minutes (default 10 if no budget given)")
    tr.add_argument("--eval-every", type=int, help=f"validate and save every N steps (default {d.eval_every})")
    g = tr.add_argument_group("model and optimisation (fixed when a run starts)")
    g.add_argument("--hidden", type=int, help=f"LSTM units per layer (default {ct.DEFAULT_MODEL['hidden']})")
    g.add_argument("--layers", type=int, help=f"LSTM layers (default {ct.DEFAULT_MODEL['layers']})")
    g.add_argument("--embed", type=int, help=f"embedding size (default {ct.DEFAULT_MODEL['embed']})")
    g.add_argument("--dropout", type=float, help=f"dropout between LSTM layers (default {ct.DEFAULT_MODEL['dropout']})")
    g.add_argument("--dtype", choices=["float32", "float64"], help="parameter dtype (default float32)")
    g.add_argument("--batch-size", type=int, help=f"parallel streams B (default {d.batch_size})")
    g.add_argument("--seq-len", type=int, help=f"BPTT window T in characters (default {d.seq_len})")
    g.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {d.lr})")
    g.add_argument("--warmup", type=int, help=f"linear warm-up steps (default {d.warmup})")
    g.add_argument("--schedule", choices=["cosine", "step", "constant"], help="decay over the budget (default cosine)")
    g.add_argument("--weight-decay", type=float, help=f"AdamW decay on matrices (default {d.weight_decay})")
    g.add_argument("--clip", type=float, help=f"global gradient-norm clip (default {d.clip})")
    g.add_argument("--seed", type=int, help=f"seed for initialisation and dropout (default {d.seed})")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--distributed", action="store_true", help="data-parallel over the ranks of an MPI launch "
                    "(mpirun -n N lstmkit charlm train ...; implied when started by mpirun with N > 1)")

    sa = cmds.add_parser("sample", help="generate text from a trained model",
                         description="Generate text, streamed as it is sampled.")
    sa.add_argument("run", nargs="?", help="run directory or .npz checkpoint (default: the bundled pretrained model)")
    sa.add_argument("--prompt", default="\n", help="text to prime the model with (printed first)")
    sa.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    sa.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = more varied (default 0.8)")
    sa.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters")
    sa.add_argument("--seed", type=int, default=None, help="fixed seed: the same seed gives the same text")

    ev = cmds.add_parser("eval", help="bits per character of a model on a text",
                         description="Score a model on a text (default: the run's validation part).")
    ev.add_argument("run", nargs="?", help="run directory or .npz checkpoint (default: the bundled pretrained model)")
    ev.add_argument("--text", help="UTF-8 text file to score (default: the validation part of the run's text)")

    ins = cmds.add_parser("inspect", help="an HTML report of what the model's cells track",
                          description="Trace a text through a character model and write a self-contained HTML report: "
                          "a per-character heatmap of any cell, detector cells for properties of the text, span "
                          "matching, gate saturation and the loss.")
    ins.add_argument("run", nargs="?", help="run directory or .npz checkpoint (default: the bundled pretrained model)")
    ins.add_argument("--text", help="UTF-8 text file (default: the held-out part of the run's text)")
    ins.add_argument("--chars", type=int, default=20000, help="characters to trace (default 20000)")
    ins.add_argument("--start", type=int, default=0, help="first character of the text to use (default 0)")
    ins.add_argument("--cells", type=int, default=12, help="cells to embed in the page (default 12)")
    ins.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    ins.add_argument("--no-progress", action="store_true", help="no progress bar")

    _video_parser(apps)
    _ctc_parser(apps)
    cli_tree.add_parser(apps)

    md = apps.add_parser("model", help="inspect a saved model file", description="saved model files")
    mcmds = md.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    su = mcmds.add_parser("summary", help="print a model file's architecture and parameter counts",
                          description="Print the architecture (as PyTorch does) and a Keras-style table.")
    su.add_argument("path", help="a model file (model.save) or a run's checkpoint")
    su.add_argument("--input-shape", help="one sample's shape without the batch axis, e.g. 20,8: adds output shapes")
    return p


def _video_parser(apps: Any) -> None:
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
    g = tr.add_argument_group("data, model and optimisation (fixed when a run starts)")
    g.add_argument("--frames", type=int, help=f"frames sampled per clip (default {d.frames})")
    g.add_argument("--size", type=int, help=f"frame width and height after resizing (default {d.size[0]})")
    g.add_argument("--grayscale", action="store_true", default=None, help="one channel instead of RGB")
    g.add_argument("--hidden", type=int, help=f"LSTM units (default {d.hidden})")
    g.add_argument("--features", type=int, help=f"CNN features per frame (default {d.features})")
    g.add_argument("--batch-size", type=int, help=f"clips per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {d.lr})")
    g.add_argument("--val-fraction", type=float, help=f"held out per class (default {d.val_fraction})")
    g.add_argument("--patience", type=int, help=f"early stopping after N epochs without improvement "
                   f"(default {d.patience})")
    g.add_argument("--seed", type=int, help=f"seed for the split, initialisation and shuffling (default {d.seed})")
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


def _ctc_parser(apps: Any) -> None:
    d = ctc_app.CTCConfig(data="")
    cp = apps.add_parser("ctc", help="BiLSTM + CTC digit-strip recogniser", description="BiLSTM + CTC recogniser")
    cmds = cp.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    ms = cmds.add_parser("make-strips", help="write strips of handwritten digits", description="Write strips of "
                         "3-8 handwritten digits (strips.npz and a few example PNGs).")
    ms.add_argument("--out", required=True, help="folder for strips.npz")
    ms.add_argument("--count", type=int, default=5000, help="strips (default 5000)")
    ms.add_argument("--half", choices=["train", "test"], default="train", help="which half of the digit images "
                    "(test strips never show a training digit image; default train)")
    ms.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tr = cmds.add_parser("train", help="train on a strips folder, or continue with --resume",
                         description="Train on DATA/strips.npz.")
    tr.add_argument("data", nargs="?", help="strips folder or file")
    run_options(tr, "runs/ctc", "strips")
    g = tr.add_argument_group("model and optimisation (fixed when a run starts)")
    g.add_argument("--hidden", type=int, help=f"LSTM units per direction (default {d.hidden})")
    g.add_argument("--layers", type=int, help=f"bidirectional LSTM layers (default {d.layers})")
    g.add_argument("--batch-size", type=int, help=f"strips per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {d.lr})")
    g.add_argument("--patience", type=int, help="early stopping after N evaluations without a better CER")
    g.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    de = cmds.add_parser("decode", help="character error rate and examples on a strips folder",
                         description="Read every strip of DATA; print the CER and a few examples.")
    add_run(de)
    de.add_argument("data", help="strips folder or file")
    de.add_argument("--beam", type=int, default=1, help="prefix beam width (1: best path; default 1)")
    pr = cmds.add_parser("predict", help="read digits from image files", description="Read strips: PNG or .npy.")
    add_run(pr)
    pr.add_argument("files", nargs="+", help="strip images, 20 pixels high")
    pr.add_argument("--beam", type=int, default=1, help="prefix beam width (default 1)")


_CTC_SHAPING = ("hidden", "layers", "batch_size", "lr", "patience", "seed")


def _ctc(args: argparse.Namespace) -> int:
    if args.cmd == "make-strips":
        path = ctc_app.make(args.out, args.count, args.half, args.seed)
        print(f"wrote {args.count} strips to {path}", file=sys.stderr)
        return 0
    if getattr(args, "beam", 1) < 1:
        raise ct.RunError(f"--beam must be >= 1, got {args.beam}")
    if args.cmd == "predict":
        for f, digits in ctc_app.predict(args.run, args.files, args.beam):
            print(f"{f}: {digits}")
        return 0
    if args.cmd == "decode":
        rep = ctc_app.decode(args.run, args.data, args.beam)
        print(f"character error rate {rep['cer']:.4f}; {rep['exact']:.1%} of {rep['strips']} strips read exactly")
        for img, truth, read in rep["examples"]:
            print(ctc_app.text_art(img))
            print(f"truth {''.join(map(str, truth))}  read {''.join(map(str, read))}\n")
        return 0
    out, cfg = new_or_resumed(args, _CTC_SHAPING, ctc_app.CTCConfig, "runs/ctc",
                              "the strips folder (lstmkit ctc make-strips)")
    hist, cfg = ctc_app.train(cfg, out, args.epochs, args.steps, args.minutes, bool(args.resume),
                              not args.no_progress)
    cer = hist.history.get("val_cer") or [math.nan]
    return end_of_training("ctc", hist.stop_reason, out, f"best validation CER {min(cer):.4f}; saved "
                            f"{out / 'best.npz'}")


_VIDEO_SHAPING = ("frames", "size", "grayscale", "hidden", "features", "batch_size", "lr", "val_fraction",
                  "patience", "seed")


def _video(args: argparse.Namespace) -> int:
    if args.cmd == "make-synthetic":
        classes = make_moving_set(args.out, args.per_class, args.frames, args.size, args.seed)
        print(f"wrote {args.per_class} clips of each of {', '.join(classes)} to {args.out}", file=sys.stderr)
        return 0
    if args.cmd == "predict":
        if args.top < 1:
            raise ct.RunError(f"--top must be >= 1, got {args.top}")
        for f, best in video.predict(args.run, args.files, args.top):
            print(f"{f}: " + ", ".join(f"{name} {p:.3f}" for name, p in best))
        return 0
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

    out, cfg = new_or_resumed(args, _VIDEO_SHAPING, config, "runs/video", "the data folder (DATA/<class>/<videos>)")
    hist, cfg = video.train(cfg, out, args.epochs, args.steps, args.minutes, resume=bool(args.resume),
                            progress=not args.no_progress)
    acc = hist.history.get("val_accuracy") or [math.nan]
    return end_of_training("video", hist.stop_reason, out, f"best validation accuracy {max(acc):.4f} over "
                            f"{len(cfg.classes)} classes; saved {out / 'best.npz'}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if launched():                         # under mpirun: rank 0 speaks for the job, the others stay quiet
        try:
            rank = world().rank
        except DistributedError as e:
            return fail(str(e))
        if rank and getattr(args, "cmd", None) != "train":
            return 0                       # only training is data-parallel: anything else runs once, on rank 0
        if rank:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                return _dispatch(args)
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.app == "model":
            return _model_summary(args)
        if args.app == "video":
            return _video(args)
        if args.app == "ctc":
            return _ctc(args)
        if args.app == "tree":
            return cli_tree.run(args)
        if args.cmd == "train":
            return _train(args)
        if args.cmd == "sample":
            return _sample(args)
        if args.cmd == "inspect":
            return _inspect(args)
        return _eval(args)
    except (TextError, CheckpointError, ct.RunError, VideoError, StripError, TreeError, InspectError,
            DistributedError) as e:
        return fail(str(e))
    except OSError as e:                   # e.g. an unwritable --out: name the path, no traceback
        return fail(f"{e.filename or ''}: {e.strerror or e}")


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k in _RUN_SHAPING if getattr(args, k) is not None]
        if given:
            raise ct.RunError(f"{args.resume}: {', '.join(given)} cannot change when resuming "
                              "(the run keeps the settings it started with)")
        if args.out and Path(args.out) != Path(args.resume):
            raise ct.RunError(f"--out {args.out} differs from --resume {args.resume}; a run resumes in place")
        text = str(Path(args.text).resolve()) if args.text else None
        trainer = ct.Trainer.resume(args.resume, source=text, steps=args.steps, minutes=args.minutes,
                                    eval_every=args.eval_every, comm=world(required=args.distributed))
        if not trainer.budget_left():
            raise ct.RunError(f"{args.resume}: the run already used its budget (step {trainer.step}, "
                              f"{trainer.elapsed / 60:.1f} min); give a larger --steps or --minutes")
        print(f"resuming {args.resume} at step {trainer.step}", file=sys.stderr)
    else:
        mcfg = {k: v for k, v in [("hidden", args.hidden), ("layers", args.layers), ("embed", args.embed),
                                  ("dropout", args.dropout), ("dtype", args.dtype)] if v is not None}
        mcfg = {**ct.DEFAULT_MODEL, **mcfg}
        tkw = {k: getattr(args, k) for k in ("batch_size", "seq_len", "lr", "warmup", "schedule", "weight_decay",
                                              "clip", "seed", "steps", "minutes", "eval_every")
               if getattr(args, k) is not None}
        if args.steps is None and args.minutes is None:
            tkw["minutes"] = 10.0
        source = str(Path(args.text).resolve()) if args.text else ct.BUNDLED
        trainer = ct.Trainer.new(args.out or "runs/charlm", source, mcfg, ct.TrainConfig(**tkw),
                                 comm=world(required=args.distributed))
        n = sum(p.value.size for p in trainer.model.parameters())
        print(f"training {n:,} parameters on {ct._name(source)} ({len(trainer.windows)} windows of "
              f"{trainer.tcfg.batch_size}x{trainer.tcfg.seq_len} per pass) -> {trainer.out}", file=sys.stderr)
    if trainer.comm.size > 1:
        print(f"data-parallel over {trainer.comm.size} processes: {trainer.sync.nbytes / 1e6:.1f} MB of gradients "
              "all-reduced per step", file=sys.stderr)
    reason = trainer.fit(progress=not args.no_progress)
    out = trainer.out
    best = trainer.history.best("val_loss")
    scored = (f"best validation {best / ct.LN2:.3f} bits/char ({best:.3f} nats)" if math.isfinite(best)
              else "not validated yet")
    saved = " and ".join(str(out / f) for f in ("latest.npz", "best.npz") if (out / f).is_file())
    return end_of_training("charlm", reason, out, f"step {trainer.step}: {scored}; saved {saved}",
                            f" at step {trainer.step + 1}", "--lr or --clip")


def _model_summary(args: argparse.Namespace) -> int:
    model = load_model(args.path)
    print(repr(model))
    if args.input_shape:
        try:
            shape = tuple(int(d) for d in args.input_shape.split(","))
        except ValueError:
            raise ct.RunError(f"--input-shape must be sizes separated by commas, e.g. 20,8; "
                              f"got {args.input_shape!r}") from None
        try:
            model.summary(shape)
        except ValueError as e:
            raise ct.RunError(str(e)) from None
    else:
        print(f"Total params: {sum(p.value.size for p in model.parameters()):,}")
    return 0


def _load(run: str | None) -> tuple[CharLM, Vocab, dict]:
    path = Path(run) if run else pretrained_path()
    model, vocab, meta, _ = ct.load_model(path)
    return model, vocab, meta


def _sample(args: argparse.Namespace) -> int:
    if args.length < 0:
        raise ct.RunError(f"--length must be >= 0, got {args.length}")
    if args.temperature < 0:
        raise ct.RunError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise ct.RunError(f"--top-k must be >= 1, got {args.top_k}")
    model, vocab, _ = _load(args.run)
    vocab.encode(args.prompt, what="the prompt")
    rng = np.random.default_rng(args.seed)
    out = sys.stdout
    out.write(args.prompt)
    out.flush()

    def emit(ch: str) -> None:
        out.write(ch)
        out.flush()

    model.generate(vocab, args.prompt, args.length, rng, args.temperature, args.top_k, on_char=emit)
    out.write("\n")
    return 0


def _eval(args: argparse.Namespace) -> int:
    model, vocab, meta = _load(args.run)
    train = meta.get("train", {})        # the run's split, streams and window, as its validation used
    if args.text:
        ids, what = vocab.encode(load_text(args.text), what=args.text), args.text
    else:
        source = meta.get("source", ct.BUNDLED)
        text = ct.read_source(source)
        ids = split_train_val(vocab.encode(text, what=ct._name(source)), train.get("val_fraction", 0.1))[1]
        what = f"validation part of {ct._name(source)}"
    nats = ct.evaluate(model, ids, train.get("batch_size", 64), train.get("seq_len", 100))
    print(f"{what}: {nats / ct.LN2:.4f} bits/char ({nats:.4f} nats/char) over {len(ids) - 1:,} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _inspect(args: argparse.Namespace) -> int:
    if args.chars < 2 or args.start < 0:
        raise ct.RunError(f"--chars must be >= 2 and --start >= 0, got {args.chars} and {args.start}")
    try:
        model, vocab, meta = _load(args.run)
    except CheckpointError:
        if args.run is None:
            raise
        try:                                   # some other model file: say whether it has anything to inspect
            other = load_model(run_file(args.run))
        except (CheckpointError, ValueError):
            raise CheckpointError(f"{args.run}: not a character-LM run or lstmkit model file") from None
        if not recurrent_layers(other):
            raise InspectError(f"{args.run}: the model holds no recurrent layer (LSTM, GRU or SimpleRNN); there is "
                               "nothing to inspect") from None
        raise InspectError(f"{args.run}: not a character-LM run; charlm inspect needs a character model and its "
                           "vocabulary") from None
    if args.text:
        text, what = load_text(args.text), args.text
    else:
        source = meta.get("source", ct.BUNDLED)
        ids = split_train_val(vocab.encode(ct.read_source(source), what=ct._name(source)),
                              meta.get("train", {}).get("val_fraction", 0.1))[1]
        text, what = vocab.decode(ids), f"the held-out part of {ct._name(source)}"
    text = text[args.start:args.start + args.chars]
    if len(text) < 2:
        raise ct.RunError(f"{args.text or what}: only {len(text)} character(s) from --start {args.start}; the report "
                          "needs at least 2")
    name = args.run or "the pretrained Shakespeare model"
    budget = os.environ.get("LSTMKIT_INSPECT_MEMORY")
    t0 = time.perf_counter()
    rep = charlm_report(model, vocab, text, args.out, args.cells, f"{name} on {what}", progress=not args.no_progress,
                        memory_budget=int(budget) if budget else None)
    print(f"wrote {rep['path']} ({rep['bytes'] / 1024:,.0f} KB) in {time.perf_counter() - t0:.1f} s: "
          f"{len(text):,} characters at {rep['bpc']:.3f} bits/char", file=sys.stderr)
    for feature, cell, r in rep["detections"]:
        print(f"  {feature:>16}: " + (f"{cell} (r = {r:+.2f})" if r == r else "does not occur in this text"),
              file=sys.stderr)
    return 0
