"""The README's Python blocks run, in order, as a reader would paste them; every ``lk.`` name it uses exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lstmkit as lk

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)                      # they write runs/ and model files where they run
    scope: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), scope)
        except Exception as e:                       # (name the block, so a failure points at the README)
            pytest.fail(f"README python block {i + 1} fails: {type(e).__name__}: {e}\n{block}")


def test_every_lk_name_the_readme_uses_resolves():
    names = sorted(set(re.findall(r"\blk\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)",
                                  README.read_text())))
    assert "data.VideoFolder" in names
    missing = []
    for dotted in names:
        obj = lk
        for part in dotted.split("."):
            if not hasattr(obj, part):
                missing.append(f"lk.{dotted}")
                break
            obj = getattr(obj, part)
    assert not missing, f"the README uses names lstmkit does not have: {missing}"
