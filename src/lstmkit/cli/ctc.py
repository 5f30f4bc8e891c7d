"""``lstmkit ctc ...``: make digit strips, train, decode and predict with a BiLSTM + CTC recogniser.

    lstmkit ctc make-strips --out data/strips --count 5000
    lstmkit ctc train data/strips --out runs/ctc --minutes 15
    lstmkit ctc decode runs/ctc data/strips_test --beam 8
    lstmkit ctc predict runs/ctc strip.png
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

_SPEC: list[Shaping] = [("hidden", int, "LSTM units per direction"), ("layers", int, "bidirectional LSTM layers"),
                        ("batch_size", int, "strips per step"), ("lr", float, "peak AdamW learning rate"),
                        ("patience", int, "early stopping after N evaluations without a better CER"),
                        ("seed", int, "seed")]


def add_parser(apps: Any) -> None:
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
    shaping_options(tr, d, _SPEC)
    de = cmds.add_parser("decode", help="character error rate and examples on a strips folder",
                         description="Read every strip of DATA; print the CER and a few examples.")
    add_run(de)
    de.add_argument("data", help="strips folder or file")
    de.add_argument("--beam", type=int, default=1, help="prefix beam width (1: best path; default 1)")
    pr = cmds.add_parser("predict", help="read digits from image files", description="Read strips: any image file "
                        "Pillow reads (PNG, JPEG, TIFF, ...) or .npy; scaled to 20 pixels high.")
    add_run(pr)
    pr.add_argument("files", nargs="+", help="strip images (light or dark ink; any height)")
    pr.add_argument("--beam", type=int, default=1, help="prefix beam width (default 1)")




def run(args: argparse.Namespace) -> int:
    if args.cmd == "make-strips":
        path = ctc_app.make(args.out, args.count, args.half, args.seed)
        print(f"wrote {args.count} strips to {path}", file=sys.stderr)
        return 0
    if getattr(args, "beam", 1) < 1:
        raise RunError(f"--beam must be >= 1, got {args.beam}")
    if args.cmd == "predict":
        return common.print_each(ctc_app.predict(args.run, args.files, args.beam), lambda r: f"{r[0]}: {r[1]}")
    if args.cmd == "decode":
        rep = ctc_app.decode(args.run, args.data, args.beam)
        print(f"character error rate {rep['cer']:.4f}; {rep['exact']:.1%} of {rep['strips']} strips read exactly")
        for img, truth, read in rep["examples"]:
            print(ctc_app.text_art(img))
            print(f"truth {''.join(map(str, truth))}  read {''.join(map(str, read))}\n")
        return 0
    out, cfg = new_or_resumed(args, shaping_names(_SPEC), ctc_app.CTCConfig, "runs/ctc",
                              "the strips folder (lstmkit ctc make-strips)")
    hist, cfg = ctc_app.train(cfg, out, args.epochs, args.steps, args.minutes, bool(args.resume),
                              not args.no_progress)
    cer = hist.history.get("val_cer") or [math.nan]
    return end_of_training("ctc", hist.stop_reason, out, f"best validation CER {min(cer):.4f}; saved "
                            f"{out / 'best.npz'}")
