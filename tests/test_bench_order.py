"""The import-order benchmark: it times the README's own fit, in both orders, and reports their ratio."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import order

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_it_times_the_readme_example() -> None:
    for line in ("lengths = g.integers(5, 21, 512)", "epochs=10, batch_size=32",
                 "lk.LSTM(8, 64, num_layers=2, dropout=0.1, return_sequences=False)"):
        assert line in README and line in order.README_FIT, line


@pytest.mark.parametrize("numpy_first,ok", [(1.04, "yes"), (1.30, "NO")])
def test_the_row_is_the_median_of_the_rounds_pair_ratios(numpy_first: float, ok: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    times = {"numpy-first": [numpy_first, 9.0, numpy_first], "lstmkit-first": [1.0, 1.0, 5.0]}
    monkeypatch.setattr(order, "fit_seconds", lambda o: times[o].pop(0))
    (row,) = order.run(rounds=3)
    assert row["ratio"] == pytest.approx(numpy_first) and row["ok"] == ok


def test_one_noisy_run_on_a_drifting_machine_moves_the_pairs_less_than_the_medians(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the machine 2x slower in round 3, and round 2's NumPy-first run slowed by a busy moment: the ratio of the
    # medians would read 1.5 / 1.0, the pairs read 1.0, 1.5, 1.0
    times = {"numpy-first": [1.0, 1.5, 2.0], "lstmkit-first": [1.0, 1.0, 2.0]}
    monkeypatch.setattr(order, "fit_seconds", lambda o: times[o].pop(0))
    (row,) = order.run(rounds=3)
    assert row["ratio"] == pytest.approx(1.0)
