"""Sphinx configuration: MyST pages, MyST-NB tutorials executed on every build, the API from docstrings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("LSTMKIT_DOCS", "1")
# the tutorials run in Jupyter kernels, where tqdm.auto looks for ipywidgets and warns without them
os.environ.setdefault("PYTHONWARNINGS", "ignore::tqdm.std.TqdmWarning")

import lstmkit  # noqa: E402

project = "lstmkit"
author = "the lstmkit developers"
release = version = lstmkit.__version__
copyright = "2026, the lstmkit developers"

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon", "mathml",
              "sphinx.ext.viewcode"]
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README*"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# Tutorials: executed on every build; a failing cell (a failed check) fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True
nb_merge_streams = True

autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Equations become MathML at build time (docs/_ext/mathml.py): no JavaScript math library, nothing loaded
# from outside the site.
html_math_renderer = "mathml"

html_theme = "furo"
html_favicon = "images/favicon.png"
html_title = f"lstmkit {release}"
html_static_path = ["_static"]
html_css_files = ["lstmkit.css"]
html_show_sourcelink = False
html_show_sphinx = False                   # (its footer would link outside the site)
html_theme_options = {"footer_icons": []}
nitpicky = False
suppress_warnings = ["myst.header"]


def _unlink_theme_credit(app, exception) -> None:  # noqa: ANN001
    """Furo's footer always links its home page; keep the credit, drop the link (the site links nothing
    outside itself, and works offline)."""
    if exception is None and app.builder.format == "html":
        for page in Path(app.outdir).rglob("*.html"):
            text = page.read_text(encoding="utf-8")
            if "https://github.com/pradyunsg/furo" in text:
                page.write_text(text.replace('<a href="https://github.com/pradyunsg/furo">Furo</a>', "Furo"),
                                encoding="utf-8")


def setup(app) -> None:  # noqa: ANN001
    app.connect("build-finished", _unlink_theme_credit)
