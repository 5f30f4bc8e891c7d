"""Layers: each has forward / backward / parameters()."""

from .base import Layer
from .cells import GRUCell, LSTMCell, SimpleRNNCell
from .core import Activation, Dense, Dropout, Embedding, Flatten
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Flatten", "Embedding",
           "LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell",
           "Bidirectional", "TimeDistributed"]
