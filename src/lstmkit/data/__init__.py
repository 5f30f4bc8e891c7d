"""Data helpers: padding, corpora, synthetic sets."""

from .padding import pad_sequences

__all__ = ["pad_sequences"]
