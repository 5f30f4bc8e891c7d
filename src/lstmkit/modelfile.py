"""Model files: a model's architecture and weights (and optionally its optimizer) in one ``.npz``.

    model.save("mine.npz")                   # or save_model(model, "mine.npz", optimizer=opt)
    model = lk.load_model("mine.npz")        # rebuilt from the file alone
    opt = lk.load_optimizer("mine.npz", model)

The file is a checkpoint (``lstmkit.checkpoint``: arrays plus a JSON header,
written atomically, read with ``allow_pickle=False``). Its header holds
``"lstmkit_model": {"version": 1, "architecture": {"class": "Sequential",
"config": {...}}}``, where each layer's ``config()`` gives its constructor
arguments and wrapped layers nest as ``{"class", "config"}`` dicts. Weights are
the arrays ``model/<dotted name>``; optimizer state, if saved, ``optim.<i>.<name>``.
Training checkpoints (``latest.npz``, ``best.npz`` of a run) carry the same
header, so ``load_model`` reads them too.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, optim
from ._version import __version__
from .checkpoint import CheckpointError
from .layers.base import REGISTRY, Layer, registered_name

MODEL_VERSION = 1
HEADER = "lstmkit_model"
_OPTIMIZERS = {"SGD": optim.SGD, "Adam": optim.Adam, "AdamW": optim.AdamW}


class ModelFileError(CheckpointError):
    """A model file that cannot be used (missing, damaged, foreign, too new, unknown layer); names the file."""


# ---- architecture <-> JSON ---------------------------------------------------


def layer_to_config(layer: Layer) -> dict[str, Any]:
    """``{"class": name, "config": {...}}`` with wrapped layers nested the same way."""
    return {"class": registered_name(type(layer)), "config": _encode(layer.config())}


def _encode(v: Any) -> Any:
    if isinstance(v, Layer):
        return layer_to_config(v)
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def layer_from_config(spec: dict[str, Any], rng: np.random.Generator | None = None) -> Layer:
    """Build the layer ``layer_to_config`` described (fresh weights); ``rng`` goes to layers that take one."""
    if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
        raise ValueError(f"expected a layer description {{'class': ..., 'config': ...}}, got {str(spec)[:80]}")
    name = spec["class"]
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"layer type {name!r} is not known to this version of lstmkit "
                         "(a layer of your own must be defined, by importing its module, before loading)")
    cfg = {k: _decode(v, rng) for k, v in spec["config"].items()}
    if rng is not None and "rng" in inspect.signature(cls.__init__).parameters:
        cfg["rng"] = rng
    return cls.from_config(cfg)


def _decode(v: Any, rng: np.random.Generator | None) -> Any:
    if isinstance(v, dict) and set(v) == {"class", "config"}:
        return layer_from_config(v, rng)
    if isinstance(v, list):
        return [_decode(x, rng) for x in v]
    return v


# ---- the parts of a file -----------------------------------------------------


def model_header(model: Layer) -> dict[str, Any]:
    """The JSON header entry that lets ``load_model`` rebuild ``model``."""
    return {HEADER: {"version": MODEL_VERSION, "architecture": layer_to_config(model), "lstmkit": __version__}}


def model_arrays(model: Layer) -> dict[str, np.ndarray]:
    return {f"model/{k}": v for k, v in model.state_dict().items()}


def weights_from(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}


def optimizer_payload(optimizer: optim.Optimizer, model: Layer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, JSON) for an optimizer over ``model``'s parameters, groups named by parameter names."""
    names = {id(p): n for n, p in model.named_parameters()}
    try:
        groups = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    except KeyError:
        raise ValueError("the optimizer holds parameters that are not the model's") from None
    arrays, meta = checkpoint.flatten_optimizer_state(optimizer.state_dict())
    return arrays, {**meta, "class": type(optimizer).__name__, "params": groups}


def restore_optimizer(optimizer: optim.Optimizer, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    optimizer.load_state_dict(checkpoint.unflatten_optimizer_state(arrays, meta))


def save_model(model: Layer, path: str | Path, optimizer: optim.Optimizer | None = None,
               extra: dict[str, Any] | None = None) -> None:
    """Write ``model``'s architecture and weights (and ``optimizer``'s state) to ``path`` atomically."""
    if not isinstance(model, Layer):
        raise ValueError(f"save_model: expected a Layer, got {type(model).__name__}")
    arrays = model_arrays(model)
    meta: dict[str, Any] = {"format": "lstmkit-model", **model_header(model), **(extra or {})}
    if optimizer is not None:
        o_arrays, meta["optim"] = optimizer_payload(optimizer, model)
        arrays |= o_arrays
    checkpoint.save(path, arrays, meta)


def read(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A checkpoint's arrays and header, as ModelFileError when unreadable."""
    try:
        return checkpoint.load(path)
    except CheckpointError as e:
        raise ModelFileError(str(e)) from None


def build_model(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                rng: np.random.Generator | None = None, architecture: dict[str, Any] | None = None) -> Layer:
    """The model a file's header describes, with its weights; errors name ``path``."""
    if architecture is None:
        head = meta.get(HEADER)
        if not isinstance(head, dict):
            raise ModelFileError(f"{path}: not an lstmkit model file (no model description in its header)")
        version = head.get("version")
        if not isinstance(version, int) or version > MODEL_VERSION:
            raise ModelFileError(f"{path}: model format version {version!r} is newer than this lstmkit reads "
                                 f"(up to {MODEL_VERSION}); upgrade lstmkit")
        architecture = head.get("architecture")
    stored, declared = sum(a.size for a in arrays.values()), _declared_size(architecture)
    if declared > max(stored, _SMALL):            # building it would allocate weights the file cannot fill
        raise ModelFileError(f"{path}: damaged model file (its architecture declares weights of ~{declared} numbers "
                             f"but the file holds {stored} in all)")
    try:
        model = layer_from_config(architecture, rng)
        model.load_state_dict(weights_from(arrays))
    except Exception as e:         # a description from an untrusted file: any failure means a damaged file
        raise ModelFileError(f"{path}: damaged model file ({type(e).__name__}: {e})") from None
    return model


_SMALL = 1 << 20          # sizes below this allocate at most a few MB: not worth refusing a file for


def _declared_size(spec: Any) -> int:
    """The largest weight a layer description implies: per layer, the product of its two largest integer
    settings (in x out features, vocabulary x width, hidden x hidden ...), over every nested layer."""
    if isinstance(spec, list):
        return max((_declared_size(x) for x in spec), default=0)
    if not isinstance(spec, dict):
        return 0
    if set(spec) == {"class", "config"} and isinstance(spec["config"], dict):
        nested = [v for v in spec["config"].values() if isinstance(v, (dict, list))]
        ints = sorted(abs(i) for v in spec["config"].values() for i in _ints(v))
        own = ints[-1] * (ints[-2] if len(ints) > 1 else 1) if ints else 0
        return max([own, *(_declared_size(v) for v in nested)])
    return max((_declared_size(v) for v in spec.values()), default=0)


def _ints(v: Any) -> list[int]:
    """The integers of a setting: itself, or those of a list of them (a kernel size)."""
    items = v if isinstance(v, list) else [v]
    return [i for i in items if isinstance(i, int) and not isinstance(i, bool)]


def load_model(path: str | Path, rng: np.random.Generator | None = None) -> Layer:
    """Rebuild the model saved in ``path`` (a model file or a run's checkpoint); in eval mode.

    Anything that is not a usable model file raises ModelFileError (a ValueError) naming the file.
    """
    arrays, meta = read(path)
    model = build_model(path, arrays, meta, rng)
    model.eval()
    return model


def app_meta(path: str | Path, app: str, key: str, what: str) -> dict[str, Any]:
    """The header of an application's checkpoint, checked to be ``app``'s (with its settings under ``key``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    _, meta = read(path)
    if meta.get("app") != app or key not in meta:
        raise ModelFileError(f"{path}: not a {what} run (app {meta.get('app')!r})")
    return meta


def load_optimizer(path: str | Path, model: Layer) -> optim.Optimizer:
    """The optimizer saved with ``model`` in ``path`` (``save(..., optimizer=opt)``), over ``model``'s parameters."""
    arrays, meta = read(path)
    saved = meta.get("optim")
    if not isinstance(saved, dict) or saved.get("class") not in _OPTIMIZERS:
        raise ModelFileError(f"{path}: holds no optimizer state (save it with model.save(path, optimizer=opt))")
    named = dict(model.named_parameters())
    try:
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [named[n] for n in names]}
                  for g, names in zip(saved["param_groups"], saved["params"], strict=True)]
        opt = _OPTIMIZERS[saved["class"]](groups)
        restore_optimizer(opt, arrays, saved)
    except Exception as e:         # state from an untrusted file: any failure means a damaged file
        raise ModelFileError(f"{path}: damaged optimizer state or another model's ({type(e).__name__}: {e})") from None
    return opt
