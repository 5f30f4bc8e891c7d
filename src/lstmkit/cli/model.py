"""``lstmkit model summary FILE``: any model file's architecture, parameter counts and output shapes."""

from __future__ import annotations

import argparse
from typing import Any

from ..modelfile import load_model
from ..runs import RunError
from ..summary import summary


def add_parser(apps: Any) -> None:
    md = apps.add_parser("model", help="inspect a saved model file", description="saved model files")
    cmds = md.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    su = cmds.add_parser("summary", help="print a model file's architecture and parameter counts",
                         description="Print the architecture (as PyTorch does) and a Keras-style table.")
    su.add_argument("path", help="a model file (model.save) or a run's checkpoint")
    su.add_argument("--input-shape", help="one sample's shape without the batch axis, e.g. 20,8: adds output shapes")


def run(args: argparse.Namespace) -> int:
    model = load_model(args.path)
    print(repr(model))
    if args.input_shape:
        try:
            shape = tuple(int(d) for d in args.input_shape.split(","))
        except ValueError:
            raise RunError(f"--input-shape must be sizes separated by commas, e.g. 20,8; "
                              f"got {args.input_shape!r}") from None
        try:
            print(summary(model, shape))
        except ValueError as e:
            raise RunError(str(e)) from None
    else:
        print(f"Total params: {sum(p.value.size for p in model.parameters()):,}")
    return 0
