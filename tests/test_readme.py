"""The README and the manual pages: their Python blocks run, in order, as a reader would paste them; every
``lk.`` name they use exists; every relative link points at a file of the repository and none leaves it.
(The tutorials are executed by ``make docs``, whose build fails on a failing cell.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lstmkit as lk

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md", ROOT / "docs" / "guide.md"]
ALL_MD = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ALL_MD = [p for p in ALL_MD if "_build" not in p.parts]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_python_blocks_run_in_order(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text())
    assert blocks, page
    monkeypatch.chdir(tmp_path)                      # they write runs/ and model files where they run
    scope: dict = {"__name__": "__doc__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page.name} python block {i + 1}", "exec"), scope)
        except Exception as e:                       # (name the block, so a failure points at the page)
            pytest.fail(f"{page.name} python block {i + 1} fails: {type(e).__name__}: {e}\n{block}")


def test_every_lk_name_the_pages_use_resolves():
    text = "\n".join(p.read_text() for p in ALL_MD)
    names = sorted(set(re.findall(r"\blk\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)", text)))
    assert "data.VideoFolder" in names and "gradcheck" in names
    missing = []
    for dotted in names:
        obj = lk
        for part in dotted.split("."):
            if not hasattr(obj, part):
                missing.append(f"lk.{dotted}")
                break
            obj = getattr(obj, part)
    assert not missing, f"the pages use names lstmkit does not have: {missing}"


def test_links_stay_inside_the_repository_and_point_at_files():
    broken, outside = [], []
    for page in ALL_MD:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                outside.append(f"{page.relative_to(ROOT)}: {target}")
            elif not target.startswith("#") and not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not outside and not broken, (outside, broken)


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    first = [ln for ln in text.splitlines() if ln.startswith("make ")][:2]
    assert len(text.splitlines()) <= 150 and [ln.split()[1] for ln in first] == ["run", "test"]
