"""Bidirectional LSTM tagger on a generated task, over padded variable-length batches.

Task: tag each token 1 if the same token appeared earlier in its sequence, else 0.
Model: Embedding -> 2-layer bidirectional LSTM (with ``lengths``) -> Dense -> cross-entropy
(padded positions carry ``ignore_index``), trained with ``model.fit``.

    python examples/sequence_tagging.py [--steps 600] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

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


def build(cfg: Config) -> lk.Sequential:
    """tokens (B, T) -> logits (B, T, 2); the LSTM reads each sequence within its length."""
    rng = np.random.default_rng(cfg.seed)
    return lk.Sequential(
        lk.Embedding(cfg.vocab, cfg.embed, rng=rng),                                     # (B, T, E)
        lk.LSTM(cfg.embed, cfg.hidden, num_layers=cfg.layers, bidirectional=True,
                return_sequences=True, rng=rng),                                         # (B, T, 2H)
        lk.Dense(2 * cfg.hidden, 2, rng=rng),                                            # (B, T, 2)
    )


def train(cfg: Config, progress: bool = True) -> dict[str, float]:
    """``model.fit`` over steps × batch generated sequences (one epoch), scored on 500 held-out ones."""
    rng = np.random.default_rng(cfg.seed)
    tokens, tags, lengths = make_batch(cfg, cfg.steps * cfg.batch, rng)
    held_out = make_batch(cfg, 500, np.random.default_rng(cfg.seed + 10_000))
    model = build(cfg)
    hist = model.fit(tokens, tags, lengths=lengths, loss=lk.CrossEntropyLoss(ignore_index=PAD),
                     optimizer=lk.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01),
                     epochs=1, batch_size=cfg.batch, shuffle=False, schedule="cosine",
                     warmup=max(1, cfg.steps // 20), min_lr_frac=1 / 20, clip=1.0, metrics=["accuracy"],
                     validation_data=held_out, seed=cfg.seed, progress=progress)
    train_losses = [r["train_loss"] for r in hist.rows if r["train_loss"] is not None]   # means of 10 steps
    return {"train_loss": train_losses[-1], "heldout_accuracy": hist.history["val_accuracy"][-1]}


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
