"""The see-inside report: a self-contained HTML file from the pretrained model, and the command line's bad
input (no recurrent layer, not a character model, unknown characters, too long for memory)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.apps import charlm as ct
from lstmkit.cli import main, pretrained_path
from lstmkit.inspect import report


@pytest.fixture(scope="module")
def pretrained():
    model, vocab, meta, _ = ct.load_run(pretrained_path())
    return model, vocab


def held_out(vocab, n: int) -> str:
    ids = lk.data.split_train_val(vocab.encode(lk.data.bundled_shakespeare()), 0.1)[1]
    return vocab.decode(ids[:n])


def embedded(html: str) -> dict:
    return json.loads(re.search(r'<script id="lk-data" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_report_is_self_contained_and_holds_the_analyses(pretrained, tmp_path):
    model, vocab = pretrained
    text = held_out(vocab, 3000)
    rep = lk.inspect.charlm_report(model, vocab, text, tmp_path / "r.html", cells=8, progress=False)
    html = (tmp_path / "r.html").read_text()
    assert rep["bytes"] == len(html.encode()) and rep["bytes"] < 150_000
    assert not re.search(r"https?://|<link|<img|<iframe|\bsrc=", html)                  # nothing fetched
    data = embedded(html)
    assert data["text"] == text and data["T"] == 3000 and len(data["cells"]) == 8
    assert {d["feature"] for d in data["detectors"]} == {"line position", "inside quotes", "inside brackets",
                                                         "upper-case line", "word start"}
    assert [s["layer"] for s in data["saturation"]] == ["layer 1", "layer 2"]
    assert all(len(s["gates"]["f"]) == model.cfg.hidden for s in data["saturation"])
    # the embedded blobs inflate to the sizes the page expects
    import base64
    import zlib
    blob = json.loads(re.search(r"const BLOB = (\"[^\"]*\");", html).group(1))
    assert len(zlib.decompress(base64.b64decode(blob))) == sum(data["blob_sizes"])
    line = dict((f, (c, r)) for f, c, r in rep["detections"])
    assert abs(line["line position"][1]) > 0.5 and abs(line["upper-case line"][1]) > 0.5
    assert 1.0 < rep["bpc"] < 3.0


def test_memory_check_names_the_most_characters_that_fit(pretrained):
    model, _ = pretrained
    most = 5_000_000 // report.bytes_per_char(model)
    assert 100 < most < 20000
    with pytest.raises(report.InspectError, match=f"at most {most:,} fit"):
        report.check_size(model, 20000, budget=5_000_000)
    report.check_size(model, most, budget=5_000_000)
    report.check_size(model, 100, budget=5_000_000)


def run(args):
    return main(["charlm", "inspect", *args])


def test_inspect_command_and_bad_input(tmp_path, capsys, monkeypatch):
    out = tmp_path / "report.html"
    assert run(["--chars", "1500", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert out.is_file() and "1,500 characters" in err and "line position: layer" in err
    dense = tmp_path / "dense.npz"
    lk.Sequential(lk.Dense(3, 2)).save(dense)
    lstm = tmp_path / "lstm.npz"
    lk.Sequential(lk.LSTM(3, 2, return_sequences=True)).save(lstm)
    odd = tmp_path / "odd.txt"
    odd.write_text("ROMEO: ünïcode ☃\n" * 10)
    monkeypatch.setenv("LSTMKIT_INSPECT_MEMORY", "100000")
    for args, needle in (([str(dense)], "holds no recurrent layer"),
                         ([str(lstm)], "not a character-LM run"),
                         ([str(tmp_path / "none")], "none"),
                         (["--text", str(odd)], "not in the model's vocabulary"),
                         (["--chars", "1"], "--chars must be >= 2"),
                         (["--chars", "20000"], "at most"),
                         (["--text", str(odd), "--start", "10000"], "only 0 character(s)")):
        assert run([*args, "--out", str(tmp_path / "x.html"), "--no-progress"]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("lstmkit: error:") and "\n" not in err and needle in err, (args, err)
    assert not (tmp_path / "x.html").exists()
    np.testing.assert_equal(out.stat().st_size > 0, True)


def test_a_text_of_long_lines_opens_on_the_strongest_detector_and_calls_the_weak_ones_weak(pretrained, tmp_path):
    """News articles are one long line each: "line position" then tracks nothing the model learned (a slow drift at
    best) and the page used to open on it, the first property listed; it opens on the detector that tracks its
    property most strongly, and one under WEAK_R is marked weak rather than shown as a "best cell"."""
    model, vocab = pretrained
    text = held_out(vocab, 3000).replace("\n", " ")
    lk.inspect.charlm_report(model, vocab, text, tmp_path / "r.html", cells=8, progress=False)
    data = embedded((tmp_path / "r.html").read_text())
    for d in data["detectors"]:
        assert d["weak"] == (not d["cells"] or abs(d["cells"][0]["r"]) < report.WEAK_R), d
    assert any(d["weak"] for d in data["detectors"])
    strong = [d for d in data["detectors"] if not d["weak"]]
    assert strong and all(abs(d["cells"][0]["r"]) >= report.WEAK_R for d in strong)
    best = max(strong, key=lambda d: abs(d["cells"][0]["r"]))
    assert data["open"] == best["cells"][0]["cell"] is not None
    assert best["feature"] != "line position"
