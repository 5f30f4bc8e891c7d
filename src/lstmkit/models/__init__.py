"""Models: ``Model`` (a Layer that fits, saves and describes itself), ``Sequential`` and the ready-made
models built from lstmkit's layers (so ``model.save`` / ``lk.load_model`` just work)."""

from __future__ import annotations

import numpy as np

from ..layers import LSTM, Activation, Conv2D, Dense, Dropout, Flatten, MaxPool2D, TimeDistributed
from .charlm import CharLM, CharLMConfig
from .model import Model
from .sequential import Sequential
from .tree import TreeClassifier


def CNNLSTM(num_classes: int, in_channels: int = 3, size: int | tuple[int, int] = (32, 32),
            conv_channels: tuple[int, ...] = (16, 32), features: int = 64, hidden: int = 64, dropout: float = 0.0,
            dtype: str = "float32", rng: np.random.Generator | None = None) -> Sequential:
    """Video classifier: clips (B, T, H, W, C) -> logits (B, num_classes).

    Each frame goes through the same small CNN — per entry of ``conv_channels`` a 3×3 "same"
    Conv2D, ReLU and 2×2 max pooling, then Flatten and Dense(features) with ReLU — so a clip
    becomes a sequence of feature vectors (B, T, features); an LSTM reads that sequence and a
    Dense layer classifies its last output. H and W must be divisible by 2^len(conv_channels).
    """
    H, W = (size, size) if isinstance(size, int) else size
    down = 2 ** len(conv_channels)
    if H % down or W % down:
        raise ValueError(f"CNNLSTM: frame size {H}×{W} must be divisible by {down} "
                         f"(one 2×2 pooling per conv layer)")
    cnn, c = [], in_channels
    for out in conv_channels:
        cnn += [Conv2D(c, out, 3, padding="same", dtype=dtype, rng=rng), Activation("relu"), MaxPool2D(2)]
        c = out
    cnn += [Flatten(), Dense(c * (H // down) * (W // down), features, dtype=dtype, rng=rng), Activation("relu")]
    head = [Dropout(dropout, rng=rng)] if dropout else []
    return Sequential(TimeDistributed(Sequential(*cnn)),                     # (B, T, features)
                      LSTM(features, hidden, return_sequences=False, dtype=dtype, rng=rng),  # (B, hidden)
                      *head, Dense(hidden, num_classes, dtype=dtype, rng=rng))           # (B, classes)


def CTCRecognizer(height: int, num_classes: int, hidden: int = 128, layers: int = 2, dtype: str = "float32",
                  rng: np.random.Generator | None = None, bidirectional: bool = True) -> Sequential:
    """Sequence recogniser for CTC: frames (B, T, height) -> per-frame logits (B, T, num_classes).

    A ``layers``-deep LSTM, bidirectional unless told otherwise, reads an image column by column or
    audio frame by frame (pass ``lengths`` for padded batches), and a Dense layer scores every frame;
    class 0 is CTC's blank. A unidirectional one can run streaming (``lk.Stream``).
    """
    width = 2 * hidden if bidirectional else hidden
    return Sequential(LSTM(height, hidden, num_layers=layers, bidirectional=bidirectional, return_sequences=True,
                           dtype=dtype, rng=rng),                                          # (B, T, width)
                      Dense(width, num_classes, dtype=dtype, rng=rng))                    # (B, T, classes)


__all__ = ["Model", "Sequential", "CNNLSTM", "CTCRecognizer", "TreeClassifier", "CharLM", "CharLMConfig"]
