"""Data helpers: padding, corpora, synthetic sets."""

from .padding import pad_sequences
from .text import TextError, Vocab, Windows, bundled_shakespeare, load_text, split_train_val

__all__ = ["pad_sequences", "Vocab", "Windows", "TextError", "bundled_shakespeare", "load_text", "split_train_val"]
