"""Data-parallel training over MPI: the same program on N processes, one shard of every batch each.

    mpirun -n 4 lstmkit charlm train --text big.txt --out runs/big --minutes 60
    mpirun -n 2 python my_script.py          # my_script calls model.fit(..., distributed=True)

Every process (rank) builds the same model from the same seed, so the weights
start identical without being sent. Each step, each rank computes the loss and
gradients of its shard of the global batch; one all-reduce (MPI's, through
mpi4py) over a single flat, preallocated buffer sums the gradients, each
pre-scaled by its shard's share of the batch, so every rank ends with the
gradient of the whole batch and takes the identical optimizer step. The same
call carries a few scalars: the loss, a stop flag (Ctrl-C on any rank), a
non-finite flag (NaN on any rank) and the elapsed time, so that every rank
decides to stop, skip or go on together and nobody waits forever in a
collective. Only rank 0 writes checkpoints, history and plots and shows the
progress bar.

Without an MPI launch nothing here imports mpi4py; ``world()`` is then a
one-process stand-in whose collectives do nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from .parameter import Parameter

# Variables the common launchers set in every process they start (Open MPI, MPICH/Hydra and Intel MPI, PMIx).
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class DistributedError(RuntimeError):
    """A distributed run that cannot go on: no mpi4py, no launcher, or ranks that disagree."""


def launched() -> bool:
    """Whether this process was started by an MPI launcher (mpirun/mpiexec/srun) with more than one rank."""
    for var in _SIZE_VARS:
        try:
            if int(os.environ.get(var, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


def launch_rank() -> int:
    """This process's rank as its MPI launcher set it in the environment (0 when not launched by one)."""
    for var in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"):
        try:
            return int(os.environ[var])
        except (KeyError, ValueError):
            continue
    return 0


class Comm:
    """One process alone: rank 0 of 1; every collective returns its input."""

    rank, size = 0, 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` over all ranks, in place."""
        return buf

    def allgather(self, a: np.ndarray, axis: int = 0) -> np.ndarray:
        """Every rank's ``a`` joined along ``axis`` in rank order."""
        return a

    def bcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return obj

    def agree(self, value: Any, what: str) -> None:
        """Raise DistributedError on every rank if ``value`` (JSON) differs between ranks."""

    def barrier(self) -> None:
        pass


class MPIComm(Comm):
    """MPI's COMM_WORLD through mpi4py."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise DistributedError("this process was started by mpirun but mpi4py is not installed; "
                                   "pip install 'lstmkit[mpi]'") from None
        self._MPI = MPI
        self._comm = MPI.COMM_WORLD
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()

    def allreduce_(self, buf: np.ndarray) -> np.ndarray:
        self._comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def allgather(self, a: np.ndarray, axis: int = 0) -> np.ndarray:
        parts = self._comm.allgather(np.ascontiguousarray(a))
        return np.concatenate(parts, axis=axis)

    def bcast(self, obj: Any) -> Any:
        return self._comm.bcast(obj, root=0)

    def agree(self, value: Any, what: str) -> None:
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        digests = self._comm.allgather(digest)
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise DistributedError(f"ranks disagree on {what}: rank {differ[0]} differs from rank 0 (every rank "
                                   "must run the same command on the same data)")

    def barrier(self) -> None:
        self._comm.Barrier()


_WORLD: Comm | None = None


def world(required: bool = False) -> Comm:
    """The communicator of this run: MPI's when launched by mpirun with more than one rank, else one process.

    With ``required`` (``fit(distributed=True)``, ``--distributed``), a process that was not
    started by an MPI launcher raises DistributedError instead of running alone.
    """
    global _WORLD
    if not launched():
        if required:
            raise DistributedError("distributed training asked for, but this process was not started by mpirun "
                                   "(run: mpirun -n 2 ...); without it, drop --distributed / distributed=True")
        return Comm()
    if _WORLD is None:
        _WORLD = MPIComm()
    return _WORLD


def shard(n: int, comm: Comm) -> slice:
    """This rank's contiguous share of ``n`` items (sizes differ by at most one, in rank order)."""
    return slice(comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size)


class GradSync:
    """All-reduce every gradient of ``params`` (and a few scalars) in one call over one flat buffer.

    Each parameter's ``grad`` becomes a view into the buffer (layers add into it in place, as
    always), so nothing is copied before or after the call. Parameters of another dtype than
    the first keep their own arrays and are reduced in a second call.
    """

    SCALARS = 4                     # loss·share, stop flag, non-finite flag, elapsed seconds / size

    def __init__(self, params: list[Parameter], comm: Comm) -> None:
        self.comm = comm
        dtype = params[0].value.dtype if params else np.dtype(np.float64)
        self.flat_params = [p for p in params if p.value.dtype == dtype]
        self.other = [p for p in params if p.value.dtype != dtype]
        total = sum(p.value.size for p in self.flat_params)
        self.flat = np.zeros(total + self.SCALARS, np.float64 if dtype == np.float64 else dtype)
        self.grads = self.flat[:total]
        o = 0
        for p in self.flat_params:
            view = self.flat[o:o + p.value.size].reshape(p.value.shape)
            view[...] = p.grad
            p.grad = view
            o += p.value.size

    @property
    def nbytes(self) -> int:
        return self.flat.nbytes

    def reduce(self, share: float, loss: float, stop: bool, elapsed: float) -> tuple[float, bool, bool, float]:
        """Scale this rank's gradients by ``share`` (its part of the global batch's loss terms), sum over ranks.

        Returns (global loss, stop on any rank, non-finite on any rank, mean elapsed seconds).
        A rank whose loss is not finite contributes zero gradients and raises the flag.
        """
        finite = bool(np.isfinite(loss))
        if finite:
            self.grads *= share
        else:
            self.grads[...] = 0
        for p in self.other:
            p.grad *= share if finite else 0
        s = self.flat[-self.SCALARS:]
        s[:] = (loss * share if finite else 0.0, float(stop), float(not finite), elapsed / self.comm.size)
        self.comm.allreduce_(self.flat)
        for p in self.other:
            self.comm.allreduce_(p.grad)
        loss_g, stop_g, bad_g, elapsed_g = (float(v) for v in self.flat[-self.SCALARS:])
        return loss_g, stop_g > 0, bad_g > 0, elapsed_g
