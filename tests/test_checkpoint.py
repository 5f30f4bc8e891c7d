"""Checkpoints: round trip, atomic replacement, clear errors, no pickle."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint


def test_round_trip_with_rng_state_and_optimizer(tmp_path):
    rng = np.random.default_rng(7)
    rng.random(5)
    p = lk.Parameter(np.ones(3))
    opt = lk.optim.AdamW([p], lr=0.1)
    p.grad[...] = [1.0, -2.0, 3.0]
    opt.step()
    o_arrays, o_meta = checkpoint.flatten_optimizer_state(opt.state_dict())
    meta = {"step": 3, "rng": rng.bit_generator.state, "vocab": "abc", "optim": o_meta}
    checkpoint.save(tmp_path / "ck.npz", {"w": np.arange(4.0), **o_arrays}, meta)
    arrays, meta2 = checkpoint.load(tmp_path / "ck.npz")
    np.testing.assert_array_equal(arrays["w"], np.arange(4.0))
    assert meta2["step"] == 3 and meta2["vocab"] == "abc"
    restored = np.random.default_rng()
    restored.bit_generator.state = meta2["rng"]
    assert restored.random() == rng.random()            # the RNG continues exactly
    # the optimizer continues exactly as the original would
    q = lk.Parameter(p.value.copy())
    opt2 = lk.optim.AdamW([q], lr=0.1)
    opt2.load_state_dict(checkpoint.unflatten_optimizer_state(arrays, meta2["optim"]))
    for o, par in ((opt, p), (opt2, q)):
        par.grad[...] = [0.5, 0.5, -1.0]
        o.step()
    np.testing.assert_array_equal(p.value, q.value)


def test_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"w": np.zeros(2)}, {"step": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"w": np.ones(2)}, {"step": 2})
    monkeypatch.undo()
    arrays, meta = checkpoint.load(path)
    assert meta["step"] == 1 and not arrays["w"].any()
    assert [f.name for f in tmp_path.iterdir()] == ["ck.npz"]     # no temp file left behind


def test_missing_and_corrupted_checkpoints(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"nope.npz: no checkpoint file there"):
        checkpoint.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(checkpoint.CheckpointError, match=r"bad.npz: not a readable lstmkit checkpoint"):
        checkpoint.load(bad)
    text = tmp_path / "text.npz"                                    # not a zip at all: NumPy's own error would
    text.write_text("hello\n")                                      # suggest loading it as a pickle
    with pytest.raises(checkpoint.CheckpointError, match=r"text.npz: not a readable lstmkit checkpoint") as e:
        checkpoint.load(text)
    assert "pickle" not in str(e.value)
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))                # an npz without our header
    with pytest.raises(checkpoint.CheckpointError, match=r"plain.npz: not a readable lstmkit checkpoint"):
        checkpoint.load(tmp_path / "plain.npz")


def test_object_arrays_are_refused():
    with pytest.raises(ValueError, match="object arrays would need pickle"):
        checkpoint.save("unused.npz", {"x": np.array([{"a": 1}], dtype=object)}, {})
