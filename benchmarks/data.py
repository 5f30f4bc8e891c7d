"""Data bigger than memory (lstmkit alone; there is no PyTorch peer for a whole training run's data path).

    python -m benchmarks data            # also part of `make bench`; ~3 minutes, ~1.5 GB of scratch disk

1. Streaming cost: the video app's default model and shape (16 frames of 32×32, batch 32) trained by
   ``fit`` from arrays in memory and from a ``VideoFolder`` (its clip cache on disk, a batch made
   float32 when drawn, the next one read on a background thread): ms per step and their ratio (≤ 1.10).
2. Text: ``lstmkit charlm train --steps 3`` on a generated 100 MB text, the first time (the text is
   encoded and cached) and the second: seconds to the first step and the peak resident memory (targets
   ≤ 10 s and ≤ 500 MB the second time).
3. Video memory: ``lstmkit video train --steps 6`` at 16 frames of 64×64 on 1,200 and on 2,400
   synthetic clips: the peak resident memory (targets ≤ 1 GB, and ≤ 20 % growth).

Each timed run is a process of its own, so one run's memory does not count against another's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PROBE = """
import resource, sys, time
t0 = time.time()
from lstmkit.cli import main
import lstmkit.training as T
first = {}
orig = T.Trainer.train_step
def step(self):
    first.setdefault("s", time.time() - t0)
    return orig(self)
T.Trainer.train_step = step
rc = main(sys.argv[1:])
print(f"RESULT {first.get('s', float('nan')):.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
sys.exit(rc)
"""


def _probe(args: list[str]) -> tuple[float, float]:
    """(seconds to the first training step, peak resident MB) of ``lstmkit ARGS`` in a process of its own."""
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    if r.returncode != 0 or not line:
        raise SystemExit(f"lstmkit {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    first, peak = line[-1].split()[1:]
    return float(first), float(peak)


def streaming(root: Path, steps: int = 24) -> dict[str, Any]:
    import lstmkit as lk
    from lstmkit.data.synthetic_video import make_moving_set
    make_moving_set(root / "clips", per_class=32, frames=16, size=32, seed=0, progress=False)
    ds = lk.data.VideoFolder(root / "clips", frames=16, size=32, progress=False)
    x, y = ds.arrays()

    def ms_per_step(data: tuple[Any, ...]) -> float:
        times = []
        for _ in range(3):                                  # the quietest of three runs
            model = lk.models.CNNLSTM(len(ds.classes), 3, 32, rng=np.random.default_rng(0))
            t = time.perf_counter()
            model.fit(*data, steps=steps, batch_size=32, progress=False, seed=0)
            times.append((time.perf_counter() - t) / steps * 1e3)
        return min(times)

    memory, stream = ms_per_step((x, y)), ms_per_step((ds,))
    return {"case": "video fit, 16×32×32 clips, B 32", "in memory ms/step": memory, "from the cache ms/step": stream,
            "ratio": stream / memory, "target": "≤ 1.10"}


def text(root: Path, mb: int = 100) -> list[dict[str, Any]]:
    from lstmkit.data.text import bundled_shakespeare
    block = bundled_shakespeare().encode("utf-8")
    path = root / "big.txt"
    with open(path, "wb") as f:
        for _ in range(round(mb * 1e6 / len(block))):
            f.write(block)
    rows = []
    for i, when in enumerate(("first time (encodes)", "second time (cached)")):
        first, peak = _probe(["charlm", "train", "--text", str(path), "--out", str(root / f"run{i}"), "--steps", "3",
                              "--no-progress"])
        rows.append({"case": f"char LM, {path.stat().st_size / 1e6:.0f} MB text, {when}", "s to first step": first,
                     "peak MB": peak, "target": "≤ 10 s, ≤ 500 MB" if i else ""})
    return rows


def video_memory(root: Path) -> list[dict[str, Any]]:
    from lstmkit.data.synthetic_video import make_moving_set
    rows = []
    for per_class in (200, 400):
        data = root / f"v{per_class}"
        make_moving_set(data, per_class=per_class, frames=16, size=64, seed=per_class, progress=False)
        _, peak = _probe(["video", "train", str(data), "--out", str(root / f"run{per_class}"), "--frames", "16",
                          "--size", "64", "--steps", "6", "--no-progress"])
        rows.append({"case": f"video train, {6 * per_class:,} clips of 16×64×64", "s to first step": float("nan"),
                     "peak MB": peak, "target": "≤ 1,000 MB" + (", ≤ +20 %" if per_class == 400 else "")})
        shutil.rmtree(data)
    rows[1]["target"] += f" (here {rows[1]['peak MB'] / rows[0]['peak MB'] - 1:+.0%})"
    return rows


def run() -> dict[str, list[dict[str, Any]]]:
    root = Path(tempfile.mkdtemp(prefix="lstmkit-bench-data-"))
    try:
        return {"streaming": [streaming(root)], "memory": text(root) + video_memory(root)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
