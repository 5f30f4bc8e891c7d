"""Layers: each has forward / backward / parameters()."""

from .base import Layer
from .core import Activation, Dense, Dropout, Embedding, Flatten
from .recurrent import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Flatten", "Embedding",
           "LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell",
           "Bidirectional", "TimeDistributed"]
