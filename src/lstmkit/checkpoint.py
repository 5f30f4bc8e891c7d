"""Checkpoints: one ``.npz`` file holding named arrays plus a JSON header.

The JSON (config, vocabulary, step, RNG state, ...) is stored inside the same
archive as a uint8 array, so a checkpoint is a single file, replaced with one
atomic rename: a crash leaves either the old checkpoint or the new one, never
half of one. Loading uses ``allow_pickle=False``; nothing is ever pickled.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

META_KEY = "__meta_json__"


class CheckpointError(ValueError):
    """A checkpoint that is missing or unreadable; the message names the file."""


def save(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` and ``meta`` (JSON-serialisable) to ``path`` atomically."""
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"checkpoint.save: array name {META_KEY!r} is reserved")
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise ValueError(f"checkpoint.save: {name!r} must be a numeric array (object arrays would need pickle)")
    payload = {**arrays, META_KEY: np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)}
    atomic_write(path, lambda f: np.savez(f, **payload))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    Readers see the old file or the new one, never a mix; on any error the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())            # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by ``save``; returns (arrays, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    if not zipfile.is_zipfile(path):               # (np.load would try it as a pickle and say so in its error)
        raise CheckpointError(f"{path}: not a readable lstmkit checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable lstmkit checkpoint ({type(e).__name__}: {e})") from None
    return arrays, meta


def flatten_optimizer_state(state_dict: dict[str, Any], prefix: str = "optim") -> tuple[dict[str, np.ndarray],
                                                                                       dict[str, Any]]:
    """Split an optimizer ``state_dict`` into arrays (for the npz) and JSON-able scalars."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for i, entry in state_dict["state"].items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                arrays[f"{prefix}.{i}.{k}"] = v
            else:
                scalars.setdefault(str(i), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in state_dict["param_groups"]]
    return arrays, {"scalars": scalars, "param_groups": groups}


def unflatten_optimizer_state(arrays: dict[str, np.ndarray], meta: dict[str, Any],
                              prefix: str = "optim") -> dict[str, Any]:
    """Inverse of ``flatten_optimizer_state``."""
    state: dict[int, dict[str, Any]] = {int(i): dict(s) for i, s in meta["scalars"].items()}
    for key, v in arrays.items():
        if key.startswith(prefix + "."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}
