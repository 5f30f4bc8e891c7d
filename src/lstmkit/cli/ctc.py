"""``lstmkit ctc ...``: make data folders, train, decode, predict and listen with a (Bi)LSTM + CTC recogniser.

    lstmkit ctc make-strips --out data/strips --count 5000
    lstmkit ctc make-digits --out data/digits --count 4000
    lstmkit ctc train data/strips --out runs/ctc --minutes 15
    lstmkit ctc decode runs/ctc data/strips_test --beam 10 --lm runs/lm
    lstmkit ctc predict runs/ctc line.png
    lstmkit ctc listen runs/ctc recording.wav
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..apps import ctc as ctc_app
from ..runs import RunError
from . import common
from .common import Shaping, add_run, end_of_training, new_or_resumed, run_options, shaping_names, shaping_options

_SPEC: list[Shaping] = [("hidden", int, "LSTM units per direction"), ("layers", int, "LSTM layers"),
                        ("unidirectional", "flag", "a forward-only LSTM (it can listen: stream audio)"),
                        ("height", int, "rows an image is scaled to (images only)"),
                        ("spec_augment", int, "SpecAugment: this many frequency and time masks a training "
                         "example (default 0: off)"),
                        ("batch_size", int, "examples per step"), ("lr", float, "peak AdamW learning rate"),
                        ("val_fraction", float, "examples held out when the table has no split column"),
                        ("patience", int, "early stopping after N evaluations without a better CER"),
                        ("seed", int, "seed")]
_NEED = "a data folder (a transcripts table and its files; lstmkit ctc make-strips or make-digits make one)"


def _make_parser(cmds: Any, name: str, what: str, kind: str) -> None:
    ms = cmds.add_parser(name, help=f"write a data folder of {what}", description=f"Write a data folder of {what} "
                         "with its transcripts.tsv (its split column keeps validation examples from sharing a source "
                         "with training).")
    ms.add_argument("--out", required=True, help="a new folder")
    ms.add_argument("--count", type=int, default=5000, help="examples (default 5000)")
    ms.add_argument("--half", choices=["train", "test"], default="train", help="train (train and val rows) or test "
                    "(from sources no training folder uses; default train)")
    ms.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    if kind == "digits":
        ms.add_argument("--text", help="a file of digit strings, one a line: each example says one of them "
                        "(default: 2-7 random digits)")
    ms.set_defaults(kind=kind, text=None)


def _decoding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=1, help="prefix beam width (1: best path; default 1)")
    p.add_argument("--lm", help="a character LM run (lstmkit charlm train) scored in the beam")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the LM's log-probability (default 0.5)")
    p.add_argument("--beta", type=float, default=1.0, help="bonus a character with the LM (default 1.0)")


def add_parser(apps: Any) -> None:
    d = ctc_app.CTCConfig(data="")
    cp = apps.add_parser("ctc", help="(Bi)LSTM + CTC recogniser of images or audio with transcripts",
                         description="(Bi)LSTM + CTC recogniser")
    cmds = cp.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _make_parser(cmds, "make-strips", "strips of 3-8 handwritten digits (PNG)", "strips")
    _make_parser(cmds, "make-digits", "connected spoken digits (2-7 real FSDD recordings' MFCCs, .npy)", "digits")
    tr = cmds.add_parser("train", help="train on a data folder, or continue with --resume",
                         description="Train on DATA: a folder with transcripts.tsv (file, text[, split]) naming "
                         "images, audio files or .npy frame arrays.")
    tr.add_argument("data", nargs="?", help="data folder (or its transcripts table)")
    run_options(tr, "runs/ctc", "examples")
    shaping_options(tr, d, _SPEC)
    de = cmds.add_parser("decode", help="character error rate and examples on a data folder",
                         description="Read every example of DATA (its test rows, where it has a split column); "
                         "print the character error rate and a few examples.")
    add_run(de)
    de.add_argument("data", help="data folder (or its transcripts table)")
    de.add_argument("--split", choices=["train", "val", "test"], help="read only these rows of the table (default: "
                    "its test rows where it has some, else all)")
    _decoding_options(de)
    pr = cmds.add_parser("predict", help="read files", description="Read images or audio files (the kind the run "
                         "was trained on) and print each one's transcript.")
    add_run(pr)
    pr.add_argument("files", nargs="+", help="images, audio files or .npy frame arrays")
    _decoding_options(pr)
    li = cmds.add_parser("listen", help="stream an audio file through a unidirectional run",
                         description="Feed an audio file a chunk at a time, as if recorded live; print the "
                         "transcript as it grows (the last line equals predict's best path).")
    add_run(li)
    li.add_argument("file", help="an audio file")
    li.add_argument("--chunk", type=float, default=0.1, help="seconds a chunk (default 0.1)")


def run(args: argparse.Namespace) -> int:
    if args.cmd in ("make-strips", "make-digits"):
        path = ctc_app.make(args.out, args.count, args.half, args.seed, args.kind, args.text)
        print(f"wrote {args.count} examples and {path}", file=sys.stderr)
        return 0
    if getattr(args, "beam", 1) < 1:
        raise RunError(f"--beam must be >= 1, got {args.beam}")
    if args.cmd == "predict":
        return common.print_each(ctc_app.predict(args.run, args.files, args.beam, args.lm, args.alpha, args.beta),
                                 lambda r: f"{r[0]}: {r[1]}")
    if args.cmd == "listen":
        for text in ctc_app.listen(args.run, args.file, args.chunk):
            print(text, flush=True)
        return 0
    if args.cmd == "decode":
        rep = ctc_app.decode(args.run, args.data, args.beam, args.lm, args.alpha, args.beta, split=args.split)
        print(f"character error rate {rep['cer']:.4f}; {rep['exact']:.1%} of {rep['examples_read']} examples read "
              "exactly")
        for name, truth, read in rep["examples"]:
            print(f"{name}: truth {truth!r}  read {read!r}")
        return 0
    out, cfg = new_or_resumed(args, shaping_names(_SPEC), _config, "runs/ctc", _NEED)
    hist, cfg = ctc_app.train(cfg, out, args.epochs, args.steps, args.minutes, bool(args.resume),
                              not args.no_progress)
    cer = hist.history.get("val_cer") or [math.nan]
    return end_of_training("ctc", hist.stop_reason, out, f"best validation CER {min(cer):.4f}; saved "
                            f"{out / 'best.npz'}")


def _config(unidirectional: bool | None = None, **kw: Any) -> ctc_app.CTCConfig:
    return ctc_app.CTCConfig(**kw, bidirectional=not unidirectional)
