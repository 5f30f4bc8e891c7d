"""Labelled trees in the bracketed PTB/SST format, and their encoding as arrays.

    (3 (2 It) (4 (3 works) (2 well)))

Every node is ``(LABEL ...)``: a leaf holds one word, ``(2 It)``; an internal node
holds its children, ``(4 (3 works) (2 well))``, and may carry a word of its own
before them, ``(1 AND (1 T) (0 F))``, which becomes that node's input (the
boolean formulas use it for their operators; SST trees have none).

A batch of trees travels through ``fit`` as two arrays (``encode``):
``x`` (N, nodes, 2) of int32 ``[token, parent]`` per node, nodes in pre-order
(root first, children left to right, so every parent comes before its
children); token -1 means "no input" and parent -1 marks the root, -2 padding;
``y`` (N, nodes) int64 class labels, -100 (ignored by the loss) on padding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NO_TOKEN, ROOT, PAD = -1, -1, -2
IGNORE = -100
UNK = "<unk>"


class TreeError(ValueError):
    """Malformed or unusable trees; the message names the file, line and column."""


@dataclass
class Tree:
    """One node: its label, its word (a leaf's token, or an internal node's input) and its children."""

    label: str
    children: list[Tree] = field(default_factory=list)
    word: str | None = None
    line: int = 1                   # where the node's "(" stands in its source, for error messages
    col: int = 1

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def nodes(self) -> Iterator[Tree]:
        """Every node in pre-order (the order ``encode`` lays them out)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def leaves(self) -> list[Tree]:
        return [n for n in self.nodes() if n.is_leaf]

    def words(self) -> list[str]:
        """The leaves' words, left to right."""
        return [n.word for n in self.leaves() if n.word is not None]

    @property
    def height(self) -> int:
        """Edges on the longest path down to a leaf (a leaf: 0)."""
        return 0 if self.is_leaf else 1 + max(c.height for c in self.children)

    def __len__(self) -> int:
        return sum(1 for _ in self.nodes())

    def __str__(self) -> str:
        inner = [self.label] + ([self.word] if self.word is not None else []) + [str(c) for c in self.children]
        return "(" + " ".join(inner) + ")"


def _where(source: str, line: int, col: int) -> str:
    return f"{source}: line {line}, column {col}"


def _tokens(text: str, line: int) -> Iterator[tuple[str, int, int]]:
    """(token, line, column): "(", ")" and bare words."""
    col, i, n = 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, col, i = line + 1, 1, i + 1
        elif ch.isspace():
            i, col = i + 1, col + 1
        elif ch in "()":
            yield ch, line, col
            i, col = i + 1, col + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "()":
                j += 1
            yield text[i:j], line, col
            col += j - i
            i = j


def parse_tree(text: str, source: str = "<string>", line: int = 1) -> Tree:
    """One bracketed tree with a label on every node; raises TreeError naming line and column."""
    toks = list(_tokens(text, line))
    if not toks:
        raise TreeError(f"{source}: line {line}: expected a tree such as (3 (2 It) (4 works)), got nothing")
    pos = 0

    def expect_node() -> Tree:
        nonlocal pos
        tok, ln, cl = toks[pos]
        if tok != "(":
            raise TreeError(f"{_where(source, ln, cl)}: expected '(' to open a node, got {tok!r}")
        if pos + 1 >= len(toks) or toks[pos + 1][0] in "()":
            got = "the end" if pos + 1 >= len(toks) else repr(toks[pos + 1][0])
            raise TreeError(f"{_where(source, ln, cl)}: expected a label after '(', got {got}")
        node = Tree(label=toks[pos + 1][0], line=ln, col=cl)
        pos += 2
        if pos < len(toks) and toks[pos][0] not in "()":
            node.word = toks[pos][0]
            pos += 1
        while pos < len(toks) and toks[pos][0] == "(":
            node.children.append(expect_node())
        if pos >= len(toks):
            raise TreeError(f"{_where(source, ln, cl)}: this node is never closed (missing ')')")
        if toks[pos][0] != ")":
            t, tl, tc = toks[pos]
            raise TreeError(f"{_where(source, tl, tc)}: expected ')' or a child '(' , got a second word {t!r}")
        if node.word is None and not node.children:
            raise TreeError(f"{_where(source, ln, cl)}: node ({node.label}) has neither a word nor children")
        pos += 1
        return node

    tree = expect_node()
    if pos < len(toks):
        t, tl, tc = toks[pos]
        raise TreeError(f"{_where(source, tl, tc)}: unexpected {t!r} after the tree ended (one tree per line)")
    return tree


def read_trees(path: str | Path) -> list[Tree]:
    """Every tree of a file with one bracketed tree per line (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TreeError(f"{path}: no such file; expected a text file of bracketed trees") from None
    except UnicodeDecodeError:
        raise TreeError(f"{path}: not UTF-8 text; expected a text file of bracketed trees") from None
    trees = [parse_tree(s, str(path), i) for i, s in enumerate(text.splitlines(), 1) if s.strip()]
    if not trees:
        raise TreeError(f"{path}: holds no trees; expected one bracketed tree per line")
    return trees


def binarize(tree: Tree) -> Tree:
    """A copy in which no node has more than two children: ``(A a b c)`` becomes ``(A a (A b c))``.

    The added nodes take their parent's label and position and have no word
    (right-branching, as the SST's own binarisation leans).
    """
    kids = [binarize(c) for c in tree.children]
    while len(kids) > 2:
        kids = kids[:-2] + [Tree(tree.label, kids[-2:], None, tree.line, tree.col)]
    return Tree(tree.label, kids, tree.word, tree.line, tree.col)


class TreeVocab:
    """Words (ids from 0, ``<unk>`` first) and labels (class ids, sorted) of a set of trees."""

    def __init__(self, words: Iterable[str], labels: Iterable[str]) -> None:
        self.words = [UNK] + sorted(set(words) - {UNK})
        self.labels = sorted(set(labels), key=lambda s: (not s.lstrip("-").isdigit(), int(s) if
                                                         s.lstrip("-").isdigit() else 0, s))
        if not self.labels:
            raise TreeError("TreeVocab: no labels")
        self.word_index = {w: i for i, w in enumerate(self.words)}
        self.label_index = {s: i for i, s in enumerate(self.labels)}

    @classmethod
    def from_trees(cls, trees: list[Tree], min_count: int = 1) -> TreeVocab:
        counts = Counter(n.word for t in trees for n in t.nodes() if n.word is not None)
        return cls([w for w, c in counts.items() if c >= min_count],
                   {n.label for t in trees for n in t.nodes()})

    def to_json(self) -> dict[str, list[str]]:
        return {"words": self.words, "labels": self.labels}

    @classmethod
    def from_json(cls, d: dict[str, list[str]]) -> TreeVocab:
        return cls(d["words"], d["labels"])


def encode(trees: list[Tree], vocab: TreeVocab, max_children: int | None = None, root_only: bool = False,
           source: str = "<trees>") -> tuple[np.ndarray, np.ndarray]:
    """Trees -> (x (N, nodes, 2) int32 [token, parent], y (N, nodes) int64); see the module docstring.

    Unknown words become ``<unk>``. A label the vocabulary lacks, or a node with more than
    ``max_children`` children (2 for the binary S-LSTM), raises TreeError with its position.
    ``root_only`` keeps only the root's label (the others become -100, ignored by the loss).
    """
    width = max(len(t) for t in trees)
    x = np.full((len(trees), width, 2), PAD, np.int32)
    x[:, :, 0] = NO_TOKEN
    y = np.full((len(trees), width), IGNORE, np.int64)
    unk = vocab.word_index[UNK]
    for b, tree in enumerate(trees):
        nodes = list(tree.nodes())
        index = {id(n): j for j, n in enumerate(nodes)}
        for j, node in enumerate(nodes):
            if max_children is not None and len(node.children) > max_children:
                raise TreeError(f"{_where(source, node.line, node.col)}: node ({node.label} ...) has "
                                f"{len(node.children)} children; the binary cell takes at most {max_children} "
                                "(binarise the trees first, --binarize)")
            if node.label not in vocab.label_index:
                raise TreeError(f"{_where(source, node.line, node.col)}: unknown label {node.label!r}; the model "
                                f"knows {vocab.labels}")
            x[b, j, 0] = NO_TOKEN if node.word is None else vocab.word_index.get(node.word, unk)
            y[b, j] = vocab.label_index[node.label] if (j == 0 or not root_only) else IGNORE
            x[b, [index[id(c)] for c in node.children], 1] = j
        x[b, 0, 1] = ROOT
    return x, y
