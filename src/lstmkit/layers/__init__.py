"""Layers: each has forward / backward / parameters()."""

from .base import Layer
from .cells import GRUCell, LSTMCell, SimpleRNNCell
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Embedding, Flatten
from .layernorm import LayerNormLSTM
from .norm import BatchNorm2D
from .peephole import PeepholeLSTM
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .recurrent import GRU, LSTM, SimpleRNN
from .tree import SLSTM, ChildSumTreeLSTM
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Flatten", "Embedding",
           "LSTM", "GRU", "SimpleRNN", "PeepholeLSTM", "LayerNormLSTM", "LSTMCell", "GRUCell", "SimpleRNNCell",
           "Bidirectional", "TimeDistributed", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm2D",
           "SLSTM", "ChildSumTreeLSTM"]
