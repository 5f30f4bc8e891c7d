"""Data helpers: padding, corpora, trees, video folders, synthetic sets.

``VideoFolder`` needs PyAV only when it decodes (``pip install 'lstmkit[video]'``).
"""

from . import audio
from .dataset import ArrayDataset, Dataset, Prefetcher, Subset
from .padding import pad_sequences
from .text import TextError, Vocab, Windows, bundled_shakespeare, load_text, split_train_val
from .trees import Tree, TreeError, TreeVocab, binarize, encode, parse_tree, read_trees
from .video import VideoError, VideoFolder
from .vowels import japanese_vowels

__all__ = ["audio", "Dataset", "ArrayDataset", "Subset", "Prefetcher",
           "pad_sequences", "Vocab", "Windows", "TextError", "bundled_shakespeare", "load_text", "split_train_val",
           "Tree", "TreeError", "TreeVocab", "binarize", "encode", "parse_tree", "read_trees",
           "VideoFolder", "VideoError", "japanese_vowels"]
