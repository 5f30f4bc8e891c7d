"""Checkpoints: one ``.npz`` file holding named arrays plus a JSON header.

The JSON (config, vocabulary, step, RNG state, ...) is stored inside the same
archive as a uint8 array, so a checkpoint is a single file, replaced with one
atomic rename: a crash leaves either the old checkpoint or the new one, never
half of one. Nothing is ever pickled, and loading never trusts the file: every
member's declared dtype and shape are checked against the bytes it really holds
before anything is allocated (``read_arrays``), and any failure of the zip or
``.npy`` readers becomes ``CheckpointError`` naming the file.

Why ``.npz`` and not safetensors: every run and model file written so far is an
``.npz`` and must stay readable, so a hardened ``.npz`` reader is needed either
way; it is ~50 lines over Python's ``zipfile`` and NumPy's own ``.npy`` header
parser, and the files still open with a plain ``np.load``.
"""

from __future__ import annotations

import json
import math
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

    Readers see the old file or the new one, never a mix; on any error the old file is untouched, and
    an OSError (a full disk) names ``path``.
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
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:       # (a full disk says so without naming the file)
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by ``save``; returns (arrays, meta). Anything else is CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    try:
        arrays = read_arrays(path)
        raw = arrays.pop(META_KEY, None)
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("it has no lstmkit header")
        meta = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"its header is a JSON {type(meta).__name__}, not an object")
    except Exception as e:        # a parser over untrusted bytes: every failure means "not a usable file"
        raise CheckpointError(f"{path}: not a readable lstmkit checkpoint ({_reason(e)})") from None
    return arrays, meta


def _reason(e: Exception) -> str:
    if isinstance(e, zipfile.BadZipFile):
        return f"not an intact .npz archive: {e}"
    return str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, each member checked before it is allocated.

    Refused (ValueError or the zip reader's own error): a file that is not a zip archive, compressed or
    encrypted members (``np.savez`` writes neither), a member that is not an ``.npy`` of a numeric dtype,
    and one whose header's shape x itemsize differs from the bytes stored, so a few-kB file cannot
    make this allocate gigabytes. Data damage is caught by the archive's CRC-32 when a member is read.
    """
    if not zipfile.is_zipfile(path):               # (np.load would try it as a pickle and say so in its error)
        raise ValueError("not an .npz archive")
    size = path.stat().st_size
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in out:
                raise ValueError(f"member {name!r} is not one array of an .npz")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise ValueError(f"member {name!r} is compressed or encrypted; lstmkit files store arrays plainly")
            if not info.file_size == info.compress_size <= size:
                raise ValueError(f"member {name!r} declares {info.file_size} bytes in a {size}-byte file")
            with zf.open(info) as f:
                out[name[:-4]] = read_npy(f, name, info.file_size)
    return out


def read_npy(f: BinaryIO, name: str, stored: int) -> np.ndarray:
    """One ``.npy`` of ``stored`` bytes from ``f``: a numeric dtype, its shape checked against ``stored``
    before allocating; ValueError otherwise."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"member {name!r}: .npy format version {version} is not one lstmkit writes")
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields is not None:
        raise ValueError(f"member {name!r} holds {dtype}; lstmkit files hold numeric arrays only")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"member {name!r} declares the shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != stored - f.tell():
        raise ValueError(f"member {name!r} declares {dtype} of shape {shape} ({nbytes} bytes) but stores "
                         f"{stored - f.tell()}")
    a = np.empty(shape, dtype, order="F" if fortran else "C")
    got = f.readinto(memoryview(a.reshape(-1, order="A").view(np.uint8))) if nbytes else 0
    if got != nbytes or f.read(1):                 # (reading to the end also checks the CRC-32)
        raise ValueError(f"member {name!r} is truncated")
    return a


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
