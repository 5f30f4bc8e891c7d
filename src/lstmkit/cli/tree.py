"""``lstmkit tree ...``: make boolean formulas, train, evaluate and predict with a tree LSTM."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from ..apps import tree
from . import common
from .common import Shaping, add_run, end_of_training, new_or_resumed, run_options, shaping_names, shaping_options

_SPEC: list[Shaping] = [
    ("cell", sorted(tree.CELLS), "tree cell"), ("embed", int, "token embedding size"), ("hidden", int, "cell units"),
    ("batch_size", int, "trees per step"), ("lr", float, "peak AdamW learning rate"),
    ("labels", ["all", "root"], "train on every node's label or the root's"),
    ("binarize", "flag", "split nodes with more than two children (needed for n-ary trees with --cell slstm)"),
    ("val_fraction", float, "held out when there is no dev.txt"),
    ("patience", int, "early stopping after N epochs without a better validation loss"), ("seed", int, "seed")]


def add_parser(apps: Any) -> None:
    d = tree.TreeConfig(data="")
    tp = apps.add_parser("tree", help="tree LSTMs over bracketed trees", description="S-LSTM / child-sum Tree-LSTM")
    cmds = tp.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    mb = cmds.add_parser("make-boolean", help="write random boolean formulas as labelled trees",
                         description="Write DIR/trees.txt: formulas over T/F with AND, OR, XOR, NAND; every node "
                         "labelled with its truth value.")
    mb.add_argument("--out", required=True, help="folder for trees.txt")
    mb.add_argument("--count", type=int, default=20000, help="formulas (default 20000)")
    mb.add_argument("--min-depth", type=int, default=1, help="smallest depth in operators (default 1)")
    mb.add_argument("--max-depth", type=int, default=6, help="largest depth (default 6)")
    mb.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tr = cmds.add_parser("train", help="train on a file or folder of trees, or continue with --resume",
                         description="Train on SST-style bracketed trees (DATA/trees.txt, DATA/train.txt + "
                         "dev.txt, or a file).")
    tr.add_argument("data", nargs="?", help="tree file or folder")
    run_options(tr, "runs/tree", "trees")
    shaping_options(tr, d, _SPEC)
    ev = cmds.add_parser("eval", help="root and all-node accuracy, per depth",
                         description="Score a run on a tree file or folder (trees.txt or test.txt).")
    add_run(ev)
    ev.add_argument("data", help="tree file or folder")
    ev.add_argument("--binarize", action="store_true", help="split nodes with more than two children (for an "
                    "S-LSTM run trained without --binarize)")
    pr = cmds.add_parser("predict", help="label every node of bracketed trees",
                         description="Print each tree with the model's label at every node (input labels are "
                         "placeholders).")
    add_run(pr)
    pr.add_argument("trees", nargs="+", help='bracketed trees, e.g. "(0 AND (1 T) (0 F))"')
    pr.add_argument("--binarize", action="store_true", help="split nodes with more than two children (for an "
                    "S-LSTM run trained without --binarize)")


def run(args: argparse.Namespace) -> int:
    if args.cmd == "make-boolean":
        path = tree.make(args.out, args.count, args.min_depth, args.max_depth, args.seed)
        print(f"wrote {args.count} formulas of depth {args.min_depth}..{args.max_depth} to {path}", file=sys.stderr)
        return 0
    if args.cmd == "eval":
        rep = tree.evaluate(args.run, args.data, args.binarize)
        print(f"root accuracy {rep['root_accuracy']:.4f} on {rep['trees']} trees; all-node accuracy "
              f"{rep['node_accuracy']:.4f} on {rep['nodes']} nodes")
        print(f"{'depth':>5}  {'trees':>6}  {'root acc':>8}  {'node acc':>8}")
        for r in rep["per_depth"]:
            print(f"{r['depth']:>5}  {r['trees']:>6}  {r['root']:>8.4f}  {r['nodes']:>8.4f}")
        return 0
    if args.cmd == "predict":                # the trees that can be labelled are; one error line for each other
        return common.print_each(tree.predict(args.run, args.trees, args.binarize),
                                 lambda r: f"{r[0]}\t(root {r[0].label}, p={r[1]:.3f})")
    out, cfg = new_or_resumed(args, shaping_names(_SPEC), tree.TreeConfig, "runs/tree",
                              "a tree file or folder (lstmkit tree make-boolean)")
    hist, cfg = tree.train(cfg, out, args.epochs, args.steps, args.minutes, bool(args.resume), not args.no_progress)
    losses, acc = hist.history.get("val_loss") or [math.nan], hist.history.get("val_root_accuracy") or [math.nan]
    best = int(np.nanargmin(losses)) if not np.isnan(losses).all() else 0
    return end_of_training("tree", hist.stop_reason, out, f"best validation loss {losses[best]:.4f} (root accuracy "
                           f"{acc[best]:.4f}); saved {out / 'best.npz'}")
