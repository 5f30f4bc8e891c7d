"""The README's speed figures cannot contradict each other: speed tables live in its Speed section only, each
under a bold label naming the machine and the date, and the MPI table says which kernels and when."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SPEED_WORDS = re.compile(r"chars/s|nodes/s|× PyTorch|\| ratio|lstmkit chars|PyTorch chars")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0]: p for p in parts[1:]}


def test_speed_tables_are_only_in_the_speed_section_and_each_is_labelled_and_dated():
    secs = sections(README)
    speed = [k for k in secs if k.startswith("Speed")]
    assert len(speed) == 1, list(secs)
    for name, body in secs.items():
        tables = [ln for ln in body.splitlines() if ln.startswith("|") and SPEED_WORDS.search(ln)]
        if name.startswith("Speed") or name.startswith("More than one machine"):
            continue
        assert not tables, f"a speed table outside the Speed section, in '{name}': {tables}"
    # every table of the Speed section (and the MPI one) comes after a bold machine label with a date
    for name in (speed[0], *[k for k in secs if k.startswith("More than one machine")]):
        lines = secs[name].splitlines()
        starts = [i for i, ln in enumerate(lines)
                  if ln.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|"))]
        for i in starts:
            before = "\n".join(lines[max(0, i - 8):i])
            assert re.search(r"\*\*[^*]*(AMD|Intel|Xeon|EPYC)[^*]*20\d\d-\d\d", before), (name, lines[i])
