"""Texts bigger than memory: encoded once to the smallest dtype, cached beside the text, memory-mapped; the
char LM's first step in bounded memory the second time, and validation on a bounded sample."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.apps import charlm as ct
from lstmkit.cli.charlm import pretrained_path
from lstmkit.data import corpus as C
from lstmkit.data.text import TextError, Vocab


def test_a_text_is_encoded_once_in_the_smallest_dtype_and_mapped_after(tmp_path, monkeypatch):
    text = "Ünïcödé, across chunk borders: ☃ € 𝄞\n" * 50
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(C, "CHUNK", 7)                  # multi-byte characters split between chunks
    first = C.open_corpus(path)
    vocab = Vocab.from_text(text)
    assert first.vocab == vocab and first.ids.dtype == np.uint8 and isinstance(first.ids, np.memmap)
    np.testing.assert_array_equal(first.ids, vocab.encode(text))
    assert (tmp_path / ".t.txt.lstmkit-ids").stat().st_size == len(text)              # one byte a character

    def no_reading(*a: object) -> None:
        raise AssertionError("read the text although it is cached")

    monkeypatch.setattr(C, "_chunks", no_reading)
    again = C.open_corpus(path)
    np.testing.assert_array_equal(again.ids, first.ids)
    assert again.sha256 == first.sha256 == ct.from_text(text).sha256
    monkeypatch.undo()
    path.write_text(text + "new", encoding="utf-8")                                   # changed: encoded again
    assert C.open_corpus(path).vocab == Vocab.from_text(text + "new")
    wide = tmp_path / "wide.txt"
    wide.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3, encoding="utf-8")
    assert C.open_corpus(wide).ids.dtype == np.uint16


def test_a_read_only_folder_caches_in_the_run_and_bad_texts_are_named(tmp_path, monkeypatch):
    path = tmp_path / "ro" / "t.txt"
    path.parent.mkdir()
    path.write_text("hello world\n" * 20)
    real = C.checkpoint.atomic_write

    def read_only(target: Path, write: object) -> None:    # (chmod does not stop root, who runs CI)
        if Path(target).parent == path.parent:
            raise PermissionError(13, "Permission denied", str(target))
        real(target, write)

    monkeypatch.setattr(C.checkpoint, "atomic_write", read_only)
    got = C.open_corpus(path, cache_dir=tmp_path / "run")
    assert (tmp_path / "run" / "t.txt.lstmkit-ids").is_file() and len(got.ids) == 240
    assert not list(path.parent.glob(".*"))
    monkeypatch.undo()
    (tmp_path / "bin.txt").write_bytes(b"ab\x00cd")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 ok")
    (tmp_path / "empty.txt").write_bytes(b"")
    for name, needle in (("bin.txt", "looks binary"), ("latin1.txt", r"not valid UTF-8 \(byte 3"),
                         ("empty.txt", "the file is empty"), ("none.txt", "no such file")):
        with pytest.raises(TextError, match=needle):
            C.open_corpus(tmp_path / name)


def test_validation_on_a_bounded_sample_of_the_held_out_part():
    model, vocab, _, _ = ct.load_run(pretrained_path())
    ids = ct.split_train_val(ct.load_corpus(ct.BUNDLED).ids, 0.1)[1]
    full = ct.evaluate(model, ids, batch_size=32, seq_len=100)
    assert ct.evaluate(model, ids, batch_size=32, seq_len=100, limit=len(ids) + 5) == full
    sample = ct.evaluate(model, ids, batch_size=32, seq_len=100, limit=16_000)        # ~1/7 of it, spread out
    assert sample != full and abs(sample - full) < 0.1, (sample, full)


def test_a_large_text_reaches_its_first_step_in_bounded_memory_the_second_time(tmp_path):
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    block = ct.bundled_shakespeare().encode("utf-8")
    small.write_bytes(block)                                           # ~1 MB
    with open(big, "wb") as f:
        for _ in range(18):                                            # ~20 MB
            f.write(block)
    probe = ("import resource, sys; from lstmkit.cli import main; rc = main(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr); sys.exit(rc)")
    peaks = {}
    for i, text in enumerate((small, big, big)):                       # the big one: encoded, then cached
        r = subprocess.run([sys.executable, "-c", probe, "charlm", "train", "--text", str(text), "--out",
                            str(tmp_path / f"run{i}"), "--steps", "1", "--no-progress"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        peaks[i] = int(r.stderr.strip().splitlines()[-1])
    # 20x the text costs < 40 MB more at the peak, the first time too (the old path held the text and its
    # int64 ids: ~9 bytes a character, 170 MB more here)
    assert peaks[2] - peaks[0] < 40 and peaks[1] - peaks[0] < 40, peaks
    assert (tmp_path / ".big.txt.lstmkit-ids").stat().st_size == big.stat().st_size
