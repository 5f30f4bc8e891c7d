"""The see-inside report for a character model: trace a text, analyse it, write one self-contained HTML file.

The text is read in chunks with the recurrent state carried from one to the next, so
memory holds the kept per-character values (every cell's value as float16 and its gates
as bytes) but never the whole text's float32 gate buffers at once. The report embeds
the text, the per-character loss and top guesses, and a chosen set of cells (the
detectors' best, then the most variable) with their values and gates, quantised to
bytes and deflate-compressed (the page inflates them with the browser's own
DecompressionStream); the analyses over *all* cells (detectors, gate saturation) are
computed here and embedded as small tables.
"""

from __future__ import annotations

import base64
import json
import math
import os
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import atomic_write
from .analysis import char_loss, detect, saturation, text_features, top_guesses
from .trace import recurrent_layers, trace

SIGMOID_GATES = {"i", "f", "o", "r", "z", "p"}        # (and probabilities): in [0, 1]
# What the page shows is quantised to these many levels: the heatmap's colours need no more, and fewer
# distinct bytes deflate smaller (a few hundred KB for 20,000 characters and the default 12 cells).
VALUE_LEVELS, GATE_LEVELS, PROB_LEVELS = 32, 8, 16
# A detector whose best cell correlates less than this with its property is reported as weak (no cell tracks the
# property in this text), and the page does not open on it.
WEAK_R = 0.3


class InspectError(ValueError):
    """A model or text the report cannot be made from; the message says what and why."""


def bytes_per_char(model: Any) -> int:
    """Memory kept per character: every unit's value (float16) and gates (one byte each), per layer."""
    total = 0
    for _, layer in recurrent_layers(model):
        gates = len(layer.kernel.gate_names)
        units = layer.cell_size or layer.state_size                   # the values shown: tanh(c), or h
        total += layer.num_layers * layer.num_directions * (2 * units + gates * layer.hidden_size)
    return total + 64


def available_memory() -> int:
    """Bytes of memory the system reports as available (a generous guess where it cannot say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_size(model: Any, chars: int, budget: int | None = None) -> None:
    """Raise InspectError if ``chars`` characters would not fit in half the available memory."""
    budget = available_memory() // 2 if budget is None else budget
    need = chars * bytes_per_char(model)
    if need > budget:
        most = budget // bytes_per_char(model)
        raise InspectError(f"{chars:,} characters need about {need / 2**30:.1f} GiB at this model's size; at most "
                           f"{most:,} fit in the memory available (use --chars {most} or fewer)")


def collect(model: Any, ids: np.ndarray, chunk: int = 2000, progress: bool = False) -> dict[str, Any]:
    """Trace ``ids`` (T,) through a char model (``forward(ids, state) -> (logits, state)``) chunk by chunk.

    Returns per-character ``loss`` (T,) (the surprise at each character; NaN for the first),
    ``guess_ids``/``guess_p`` (T, 3) (what the model expects after each character), and per
    layer key ``values`` (T, H) float16 (tanh(c) for LSTMs, h otherwise) and ``gates``
    {name: (T, H) uint8} and ``saturated`` {sigmoid gate: (2, H) counts of steps below 0.1 / above 0.9}.
    """
    T = len(ids)
    loss = np.full(T, np.nan)
    guess_ids, guess_p = np.zeros((T, 3), np.int64), np.zeros((T, 3))
    layers: dict[str, dict[str, Any]] = {}
    state = None
    for s in tqdm(range(0, T, chunk), disable=not progress, unit="chunk", desc="tracing"):
        e = min(T, s + chunk)
        tr = trace(model, ids[None, s:e], state=state)
        logits, state = tr.output
        logits = logits[0]                                                     # (t, V)
        guess_ids[s:e], guess_p[s:e] = top_guesses(logits)
        nxt = ids[s + 1:e + 1]
        loss[s + 1:s + 1 + len(nxt)] = char_loss(logits[:len(nxt)], nxt)
        for key, arrays in tr.items():
            v = np.tanh(arrays["c"][0]) if "c" in arrays else arrays["h"][0]
            entry = layers.setdefault(key, {"values": np.empty((T, v.shape[-1]), np.float16), "gates": {},
                                            "saturated": {}})
            entry["values"][s:e] = v
            for g, a in arrays.items():
                if g in ("c", "h"):
                    continue
                q = entry["gates"].setdefault(g, np.empty((T, a.shape[-1]), np.uint8))
                q[s:e] = quantise(a[0], g)
                if g in SIGMOID_GATES:                                         # steps below 0.1, above 0.9
                    count = entry["saturated"].setdefault(g, np.zeros((2, a.shape[-1])))
                    count += np.stack(saturation(a[0])) * (e - s)
    return {"loss": loss, "guess_ids": guess_ids, "guess_p": guess_p, "layers": layers}


def quantise(a: np.ndarray, gate: str | None = None, levels: int = 256) -> np.ndarray:
    """Values in [0, 1] (sigmoid gates) or [-1, 1] (everything else) -> bytes 0..levels-1."""
    lo = 0.0 if gate in SIGMOID_GATES else -1.0
    top = levels - 1
    return np.clip(np.rint((np.asarray(a, np.float64) - lo) / (1.0 - lo) * top), 0, top).astype(np.uint8)


def layer_label(key: str) -> str:
    """"rnn/l1/reverse" -> "layer 2 (reverse)"."""
    parts = key.split("/")
    k = int(parts[-2][1:]) if parts[-1] == "reverse" else int(parts[-1][1:])
    return f"layer {k + 1}" + (" (reverse)" if parts[-1] == "reverse" else "")


def analyse(text: str, data: dict[str, Any], cells: int = 12) -> dict[str, Any]:
    """Detectors and saturation over every cell; the cells to embed. Returns the report's tables."""
    keys = list(data["layers"])
    values = np.concatenate([data["layers"][k]["values"] for k in keys], axis=1)        # (T, all cells)
    owner = [(k, u) for k in keys for u in range(data["layers"][k]["values"].shape[1])]
    found = detect(values, text_features(text), top=3)
    chosen = pick_cells(values, found, cells)
    T = len(text)
    sat = [{"layer": layer_label(k), "gates": {g: np.round(cnt.T / T, 3).tolist()
                                               for g, cnt in data["layers"][k]["saturated"].items()}} for k in keys]
    return {"keys": keys, "owner": owner, "chosen": chosen, "detections": found, "saturation": sat,
            "values": values}


def pick_cells(values: np.ndarray, found: list[Any], cells: int) -> list[int]:
    """The cells the page embeds: each detector's best, then in turn the most selective cells (on, above 0.5,
    for a small share of the text in long runs: what span matching finds), the detectors' runners-up, and
    the most variable cells."""
    v = values.astype(np.float32)
    on = v > 0.5
    p = on.mean(axis=0)
    runs = np.maximum((np.diff(on.astype(np.int8), axis=0) == 1).sum(axis=0), 1)
    selective = np.minimum(on.sum(axis=0) / runs, 20) * p * (1 - p) * (p < 0.5)
    usable = [d for d in found if d.cells.size and not np.isnan(d.corr[0])]
    queues = [[int(c) for c in np.argsort(-selective, kind="stable")],
              [int(c) for d in usable for c, r in zip(d.cells[1:], d.corr[1:]) if not np.isnan(r)],
              [int(c) for c in np.argsort(-v.std(axis=0), kind="stable")]]
    chosen = list(dict.fromkeys(int(d.cells[0]) for d in usable))[:cells]
    while len(chosen) < min(cells, v.shape[1]):
        for q in queues:
            while q and q[0] in chosen:
                q.pop(0)
            if q and len(chosen) < cells:
                chosen.append(q.pop(0))
    return chosen


def build(text: str, vocab_chars: str, data: dict[str, Any], tables: dict[str, Any], title: str) -> str:
    """The report's HTML: the template with the data embedded."""
    T = len(text)
    chosen, owner = tables["chosen"], tables["owner"]
    loss = data["loss"]
    finite = loss[np.isfinite(loss)]
    loss_max = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    blobs: list[bytes] = []

    def blob(a: np.ndarray) -> int:
        blobs.append(np.ascontiguousarray(a, np.uint8).tobytes())
        return len(blobs) - 1

    lq = np.where(np.isfinite(loss), np.clip(np.rint(np.nan_to_num(loss) / loss_max * 254) + 1, 1, 255), 0)
    cell_rows, gate_names = [], None
    for c in chosen:
        key, unit = owner[c]
        gates = {g: q for g, q in data["layers"][key]["gates"].items() if g in SIGMOID_GATES}
        gate_names = list(gates)
        cell_rows.append({"name": f"{layer_label(key)} · cell {unit}", "layer": layer_label(key), "unit": unit,
                          "values": blob(quantise(tables["values"][:, c].astype(np.float64), None, VALUE_LEVELS)),
                          "gates": [blob(quantise(gates[g][:, unit] / 255.0, g, GATE_LEVELS)) for g in gates]})
    index = {c: i for i, c in enumerate(chosen)}
    detectors = [{"feature": d.feature, "cells": [        # none where the property never varies in the text
        {"cell": index.get(int(c)), "name": f"{layer_label(owner[int(c)][0])} · cell {owner[int(c)][1]}",
         "r": round(float(r), 3)} for c, r in zip(d.cells, d.corr) if not math.isnan(r)]}
        for d in tables["detections"]]
    for d in detectors:
        d["weak"] = not d["cells"] or abs(d["cells"][0]["r"]) < WEAK_R
    payload = {"title": title, "text": text, "vocab": vocab_chars, "T": T,
               "bpc": float(np.nanmean(loss) / math.log(2)) if finite.size else None,
               "loss_max": loss_max, "loss": blob(lq), "guess_ids": blob(data["guess_ids"].T),
               "guess_p": blob(quantise(data["guess_p"].T, "p", PROB_LEVELS)),
               "levels": {"value": VALUE_LEVELS, "gate": GATE_LEVELS, "p": PROB_LEVELS},
               "gate_names": gate_names or [], "cells": cell_rows, "detectors": detectors,
               "open": opening_cell(detectors),
               "saturation": tables["saturation"]}
    sizes = [len(b) for b in blobs]
    packed = base64.b64encode(zlib.compress(b"".join(blobs), 9)).decode("ascii")
    payload["blob_sizes"] = sizes
    template = resources.files("lstmkit.inspect").joinpath("report.html").read_text(encoding="utf-8")
    data_json = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return template.replace("/*DATA*/null", data_json).replace("/*BLOB*/\"\"", json.dumps(packed))


def opening_cell(detectors: list[dict[str, Any]]) -> int:
    """The embedded cell the page opens on: the best cell of the detector that tracks its property most strongly
    (|r|), not the first property listed (a text of long lines makes "line position" meaningless); cell 0 when no
    detector is strong."""
    strong = [d["cells"][0] for d in detectors if not d["weak"] and d["cells"][0]["cell"] is not None]
    return max(strong, key=lambda c: abs(c["r"]))["cell"] if strong else 0


def write_report(path: str | Path, html: str) -> Path:
    path = Path(path)
    atomic_write(path, lambda f: f.write(html.encode("utf-8")))
    return path


def charlm_report(model: Any, vocab: Any, text: str, out: str | Path, cells: int = 12, title: str = "",
                  chunk: int = 2000, progress: bool = True, memory_budget: int | None = None) -> dict[str, Any]:
    """Trace ``text`` through a character model, analyse it and write the HTML report to ``out``.

    Returns the path, its size in bytes, and per text property the best cell and its correlation.
    Raises InspectError for a model without recurrent layers, a text too short or too long for
    memory; the vocabulary raises TextError for characters the model does not know.
    """
    if not recurrent_layers(model):
        raise InspectError(f"{type(model).__name__} holds no recurrent layer (LSTM, GRU or SimpleRNN); nothing to "
                           "inspect")
    if cells < 1:
        raise InspectError(f"--cells must be >= 1, got {cells}")
    ids = vocab.encode(text, what="the text")
    if len(ids) < 2:
        raise InspectError(f"the text has {len(ids)} character(s); the report needs at least 2")
    check_size(model, len(ids), memory_budget)
    data = collect(model, ids, chunk, progress)
    tables = analyse(text, data, cells)
    html = build(text, "".join(vocab.chars), data, tables, title or "a character model")
    path = write_report(out, html)
    owner = tables["owner"]
    found = [(d.feature, f"{layer_label(owner[int(d.cells[0])][0])} · cell {owner[int(d.cells[0])][1]}",
              float(d.corr[0])) for d in tables["detections"]]
    return {"path": path, "bytes": path.stat().st_size, "detections": found, "bpc": float(np.nanmean(data["loss"]))
            / math.log(2)}
