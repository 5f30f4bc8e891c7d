"""The speed a user gets whatever the import order (lstmkit alone): the README's ``fit`` (a two-layer LSTM on padded
sequences, ten epochs, validation each epoch), timed in fresh processes that import NumPy first (as a user's script
does) and lstmkit first (as the CLI does), in alternating rounds; the ratio of the two should be near 1.

    python -m benchmarks order          # also part of `make bench`; ~40 seconds
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

# The README's example, up to its fit; the time of the fit alone is printed.
README_FIT = """
import sys, tempfile, time
if sys.argv[1] == "numpy-first":
    import numpy
import lstmkit as lk
import numpy as np

g = np.random.default_rng(0)
lengths = g.integers(5, 21, 512)
x = g.standard_normal((512, 20, 8)).astype(np.float32)
y = np.array([int(x[i, :n, 0].sum() > 0) for i, n in enumerate(lengths)])
model = lk.Sequential(lk.LSTM(8, 64, num_layers=2, dropout=0.1, return_sequences=False), lk.Dense(64, 2))
t0 = time.perf_counter()
model.fit(x[:400], y[:400], lengths=lengths[:400], epochs=10, batch_size=32, metrics=["accuracy"],
          validation_data=(x[400:], y[400:], lengths[400:]), optimizer=lk.optim.AdamW(model.parameters(), lr=3e-3),
          run_dir=tempfile.mkdtemp() + "/run", progress=False)
print(time.perf_counter() - t0)
"""
ORDERS = ("numpy-first", "lstmkit-first")


def fit_seconds(order: str) -> float:
    """Seconds the README's fit takes in a fresh process with the given import order."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    r = subprocess.run([sys.executable, "-c", README_FIT, order], capture_output=True, text=True, env=env,
                       cwd=Path(__file__).resolve().parent.parent, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"the README fit ({order}) failed:\n{r.stderr}")
    return float(r.stdout.strip().splitlines()[-1])


def run(rounds: int = 5) -> list[dict[str, Any]]:
    """The two orders in alternating fresh processes; the ratio is the median of each round's pair (NumPy first
    over lstmkit first, run back to back), which a VM whose speed drifts between rounds moves less than a ratio of
    medians."""
    times: dict[str, list[float]] = {o: [] for o in ORDERS}
    for _ in range(rounds):
        for o in ORDERS:
            times[o].append(fit_seconds(o))
    first, second = (statistics.median(times[o]) for o in ORDERS)
    ratio = statistics.median(a / b for a, b in zip(times[ORDERS[0]], times[ORDERS[1]]))
    return [{"case": "README fit, 10 epochs", "NumPy first s (min)": f"{first:.2f} ({min(times[ORDERS[0]]):.2f})",
             "lstmkit first s (min)": f"{second:.2f} ({min(times[ORDERS[1]]):.2f})", "ratio": ratio,
             "target": "<= 1.05", "ok": "yes" if ratio <= 1.05 else "NO"}]
