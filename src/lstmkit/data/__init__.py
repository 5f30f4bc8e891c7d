"""Data helpers: padding, corpora, trees, synthetic sets."""

from .padding import pad_sequences
from .text import TextError, Vocab, Windows, bundled_shakespeare, load_text, split_train_val
from .trees import Tree, TreeError, TreeVocab, binarize, encode, parse_tree, read_trees

__all__ = ["pad_sequences", "Vocab", "Windows", "TextError", "bundled_shakespeare", "load_text", "split_train_val",
           "Tree", "TreeError", "TreeVocab", "binarize", "encode", "parse_tree", "read_trees"]
