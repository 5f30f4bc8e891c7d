"""Run by tests/test_distributed.py, alone or under ``mpirun -n 2``: a short float64 ``fit`` whose final
weights rank 0 saves to argv[1]; every rank checks that all ranks hold identical weights."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import lstmkit as lk
from lstmkit.distributed import launched, world


class Counted:
    """Arrays as a dataset that counts the samples it is asked for (a rank must read only its share)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y, self.read = x, y, 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.read += len(index)
        return self.x[index], self.y[index]


def main(out: str, run_dir: str | None, steps: int, mode: str = "") -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((90, 7, 3))
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    rank = world().rank
    if mode == "skew" and rank == 1:                     # a rank with other data: the run must refuse
        x = x + 1.0
    model = lk.Sequential(lk.LSTM(3, 8, return_sequences=False, dtype="float64", rng=np.random.default_rng(1)),
                          lk.Dense(8, 2, dtype="float64", rng=np.random.default_rng(2)))
    if mode in ("sigint", "die") and rank == 1:          # rank 1 alone gets Ctrl-C, or dies, at its 9th forward
        calls = {"n": 0}
        forward = model.forward

        def patched(*a: object, **k: object) -> object:
            calls["n"] += 1
            if calls["n"] == 9:
                if mode == "die":
                    os._exit(7)
                os.kill(os.getpid(), signal.SIGINT)
            return forward(*a, **k)

        model.forward = patched
    train, val = (x, y), (x[:21] + 0.1, y[:21])
    if mode == "dataset":                                # the same data read a batch at a time
        train, val = (Counted(x, y), None), Counted(x[:21] + 0.1, y[:21])
    hist = model.fit(*train, optimizer=lk.optim.AdamW(model.parameters(), lr=1e-2), steps=steps, batch_size=16,
                     validation_data=val, metrics=["accuracy"], eval_every=3, progress=False,
                     distributed=launched(), run_dir=run_dir, resume=run_dir is not None)
    comm = world()
    w = np.concatenate([p.value.ravel() for p in model.parameters()])
    everyone = comm.allgather(w[None])
    assert all(np.array_equal(everyone[0], a) for a in everyone), "ranks hold different weights"
    read = comm.allgather(np.array([[train[0].read if mode == "dataset" else -1]]))
    if comm.rank == 0:
        np.savez(out, w=w, val_loss=np.array(hist.history["val_loss"]), ranks=comm.size, reason=hist.stop_reason,
                 read=np.concatenate(read).ravel())


if __name__ == "__main__":
    main(sys.argv[1], None if sys.argv[2] == "-" else sys.argv[2], int(sys.argv[3]), "".join(sys.argv[4:]))
