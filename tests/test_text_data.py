"""Character data: bundled corpus, vocabulary, file loading errors, BPTT windows."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.data import TextError, Vocab, Windows, load_text, split_train_val


def test_bundled_corpus_is_shakespeare_in_char_rnn_layout():
    text = lk.data.bundled_shakespeare()
    assert 1_000_000 < len(text) < 1_300_000
    assert text.startswith("BERNARDO:\nWho's there?\n\n")
    assert "HAMLET:\nTo be, or not to be" in text
    assert not set(text) & set("*_#\\")           # no Markdown left


def test_vocab_round_trip_and_unknown_characters():
    v = Vocab.from_text("hello world")
    ids = v.encode("hold low")
    assert ids.dtype == np.int64 and v.decode(ids) == "hold low"
    assert Vocab.from_json(v.to_json()) == v
    with pytest.raises(TextError, match=r"prompt has characters not in the model's vocabulary: 'XZ'"):
        v.encode("hello XZX", what="prompt")


def test_split_is_fixed_last_tenth():
    ids = np.arange(1000)
    tr, va = split_train_val(ids)
    assert len(va) == 100 and va[0] == 900 and tr[-1] == 899


def test_windows_carry_each_stream_across_windows():
    ids = np.arange(1003)
    w = Windows.make(ids, batch_size=4, seq_len=10)
    assert w.streams.shape == (4, 250) and len(w) == 24
    x0, y0 = w.window(0)
    x1, _ = w.window(1)
    assert x0.shape == y0.shape == (4, 10)
    np.testing.assert_array_equal(y0, x0 + 1)               # next-character targets
    np.testing.assert_array_equal(x1[:, 0], y0[:, -1])       # window k+1 continues window k in every stream
    np.testing.assert_array_equal(x0[:, 0], [0, 250, 500, 750])
    with pytest.raises(TextError, match="too short: 50 characters give 4 streams of 12, but a window needs 13"):
        Windows.make(np.arange(50), batch_size=4, seq_len=12)


def test_load_text_errors_name_the_file(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("To be, or not to be", encoding="utf-8")
    assert load_text(good) == "To be, or not to be"
    with pytest.raises(TextError, match=r"missing.txt: no such file"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(TextError, match=r"b.bin: looks binary"):
        load_text(tmp_path / "b.bin")
    (tmp_path / "c.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(TextError, match=r"c.txt: not valid UTF-8"):
        load_text(tmp_path / "c.txt")
    (tmp_path / "d.txt").write_text("")
    with pytest.raises(TextError, match=r"d.txt: the file is empty"):
        load_text(tmp_path / "d.txt")
