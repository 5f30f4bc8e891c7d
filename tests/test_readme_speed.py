"""Speed figures cannot contradict each other: speed tables live on the Speed page only (and the MPI page,
for its own configuration), each under a bold label naming the machine and the date."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED_WORDS = re.compile(r"chars/s|nodes/s|× PyTorch|\| ratio|lstmkit chars|PyTorch chars|ms/step")
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]
HOMES = {ROOT / "docs" / "speed.md", ROOT / "docs" / "apps" / "mpi.md"}


def tables(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, rows) of every Markdown table."""
    lines, out, start = text.splitlines(), [], None
    for i, ln in enumerate([*text.splitlines(), ""]):
        if ln.startswith("|") and start is None:
            start = i
        elif not ln.startswith("|") and start is not None:
            out.append((start, lines[start:i]))
            start = None
    return out


def test_speed_tables_only_on_their_pages_each_labelled_and_dated():
    for page in PAGES:
        text = page.read_text()
        for start, rows in tables(text):
            if not any(SPEED_WORDS.search(r) for r in rows):
                continue
            assert page in HOMES, f"a speed table outside the Speed page: {page.relative_to(ROOT)}:{start + 1}"
            before = "\n".join(text.splitlines()[max(0, start - 8):start])
            assert re.search(r"\*\*[^*]*(AMD|Intel|Xeon|EPYC)[^*]*20\d\d-\d\d", before), (page, start)
    assert tables((ROOT / "docs" / "speed.md").read_text())
