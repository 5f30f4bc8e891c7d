"""Data helpers: padding, corpora, trees, video folders, transcribed files, speech, synthetic and bundled sets.

``VideoFolder`` and audio files need PyAV only when they decode (``pip install 'lstmkit[video]'``).
"""

from . import audio, speech
from .dataset import ArrayDataset, Dataset, Prefetcher, Subset
from .fsdd import connected_digits, spoken_digits
from .padding import pad_sequences
from .text import TextError, Vocab, Windows, bundled_shakespeare, load_text, split_train_val
from .transcribed import Transcribed, TranscriptError
from .trees import Tree, TreeError, TreeVocab, binarize, encode, parse_tree, read_trees
from .video import VideoError, VideoFolder
from .vowels import japanese_vowels

__all__ = ["audio", "Dataset", "ArrayDataset", "Subset", "Prefetcher",
           "pad_sequences", "Vocab", "Windows", "TextError", "bundled_shakespeare", "load_text", "split_train_val",
           "Tree", "TreeError", "TreeVocab", "binarize", "encode", "parse_tree", "read_trees",
           "VideoFolder", "VideoError", "japanese_vowels", "speech", "spoken_digits", "connected_digits",
           "Transcribed", "TranscriptError"]
