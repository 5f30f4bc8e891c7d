"""The data files that ship inside the package (``data/bundled``), read as arrays."""

from __future__ import annotations

from importlib import resources

import numpy as np


def bundled_arrays(name: str) -> dict[str, np.ndarray]:
    """Every array of the bundled ``.npz`` ``name`` (a file of our own, shipped with the package)."""
    with resources.files("lstmkit.data").joinpath(f"bundled/{name}").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
