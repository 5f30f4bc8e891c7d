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
        self._cache: dict[str, Any] | None = None
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

    def forward(self, logits: np.ndarray, targets: Any, input_lengths: Any = None, target_lengths: Any = None
                ) -> float | np.ndarray:
        """Without lengths, ``targets`` is packed as ``pack_targets`` makes it (how ``model.fit`` passes them)."""
        if input_lengths is None and target_lengths is None:
            input_lengths, targets, target_lengths = unpack_targets(targets)
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
        tgt = self._targets(targets, Sl, C)                                  # (B, S)
        S = tgt.shape[1]
        L = 2 * S + 1
        ext = np.full((B, L), self.blank, np.int64)
        ext[:, 1::2] = tgt                                                   # (B, L): blank, l1, blank, ...
        Ll = 2 * Sl + 1
        # The softmax in float64 (so that no emission probability underflows before e^-700), with T innermost
        # (B, C, T): the reductions run along contiguous rows. It is kept for the backward.
        probs = np.ascontiguousarray(x.transpose(0, 2, 1), np.float64)             # (B, C, T)
        probs -= probs.max(axis=1, keepdims=True)
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=1, keepdims=True)

        # Forward rows 0..B−1; rows B..2B−1: the same samples reversed in time and labels (their α is β).
        t_idx = np.arange(T)[None, :]
        rev_t = np.where(t_idx < Tl[:, None], Tl[:, None] - 1 - t_idx, t_idx)        # (B, T)
        s_idx = np.arange(L)[None, :]
        rev_s = np.where(s_idx < Ll[:, None], Ll[:, None] - 1 - s_idx, s_idx)        # (B, L)
        ext_r = np.take_along_axis(ext, rev_s, axis=1)
        both_ext = np.concatenate([ext, ext_r])                                        # (2B, L)
        # Emission probabilities y_t(l'_s): gathered as (B, L, T) rows of the softmax, then time-major.
        rows_b = np.arange(B)[:, None]
        e = probs[rows_b, ext]                                                           # (B, L, T)
        uniform = bool((Tl == T).all() and (Ll == L).all())
        e_r = e[:, ::-1, ::-1] if uniform else np.take_along_axis(e[rows_b, rev_s], rev_t[:, None, :], axis=2)
        ws = self._ws
        # The recursion in probabilities, each step's row rescaled to sum 1 (Rabiner's scaling; the logs of the
        # scales add up to log p): a few multiply-adds per step and no exp or log in the loop. Each row carries two
        # zero columns in front, so with the rows laid end to end the s−1 and s−2 predecessors are the same flat
        # array shifted by one and two: contiguous operands. Zero emissions keep the front columns at zero.
        W = L + 2
        skip = np.zeros((2 * B, W))                                                    # 1 where s−2 → s is allowed
        skip[:, 4:] = (both_ext[:, 2:] != self.blank) & (both_ext[:, 2:] != both_ext[:, :-2])
        skip = skip.reshape(-1)[2:]
        emit = ws.empty("emit", (T, 2 * B, W), np.float64)                              # time-major
        emit[:, :, :2] = 0.0
        np.copyto(emit[:, :B, 2:], e.transpose(2, 0, 1))
        np.copyto(emit[:, B:, 2:], e_r.transpose(2, 0, 1))
        if not (Ll == L).all():
            emit[:, :, 2:][:, np.concatenate([s_idx >= Ll[:, None]] * 2)] = 0.0  # past each L_b: unreachable
        A = ws.empty("A", (T + 1, 2 * B, W), np.float64)          # α̂ per step
        A[0] = 0.0
        A[0, :, 2] = 1.0                                          # the virtual α_{−1}(0) = 1
        pre = ws.empty("pre", (T, 2 * B * W), np.float64)         # α_t(s) / y_t(s), in units of α̂_{t−1}
        pre[:, :2] = 0.0
        scale = ws.empty("scale", (T, 2 * B), np.float64)
        tmp = ws.empty("tmp", (2 * B * W - 2,), np.float64)
        inv = ws.empty("inv", (2 * B, 1), np.float64)
        add, multiply = np.add, np.multiply
        flat = A.reshape(T + 1, -1)
        with np.errstate(invalid="ignore", divide="ignore"):     # a dead row (no alignment) becomes NaN: inf loss
            if compiled.active():                                  # the same loop in C (_core/ctc.c)
                compiled.ctc_forward(A, pre, np.ascontiguousarray(skip), emit, scale)
            else:
                for t in range(T):
                    prev, cur, p = flat[t], A[t + 1], pre[t]
                    add(prev[2:], prev[1:-1], out=p[2:])          # α̂_{t−1}(s) + α̂_{t−1}(s−1)
                    multiply(prev[:-2], skip, out=tmp)            # + α̂_{t−1}(s−2) where that skip is allowed
                    p[2:] += tmp
                    multiply(p.reshape(2 * B, W), emit[t], out=cur)
                    np.add.reduce(cur, axis=1, out=scale[t])
                    np.divide(1.0, scale[t][:, None], out=inv)
                    cur *= inv
            log_scale = np.log(scale)                                                  # (T, 2B)
            rows = np.arange(B)
            last = A[Tl, rows, 2:]                                                     # α̂ at each T_b − 1 (Tl ≥ 1)
            end = last[rows, Ll - 1] + np.where(Ll >= 2, last[rows, np.maximum(Ll - 2, 0)], 0.0)
            before = np.cumsum(log_scale[:, :B], axis=0)                               # Σ_{τ≤t} log scale_τ
            logP = np.where(Tl > 0, before[np.maximum(Tl - 1, 0), rows], 0.0) + np.log(end)
        feasible = np.isfinite(logP) & (Tl > 0)
        loss = np.where(feasible, -logP, np.inf)
        self._cache = {"A": A, "pre_full": pre, "pre": pre.reshape(T, 2 * B, W)[:, :, 2:], "log_scale": log_scale,
                       "rev_t": rev_t, "rev_s": rev_s, "ext": ext,
                       "probs": probs, "logP": np.where(feasible, logP, 0.0), "feasible": feasible,
                       "uniform": uniform, "Tl": Tl, "Sl": Sl, "dtype": x.dtype, "C": C}
        if self.zero_infinity:
            loss = np.where(feasible, loss, 0.0)
        if self.reduction == "none":
            return loss.astype(x.dtype)
        if self.reduction == "sum":
            return float(loss.sum())
        return float((loss / np.maximum(Sl, 1)).mean())

    def backward(self, grad_output: Any = None) -> np.ndarray:
        """d loss / d logits (B, T, C); with reduction "none", ``grad_output`` (B,) weighs each sample."""
        c = self._cache
        if c is None:
            raise RuntimeError("CTCLoss.backward called before forward")
        Tl, Sl, pre, log_scale = c["Tl"], c["Sl"], c["pre"], c["log_scale"]
        T, B2, L = pre.shape
        B = B2 // 2
        # γ_t(s) = α_t(s) β_t(s) / (y_t(s) p): α_t(s)/y_t(s) = pre_t(s) Π_{τ<t} scale_τ; β_t(s) is α̂ of the
        # reversed problem at (T_b − 1 − t, L_b − 1 − s) times the product of its scales up to that step.
        if compiled.active():                             # the same sums in C, scattered straight into (B, T, C)
            grad = np.empty((B, T, c["C"]))
            compiled.ctc_occupancy(c["A"], c["pre_full"], np.ascontiguousarray(log_scale), Tl, 2 * Sl + 1,
                                   c["ext"], c["logP"], c["feasible"], grad)
        else:
            beta_r = c["A"][1:, B:, 2:]
            if c["uniform"]:                                                             # every T_b = T, L_b = L
                beta = beta_r[::-1, :, ::-1]
                after = np.cumsum(log_scale[:, B:], axis=0)[::-1]
            else:
                beta = beta_r[c["rev_t"].T[:, :, None], np.arange(B)[None, :, None], c["rev_s"][None, :, :]]
                after = np.cumsum(log_scale[:, B:], axis=0)[c["rev_t"].T, np.arange(B)[None, :]]
            before = np.cumsum(log_scale[:, :B], axis=0) - log_scale[:, :B]              # Σ_{τ<t}
            post = np.multiply(pre[:, :B], beta)                                           # (T, B, L)
            with np.errstate(invalid="ignore", over="ignore"):
                post *= np.exp(before + after - c["logP"][None, :])[:, :, None]
            post[:, ~c["feasible"]] = 0.0                 # (an impossible target has no posterior)
            post[np.arange(T)[:, None] >= Tl[None, :]] = 0.0  # (nor steps past a sample's input)
            onehot = np.zeros((B, L, c["C"]))
            onehot[np.arange(B)[:, None], np.arange(L)[None, :], c["ext"]] = 1.0
            grad = np.matmul(post.transpose(1, 0, 2), onehot)                                # occupancy (B, T, C)
        np.subtract(c["probs"].transpose(0, 2, 1), grad, out=grad)                           # softmax − occupancy
        grad[np.arange(T)[None, :] >= Tl[:, None]] = 0.0
        if self.reduction == "none":
            w = np.ones(B) if grad_output is None else np.asarray(grad_output, np.float64)
            if w.shape != (B,):
                raise ValueError(f"CTCLoss.backward: expected grad_output of shape ({B},), got {w.shape}")
        else:
            scale = 1.0 if grad_output is None else float(grad_output)
            w = np.full(B, scale) if self.reduction == "sum" else scale / (B * np.maximum(Sl, 1))
        w = np.where(c["feasible"], w, 0.0 if self.zero_infinity else np.nan)
        grad *= w[:, None, None]
        return grad.astype(c["dtype"], copy=False)
