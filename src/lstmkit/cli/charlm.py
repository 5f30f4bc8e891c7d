"""``lstmkit charlm ...``: train, sample, score and inspect a character language model.

    lstmkit charlm train --text my.txt --out runs/my --hidden 512 --layers 2 --minutes 30
    lstmkit charlm train --resume runs/my
    lstmkit charlm sample runs/my --prompt "ROMEO:" --length 500 --temperature 0.8 --top-k 20 --seed 1
    lstmkit charlm eval runs/my --text held_out.txt
    lstmkit charlm inspect runs/my --chars 20000 --out report.html
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..apps import charlm as ct
from ..checkpoint import CheckpointError
from ..data.corpus import id_dtype
from ..data.text import Vocab, load_text, split_train_val
from ..distributed import world
from ..inspect import InspectError, charlm_report, recurrent_layers
from ..modelfile import load_model
from ..models.charlm import CharLM, CharLMConfig
from ..precision import PRECISIONS
from ..runs import RunError, run_file
from ..training import SCHEDULES
from .common import Shaping, end_of_training, fixed_settings, run_options, shaping_names, shaping_options

PRETRAINED = "pretrained/charlm_shakespeare.npz"

# Options that shape a run, with their help; they are fixed when it starts, so --resume refuses them.
# A timed budget shorter than this trains a narrower model unless --hidden is given: on a 360 kB news corpus, 3
# minutes took the 2x512 default to 3.22 bits/char (191 steps, gibberish) and 2x256 to 2.30.
SHORT_BUDGET, SHORT_HIDDEN = 10.0, 256
_DEFAULT = CharLMConfig(vocab_size=0)

_MODEL: list[Shaping] = [
    ("hidden", int, f"LSTM units per layer (with --minutes under {SHORT_BUDGET:g}: {SHORT_HIDDEN} unless given)"),
    ("layers", int, "LSTM layers"), ("embed", int, "embedding size"),
    ("dropout", float, "dropout between LSTM layers"),
    ("output_dropout", float, "dropout on the top LSTM layer's output, before the head"),
    ("input_dropout", float, "dropout on the embeddings, before the first LSTM layer"),
    ("weight_drop", float, "DropConnect on each LSTM layer's recurrent weights W_hh (AWD-LSTM)"),
    ("recurrent_dropout", float, "dropout on h_{t-1} where it enters W_hh, one mask per stream"),
    ("zoneout", float, "each step a unit of h keeps its previous value with this probability (zoneout)"),
    ("zoneout_cell", float, "the same for the cell state c"),
    ("cell", ["lstm", "layer_norm"], "the recurrent layer: LSTM, or the layer-normalised LSTM"),
    ("dtype", ["float32", "float64"], "parameter dtype")]
_TRAINING: list[Shaping] = [
    ("batch_size", int, "parallel streams B"), ("seq_len", int, "BPTT window T in characters"),
    ("lr", float, "peak AdamW learning rate"), ("warmup", int, "linear warm-up steps"),
    ("schedule", list(SCHEDULES), "decay over the budget"),
    ("weight_decay", float, "AdamW decay on matrices"), ("clip", float, "global gradient-norm clip"),
    ("seed", int, "seed for initialisation and dropout"),
    ("matmul_precision", list(PRECISIONS), "the training steps' products: medium rounds their operands "
     "to bfloat16 where the CPU has AVX512-BF16 (about 1.7x the steps), highest keeps float32"),
    ("val_chars", int, "validate on a fixed sample of N held-out characters, 0 for all (the full pass is charlm "
     "eval's)")]
DEFAULT_OUT = "runs/charlm"


def pretrained_path() -> Path:
    """The default model shipped with the package (trained with ``lstmkit charlm train``; see the README)."""
    return Path(str(resources.files("lstmkit.data").joinpath(PRETRAINED)))


def add_parser(apps: Any) -> None:
    lm = apps.add_parser("charlm", help="character language model", description="character language model")
    cmds = lm.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    defaults = SimpleNamespace(**asdict(CharLMConfig(vocab_size=0)), **asdict(ct.TrainConfig()))
    tr = cmds.add_parser("train", help="train a new run, or continue one with --resume",
                         description="Train on a UTF-8 text file (default: the bundled Shakespeare). A budget given "
                         "with --resume replaces the run's.")
    tr.add_argument("--text", help="UTF-8 text file to train on (default: the bundled Shakespeare)")
    run_options(tr, DEFAULT_OUT, "text", "10 minutes")
    tr.add_argument("--eval-every", type=int, help=f"validate and save every N steps (default {defaults.eval_every}), "
                    "and with --minutes at least every tenth of the budget")
    tr.add_argument("--distributed", action="store_true", help="data-parallel over the ranks of an MPI launch "
                    "(mpirun -n N lstmkit charlm train ...; implied when started by mpirun with N > 1)")
    shaping_options(tr, defaults, _MODEL + _TRAINING)

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
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")

    ins = cmds.add_parser("inspect", help="an HTML report of what the model's cells track",
                          description="Trace a text through a character model and write a self-contained HTML report: "
                          "a per-character heatmap of any cell, detector cells for properties of the text, span "
                          "matching, gate saturation and the loss.")
    ins.add_argument("run", nargs="?", help="run directory or .npz checkpoint (default: the bundled pretrained model)")
    ins.add_argument("--text", help="UTF-8 text file (default: the held-out part of the run's text)")
    ins.add_argument("--chars", type=int, default=20000,
                     help="characters to trace (default 20000); memory grows with it and with the model's width: "
                     "about 0.86 GB on the 2x512 default at 20000, 0.5 GB at 10000")
    ins.add_argument("--start", type=int, default=0, help="first character of the text to use (default 0)")
    ins.add_argument("--cells", type=int, default=12, help="cells to embed in the page (default 12)")
    ins.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    ins.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "sample": _sample, "inspect": _inspect, "eval": _eval}[args.cmd](args)


def _train(args: argparse.Namespace) -> int:
    given = fixed_settings(args, shaping_names(_MODEL + _TRAINING))       # (none with --resume)
    budget = {k: getattr(args, k) for k in ("epochs", "steps", "minutes") if getattr(args, k) is not None}
    text = str(Path(args.text).resolve()) if args.text else None
    comm = world(required=args.distributed)
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise RunError(f"--out {args.out} differs from --resume {args.resume}; a run resumes in place")
        trainer = ct.Trainer.resume(args.resume, source=text, eval_every=args.eval_every, comm=comm, **budget)
        if not trainer.budget_left():
            raise RunError(f"{args.resume}: the run already used its budget (step {trainer.step}, "
                           f"{trainer.elapsed / 60:.1f} min); give a larger --steps, --epochs or --minutes")
        print(f"resuming {args.resume} at step {trainer.step}", file=sys.stderr)
    else:
        model_names = shaping_names(_MODEL)
        shape = {k: given[k] for k in model_names if k in given}
        narrowed = "hidden" not in shape and budget.keys() == {"minutes"} and budget["minutes"] < SHORT_BUDGET
        if narrowed:
            shape["hidden"] = SHORT_HIDDEN           # the default's width needs ~30 minutes to pay off
        training = {k: v for k, v in given.items() if k not in model_names}
        if args.eval_every is not None:
            training["eval_every"] = args.eval_every
        source = text or ct.BUNDLED
        trainer = ct.Trainer.new(args.out or DEFAULT_OUT, source, shape,
                                 ct.TrainConfig(**training, **(budget or {"minutes": 10.0})), comm=comm)
        if narrowed:                                 # (said once the settings were accepted)
            print(f"--minutes {budget['minutes']:g}: a {trainer.model.cfg.layers}x{SHORT_HIDDEN} model (the "
                  f"{_DEFAULT.hidden}-unit default is sized for 30 minutes and reaches less in under "
                  f"{SHORT_BUDGET:g}; give --hidden to choose)", file=sys.stderr)
        n = sum(p.value.size for p in trainer.model.parameters())
        print(f"training {n:,} parameters on {ct.source_name(source)} ({len(trainer.windows)} windows of "
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


def _trained(run: str | None) -> tuple[CharLM, Vocab, dict]:
    """(model, vocabulary, meta) of a run folder or checkpoint, or of the pretrained model when None."""
    path = Path(run) if run else pretrained_path()
    model, vocab, meta, _ = ct.load_run(path)
    return model, vocab, meta


def _sample(args: argparse.Namespace) -> int:
    if args.length < 0:
        raise RunError(f"--length must be >= 0, got {args.length}")
    if args.temperature < 0:
        raise RunError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise RunError(f"--top-k must be >= 1, got {args.top_k}")
    model, vocab, _ = _trained(args.run)
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
    model, vocab, meta = _trained(args.run)
    train = meta.get("train", {})        # the run's split, streams and window, as its validation used
    if args.text:                        # (a file is read through its cache of ids: a large text streams)
        corpus, what = ct.load_corpus(str(Path(args.text).resolve())), args.text
        ids = corpus.ids                 # in the text's own vocabulary: map it onto the model's (or name what's not)
        if corpus.vocab != vocab:
            table = vocab.encode("".join(corpus.vocab.chars), what=args.text).astype(id_dtype(len(vocab)))
            ids = table[ids]
    else:
        source = meta.get("source", ct.BUNDLED)
        ids = split_train_val(ct.load_corpus(source).ids, train.get("val_fraction", 0.1))[1]
        what = f"validation part of {ct.source_name(source)}"
    nats = ct.evaluate(model, ids, train.get("batch_size", 64), train.get("seq_len", 100),
                       progress=not args.no_progress)
    print(f"{what}: {nats / ct.LN2:.4f} bits/char ({nats:.4f} nats/char) over {len(ids) - 1:,} characters, each "
          "scored with the state carried from the text's start (one pass, as charlm inspect reads it)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    if args.chars < 2 or args.start < 0:
        raise RunError(f"--chars must be >= 2 and --start >= 0, got {args.chars} and {args.start}")
    try:
        model, vocab, meta = _trained(args.run)
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
        ids = split_train_val(vocab.encode(ct.read_source(source), what=ct.source_name(source)),
                              meta.get("train", {}).get("val_fraction", 0.1))[1]
        text, what = vocab.decode(ids), f"the held-out part of {ct.source_name(source)}"
    text = text[args.start:args.start + args.chars]
    if len(text) < 2:
        raise RunError(f"{args.text or what}: only {len(text)} character(s) from --start {args.start}; the report "
                          "needs at least 2")
    name = args.run or "the pretrained Shakespeare model"
    budget = os.environ.get("LSTMKIT_INSPECT_MEMORY")
    t0 = time.perf_counter()
    rep = charlm_report(model, vocab, text, args.out, args.cells, f"{name} on {what}", progress=not args.no_progress,
                        memory_budget=int(budget) if budget else None)
    print(f"wrote {rep['path']} ({rep['bytes'] / 1024:,.0f} KB) in {time.perf_counter() - t0:.1f} s: "
          f"{len(text):,} characters at {rep['bpc']:.4f} bits/char (one pass from the first, the state carried; "
          "charlm eval on the same text gives the same figure)", file=sys.stderr)
    for feature, cell, r in rep["detections"]:
        print(f"  {feature:>16}: " + (f"{cell} (r = {r:+.2f})" if r == r else "does not occur in this text"),
              file=sys.stderr)
    return 0
