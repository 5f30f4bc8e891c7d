"""``Model``: a Layer that also trains, scores, predicts, saves and describes itself.

Layers (``lstmkit.layers``) know only their maths; ``Model`` adds the short ways
to call the free functions of ``lstmkit.fitting``, ``lstmkit.modelfile`` and
``lstmkit.summary``, and remembers the loss and metrics it was last fit with (so
``evaluate`` needs no arguments after ``fit``). ``Sequential``, the ready-made
models and ``CharLM`` are Models; a bare layer uses ``lk.fit(layer, ...)`` and
``lk.save_model(layer, path)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import fitting, modelfile
from .. import summary as summary_table
from ..layers.base import Layer
from ..optim import Optimizer
from ..training import History


class Model(Layer):
    """Base class of trainable wholes. Subclasses define ``forward``/``backward``/``config`` as any Layer."""

    _fit_loss: Any = None
    _fit_metrics: dict[str, Any] | None = None
    _fit_lengths = False                 # whether the last fit had padded sequences (lengths=)

    def fit(self, x: Any, y: Any = None, **kwargs: Any) -> History:
        """Train on arrays ``(x, y)`` or a dataset ``x``; see ``lstmkit.fitting.fit``. Returns the History."""
        hist = fitting.fit(self, x, y, **kwargs)
        self._fit_loss, self._fit_metrics = hist.loss_fn, hist.metric_fns
        self._fit_lengths = kwargs.get("lengths") is not None      # (a dataset carries its own lengths)
        return hist

    def evaluate(self, x: Any, y: Any = None, loss: Any = None, metrics: Any = None, lengths: Any = None,
                 **kwargs: Any) -> dict[str, float]:
        """Loss and metrics over ``(x, y)`` (by default those of the last ``fit``); padded sequences pass
        ``lengths`` (N,) as in ``fit``. See ``fitting.evaluate``."""
        self._check_lengths(lengths, "evaluate")
        return fitting.evaluate(self, x, y, loss=self._fit_loss if loss is None else loss,
                                metrics=self._fit_metrics if metrics is None else metrics, lengths=lengths,
                                **kwargs)

    def predict(self, x: Any, batch_size: int = 256, lengths: Any = None) -> np.ndarray:
        """Outputs for ``x`` (N, ...) in eval mode, ``batch_size`` samples at a time; ``lengths`` (N,) for
        padded sequences."""
        self._check_lengths(lengths, "predict")
        return fitting.predict(self, x, batch_size=batch_size, lengths=lengths)

    def _check_lengths(self, lengths: Any, what: str) -> None:
        if self._fit_lengths and lengths is None:
            warnings.warn(f"{what}: the model was fit on padded sequences (lengths=) but no lengths are given, so "
                          "padding counts as data; pass lengths=... (np.full(len(x), x.shape[1]) for unpadded "
                          "sequences)", UserWarning, stacklevel=3)

    def save(self, path: str | Path, optimizer: Optimizer | None = None) -> None:
        """Write config + weights (+ the optimizer's state if given) to one ``.npz``, atomically."""
        modelfile.save_model(self, path, optimizer)

    def summary(self, input_shape: tuple[int, ...], dtype: str | None = None,
                print_fn: Callable[[str], Any] | None = print) -> str:
        """Print (and return) a Keras-style table of layers, output shapes and parameter counts.

        ``input_shape`` excludes the batch axis, e.g. ``(T, F)`` for sequences.
        """
        text = summary_table.summary(self, input_shape, dtype)
        if print_fn is not None:
            print_fn(text)
        return text
