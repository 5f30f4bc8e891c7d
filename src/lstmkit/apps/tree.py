"""The tree model: labelled bracketed trees -> embeddings -> S-LSTM or child-sum Tree-LSTM -> a class per node.

    lstmkit tree make-boolean --out data/bool --count 20000
    lstmkit tree make-boolean --out data/bool_deeper --count 2000 --min-depth 7 --max-depth 8
    lstmkit tree train data/bool --out runs/bool --cell slstm --epochs 10
    lstmkit tree eval runs/bool data/bool_deeper
    lstmkit tree predict runs/bool "(0 AND (1 T) (0 F))"

Any file of SST-style trees (one per line, a label on every node) trains the same
way: a folder with ``trees.txt`` (a seeded fraction held out), or with ``train.txt``
and ``dev.txt`` (the SST's own split), or one file. Training is ``model.fit`` on the
shared loop with per-node cross-entropy (``--labels root``: the root's label only),
validation root and all-node accuracy, ``best.npz`` by validation loss (an accuracy on
a small held-out set ties at its first high value and would keep an early model), resume,
Ctrl-C and NaN stop; the word and label vocabularies live in the run's header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional, modelfile
from ..checkpoint import atomic_write
from ..data.boolean import make_boolean
from ..data.trees import IGNORE, Tree, TreeError, TreeVocab, binarize, encode, parse_tree, read_trees
from ..distributed import launched
from ..fitting import fit
from ..losses import CrossEntropyLoss
from ..models.tree import CELLS, TreeClassifier
from ..optim import AdamW
from ..runs import RunError, run_file
from ..training import History
from .common import budget, holdout, open_run

FORMAT = "lstmkit-tree"


@dataclass
class TreeConfig:
    """Everything a tree run is made of; stored in its checkpoints."""

    data: str
    cell: str = "slstm"
    embed: int = 32
    hidden: int = 64
    batch_size: int = 64
    lr: float = 3e-3
    labels: str = "all"             # train on every node's label, or on the root's only ("root")
    binarize: bool = False
    val_fraction: float = 0.1
    patience: int | None = None
    seed: int = 0

    def check(self) -> None:
        if self.cell not in CELLS:
            raise RunError(f"--cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if self.labels not in ("all", "root"):
            raise RunError(f"--labels must be 'all' or 'root', got {self.labels!r}")
        for name in ("embed", "hidden", "batch_size"):
            if getattr(self, name) < 1:
                raise RunError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise RunError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")


def make(out: str | Path, count: int, min_depth: int = 1, max_depth: int = 6, seed: int = 0) -> Path:
    """Write ``out/trees.txt``: ``count`` random boolean formulas (see ``lstmkit.data.boolean``)."""
    path = Path(out) / "trees.txt"
    if path.exists():
        raise TreeError(f"{path}: already exists; choose a new --out")
    try:
        trees = make_boolean(count, min_depth, max_depth, seed)
    except ValueError as e:
        raise TreeError(str(e)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write("".join(f"{t}\n" for t in trees).encode()))
    return path


def data_files(data: str | Path, split: str) -> tuple[Path, Path | None]:
    """The tree file(s) a path names: a file; or a folder's trees.txt, or its train.txt (+ dev.txt) for
    training and test.txt for evaluation."""
    p = Path(data)
    if p.is_file():
        return p, None
    if not p.is_dir():
        raise TreeError(f"{p}: no such file or folder; expected a file of bracketed trees or a folder with trees.txt")
    if (p / "trees.txt").is_file():
        return p / "trees.txt", None
    first = p / ("train.txt" if split == "train" else "test.txt")
    if first.is_file():
        dev = p / "dev.txt"
        return first, dev if split == "train" and dev.is_file() else None
    raise TreeError(f"{p}: holds no trees.txt{' or train.txt' if split == 'train' else ' or test.txt'}")


def _prepare(trees: list[Tree], cfg: TreeConfig, split_wide: bool = False) -> list[Tree]:
    return [binarize(t) for t in trees] if cfg.binarize or split_wide else trees


def _encode(trees: list[Tree], vocab: TreeVocab, cfg: TreeConfig, source: str,
            root_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    return encode(trees, vocab, CELLS[cfg.cell].max_children, root_only, source)


def root_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the root (node 0) of each tree: logits (B, N, C), labels (B, N)."""
    return float(np.mean(pred[:, 0].argmax(axis=-1) == y[:, 0]))


def train(cfg: TreeConfig | None, out: str | Path, epochs: int | None = None, steps: int | None = None,
          minutes: float | None = None, resume: bool = False, progress: bool = True) -> tuple[History, TreeConfig]:
    """Train a new run in ``out`` from ``cfg``, or (``resume``) continue the run there with its own settings."""
    out = Path(out)
    meta = open_run(out, resume, _run_meta)
    if meta is not None:
        cfg, vocab = TreeConfig(**meta["tree"]), TreeVocab.from_json(meta["vocab"])
    cfg.check()
    first, dev = data_files(cfg.data, "train")
    trees = _prepare(read_trees(first), cfg)
    if dev is not None:
        val = _prepare(read_trees(dev), cfg)
    else:
        tr, va = holdout(len(trees), cfg.val_fraction, cfg.seed, first, "trees")
        val, trees = [trees[i] for i in va], [trees[i] for i in tr]
    if meta is None:                   # words from the training trees; labels from all (a rare one may be held out)
        vocab = TreeVocab(TreeVocab.from_trees(trees).words, {n.label for t in trees + val for n in t.nodes()})
    x, y = _encode(trees, vocab, cfg, str(first), root_only=cfg.labels == "root")
    xv, yv = _encode(val, vocab, cfg, str(dev or first))
    rng = np.random.default_rng(cfg.seed)
    model = TreeClassifier(len(vocab.words), len(vocab.labels), cfg.embed, cfg.hidden, cfg.cell, rng=rng)
    opt = AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    epochs = budget(epochs, steps, minutes, -(-len(x) // cfg.batch_size), min_steps=300)
    hist = fit(model, x, y, loss=CrossEntropyLoss(), optimizer=opt, epochs=epochs,
               steps=steps, minutes=minutes, batch_size=cfg.batch_size,
               validation_data=(xv, yv), metrics=["accuracy", root_accuracy], clip=5.0,
               schedule="cosine", warmup=50, min_lr_frac=0.05, monitor="val_loss", mode="min",
               early_stopping=cfg.patience, run_dir=out, resume=resume, seed=cfg.seed, progress=progress,
               meta={"app": FORMAT, "tree": asdict(cfg), "vocab": vocab.to_json()}, unit="trees",
               distributed=launched())
    return hist, cfg


def _run_meta(path: Path) -> dict[str, Any]:
    return modelfile.app_meta(path, FORMAT, "tree", "tree-model")


def load(run: str | Path) -> tuple[TreeClassifier, TreeVocab, TreeConfig]:
    """The best model of a run folder (or a checkpoint file), its vocabularies and settings."""
    path = run_file(run)
    meta = _run_meta(path)
    return modelfile.load_model(path), TreeVocab.from_json(meta["vocab"]), TreeConfig(**meta["tree"])


def evaluate(run: str | Path, data: str | Path, binarize: bool = False) -> dict[str, Any]:
    """Root and all-node accuracy on a tree file, overall and per tree depth (height); ``binarize`` splits
    wide nodes for a binary (S-LSTM) run that was trained without it."""
    model, vocab, cfg = load(run)
    path, _ = data_files(data, "test")
    trees = _prepare(read_trees(path), cfg, binarize)
    x, y = _encode(trees, vocab, cfg, str(path))
    hit = (model.predict(x, batch_size=128).argmax(axis=-1) == y)
    real = y != IGNORE
    depth = np.array([t.height for t in trees])
    table = [{"depth": int(d), "trees": int((depth == d).sum()), "root": float(hit[depth == d, 0].mean()),
              "nodes": float(hit[depth == d][real[depth == d]].mean())} for d in np.unique(depth)]
    return {"trees": len(trees), "nodes": int(real.sum()), "root_accuracy": float(hit[:, 0].mean()),
            "node_accuracy": float(hit[real].mean()), "per_depth": table}


def predict(run: str | Path, texts: list[str], binarize: bool = False) -> list[tuple[Tree, float] | TreeError]:
    """Each bracketed tree relabelled with the model's class at every node, and the root's probability;
    a tree that cannot be read or does not fit the run's cell gets its TreeError instead (in its place).

    The labels given in ``texts`` are only placeholders (any label will do). ``binarize`` splits nodes
    with more than two children for a binary (S-LSTM) run that was trained without it.
    """
    model, vocab, cfg = load(run)
    widest = CELLS[cfg.cell].max_children
    out: list[Any] = []                             # a TreeError, or None until the tree is labelled below
    good: list[tuple[int, Tree]] = []
    for i, text in enumerate(texts):
        try:
            t = _prepare([parse_tree(text, f"tree {i + 1}")], cfg, binarize)[0]
            wide = next((n for n in t.nodes() if widest is not None and len(n.children) > widest), None)
            if wide is not None:
                raise TreeError(f"tree {i + 1} ({_short(text)}): a node has {len(wide.children)} children and the "
                                f"run's {cfg.cell} cell takes at most {widest}; predict with --binarize")
        except TreeError as e:
            out.append(e)
            continue
        out.append(None)
        good.append((i, t))
    if good:
        blank = [_relabel(t, lambda _n: vocab.labels[0]) for _, t in good]
        x, _ = _encode(blank, vocab, cfg, "<predict>")
        probs = functional.softmax(model.predict(x).astype(np.float64))            # (B, N, C)
        for b, (i, t) in enumerate(good):
            order = {id(n): j for j, n in enumerate(t.nodes())}
            classes = probs[b].argmax(axis=-1)
            out[i] = (_relabel(t, lambda n, c=classes, o=order: vocab.labels[c[o[id(n)]]]), float(probs[b, 0].max()))
    return out


def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _relabel(tree: Tree, label: Any) -> Tree:
    return Tree(label(tree), [_relabel(c, label) for c in tree.children], tree.word, tree.line, tree.col)
