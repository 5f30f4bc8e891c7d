"""The tree model: TreeClassifier learns boolean formulas through model.fit (level-batched and node-by-node
give the same numbers), model files round-trip, and the command line end to end, bad input included."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.apps import tree as tree_app
from lstmkit.cli import main
from lstmkit.data.boolean import make_boolean
from lstmkit.data.trees import TreeVocab, encode


def _formulas(n: int, seed: int, lo: int = 1, hi: int = 3) -> tuple[np.ndarray, np.ndarray, TreeVocab]:
    trees = make_boolean(n, lo, hi, seed)
    vocab = TreeVocab(["T", "F", "AND", "OR", "XOR", "NAND"], ["0", "1"])
    x, y = encode(trees, vocab, max_children=2)
    return x, y, vocab


@pytest.mark.parametrize("cell", ["slstm", "childsum"])
def test_fit_learns_boolean_formulas_and_generalises_deeper(cell, tmp_path):
    x, y, vocab = _formulas(600, 0)
    xv, yv, _ = _formulas(200, 1, 4, 5)                                 # deeper than any training formula
    model = lk.models.TreeClassifier(len(vocab.words), 2, 16, 32, cell, rng=np.random.default_rng(0))
    root0 = tree_app.root_accuracy(model.predict(xv), yv)
    hist = model.fit(x, y, optimizer=lk.optim.AdamW(model.parameters(), lr=1e-2), epochs=12, batch_size=32,
                     validation_data=(xv, yv), metrics=["accuracy", tree_app.root_accuracy], progress=False)
    acc = hist.history["val_root_accuracy"]
    assert root0 < 0.75 and max(acc) >= 0.95, (root0, acc)               # chance is about 0.5
    assert hist.history["val_accuracy"][-1] >= 0.95
    model.save(tmp_path / "m.npz")
    back = lk.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(xv), model.predict(xv))


def test_level_batched_equals_node_by_node():
    x, y, vocab = _formulas(40, 3, 1, 5)
    model = lk.models.TreeClassifier(len(vocab.words), 2, 8, 12, "childsum", dtype="float64",
                                     rng=np.random.default_rng(1))
    a = model.forward(x)
    da = model.backward(np.ones_like(a))
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.cell.one_by_one = True
    b = model.forward(x)
    model.backward(np.ones_like(b))
    assert da is None
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(p.grad, g, rtol=0, atol=1e-10)


def run(args: list[str]) -> int:
    return main(["tree", *args])


def test_the_command_line_end_to_end_resume_and_bad_input(tmp_path, capsys):
    data, deeper = tmp_path / "bool", tmp_path / "deeper"
    assert run(["make-boolean", "--out", str(data), "--count", "400", "--max-depth", "3"]) == 0
    assert run(["make-boolean", "--out", str(deeper), "--count", "60", "--min-depth", "4", "--max-depth", "5",
                "--seed", "1"]) == 0
    assert run(["make-boolean", "--out", str(data), "--count", "10"]) == 2
    assert "already exists" in capsys.readouterr().err
    out = tmp_path / "run"
    assert run(["train", str(data), "--out", str(out), "--steps", "60", "--hidden", "24", "--embed", "12",
                "--batch-size", "16", "--lr", "0.01", "--no-progress"]) == 0
    assert "best validation loss" in capsys.readouterr().err
    assert run(["train", "--resume", str(out), "--steps", "200", "--no-progress"]) == 0
    capsys.readouterr()
    assert run(["eval", str(out), str(deeper)]) == 0
    report = capsys.readouterr().out
    first = report.splitlines()[0]
    assert first.startswith("root accuracy") and "on 60 trees" in first
    assert float(first.split()[2]) > 0.8, report                       # learned in 200 steps (chance ~0.5)
    assert [ln.split()[0] for ln in report.splitlines()[2:]] == ["4", "5"]
    assert run(["predict", str(out), "(0 AND (0 T) (0 F))", "(0 OR (0 T) (0 F))"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("(0 AND (1 T) (0 F))") and lines[1].startswith("(1 OR (1 T) (0 F))"), lines

    nary = tmp_path / "nary.txt"
    nary.write_text("(1 (0 a) (1 b))\n(2 (0 a) (1 b) (2 c))\n" * 5)
    bad = tmp_path / "bad.txt"
    bad.write_text("(1 (0 a) (1 b))\n(1 (0 a) (1 b)\n")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("(0 AND (1 T) (7 F))\n")
    for args, needle in ((["train", str(nary), "--out", str(tmp_path / "r2")], "line 2, column 1: node (2 ...) has "
                          "3 children"),
                         (["train", str(bad), "--out", str(tmp_path / "r3")], "bad.txt: line 2, column 1"),
                         (["eval", str(out), str(unknown)], "line 1, column 14: unknown label '7'"),
                         (["predict", str(out), "(0 AND (1 T)"], "tree 1: line 1, column 1"),
                         (["eval", str(out), str(tmp_path / "none")], "no such file or folder"),
                         (["eval", str(tmp_path / "norun"), str(data)], "norun"),
                         (["train"], "tree file or folder"),
                         (["train", "--resume", str(out), "--cell", "childsum"], "cannot change"),
                         (["train", str(data), "--out", str(out)], "already holds a run")):
        assert run(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("lstmkit: error:") and "\n" not in err and needle in err, (args, err)
    assert run(["train", str(nary), "--out", str(tmp_path / "r4"), "--cell", "slstm", "--binarize", "--steps", "2",
                "--no-progress"]) == 0
    assert run(["train", str(nary), "--out", str(tmp_path / "r5"), "--cell", "childsum", "--steps", "2",
                "--labels", "root", "--no-progress"]) == 0


def test_sst_folder_layout_train_dev_test(tmp_path, capsys):
    sst = tmp_path / "sst"
    sst.mkdir()
    good = "(3 (2 It) (4 (3 works) (2 well)))"
    bad = "(1 (2 It) (0 (1 fails) (2 badly) (1 again)))"                 # a node with three children
    (sst / "train.txt").write_text(f"{good}\n{bad}\n" * 20)
    (sst / "dev.txt").write_text(f"{bad}\n{good}\n")
    (sst / "test.txt").write_text(f"{good}\n{bad}\n{good}\n")
    for cell, extra in (("childsum", []), ("slstm", ["--binarize"])):
        out = tmp_path / cell
        assert run(["train", str(sst), "--out", str(out), "--cell", cell, *extra, "--epochs", "3", "--hidden", "8",
                    "--embed", "4", "--batch-size", "8", "--no-progress"]) == 0
        meta = lk.load_model(out / "best.npz")
        assert isinstance(meta, lk.models.TreeClassifier) and meta.cell_name == cell
        capsys.readouterr()
        assert run(["eval", str(out), str(sst)]) == 0                       # test.txt: 3 trees
        assert "on 3 trees" in capsys.readouterr().out
    _, vocab, cfg = tree_app.load(tmp_path / "slstm")
    assert cfg.binarize and vocab.labels == ["0", "1", "2", "3", "4"] and "badly" in vocab.words


def test_labels_come_from_all_the_data_and_defaults_learn_a_small_set(tmp_path, capsys):
    two = tmp_path / "two.txt"                                  # one of the two is held out, with its label
    two.write_text("(3 (3 good) (3 film))\n(7 (7 bad) (7 film))\n")
    assert run(["train", str(two), "--out", str(tmp_path / "r2"), "--steps", "2", "--no-progress"]) == 0
    assert tree_app.load(tmp_path / "r2")[1].labels == ["3", "7"]
    small = tmp_path / "small.txt"
    small.write_text("".join(f"{t}\n" for t in make_boolean(32, 1, 3, 5)))
    capsys.readouterr()
    assert run(["train", str(small), "--out", str(tmp_path / "r"), "--no-progress"]) == 0     # all defaults
    assert run(["eval", str(tmp_path / "r"), str(small)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert float(first.split()[2]) >= 0.9, first               # its own training trees (was 0.28-0.56)


def test_warmup_scales_with_a_short_budget():
    cfg = lk.training.TrainConfig(steps=60, warmup=50, schedule="cosine", min_lr_frac=0.05)
    peak = max(cfg.lr_factor(s, 0.0) for s in range(60))
    assert cfg.warmup_steps() == 6 and peak > 0.95, peak       # was 0.3: 50 warm-up steps into a cosine of 60
    assert lk.training.TrainConfig(steps=10_000, warmup=50).warmup_steps() == 50


def test_predict_labels_the_valid_trees_and_names_the_others(tmp_path, capsys):
    data = tmp_path / "t.txt"
    data.write_text("(1 (0 a) (1 b))\n(0 (1 b) (0 a))\n" * 8)
    out = tmp_path / "run"
    assert run(["train", str(data), "--out", str(out), "--cell", "slstm", "--steps", "3", "--no-progress"]) == 0
    capsys.readouterr()
    trees = ["(9 (9 a) (9 b))", "(9 (9 a) (9 b) (9 a))", "(9 (9 a)", "(9 (9 b) (9 a))"]
    assert run(["predict", str(out), *trees]) == 2
    got = capsys.readouterr()
    lines, errors = got.out.splitlines(), got.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("(") and "(9 " not in lines[0], lines
    assert len(errors) == 2 and errors[0].startswith("lstmkit: error: tree 2 ((9 (9 a) (9 b) (9 a))): a node has 3 "
                                                     "children") and "predict with --binarize" in errors[0], errors
    assert errors[1].startswith("lstmkit: error: tree 3: line 1"), errors
    assert run(["predict", str(out), "--binarize", trees[1]]) == 0
    assert capsys.readouterr().out.split("\t")[0].count("(") == 5    # 3 leaves, the root and the node binarize added
    nary = tmp_path / "nary.txt"
    nary.write_text("(1 (0 a) (1 b) (0 a))\n")
    assert run(["eval", str(out), str(nary)]) == 2 and "--binarize" in capsys.readouterr().err
    assert run(["eval", str(out), str(nary), "--binarize"]) == 0
