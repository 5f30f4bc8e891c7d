"""Bracketed trees: parsing (with positions in every error), binarisation, encoding as [token, parent]
arrays, the level schedule, and the boolean formulas (values and depths)."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit as lk
from lstmkit.data.boolean import OPERATORS, make_boolean
from lstmkit.data.trees import IGNORE, NO_TOKEN, PAD, TreeError, TreeVocab, binarize, encode
from lstmkit.layers.tree_base import schedule

SST = "(3 (2 It) (4 (3 works) (2 well)))"


def test_parse_sst_tree_labels_words_children_and_round_trip():
    t = lk.data.parse_tree(SST)
    assert t.label == "3" and t.word is None and len(t.children) == 2
    assert t.children[0].label == "2" and t.children[0].word == "It" and t.children[0].is_leaf
    assert t.words() == ["It", "works", "well"]
    assert t.height == 2 and len(t) == 5
    assert str(t) == SST
    op = lk.data.parse_tree("(0 AND (1 T)\n (0 F))")            # a word on an internal node: its input
    assert op.word == "AND" and [c.word for c in op.children] == ["T", "F"]
    assert (op.children[1].line, op.children[1].col) == (2, 2)


@pytest.mark.parametrize("text,where,what", [
    ("(3 (2 It) (4 works)", "line 1, column 1", "never closed"),
    ("(3 (2 It)))", "line 1, column 11", "unexpected ')'"),
    ("(3 (2 It) (works))", "line 1, column 11", "neither a word nor children"),
    ("(3 (2 It) ( ))", "line 1, column 11", "expected a label"),
    ("(3 (2 It two))", "line 1, column 10", "second word"),
    ("3 (2 It)", "line 1, column 1", "expected '('"),
    ("(3)", "line 1, column 1", "neither a word nor children"),
])
def test_malformed_trees_name_line_and_column(text, where, what):
    with pytest.raises(TreeError) as e:
        lk.data.parse_tree(text, "f.txt")
    assert f"f.txt: {where}" in str(e.value) and what in str(e.value)


def test_read_trees_counts_lines_and_skips_blank_ones(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(f"{SST}\n\n(1 (0 a) (1 b)\n")
    with pytest.raises(TreeError, match=r"t.txt: line 3, column 1: this node is never closed"):
        lk.data.read_trees(p)
    p.write_text(f"{SST}\n\n(1 (0 a) (1 b))\n")
    assert [len(t) for t in lk.data.read_trees(p)] == [5, 3]
    with pytest.raises(TreeError, match="no such file"):
        lk.data.read_trees(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(TreeError, match="holds no trees"):
        lk.data.read_trees(tmp_path / "empty.txt")


def test_binarize_splits_wide_nodes_right_branching():
    t = binarize(lk.data.parse_tree("(4 (1 a) (2 b) (3 c) (0 (1 d) (1 e) (0 f)))"))
    assert str(t) == "(4 (1 a) (4 (2 b) (4 (3 c) (0 (1 d) (0 (1 e) (0 f))))))"
    assert max(len(n.children) for n in t.nodes()) == 2
    assert t.words() == ["a", "b", "c", "d", "e", "f"]


def test_encode_lays_out_pre_order_with_parents_tokens_and_labels():
    trees = [lk.data.parse_tree(SST), lk.data.parse_tree("(1 NOT (0 x))")]
    vocab = TreeVocab.from_trees(trees)
    assert vocab.words[0] == "<unk>" and vocab.labels == ["0", "1", "2", "3", "4"]
    x, y = encode(trees, vocab)
    assert x.shape == (2, 5, 2) and y.shape == (2, 5)
    assert x[0, :, 1].tolist() == [-1, 0, 0, 2, 2]                  # pre-order: parents come first
    assert [vocab.words[k] if k >= 0 else None for k in x[0, :, 0]] == [None, "It", None, "works", "well"]
    assert y[0].tolist() == [3, 2, 4, 3, 2]
    assert x[1, :, 1].tolist() == [-1, 0, PAD, PAD, PAD] and y[1, 2:].tolist() == [IGNORE] * 3
    assert x[1, 0, 0] == vocab.word_index["NOT"] and x[1, 2:, 0].tolist() == [NO_TOKEN] * 3
    _, y_root = encode(trees, vocab, root_only=True)
    assert y_root[:, 0].tolist() == [3, 1] and (y_root[:, 1:] == IGNORE).all()
    x2, _ = encode([lk.data.parse_tree("(2 (2 unseen) (1 x))")], vocab)
    assert x2[0, 1, 0] == vocab.word_index["<unk>"]


def test_encode_errors_name_the_node_position():
    trees = [lk.data.parse_tree("(1 (0 a)\n  (2 (0 c) (1 d) (1 e)))", "sst.txt")]
    vocab = TreeVocab.from_trees(trees)
    with pytest.raises(TreeError, match=r"sst.txt: line 2, column 3: node \(2 ...\) has 3 children.*--binarize"):
        encode(trees, vocab, max_children=2, source="sst.txt")
    encode([binarize(t) for t in trees], vocab, max_children=2)
    with pytest.raises(TreeError, match=r"dev.txt: line 1, column 10: unknown label '7'"):
        encode([lk.data.parse_tree("(1 (0 a) (7 b))")], vocab, source="dev.txt")


def test_schedule_groups_nodes_by_height_and_lists_children_in_order():
    x, _ = encode([lk.data.parse_tree(SST), lk.data.parse_tree("(0 (1 (0 a)) (1 b))")],
                  TreeVocab.from_trees([lk.data.parse_tree(SST), lk.data.parse_tree("(0 (1 (0 a)) (1 b))")]))
    sch = schedule(x[:, :, 1], max_children=2)
    # rows: tree 0 nodes 0..4 -> 0..4; tree 1 nodes 0..3 -> 5..8
    assert [lv.nodes.tolist() for lv in sch.levels] == [[1, 3, 4, 7, 8], [2, 6], [0, 5]]
    top = sch.levels[2]
    assert top.left.tolist() == [1, 6] and top.right.tolist() == [2, 8]
    unary = sch.levels[1]
    assert unary.left.tolist() == [3, 7] and unary.right.tolist() == [4, sch.size]     # the zero row
    one = schedule(x[:, :, 1], one_by_one=True)
    assert len(one.levels) == sch.size and all(len(lv.nodes) == 1 for lv in one.levels)


@pytest.mark.parametrize("parents,what", [
    ([[0, 0, 1]], "tree 0, node 0 has parent 0"),
    ([[-1, 2, 0]], "tree 0, node 1 has parent 2"),
    ([[-1, 0, -1]], "tree 0, node 2 has parent -1"),
    ([[-1, -2, 1]], "names padding node 1"),
    ([[-2, -2, -2]], "tree 0, node 0"),
])
def test_schedule_rejects_parents_that_are_not_pre_order_trees(parents, what):
    with pytest.raises(ValueError, match=what):
        schedule(np.array(parents))
    cell = lk.ChildSumTreeLSTM(2, 3)
    with pytest.raises(ValueError, match="ChildSumTreeLSTM"):
        cell.forward(np.zeros((1, 3, 2)), np.array(parents))


def test_binary_cell_refuses_three_children_and_shapes_are_checked():
    x, _ = encode([lk.data.parse_tree("(0 (0 a) (0 b) (0 c))")], TreeVocab(["a", "b", "c"], ["0"]))
    with pytest.raises(ValueError, match=r"SLSTM: tree 0, node 0 has 3 children; this cell takes at most 2"):
        lk.SLSTM(2, 3).forward(np.zeros((1, 4, 2)), x[:, :, 1])
    with pytest.raises(ValueError, match=r"expected input of shape \(B, N, 2\)"):
        lk.SLSTM(2, 3).forward(np.zeros((1, 4, 5)), x[:, :, 1])
    with pytest.raises(ValueError, match="parents must be"):
        lk.SLSTM(2, 3).forward(np.zeros((1, 4, 2)), x[:, :3, 1])
    with pytest.raises(ValueError, match=r"integers of shape \(B, N, 2\)"):
        lk.models.TreeClassifier(4, 2).forward(np.zeros((1, 4, 2)))


def _value(t) -> bool:
    if t.is_leaf:
        return t.word == "T"
    return bool(OPERATORS[t.word](_value(t.children[0]), _value(t.children[1])))


def test_boolean_formulas_have_their_depth_and_every_node_its_truth_value():
    trees = make_boolean(300, 2, 5, seed=4)
    assert {t.height for t in trees} == {2, 3, 4, 5}
    for t in trees:
        for node in t.nodes():
            assert node.label == str(int(_value(node)))
            assert len(node.children) in (0, 2)
    assert [str(t) for t in make_boolean(5, seed=1)] == [str(t) for t in make_boolean(5, seed=1)]
    assert 0.3 < np.mean([t.label == "1" for t in trees]) < 0.7
