"""The shape of the package: imports point one way (no cycles; layers know nothing of training or files),
and every application's command line has the same shape."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import cli

SRC = Path(lk.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    base = SRC.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """{module: lstmkit modules it imports}, imports inside functions included; ``from pkg import mod`` is an edge
    to ``pkg.mod`` when that is a module, else to ``pkg``."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.split(".")[0] == "lstmkit"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "lstmkit":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if _exists(sub) else target)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_graph_reader_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "lstmkit.layers.base" in graph["lstmkit.layers.rnn_base"]
    assert "lstmkit.fitting" in graph["lstmkit.models.model"]          # a function-level or module-level import


def test_no_import_cycle_in_the_package():
    assert find_cycle(import_graph()) is None


def test_layers_import_nothing_from_training_files_or_the_root():
    banned = {"lstmkit", "lstmkit.training", "lstmkit.fitting", "lstmkit.modelfile", "lstmkit.summary",
              "lstmkit.models", "lstmkit.cli", "lstmkit.apps"}
    for module, edges in import_graph().items():
        if module.startswith("lstmkit.layers"):
            bad = {e for e in edges if e in banned or any(e.startswith(b + ".") for b in banned - {"lstmkit"})}
            assert not bad, f"{module} imports {sorted(bad)}"


def test_only_the_root_and_main_import_the_package_root():
    for module, edges in import_graph().items():
        if module not in ("lstmkit", "lstmkit.__main__"):
            assert "lstmkit" not in edges, f"{module} imports the package root"


def test_every_application_cli_has_the_same_shape():
    for name, app in cli.APPS.items():
        assert callable(app.add_parser) and callable(app.run), name
        assert app.__name__ == f"lstmkit.cli.{name}"
    text = cli.parser().format_help()
    assert all(name in text for name in cli.APPS)


def test_python_dash_m_cli_runs_every_app(tmp_path):
    for app in cli.APPS:
        r = subprocess.run([sys.executable, "-m", "lstmkit.cli", app, "--help"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and ("COMMAND" in r.stdout or app == "info"), (app, r.stderr)
    r = subprocess.run([sys.executable, "-m", "lstmkit.cli", "charlm", "inspect", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_bare_layers_train_and_save_through_free_functions(tmp_path, capsys):
    layer = lk.Dense(3, 2, dtype="float64")
    assert not hasattr(layer, "fit") and not hasattr(layer, "save")
    x, y = np.random.default_rng(0).standard_normal((40, 3)), np.random.default_rng(1).integers(0, 2, 40)
    hist = lk.fit(layer, x, y, epochs=2, progress=False)
    assert len(hist.rows) > 0
    with pytest.raises(ValueError, match="no loss given"):
        lk.evaluate(layer, x, y)
    assert set(lk.evaluate(layer, x, y, loss="cross_entropy", metrics=["accuracy"])) == {"loss", "accuracy"}
    lk.save_model(layer, tmp_path / "d.npz")
    np.testing.assert_array_equal(lk.load_model(tmp_path / "d.npz").forward(x), layer.forward(x))
    assert cli.main(["model", "summary", str(tmp_path / "d.npz"), "--input-shape", "3"]) == 0
    assert "Total params: 8" in capsys.readouterr().out
