"""``lstmkit model summary FILE``: any model file's architecture, parameter counts and output shapes;
``lstmkit model export FILE --onnx OUT``: the model as an ONNX file (``lstmkit.onnx``)."""

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
    ex = cmds.add_parser("export", help="write a model file as ONNX (runs in onnxruntime)",
                         description="Write the model as an ONNX file of standard operators (opset 17); needs the "
                         "onnx package (pip install 'lstmkit[onnx]').")
    ex.add_argument("path", help="a model file (model.save) or a run's checkpoint")
    ex.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write")
    ex.add_argument("--lengths", action="store_true", help="add a 'lengths' input (int32, one per sequence)")
    ex.add_argument("--states", action="store_true", help="add the recurrent state as inputs and outputs")


def run(args: argparse.Namespace) -> int:
    model = load_model(args.path)
    if args.cmd == "export":
        from ..onnx import ExportError, export
        try:
            out = export(model, args.onnx, lengths=args.lengths, states=args.states)
        except (ExportError, ImportError) as e:
            raise RunError(str(e)) from None
        print(f"wrote {out}")
        return 0
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
