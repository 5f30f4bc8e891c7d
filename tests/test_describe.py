"""repr(model) as PyTorch prints it, and model.summary(input_shape) as Keras does."""

from __future__ import annotations

import pytest

import lstmkit as lk


def test_repr_is_nested_with_each_layers_arguments():
    model = lk.Sequential(lk.Embedding(100, 16, padding_idx=0),
                          lk.Bidirectional(lk.LSTM(16, 32, return_sequences=True), merge_mode="sum"),
                          lk.Dropout(0.2), lk.TimeDistributed(lk.Dense(32, 5, bias=False)))
    assert repr(model) == """Sequential(
  (0): Embedding(100, 16, padding_idx=0)
  (1): Bidirectional(
    merge_mode='sum'
    (forward_layer): LSTM(16, 32, return_sequences=True)
    (backward_layer): LSTM(16, 32, return_sequences=True)
  )
  (2): Dropout(p=0.2)
  (3): TimeDistributed(
    (layer): Dense(32, 5, bias=False)
  )
)"""
    assert repr(lk.GRU(3, 4, num_layers=2, dropout=0.1, dtype="float64")) == \
        "GRU(3, 4, num_layers=2, dropout=0.1, dtype='float64')"


def test_summary_lists_output_shapes_and_parameter_counts():
    model = lk.Sequential(lk.Embedding(50, 8), lk.LSTM(8, 16, return_sequences=True),
                          lk.LSTM(16, 4, return_sequences=False), lk.Dense(4, 3))
    text = model.summary((12,), print_fn=None)
    lines = text.splitlines()
    rows = {line.split()[0]: line for line in lines if line[:1].isdigit()}
    assert "(None, 12, 8)" in rows["0"] and "400" in rows["0"]              # 50 * 8
    assert "(None, 12, 16)" in rows["1"] and "1,664" in rows["1"]           # 4*16*(8+16) + 2*4*16
    assert "(None, 4)" in rows["2"] and "352" in rows["2"]                  # 4*4*(16+4) + 2*4*4
    assert "(None, 3)" in rows["3"] and "15" in rows["3"]
    total = sum(p.value.size for p in model.parameters())
    assert total == 400 + 1664 + 352 + 15 and f"Total params: {total:,}" in text
    assert model.training                                                   # summary leaves the mode as it was


def test_summary_names_a_shape_that_does_not_fit():
    with pytest.raises(ValueError, match=r"summary: input_shape \(12, 5\) does not fit the model: LSTM: expected"):
        lk.Sequential(lk.LSTM(3, 4, return_sequences=False)).summary((12, 5))
