"""Equations as MathML, written at build time (latex2mathml): the browser draws them itself, so the site
needs no JavaScript math library, loads nothing from elsewhere and works offline."""

from __future__ import annotations

from typing import Any

from docutils import nodes
from latex2mathml.converter import convert


def _mathml(latex: str, display: str = "inline") -> str:
    # latex2mathml lays out align* (and split) as a table but not aligned, which reads the same
    latex = latex.replace(r"\begin{aligned}", r"\begin{align*}").replace(r"\end{aligned}", r"\end{align*}")
    return convert(latex, display=display)


def _inline(self: Any, node: nodes.Element) -> None:
    self.body.append(f'<span class="math">{_mathml(node.astext())}</span>')
    raise nodes.SkipNode


def _block(self: Any, node: nodes.Element) -> None:
    latex = node.get("latex") or node.astext()
    self.body.append(f'<div class="math math-display">{_mathml(latex, "block")}</div>')
    raise nodes.SkipNode


def setup(app: Any) -> dict[str, Any]:
    app.add_html_math_renderer("mathml", (_inline, None), (_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
