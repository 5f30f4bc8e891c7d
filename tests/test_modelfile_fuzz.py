"""Model files and checkpoints nobody can break: damaged copies only ever raise ModelFileError/CheckpointError.

A seeded loop makes a few hundred damaged copies of a model file and of a run's checkpoint (byte flips,
truncations, members swapped or renamed, headers that lie about their shapes, JSON headers with values
of the wrong kind) and loads each: the result is a working model or the library's own error naming
the file — never a NotImplementedError from the zip reader, a MemoryError, or a multi-GB allocation.
"""

from __future__ import annotations

import io
import json
import random
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint
from lstmkit.modelfile import ModelFileError


def _model() -> lk.Layer:
    g = np.random.default_rng(0)
    return lk.Sequential(lk.LSTM(3, 4, return_sequences=False, rng=g), lk.Dense(4, 2, rng=g))


def _npy(shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def _rezip(src: Path, dst: Path, edit: Any) -> None:
    """Copy the archive ``src`` to ``dst`` with ``edit(members)`` applied to its {name: bytes}."""
    with zipfile.ZipFile(src) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    edit(members)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for k, v in members.items():
            z.writestr(k, v)


def _mutate_json(meta: Any, r: random.Random) -> Any:
    """``meta`` with one value somewhere inside replaced by a value of another kind (or deleted)."""
    paths: list[tuple[Any, Any]] = []
    stack = [meta]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            paths.append((node, k))
            stack.append(v)
    node, key = r.choice(paths)
    choice = r.randrange(6)
    if choice == 0 and isinstance(node, dict):
        del node[key]
    else:
        node[key] = [None, -1, "x", [], {}, 10**12][choice]
    return meta


def _damaged_copies(good: Path, out: Path, n: int, seed: int) -> list[Path]:
    r = random.Random(seed)
    data = good.read_bytes()
    arrays, meta = checkpoint.load(good)
    made = []
    for i in range(n):
        p = out / f"bad{i}.npz"
        kind = i % 6
        if kind == 0:                                           # random byte flips
            b = bytearray(data)
            for _ in range(r.randrange(1, 8)):
                b[r.randrange(len(b))] ^= 1 << r.randrange(8)
            p.write_bytes(bytes(b))
        elif kind == 1:                                         # truncated
            p.write_bytes(data[:r.randrange(len(data))])
        elif kind == 2:                                         # two members' contents swapped
            def swap(m: dict[str, bytes]) -> None:
                a, b = r.sample(sorted(m), 2)
                m[a], m[b] = m[b], m[a]
            _rezip(good, p, swap)
        elif kind == 3:                                         # a member renamed or dropped
            def rename(m: dict[str, bytes]) -> None:
                k = r.choice(sorted(m))
                v = m.pop(k)
                if r.random() < 0.5:
                    m[r.choice(["x.npy", "model/0.weight_ih.npy", "evil", "a/../b.npy"])] = v
            _rezip(good, p, rename)
        elif kind == 4:                                         # a header that lies about its shape
            def lie(m: dict[str, bytes]) -> None:
                k = r.choice(sorted(m))
                shape = r.choice([(50_000_000_000,), (600_000_000,), (7, 3), (-1,), (2**62, 4)])
                m[k] = _npy(shape, r.choice(["<f4", "<f8", "|O", "<U3"]), m[k][-64:])
            _rezip(good, p, lie)
        else:                                                   # the JSON header with a value of a wrong kind
            checkpoint.save(p, arrays, _mutate_json(json.loads(json.dumps(meta)), r))
        made.append(p)
    return made


def test_damaged_model_files_raise_model_file_error_and_never_allocate_much(tmp_path):
    good = tmp_path / "good.npz"
    _model().save(good)
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    raised = 0
    tracemalloc.start()
    try:
        for p in _damaged_copies(good, tmp_path, 300, seed=0):
            try:
                m = lk.load_model(p)
            except ModelFileError as e:
                assert str(p) in str(e) and "pickle" not in str(e), str(e)
                raised += 1
            else:
                assert np.isfinite(m.forward(x)).all()        # what loads, runs
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert raised > 200
    assert peak < 50e6, f"loading damaged files allocated {peak / 1e6:.0f} MB at the peak"


def test_a_header_claiming_billions_of_floats_is_refused_before_allocating(tmp_path):
    good = tmp_path / "good.npz"
    _model().save(good)
    for n in (50_000_000_000, 600_000_000):
        bad = tmp_path / f"claims{n}.npz"
        _rezip(good, bad, lambda m, n=n: m.update({"model/1.weight.npy": _npy((n,), "<f4", b"\0" * 64)}))
        assert bad.stat().st_size < 10_000
        tracemalloc.start()
        try:
            with pytest.raises(ModelFileError, match=r"declares float32 of shape \(\d+,\) \(\d+ bytes\) but stores 64"):
                lk.load_model(bad)
            assert tracemalloc.get_traced_memory()[1] < 10e6
        finally:
            tracemalloc.stop()


def test_compressed_object_and_foreign_members_are_refused(tmp_path):
    good = tmp_path / "good.npz"
    _model().save(good)
    arrays, meta = checkpoint.load(good)
    squeezed = tmp_path / "compressed.npz"
    np.savez_compressed(squeezed, **arrays, **{checkpoint.META_KEY: np.frombuffer(json.dumps(meta).encode(),
                                                                                  np.uint8)})
    with pytest.raises(ModelFileError, match="compressed or encrypted"):
        lk.load_model(squeezed)
    obj = tmp_path / "object.npz"
    _rezip(good, obj, lambda m: m.update({"model/1.bias.npy": _npy((1,), "|O", b"\x80\x04N.")}))
    with pytest.raises(ModelFileError, match="numeric arrays only"):
        lk.load_model(obj)
    extra = tmp_path / "extra.npz"
    _rezip(good, extra, lambda m: m.update({"run.sh": b"rm -rf /"}))
    with pytest.raises(ModelFileError, match="'run.sh' is not one array"):
        lk.load_model(extra)


def test_damaged_checkpoints_stop_resume_with_checkpoint_error(tmp_path):
    g = np.random.default_rng(2)
    x, y = g.standard_normal((16, 5, 3)).astype(np.float32), g.integers(0, 2, 16)

    def fit(run: Path, resume: bool) -> None:
        m = _model()
        m.fit(x, y, loss="cross_entropy", optimizer=lk.optim.Adam(m.parameters(), lr=1e-2), steps=2,
              batch_size=8, run_dir=run, resume=resume, progress=False)

    fit(tmp_path / "run", False)
    latest = tmp_path / "run" / "latest.npz"
    raised = 0
    for i, p in enumerate(_damaged_copies(latest, tmp_path, 60, seed=1)):
        run = tmp_path / f"r{i}"
        run.mkdir()
        p.rename(run / "latest.npz")
        try:
            fit(run, True)
        except checkpoint.CheckpointError as e:           # (ModelFileError is one)
            assert str(run / "latest.npz") in str(e) and "pickle" not in str(e), str(e)
            raised += 1
        except lk.runs.RunError as e:                     # a damaged architecture reads as another model
            assert "differs from this one" in str(e) or "cannot change" in str(e), str(e)
            raised += 1
    assert raised > 40
