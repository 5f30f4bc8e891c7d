"""Install a built wheel into a fresh venv with no C compiler and check that it carries the compiled core:
``python scripts/check_wheel.py dist/lstmkit-...-manylinux_....whl`` (``make wheel`` runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHECK = """
import numpy as np, lstmkit as lk
info = lk.compiled.info()
assert info["kernel"] == "compiled", info
y, _ = lk.LSTM(3, 4).forward(np.ones((2, 5, 3), np.float32))
assert y.shape == (2, 5, 4)
print("the wheel's core runs:", info["simd"], info["threads"], "threads")
"""


def main(wheel: str) -> int:
    if "manylinux" not in Path(wheel).name:
        print(f"check_wheel: {wheel} is not tagged manylinux", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {**os.environ, "CC": "false", "CXX": "false", "LDSHARED": "false"}   # nothing may compile
        py = venv / "bin" / "python"
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--only-binary", ":all:", wheel], check=True, env=env)
        subprocess.run([str(venv / "bin" / "lstmkit"), "info"], check=True, env=env, cwd=tmp)
        subprocess.run([str(py), "-c", CHECK], check=True, env=env, cwd=tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
