r"""The regularisers every recurrent layer takes as options (AWD-LSTM's, Merity et al. 2017, and Keras'),
each a fraction p in [0, 1) that is 0 (off) by default; in training only, never in eval mode:

``input_dropout``      variational dropout on the layer's input x: one mask per sequence, the same at every step
                       (Gal & Ghahramani 2016), units kept scaled by 1 / (1 − p).
``output_dropout``     the same on the layer's output y (and on the last output with ``return_sequences=False``).
``recurrent_dropout``  a mask per sequence on the state h_{t−1} where it enters W_hh (Keras' ``recurrent_dropout``;
                       Gal & Ghahramani's recurrent mask), every layer and direction its own.
``weight_drop``        DropConnect on W_hh (Wan et al. 2013; AWD-LSTM's WeightDrop): one mask per batch on the
                       weights' elements, the kept ones scaled by 1 / (1 − p); the gradient reaches the kept
                       weights only.
``zoneout``            zoneout on h (Krueger et al. 2016, ``zoneout.py``): each unit keeps its previous value with
                       probability p, a fresh draw every step; in eval mode h_t = p·h_{t−1} + (1 − p)·h̃_t, so
                       unlike the others it also acts in eval mode (as its deterministic form).
``zoneout_cell``       the same on the cell state c (kinds with one).

(``dropout``, between stacked layers with a fresh mask per element, is PyTorch's and stays as it was.) The masks
come from the layer's generator (``rng``, else lstmkit's global one), so a seeded run draws the same ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ..functional import dropout_mask


@dataclass(frozen=True)
class Regularisers:
    """A recurrent layer's regularisers (see the module docstring), each a fraction in [0, 1)."""

    input_dropout: float = 0.0
    output_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    zoneout: float = 0.0
    zoneout_cell: float = 0.0

    @classmethod
    def of(cls, layer: str, options: dict[str, Any]) -> Regularisers:
        """The regularisers named in ``options``; an unknown name or a value outside [0, 1) is a ValueError that
        names the layer and the option."""
        known = [f.name for f in fields(cls)]
        for name, value in options.items():
            if name not in known:
                raise TypeError(f"{layer}: unexpected keyword argument {name!r} (regularisers: {', '.join(known)})")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
                raise ValueError(f"{layer}: {name} must be a fraction in [0, 1), got {value!r}")
        return cls(**{name: float(v) for name, v in options.items()})

    def check_kind(self, layer: str, has_cell: bool, projected: bool) -> None:
        """Zoneout where the kind cannot have it is a ValueError naming the layer and the option."""
        if self.zoneout_cell and not has_cell:
            raise ValueError(f"{layer}: zoneout_cell needs a cell state, and {layer} has none (use zoneout)")
        if projected and (self.zoneout or self.zoneout_cell):
            raise ValueError(f"{layer}: zoneout is not supported with proj_size (the state is a projection)")

    def config(self) -> dict[str, float]:
        """The regularisers that are on, for the layer's config (a layer without any writes none)."""
        return {k: v for k, v in asdict(self).items() if v}


def mask(rng: np.random.Generator | None, shape: tuple[int, ...], p: float, dtype: np.dtype) -> np.ndarray | None:
    """An inverted-dropout mask of ``shape`` (kept entries 1 / (1 − p)), or None when p is 0 or there is no
    generator (eval mode): (B, 1, width) for a per-sequence mask on x or y, (B, h) on the state, W_hh's shape."""
    return dropout_mask(rng, shape, p, dtype) if p and rng is not None else None
