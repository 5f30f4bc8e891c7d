r"""Connectionist Temporal Classification loss (Graves et al., 2006), with PyTorch's conventions.

For logits (B, T, C), log-probabilities y = log_softmax(logits), a target l of length S and
its extended form l' = (blank, l_1, blank, l_2, ..., l_S, blank) of length L = 2S + 1, the
forward variables (log space, emission included) are::

    α_0(0) = y_0(blank),  α_0(1) = y_0(l_1)
    α_t(s) = logsumexp(α_{t−1}(s), α_{t−1}(s−1), [α_{t−1}(s−2) if l'_s ≠ blank and l'_s ≠ l'_{s−2}]) + y_t(l'_s)
    −log p(l | x) = −logsumexp(α_{T−1}(L−1), α_{T−1}(L−2))

β is the same recursion run on the time- and label-reversed problem, so both are one
recursion over a stacked 2B-row batch, vectorised over samples and the extended-label
axis and looping over time only. The recursion runs on probabilities rather than their
logs, in float64, each step's α row divided by its sum c_t (Rabiner's scaling), so that
nothing underflows and −log p = −Σ_t log c_t − log(α̂_{T−1}(L−1) + α̂_{T−1}(L−2)): a
few multiply-adds per step and no exp or log inside the loop. The posterior of being at
s at time t is α_t(s) β_t(s) / (y_t(l'_s) p), rebuilt from the scaled values and the
scales' partial sums, and

    ∂(−log p)/∂logits_t(k) = softmax_t(k) − Σ_{s: l'_s = k} α_t(s) β_t(s) / (y_t(l'_s) p)

for t below the sample's input length (zero after it). The formulas above use
logsumexp; the scaled recursion computes the same sums in linear space. (One difference
from log space: an emission probability below e^-708, i.e. logits more than 708 apart,
counts as zero, where log space would carry it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import compiled
from .workspace import Workspace

_REDUCTIONS = ("mean", "sum", "none")


def _lengths(name: str, v: Any, B: int, upper: int | None) -> np.ndarray:
    a = np.asarray(v)
    if a.shape != (B,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"CTCLoss: expected {name} as integers of shape ({B},), got {a.dtype} of shape {a.shape}")
    bad = np.flatnonzero((a < 0) | ((a > upper) if upper is not None else False))
    if bad.size:
        b = int(bad[0])
        raise ValueError(f"CTCLoss: {name}[{b}] = {int(a[b])} is outside [0, {upper}]")
    return a.astype(np.int64)


def pack_targets(input_lengths: Any, targets: Any, target_lengths: Any) -> np.ndarray:
    """(N, 2 + S) int64 rows [input_length, target_length, labels...]: everything CTC needs per sample in one
    array, so ``model.fit(x, pack_targets(...), loss=CTCLoss(), lengths=input_lengths)`` batches it like labels."""
    t, il, tl = np.asarray(targets), np.asarray(input_lengths), np.asarray(target_lengths)
    if t.ndim != 2 or il.shape != (len(t),) or tl.shape != (len(t),):
        raise ValueError(f"pack_targets: expected padded targets (N, S) with input and target lengths (N,), got "
                         f"{t.shape}, {il.shape}, {tl.shape}")
    return np.concatenate([il[:, None], tl[:, None], t], axis=1).astype(np.int64)


def unpack_targets(packed: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_lengths, padded targets, target_lengths) from ``pack_targets``' rows."""
    p = np.asarray(packed)
    if p.ndim != 2 or p.shape[1] < 2 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"CTCLoss: without lengths, expected targets packed by pack_targets (N, 2 + S) ints, "
                         f"got {p.dtype} of shape {p.shape}")
    return p[:, 0], p[:, 2:], p[:, 1]


def _softmax(x: np.ndarray) -> np.ndarray:
    """softmax over classes of logits (B, T, C), as (B, C, T) float64: no emission probability underflows before
    e^-700, and the reductions run along contiguous rows (T innermost)."""
    probs = np.ascontiguousarray(x.transpose(0, 2, 1), np.float64)
    probs -= probs.max(axis=1, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs


def _likelihood(A: np.ndarray, log_scale: np.ndarray, Tl: np.ndarray, Ll: np.ndarray) -> np.ndarray:
    """log p(l | x) (B,) from the scaled α̂ (T + 1, 2B, W) and the log-scales (T, 2B): the scales' logs up to each
    sample's last step plus the log of its two final α̂ (−inf or NaN where no alignment exists)."""
    B = len(Tl)
    rows = np.arange(B)
    last = A[Tl, rows, 2:]                                                     # α̂ at each T_b − 1 (Tl ≥ 1)
    end = last[rows, Ll - 1] + np.where(Ll >= 2, last[rows, np.maximum(Ll - 2, 0)], 0.0)
    before = np.cumsum(log_scale[:, :B], axis=0)                               # Σ_{τ≤t} log scale_τ
    return np.where(Tl > 0, before[np.maximum(Tl - 1, 0), rows], 0.0) + np.log(end)


@dataclass
class CTCRecord:
    """What ``CTCLoss.forward`` keeps for its backward (B samples, T steps, L = 2S + 1 extended labels, W = L + 2).

    probs      (B, C, T)        the softmax, float64
    ext        (B, L)           extended targets: blank, l_1, blank, ..., l_S, blank
    Tl, Sl     (B,)             input and target lengths
    A          (T + 1, 2B, W)   scaled α̂ of every step; rows B.. the reversed problem (its α is β)
    pre        (T, 2B·W)        α_t(s) / y_t(s), in units of α̂_{t−1}
    log_scale  (T, 2B)          log of each step's scale
    logP       (B,)             log p(l | x), 0 where infeasible
    feasible   (B,)             whether an alignment exists
    rev_t, rev_s (B, T), (B, L) time and label reversal within each sample's lengths; uniform: all lengths full
    """

    probs: np.ndarray
    ext: np.ndarray
    Tl: np.ndarray
    Sl: np.ndarray
    A: np.ndarray
    pre: np.ndarray
    log_scale: np.ndarray
    logP: np.ndarray
    feasible: np.ndarray
    rev_t: np.ndarray
    rev_s: np.ndarray
    uniform: bool
    dtype: np.dtype


class CTCLoss:
    """``loss = CTCLoss(blank=0)(logits, targets, input_lengths, target_lengths)``; ``backward()`` -> dlogits.

    logits (B, T, C) (log_softmax is taken inside); targets padded (B, S) or concatenated (ΣS_b,);
    input_lengths, target_lengths (B,). ``reduction="mean"`` divides each sample's loss by its target
    length (at least 1), then averages over the batch, as PyTorch does; "sum" adds; "none" returns (B,).
    An impossible alignment gives inf (or 0, with no gradient, if ``zero_infinity``).
    """

    name = "CTCLoss"

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"CTCLoss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.blank, self.reduction, self.zero_infinity = int(blank), reduction, zero_infinity
        self._record: CTCRecord | None = None
        self._ws = Workspace()

    def __call__(self, logits: np.ndarray, targets: np.ndarray, input_lengths: Any = None,
                 target_lengths: Any = None) -> float | np.ndarray:
        return self.forward(logits, targets, input_lengths, target_lengths)

    def _targets(self, targets: Any, lengths: np.ndarray, C: int) -> np.ndarray:
        """Targets as a padded (B, S_max) int array, checked."""
        t = np.asarray(targets)
        B = len(lengths)
        if not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"CTCLoss: expected integer targets, got dtype {t.dtype}")
        S = int(lengths.max(initial=0))
        if t.ndim == 1:                                   # concatenated
            if t.size != lengths.sum():
                raise ValueError(f"CTCLoss: concatenated targets hold {t.size} labels but target_lengths add up "
                                 f"to {int(lengths.sum())}")
            padded = np.full((B, S), self.blank, np.int64)
            ends = np.cumsum(lengths)
            for b in range(B):
                padded[b, :lengths[b]] = t[ends[b] - lengths[b]:ends[b]]
        elif t.ndim == 2 and t.shape[0] == B and t.shape[1] >= S:
            padded = t[:, :S].astype(np.int64)
        else:
            raise ValueError(f"CTCLoss: expected targets of shape ({B}, >= {S}) or ({int(lengths.sum())},), "
                             f"got {t.shape}")
        valid = np.arange(S)[None, :] < lengths[:, None]
        bad = valid & ((padded < 0) | (padded >= C) | (padded == self.blank))
        if bad.any():
            b, s = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(f"CTCLoss: target {b} has label {int(padded[b, s])} at position {s}; expected labels "
                             f"in [0, {C}) other than the blank {self.blank}")
        return np.where(valid, padded, self.blank)

    def _check(self, logits: Any, targets: Any, input_lengths: Any, target_lengths: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(logits (B, T, C), input lengths (B,), target lengths (B,), padded targets (B, S)), each checked."""
        x = np.asarray(logits)
        if x.ndim != 3 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"CTCLoss: expected floating-point logits of shape (B, T, C), got {x.dtype} {x.shape}")
        if not np.isfinite(x).all():
            b = int(np.flatnonzero(~np.isfinite(x).reshape(x.shape[0], -1).all(axis=1))[0])
            raise ValueError(f"CTCLoss: logits of sample {b} contain NaN or infinite values")
        B, T, C = x.shape
        if not 0 <= self.blank < C:
            raise ValueError(f"CTCLoss: blank {self.blank} is not a class of logits with C = {C}")
        Tl = _lengths("input_lengths", input_lengths, B, T)
        Sl = _lengths("target_lengths", target_lengths, B, None)
        over = np.flatnonzero(Sl > Tl)
        if over.size:
            b = int(over[0])
            raise ValueError(f"CTCLoss: target {b} has {int(Sl[b])} labels but its input only {int(Tl[b])} steps")
        return x, Tl, Sl, self._targets(targets, Sl, C)

    def forward(self, logits: np.ndarray, targets: Any, input_lengths: Any = None, target_lengths: Any = None
                ) -> float | np.ndarray:
        """The loss (a float, or (B,) with reduction "none"). Without lengths, ``targets`` is packed as
        ``pack_targets`` makes it (how ``model.fit`` passes them)."""
        if input_lengths is None and target_lengths is None:
            input_lengths, targets, target_lengths = unpack_targets(targets)
        x, Tl, Sl, tgt = self._check(logits, targets, input_lengths, target_lengths)
        B, S = tgt.shape
        ext = np.full((B, 2 * S + 1), self.blank, np.int64)
        ext[:, 1::2] = tgt                                                   # (B, L): blank, l1, blank, ...
        rec = self._recursion(_softmax(x), ext, Tl, Sl, x.dtype)
        self._record = rec
        loss = np.where(rec.feasible, -rec.logP, np.inf)
        if self.zero_infinity:
            loss = np.where(rec.feasible, loss, 0.0)
        if self.reduction == "none":
            return loss.astype(x.dtype)
        if self.reduction == "sum":
            return float(loss.sum())
        return float((loss / np.maximum(Sl, 1)).mean())

    def _recursion(self, probs: np.ndarray, ext: np.ndarray, Tl: np.ndarray, Sl: np.ndarray, dtype: np.dtype
                   ) -> CTCRecord:
        """The scaled forward recursion over the stacked 2B-row problem (``_emissions``), then each sample's
        log-likelihood. The recursion runs in probabilities, each step's row rescaled to sum 1 (Rabiner's
        scaling; the logs of the scales add up to log p): a few multiply-adds per step and no exp or log in the
        loop."""
        B, C, T = probs.shape
        emit, skip, rev_t, rev_s, uniform = self._emissions(probs, ext, Tl, 2 * Sl + 1)
        ws, W = self._ws, emit.shape[2]
        A = ws.empty("A", (T + 1, 2 * B, W), np.float64)          # α̂ per step
        A[0] = 0.0
        A[0, :, 2] = 1.0                                          # the virtual α_{−1}(0) = 1
        pre = ws.empty("pre", (T, 2 * B * W), np.float64)         # α_t(s) / y_t(s), in units of α̂_{t−1}
        pre[:, :2] = 0.0
        scale = ws.empty("scale", (T, 2 * B), np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):     # a dead row (no alignment) becomes NaN: inf loss
            if compiled.active():                                  # the same loop in C (_core/ctc.c)
                compiled.ctc_forward(A, pre, skip, emit, scale)
            else:
                self._steps(A, pre, skip, emit, scale)
            log_scale = np.log(scale)                                                  # (T, 2B)
            logP = _likelihood(A, log_scale, Tl, 2 * Sl + 1)
        feasible = np.isfinite(logP) & (Tl > 0)
        return CTCRecord(probs, ext, Tl, Sl, A, pre, log_scale, np.where(feasible, logP, 0.0), feasible, rev_t,
                         rev_s, uniform, dtype)

    def _emissions(self, probs: np.ndarray, ext: np.ndarray, Tl: np.ndarray, Ll: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """The stacked problem: rows 0..B−1 the samples, rows B..2B−1 the same reversed in time and labels within
        their lengths (their α is β). Returns emit (T, 2B, W) the emission probabilities y_t(l'_s), time-major, each
        row with two zero columns in front (laid end to end, the s−1 and s−2 predecessors are the same flat array
        shifted by one and two: contiguous operands; zero emissions keep the front columns at zero); skip
        (2B·W − 2,) 1 where s−2 → s is allowed; rev_t (B, T), rev_s (B, L); whether every length is full."""
        B, C, T = probs.shape
        L = ext.shape[1]
        t_idx, s_idx = np.arange(T)[None, :], np.arange(L)[None, :]
        rev_t = np.where(t_idx < Tl[:, None], Tl[:, None] - 1 - t_idx, t_idx)
        rev_s = np.where(s_idx < Ll[:, None], Ll[:, None] - 1 - s_idx, s_idx)
        both_ext = np.concatenate([ext, np.take_along_axis(ext, rev_s, axis=1)])      # (2B, L)
        rows_b = np.arange(B)[:, None]
        e = probs[rows_b, ext]                                                           # (B, L, T)
        uniform = bool((Tl == T).all() and (Ll == L).all())
        e_r = e[:, ::-1, ::-1] if uniform else np.take_along_axis(e[rows_b, rev_s], rev_t[:, None, :], axis=2)
        W = L + 2
        skip = np.zeros((2 * B, W))
        skip[:, 4:] = (both_ext[:, 2:] != self.blank) & (both_ext[:, 2:] != both_ext[:, :-2])
        emit = self._ws.empty("emit", (T, 2 * B, W), np.float64)
        emit[:, :, :2] = 0.0
        np.copyto(emit[:, :B, 2:], e.transpose(2, 0, 1))
        np.copyto(emit[:, B:, 2:], e_r.transpose(2, 0, 1))
        if not (Ll == L).all():
            emit[:, :, 2:][:, np.concatenate([s_idx >= Ll[:, None]] * 2)] = 0.0  # past each L_b: unreachable
        return emit, np.ascontiguousarray(skip.reshape(-1)[2:]), rev_t, rev_s, uniform

    def _steps(self, A: np.ndarray, pre: np.ndarray, skip: np.ndarray, emit: np.ndarray, scale: np.ndarray) -> None:
        """The recursion's loop over time in NumPy (``compiled.ctc_forward`` is the same in C)."""
        T, R, W = emit.shape
        flat = A.reshape(T + 1, -1)
        tmp = self._ws.empty("tmp", (R * W - 2,), np.float64)
        inv = self._ws.empty("inv", (R, 1), np.float64)
        for t in range(T):
            prev, cur, p = flat[t], A[t + 1], pre[t]
            np.add(prev[2:], prev[1:-1], out=p[2:])          # α̂_{t−1}(s) + α̂_{t−1}(s−1)
            np.multiply(prev[:-2], skip, out=tmp)            # + α̂_{t−1}(s−2) where that skip is allowed
            p[2:] += tmp
            np.multiply(p.reshape(R, W), emit[t], out=cur)
            np.add.reduce(cur, axis=1, out=scale[t])
            np.divide(1.0, scale[t][:, None], out=inv)
            cur *= inv

    def _occupancy(self, c: CTCRecord) -> np.ndarray:
        """(B, T, C): Σ_{s: l'_s = k} γ_t(s), γ_t(s) = α_t(s) β_t(s) / (y_t(s) p). α_t(s)/y_t(s) = pre_t(s)
        Π_{τ<t} scale_τ; β_t(s) is α̂ of the reversed problem at (T_b − 1 − t, L_b − 1 − s) times the product of
        its scales up to that step. Zero past each input length and for impossible targets."""
        B, C, T = c.probs.shape
        L = c.ext.shape[1]
        if compiled.active():                             # the same sums in C, scattered straight into (B, T, C)
            occ = np.empty((B, T, C))
            compiled.ctc_occupancy(c.A, c.pre, np.ascontiguousarray(c.log_scale), c.Tl, 2 * c.Sl + 1, c.ext,
                                   c.logP, c.feasible, occ)
            return occ
        pre = c.pre.reshape(T, 2 * B, L + 2)[:, :, 2:]
        beta_r = c.A[1:, B:, 2:]
        if c.uniform:                                                                # every T_b = T, L_b = L
            beta = beta_r[::-1, :, ::-1]
            after = np.cumsum(c.log_scale[:, B:], axis=0)[::-1]
        else:
            beta = beta_r[c.rev_t.T[:, :, None], np.arange(B)[None, :, None], c.rev_s[None, :, :]]
            after = np.cumsum(c.log_scale[:, B:], axis=0)[c.rev_t.T, np.arange(B)[None, :]]
        before = np.cumsum(c.log_scale[:, :B], axis=0) - c.log_scale[:, :B]             # Σ_{τ<t}
        post = np.multiply(pre[:, :B], beta)                                              # (T, B, L)
        with np.errstate(invalid="ignore", over="ignore"):
            post *= np.exp(before + after - c.logP[None, :])[:, :, None]
        post[:, ~c.feasible] = 0.0                        # (an impossible target has no posterior)
        post[np.arange(T)[:, None] >= c.Tl[None, :]] = 0.0  # (nor steps past a sample's input)
        onehot = np.zeros((B, L, C))
        onehot[np.arange(B)[:, None], np.arange(L)[None, :], c.ext] = 1.0
        return np.matmul(post.transpose(1, 0, 2), onehot)

    def backward(self, grad_output: Any = None) -> np.ndarray:
        """d loss / d logits (B, T, C); with reduction "none", ``grad_output`` (B,) weighs each sample."""
        c = self._record
        if c is None:
            raise RuntimeError("CTCLoss.backward called before forward")
        B, T = c.probs.shape[0], c.probs.shape[2]
        grad = self._occupancy(c)
        np.subtract(c.probs.transpose(0, 2, 1), grad, out=grad)                              # softmax − occupancy
        grad[np.arange(T)[None, :] >= c.Tl[:, None]] = 0.0
        if self.reduction == "none":
            w = np.ones(B) if grad_output is None else np.asarray(grad_output, np.float64)
            if w.shape != (B,):
                raise ValueError(f"CTCLoss.backward: expected grad_output of shape ({B},), got {w.shape}")
        else:
            scale = 1.0 if grad_output is None else float(grad_output)
            w = np.full(B, scale) if self.reduction == "sum" else scale / (B * np.maximum(c.Sl, 1))
        w = np.where(c.feasible, w, 0.0 if self.zero_infinity else np.nan)
        grad *= w[:, None, None]
        return grad.astype(c.dtype, copy=False)
