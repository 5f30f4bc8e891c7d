"""Training, evaluation and run directories for the character language model.

The loop itself (budget, schedule, progress bar, checkpoints, resume, Ctrl-C,
NaN stop, history and plot) is ``lstmkit.training.Trainer``; this module adds
only what is special to text: the vocabulary, B parallel streams cut into
truncated-BPTT windows, the LSTM state carried from one window to the next (``lstmkit.tbptt``, as ``fit``),
and losses in bits per character. A run directory holds::

    latest.npz    everything needed to continue: weights, AdamW moments, step, data
                  position, the carried LSTM state, the RNG state, the loss history
    best.npz      the weights with the lowest validation loss so far (for sampling)
    history.csv   step, elapsed seconds, lr, train loss, validation loss (nats and bits per char)
    loss.png      the loss curves (needs the optional ``plot`` extra: matplotlib)

Resuming restores every piece of state, so a run stopped at step k and resumed
ends bit-for-bit where the uninterrupted run would (for ``--steps`` budgets; a
``--minutes`` budget depends on the clock by nature).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import checkpoint, modelfile, training
from ..checkpoint import CheckpointError
from ..data.corpus import Corpus, from_text, open_corpus
from ..data.text import TextError, Vocab, Windows, bundled_shakespeare, load_text, split_train_val
from ..distributed import Comm, DistributedError, shard
from ..losses import CrossEntropyLoss
from ..models.charlm import CharLM, CharLMConfig
from ..optim import AdamW, decay_groups
from ..runs import RunError, check_run_dir, run_file
from ..tbptt import StateCarry

FORMAT = "lstmkit-charlm"
VERSION = 1
BUNDLED = "bundled:shakespeare"
LN2 = math.log(2.0)


@dataclass
class TrainConfig(training.TrainConfig):
    """How a char-LM run trains (the model's shape is ``CharLMConfig``); budget and schedule as the base."""

    batch_size: int = 32          # B parallel streams
    seq_len: int = 64             # T characters per truncated-BPTT window
    lr: float = 3e-3
    warmup: int = 50              # linear warm-up steps
    schedule: str = "cosine"      # cosine | linear | step | constant, over the budget
    min_lr_frac: float = 0.0      # the cosine ends at this fraction of lr
    weight_decay: float = 0.25    # AdamW, on matrices only (not biases)
    clip: float | None = 1.0      # global gradient-norm clip
    eval_every: int | None = 500  # validate (and save latest) every N steps
    val_fraction: float = 0.1
    val_chars: int = 65536        # validate on a fixed sample of this many held-out characters (0: all of them)
    shift_windows: bool = True    # each pass after the first cut from a random offset in [0, seq_len)
    matmul_precision: str = "medium"  # bfloat16 products in training where the CPU has them (lstmkit.precision)

    def checks(self) -> list[tuple[bool, str]]:
        return [(self.batch_size >= 1, "batch size must be >= 1"), (self.seq_len >= 1, "seq-len must be >= 1"),
                (self.lr > 0, "lr must be > 0"), (self.weight_decay >= 0, "weight decay must be >= 0"),
                (0 < self.val_fraction < 1, "val fraction must be in (0, 1)"),
                (self.val_chars >= 0, "val-chars must be >= 0"),
                *super().checks()]


# ---- text sources --------------------------------------------------------------


def read_source(source: str) -> str:
    """The text of ``source``: a file path, or ``bundled:shakespeare``."""
    return bundled_shakespeare() if source == BUNDLED else load_text(source)


def load_corpus(source: str, cache_dir: Path | None = None) -> Corpus:
    """The ids of ``source``: the bundled text in memory, a file through its cache of ids (``data.corpus``)."""
    return from_text(bundled_shakespeare()) if source == BUNDLED else open_corpus(source, cache_dir)


# ---- evaluation ----------------------------------------------------------------


IGNORE = -100                     # CrossEntropyLoss's default ignore_index: the padding of the last stream


def evaluate(model: CharLM, ids: np.ndarray, batch_size: int = 64, seq_len: int = 100, comm: Comm | None = None,
             warm: int = 200, limit: int | None = None, progress: bool = False) -> float:
    """Mean next-character loss in nats over the characters of ``ids`` (N,) after the first, as if read in
    one pass from the start with the state carried (what ``charlm inspect`` reports), but in parallel.

    The text is cut into up to ``batch_size`` contiguous streams (the last one padded, its padding not
    scored). Every stream but the first is first run, unscored, over the ``warm`` characters before it,
    so no scored character sees a cold state that one pass would not (the first starts cold, as one pass
    does). ``limit`` scores a fixed sample of about that many characters instead: the streams, shorter,
    spread evenly over the text (each warmed the same way). No dropout. With ``comm`` (a distributed
    run) each rank scores its share of the streams.
    """
    n = len(ids) - 1
    if n < 1:
        raise TextError("evaluation text needs at least 2 characters")
    sample = limit is not None and 0 < limit < n
    B = max(1, min(batch_size, (limit if sample else n) // seq_len))
    L = limit // B if sample else -(-n // B)               # each stream's length (the last may run past the end)
    starts = np.round(np.linspace(0, n - L, B)).astype(np.int64) if sample else L * np.arange(B)
    W = min(warm, int(starts[1])) if B > 1 else 0
    comm = comm if comm is not None else Comm()
    mine = np.arange(B)[shard(B, comm)]                    # this rank's streams

    def window(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets at offsets [a, b) of every stream (negative: the warm-up before it); read
        window by window, so a full pass over a memory-mapped text holds one window."""
        pos = starts[mine, None] + np.arange(a, b)[None, :]
        x = np.asarray(ids[np.clip(pos, 0, n - 1)], np.int64)
        return x, np.where(pos < n, np.asarray(ids[np.clip(pos + 1, 0, n)], np.int64), IGNORE)

    loss_fn = CrossEntropyLoss(reduction="sum")
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        if W and len(mine):                                # (in windows of seq_len: one shape, one workspace)
            for s in range(-W, 0, seq_len):
                _, state = model.forward(window(s, min(s + seq_len, 0))[0], state)
            for part in state:                             # the text's first stream starts cold
                part[:, mine == 0] = 0
        for s in tqdm(range(0, L if len(mine) else 0, seq_len), unit="window", disable=not progress,
                      desc="scoring"):
            x, y = window(s, min(s + seq_len, L))
            logits, state = model.forward(x, state)
            total += float(loss_fn(logits, y))
            count += int(np.count_nonzero(y != IGNORE))
    finally:
        model.train(was_training)
    scored = comm.allreduce_(np.array([total, float(count)]))
    return float(scored[0] / scored[1])


# ---- run directories -----------------------------------------------------------


def _model_meta(model: CharLM, vocab: Vocab) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "model": model.cfg.to_dict(), "vocab": vocab.to_json(),
            **modelfile.model_header(model)}


def save_weights(path: Path, model: CharLM, vocab: Vocab, extra: dict[str, Any]) -> None:
    """A weights-only checkpoint (what ``best.npz`` and the pretrained model are)."""
    checkpoint.save(path, modelfile.model_arrays(model), {**_model_meta(model, vocab), **extra})


def load_run(path: str | Path, rng: np.random.Generator | None = None
             ) -> tuple[CharLM, Vocab, dict[str, Any], dict[str, np.ndarray]]:
    """Load a char-LM checkpoint file or run directory (its ``best.npz``, else ``latest.npz``).

    Returns (model in eval mode, vocabulary, meta, all arrays); the model's dropout
    draws from ``rng``. Anything that is not a usable char-LM checkpoint raises
    CheckpointError naming the file.
    """
    path = run_file(path)
    arrays, meta = checkpoint.load(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a character-LM checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')} (this lstmkit reads {VERSION})")
    # Files from before the generic model header (the shipped model among them) describe the CharLM alone.
    arch = None if modelfile.HEADER in meta else {"class": "CharLM", "config": meta.get("model")}
    model = modelfile.build_model(path, arrays, meta, np.random.default_rng(0) if rng is None else rng, arch)
    try:
        vocab = Vocab.from_json(meta["vocab"])
        if not isinstance(model, CharLM) or len(vocab) != model.cfg.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} characters but the model expects "
                             f"{getattr(getattr(model, 'cfg', None), 'vocab_size', '?')}")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged character-LM checkpoint ({type(e).__name__}: {e})") from None
    model.eval()
    return model, vocab, meta, arrays


# ---- the trainer ---------------------------------------------------------------


class Trainer(training.Trainer):
    """One char-LM run: the shared loop plus text windows and the carried state.

    Build with ``Trainer.new(...)`` or ``Trainer.resume(run_dir, ...)``; ``fit()`` trains to the budget.
    """

    unit = "chars"
    plot_label = ("bits per character", 1 / LN2)

    def __init__(self, out: Path, model: CharLM, tcfg: TrainConfig, source: str, corpus: Corpus,
                 rng: np.random.Generator, comm: Comm | None = None) -> None:
        comm = comm if comm is not None else Comm()
        if tcfg.batch_size < comm.size:
            raise DistributedError(f"--batch-size {tcfg.batch_size} is smaller than the {comm.size} ranks; each "
                                   "rank needs at least one stream")
        comm.agree([asdict(tcfg), model.cfg.to_dict(), corpus.sha256], "the settings and the text")
        self.vocab, self.source = corpus.vocab, source
        self.text_sha = corpus.sha256
        train_ids, self.val_ids = split_train_val(corpus.ids, tcfg.val_fraction)      # views of the ids
        self.train_ids, self.tcfg = train_ids, tcfg
        self.windows = self.pass_windows(0)
        if len(self.val_ids) < 2:
            raise TextError(f"{source_name(source)}: too short to hold out a validation part "
                            f"({len(self.val_ids)} characters); use a longer text")
        opt = AdamW(decay_groups(model.parameters(), tcfg.weight_decay), lr=tcfg.lr, betas=(0.9, 0.99))
        super().__init__(out, model, opt, tcfg, [rng], steps_per_epoch=len(self.windows),
                         items_per_step=tcfg.batch_size * tcfg.seq_len, metrics=["val_loss", "val_bpc"], comm=comm)
        self.mine = shard(tcfg.batch_size, comm)          # this rank's streams
        self.share = (self.mine.stop - self.mine.start) / tcfg.batch_size
        self._own_dropout()
        self.loss_fn = CrossEntropyLoss()
        self.window = 0               # next window within the pass
        self.carry = StateCarry(model.rnn)    # the LSTM's (h, c), each (layers, B, H), carried window to window

    # -- construction -----------------------------------------------------------

    def pass_windows(self, epoch: int) -> Windows:
        """The windows of pass ``epoch``: with ``shift_windows``, every pass after the first cuts the text from its
        own offset in [0, seq_len) (drawn from the seed and the pass), so window edges, where the gradient is cut,
        fall elsewhere in the text each time (as AWD-LSTM's varied BPTT length does)."""
        t = self.tcfg
        offset = (int(np.random.default_rng([t.seed, epoch]).integers(t.seq_len))
                  if t.shift_windows and epoch else 0)
        what = f"{source_name(self.source)} (training part, {len(self.train_ids)} characters)"
        return Windows.make(self.train_ids, t.batch_size, t.seq_len, what=what, offset=offset)

    def _own_dropout(self) -> None:
        """Ranks other than 0 draw their dropout masks from their own stream (a jump ahead of the run's)."""
        if self.comm.rank:
            bits = type(self.rngs[0].bit_generator)()
            bits.state = self.rngs[0].bit_generator.state
            self.model.rnn.rng = np.random.Generator(bits.jumped(self.comm.rank))

    @classmethod
    def new(cls, out: str | Path, source: str, mcfg: dict[str, Any], tcfg: TrainConfig,
            comm: Comm | None = None) -> Trainer:
        out = Path(out)
        check_run_dir(out, resume=False)
        tcfg.validate()
        corpus = load_corpus(source, out)
        vocab = corpus.vocab
        rng = np.random.default_rng(tcfg.seed)
        try:
            model = CharLM(CharLMConfig(vocab_size=len(vocab), **mcfg), rng=rng)
        except (TypeError, ValueError) as e:           # e.g. --hidden 0 or --dropout 1.5, as the layer words it
            raise RunError(f"bad model option: {e}") from None
        return cls(out, model, tcfg, source, corpus, rng, comm)

    @classmethod
    def resume(cls, out: str | Path, source: str | None = None, steps: int | None = None,
               minutes: float | None = None, eval_every: int | None = None, comm: Comm | None = None,
               epochs: int | None = None) -> Trainer:
        """Continue the run in ``out``; a new budget (replacing the old one) or text file may be given."""
        out = Path(out)
        path = check_run_dir(out, resume=True)
        rng = np.random.default_rng()                    # its state is restored from the checkpoint below
        model, vocab, meta, arrays = load_run(path, rng=rng)
        model.train()
        try:
            tcfg = TrainConfig(**{"matmul_precision": "highest", **meta["train"]})   # (runs from before it: float32)
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: damaged checkpoint, no training state ({e})") from None
        if steps is not None or minutes is not None or epochs is not None:   # a budget given replaces the old one
            tcfg.steps, tcfg.minutes, tcfg.epochs = steps, minutes, epochs
        if eval_every is not None:
            tcfg.eval_every = eval_every
        tcfg.validate()
        source = source or meta.get("source", BUNDLED)
        corpus = load_corpus(source, out)
        new = corpus.vocab
        if new != vocab:
            raise TextError(f"{source_name(source)}: vocabulary mismatch with the run in {out} "
                            f"(run has {len(vocab)} characters, this text {len(new)}; "
                            f"differing: {''.join(sorted(set(vocab.chars) ^ set(new.chars)))!r})")
        self = cls(out, model, tcfg, source, corpus, rng, comm)
        if self.text_sha != meta.get("text_sha256") and self.comm.is_root:
            print(f"note: {source_name(source)} differs from the text this run started on; continuing on it",
                  file=sys.stderr)
        self.restore(path, arrays, meta)
        return self

    # -- what the shared loop asks of the char LM --------------------------------

    def batch_loss(self) -> float:
        """Forward from the carried state, loss (nats/char) and backward on the current window."""
        x, y = self.windows.window(self.window)                     # (B, T) each
        x, y = x[self.mine], y[self.mine]                           # this rank's streams (all, on one process)
        with self.carry.active():
            logits, _ = self.model.forward(x)                       # (B, T, V)
        loss = float(self.loss_fn(logits, y))
        if math.isfinite(loss):
            self.model.backward(self.loss_fn.backward())
        return loss

    def advance(self) -> None:
        self.window += 1
        if self.window == len(self.windows):                        # a new pass starts from zero state
            self.window = 0
            self.carry.reset()
            self.epoch += 1
            self.windows = self.pass_windows(self.epoch)

    def validate(self) -> dict[str, float]:
        val = evaluate(self.model, self.val_ids, self.tcfg.batch_size, self.tcfg.seq_len, self.comm,
                       limit=self.tcfg.val_chars or None)
        return {"val_loss": val, "val_bpc": val / LN2}

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"  val {metrics['val_bpc']:.3f} bpc"

    def header(self) -> dict[str, Any]:
        return _model_meta(self.model, self.vocab)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        """The carried state of every stream (gathered from the ranks), so any number of ranks can resume."""
        arrays = {name.replace("carry/0", "state"): self.comm.allgather(a, axis=1)
                  for name, a in self.carry.arrays().items()}                 # state/h, state/c
        return arrays, {"window": self.window}, {"source": self.source, "text_sha256": self.text_sha}

    def load_state(self, arrays: dict[str, np.ndarray], position: dict[str, Any], meta: dict[str, Any]) -> None:
        self.window = position["window"]
        self.windows = self.pass_windows(self.epoch)
        self.carry.load({name.replace("state", "carry/0"): a[:, self.mine] for name, a in arrays.items()
                         if name in ("state/h", "state/c")})
        self._own_dropout()
        if self.window >= len(self.windows):             # a different (shorter) text: start a new pass
            self.window = 0
            self.carry.reset()

    def save_best(self, path: Path, metrics: dict[str, float]) -> None:
        save_weights(path, self.model, self.vocab, {"step": self.step, "val_loss": metrics["val_loss"],
                                                    "source": self.source, "train": asdict(self.tcfg)})


def source_name(source: str) -> str:
    """How messages name a text source: its path, or "the bundled Shakespeare"."""
    return "the bundled Shakespeare" if source == BUNDLED else source
