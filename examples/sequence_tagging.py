"""Bidirectional LSTM tagger on a generated task, over padded variable-length batches.

Task: tag each token 1 if the same token appeared earlier in its sequence, else 0.
Model: Embedding -> 2-layer bidirectional LSTM (with ``lengths``) -> Dense -> cross-entropy
(padded positions carry ``ignore_index``).

    python examples/sequence_tagging.py [--steps 600] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

import lstmkit as lk

PAD = -100  # ignore_index for padded positions


@dataclass
class Config:
    vocab: int = 12
    min_len: int = 4
    max_len: int = 20
    embed: int = 16
    hidden: int = 48
    layers: int = 2
    batch: int = 32
    steps: int = 600
    lr: float = 0.01
    seed: int = 0


def make_batch(cfg: Config, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tokens (n, T) int, tags (n, T) int with PAD past each length, lengths (n,)."""
    seqs, tags = [], []
    for _ in range(n):
        s = rng.integers(0, cfg.vocab, rng.integers(cfg.min_len, cfg.max_len + 1))
        seen: set[int] = set()
        t = []
        for tok in s:
            t.append(int(tok in seen))
            seen.add(int(tok))
        seqs.append(s)
        tags.append(np.array(t))
    tokens, lengths = lk.data.pad_sequences(seqs)
    tag_batch, _ = lk.data.pad_sequences(tags, value=PAD)
    return tokens, tag_batch, lengths


class Tagger:
    """tokens (B, T) -> logits (B, T, 2)."""

    def __init__(self, cfg: Config) -> None:
        rng = np.random.default_rng(cfg.seed)
        self.embed = lk.Embedding(cfg.vocab, cfg.embed, rng=rng)
        self.rnn = lk.LSTM(cfg.embed, cfg.hidden, num_layers=cfg.layers, bidirectional=True,
                           return_sequences=True, rng=rng)
        self.head = lk.Dense(2 * cfg.hidden, 2, rng=rng)
        self.layers = [self.embed, self.rnn, self.head]

    def parameters(self) -> list[lk.Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        x = self.embed.forward(tokens)                  # (B, T, E)
        h = self.rnn.forward(x, lengths=lengths)        # (B, T, 2H), zero past each length
        return self.head.forward(h)                     # (B, T, 2)

    def backward(self, dlogits: np.ndarray) -> None:
        self.embed.backward(self.rnn.backward(self.head.backward(dlogits)))


def accuracy(logits: np.ndarray, tags: np.ndarray) -> float:
    valid = tags != PAD
    return float((logits.argmax(-1) == tags)[valid].mean())


def train(cfg: Config, progress: bool = True) -> dict[str, float]:
    rng = np.random.default_rng(cfg.seed)
    model = Tagger(cfg)
    loss_fn = lk.CrossEntropyLoss(ignore_index=PAD)
    opt = lk.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = lk.optim.WarmupCosineLR(opt, warmup_steps=max(1, cfg.steps // 20), total_steps=cfg.steps,
                                    min_lr=cfg.lr / 20)
    bar = tqdm(range(cfg.steps), desc="tagger", disable=not progress)
    loss = float("nan")
    for _ in bar:
        tokens, tags, lengths = make_batch(cfg, cfg.batch, rng)
        opt.zero_grad()
        loss = loss_fn(model.forward(tokens, lengths), tags)
        model.backward(loss_fn.backward())
        lk.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss:.4f}")
    tokens, tags, lengths = make_batch(cfg, 500, np.random.default_rng(cfg.seed + 10_000))   # held out
    acc = accuracy(model.forward(tokens, lengths), tags)
    return {"train_loss": float(loss), "heldout_accuracy": acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=Config.steps)
    ap.add_argument("--seed", type=int, default=Config.seed)
    args = ap.parse_args()
    result = train(Config(steps=args.steps, seed=args.seed))
    print(f"final train loss {result['train_loss']:.4f}; held-out per-token accuracy "
          f"{100 * result['heldout_accuracy']:.2f} %")


if __name__ == "__main__":
    main()
