"""Character language model: Embedding -> LSTM x N -> Dense, trained on next-character prediction.

The model reads like nanoGPT's: one config, one class, shapes at every step.
(The trainer, checkpoints and CLI build on it.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ..data.text import Vocab
from ..decoding import sample_logits
from ..functional import dropout_mask
from ..layers import LSTM, Dense, Embedding, LayerNormLSTM
from ..random import get_rng
from ..streaming import Stream
from .model import Model


@dataclass
class CharLMConfig:
    """The model's shape. The defaults are lstmkit's default character model: the lowest validation loss reached
    in a 30-minute budget on two cores on the bundled Shakespeare (docs/speed.md), with dropout on every
    non-recurrent link (Zaremba et al.)."""

    vocab_size: int
    embed: int = 64
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.35         # between LSTM layers
    output_dropout: float = 0.35  # on the top layer's output, before the head
    input_dropout: float = 0.2    # on the embeddings, before the first layer
    weight_drop: float = 0.0      # DropConnect on each layer's W_hh (AWD-LSTM; lstmkit.layers.regularise)
    recurrent_dropout: float = 0.0   # a mask per stream on h_{t-1} where it enters W_hh
    zoneout: float = 0.0          # each step, a unit of h keeps its previous value with this probability
    zoneout_cell: float = 0.0     # the same for c (Krueger et al. 2016)
    cell: str = "lstm"            # "lstm", or "layer_norm" (lk.LayerNormLSTM)
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CharLM(Model):
    """ids (B, T) -> logits (B, T, V), carrying the LSTM state (h, c) across calls."""

    def __init__(self, cfg: CharLMConfig, rng: np.random.Generator | None = None) -> None:
        self.cfg = cfg
        self.embed = Embedding(cfg.vocab_size, cfg.embed, dtype=cfg.dtype, rng=rng)
        regularisers = {k: getattr(cfg, k) for k in ("weight_drop", "recurrent_dropout", "zoneout", "zoneout_cell")
                        if getattr(cfg, k)}
        cells = {"lstm": LSTM, "layer_norm": LayerNormLSTM}
        if cfg.cell not in cells:
            raise ValueError(f"CharLM: cell must be one of {', '.join(cells)}, got {cfg.cell!r}")
        self.rnn = cells[cfg.cell](cfg.embed, cfg.hidden, num_layers=cfg.layers, dropout=cfg.dropout, dtype=cfg.dtype,
                                   rng=rng, **regularisers)
        self.head = Dense(cfg.hidden, cfg.vocab_size, dtype=cfg.dtype, rng=rng)
        for name in ("output_dropout", "input_dropout"):
            if not 0 <= getattr(cfg, name) < 1:
                raise ValueError(f"CharLM: {name} must be in [0, 1), got {getattr(cfg, name)}")
        self._mask: np.ndarray | None = None
        self._in_mask: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CharLM:
        known = {f.name for f in fields(CharLMConfig)}
        given = {k: v for k, v in config.items() if k in known}
        # a file that names no dropout of a kind was saved before that kind existed, and trained without it
        given = {"dropout": 0.0, "output_dropout": 0.0, "input_dropout": 0.0, "weight_drop": 0.0,
                 "recurrent_dropout": 0.0, "zoneout": 0.0, "zoneout_cell": 0.0, "cell": "lstm", **given}
        return cls(CharLMConfig(**given), rng=config.get("rng"))

    def forward(self, ids: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        x = self.embed.forward(ids)                 # (B, T, E)
        self._in_mask = self._drop(x, self.cfg.input_dropout)
        if self._in_mask is not None:
            x = x * self._in_mask
        h, state = self.rnn.forward(x, state)       # (B, T, H); state (h_n, c_n), each (layers, B, H)
        self._mask = self._drop(h, self.cfg.output_dropout)
        if self._mask is not None:
            h = h * self._mask
        return self.head.forward(h), state          # (B, T, V)

    def _drop(self, a: np.ndarray, p: float) -> np.ndarray | None:
        """In training, a dropout mask shaped as ``a`` (drawn from the LSTM's generator: one stream per rank)."""
        return dropout_mask(get_rng(self.rnn.rng), a.shape, p, a.dtype) if self.training and p > 0 else None

    def backward(self, dlogits: np.ndarray) -> None:
        """Truncated BPTT: no gradient flows into the carried-in state."""
        dh = self.head.backward(dlogits)
        dx = self.rnn.backward(dh if self._mask is None else dh * self._mask)
        self.embed.backward(dx if self._in_mask is None else dx * self._in_mask)

    def generate(self, vocab: Vocab, prompt: str, length: int, rng: np.random.Generator,
                 temperature: float = 1.0, top_k: int | None = None,
                 on_char: Callable[[str], None] | None = None) -> str:
        """Prime with ``prompt``, then sample ``length`` characters; ``on_char`` streams each one."""
        if not prompt:
            raise ValueError("CharLM.generate: the prompt must have at least one character")
        if len(vocab) != self.cfg.vocab_size:
            raise ValueError(f"CharLM.generate: vocabulary has {len(vocab)} characters, model expects "
                             f"{self.cfg.vocab_size}")
        was_training = self.training
        self.eval()
        stream = Stream(self)                                       # the LSTM's state carried call to call
        try:
            logits, _ = stream(vocab.encode(prompt, what="prompt")[None])     # prime: (1, P, V)
            out = []
            for _ in range(length):
                nxt = int(sample_logits(logits[0, -1], rng, temperature, top_k))
                ch = vocab.chars[nxt]
                out.append(ch)
                if on_char is not None:
                    on_char(ch)
                logits, _ = stream(np.array([[nxt]]))                           # one step: (1, 1, V)
        finally:
            self.train(was_training)
        return "".join(out)
