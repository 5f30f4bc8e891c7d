"""The tree classifier: token embeddings at the nodes -> a tree LSTM -> a class at every node."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import SLSTM, ChildSumTreeLSTM, Dense, Embedding
from .model import Model

CELLS = {"slstm": SLSTM, "childsum": ChildSumTreeLSTM}


class TreeClassifier(Model):
    """Encoded trees x (B, N, 2) int [token, parent] (``lk.data.trees.encode``) -> logits (B, N, classes).

    Each node's token is embedded (token -1, "no input", gives a zero vector), the tree
    cell ("slstm": binary S-LSTM, "childsum": child-sum Tree-LSTM) composes the nodes
    leaves-first, and a Dense layer scores every node's hidden state; the root is node 0.
    Train it with ``CrossEntropyLoss`` on per-node labels (-100 where a node has none).
    """

    def __init__(self, vocab_size: int, num_classes: int, embed: int = 32, hidden: int = 64, cell: str = "slstm",
                 dtype: str = "float32", rng: np.random.Generator | None = None) -> None:
        if cell not in CELLS:
            raise ValueError(f"TreeClassifier: cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.vocab_size, self.num_classes, self.embed, self.hidden, self.cell_name = (
            vocab_size, num_classes, embed, hidden, cell)
        self.embedding = Embedding(vocab_size + 1, embed, padding_idx=vocab_size, dtype=dtype, rng=rng)
        self.cell = CELLS[cell](embed, hidden, dtype=dtype, rng=rng)
        self.head = Dense(hidden, num_classes, dtype=dtype, rng=rng)
        self.dtype = self.cell.dtype

    def config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes, "embed": self.embed,
                "hidden": self.hidden, "cell": self.cell_name, "dtype": self.dtype.name}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[-1] != 2 or not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"TreeClassifier: expected encoded trees, integers of shape (B, N, 2) "
                             f"[token, parent]; got {x.dtype} of shape {x.shape}")
        tokens = x[..., 0]
        if tokens.size and tokens.max() >= self.vocab_size:
            raise ValueError(f"TreeClassifier: token ids must be < {self.vocab_size} (or -1 for none), got "
                             f"{tokens.max()}")
        e = self.embedding.forward(np.where(tokens < 0, self.vocab_size, tokens))     # (B, N, embed)
        h = self.cell.forward(e, x[..., 1])                                            # (B, N, hidden)
        return self.head.forward(h)                                                    # (B, N, classes)

    def backward(self, dy: np.ndarray) -> None:
        self.embedding.backward(self.cell.backward(self.head.backward(dy)))
        return None
