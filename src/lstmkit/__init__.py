"""lstmkit: sequence models from scratch on NumPy, gradients checked against PyTorch.

    import lstmkit as lk
    model = lk.Sequential(lk.LSTM(8, 32, return_sequences=False), lk.Dense(32, 1))
"""

from . import (
                     _blas,  # noqa: F401  (first: before NumPy loads OpenBLAS)
                     checkpoint,
                     compiled,
                     data,
                     decoding,
                     distributed,
                     functional,
                     init,
                     inspect,
                     models,
                     onnx,
                     optim,
                     tbptt,
                     training,
)
from ._version import __version__
from .ctc import CTCLoss
from .fitting import evaluate, fit, predict
from .gradcheck import GradcheckError, GradcheckReport, gradcheck
from .layers import (
                     GRU,
                     LSTM,
                     SLSTM,
                     Activation,
                     AvgPool2D,
                     BatchNorm2D,
                     Bidirectional,
                     ChildSumTreeLSTM,
                     Conv2D,
                     Dense,
                     Dropout,
                     Embedding,
                     Flatten,
                     GlobalAvgPool2D,
                     GRUCell,
                     Layer,
                     LayerNormLSTM,
                     LSTMCell,
                     MaxPool2D,
                     PeepholeLSTM,
                     SimpleRNN,
                     SimpleRNNCell,
                     TimeDistributed,
)
from .layers.inference import inference
from .losses import CrossEntropyLoss, MSELoss
from .modelfile import ModelFileError, load_model, load_optimizer, save_model
from .models import Model, Sequential
from .parameter import Parameter
from .precision import float32_matmul_precision, get_float32_matmul_precision, set_float32_matmul_precision
from .random import get_rng, manual_seed
from .streaming import Stream

__all__ = ["__version__", "Parameter", "Layer", "Model", "Sequential", "fit", "evaluate", "predict",
           "Dense", "Activation", "Dropout", "Flatten", "Embedding",
           "LSTM", "GRU", "SimpleRNN", "PeepholeLSTM", "LayerNormLSTM", "LSTMCell", "GRUCell", "SimpleRNNCell",
           "MSELoss", "CrossEntropyLoss",
           "CTCLoss",
           "Bidirectional", "TimeDistributed", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm2D",
           "SLSTM", "ChildSumTreeLSTM",
           "checkpoint", "compiled", "data", "decoding", "distributed", "inspect", "models", "optim", "functional",
           "init", "tbptt", "Stream", "inference", "onnx",
           "manual_seed", "get_rng", "training", "load_model", "load_optimizer", "save_model", "ModelFileError",
           "gradcheck", "GradcheckReport", "GradcheckError",
           "set_float32_matmul_precision", "get_float32_matmul_precision", "float32_matmul_precision"]
