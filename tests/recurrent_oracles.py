"""The recurrent kinds under test, and a float64 PyTorch oracle for each.

A kind is one line of ``KINDS``: our layer class (and its keyword arguments) with either a
``torch.nn`` module of the same weights, or a PyTorch *step* function — the equations of one
step written with torch ops — which ``StepOracle`` stacks into layers, directions and ragged
lengths the way ``pack_padded_sequence`` runs them. Autograd gives every gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit as lk

from .conftest import randomise_torch, t64, torch_params


def _pre(x: torch.Tensor, h: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    p = x @ w["weight_ih"].T + h @ w["weight_hh"].T
    return p + w["bias_ih"] + w["bias_hh"] if "bias_ih" in w else p


def torch_lstm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: dict[str, torch.Tensor]) -> tuple:
    p_i, p_f, p_g, p_o = _pre(x, h, w).chunk(4, -1)
    c_t = torch.sigmoid(p_f) * c + torch.sigmoid(p_i) * torch.tanh(p_g)
    return torch.sigmoid(p_o) * torch.tanh(c_t), c_t


def torch_peephole_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: dict[str, torch.Tensor]) -> tuple:
    """Gers & Schmidhuber 2000: i and f see c_{t-1}, o sees c_t."""
    p_i, p_f, p_g, p_o = _pre(x, h, w).chunk(4, -1)
    w_ci, w_cf, w_co = w["weight_peephole"]
    c_t = torch.sigmoid(p_f + w_cf * c) * c + torch.sigmoid(p_i + w_ci * c) * torch.tanh(p_g)
    return torch.sigmoid(p_o + w_co * c_t) * torch.tanh(c_t), c_t


def torch_gru_step(x: torch.Tensor, h: torch.Tensor, c: None, w: dict[str, torch.Tensor]) -> tuple:
    """PyTorch's GRU: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h_t = (1 − z) ⊙ n + z ⊙ h."""
    gx, gh = x @ w["weight_ih"].T, h @ w["weight_hh"].T
    if "bias_ih" in w:
        gx, gh = gx + w["bias_ih"], gh + w["bias_hh"]
    (xr, xz, xn), (hr, hz, hn) = gx.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h, None


def torch_rnn_step(act: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., tuple]:
    return lambda x, h, c, w: (act(_pre(x, h, w)), None)


def torch_projected_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: dict[str, torch.Tensor]) -> tuple:
    """The LSTM's step with h projected: h_t = W_hr (o ⊙ tanh c_t)."""
    m, c_t = torch_lstm_step(x, h, c, w)
    return m @ w["weight_hr"].T, c_t


# The step form of every kind: what the regularisers' oracle runs (masks need the step, not the module).
STEPS = {"LSTM": torch_lstm_step, "GRU": torch_gru_step, "RNN_TANH": torch_rnn_step(torch.tanh),
         "RNN_RELU": torch_rnn_step(torch.relu), "LSTM_PROJ": torch_projected_step}


def torch_layer_norm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: dict[str, torch.Tensor]) -> tuple:
    """Ba et al. 2016: the x and h sides normalised over all 4H, then the cell state before its tanh (ε = 1e-5)."""
    norm = torch.nn.functional.layer_norm
    G = w["weight_ih"].shape[0]
    p = norm(x @ w["weight_ih"].T, (G,), w["ln_ih"].reshape(-1)) + norm(h @ w["weight_hh"].T, (G,),
                                                                        w["ln_hh"].reshape(-1))
    if "bias_ih" in w:
        p = p + w["bias_ih"] + w["bias_hh"]
    p_i, p_f, p_g, p_o = p.chunk(4, -1)
    c_t = torch.sigmoid(p_f) * c + torch.sigmoid(p_i) * torch.tanh(p_g)
    return torch.sigmoid(p_o) * torch.tanh(norm(c_t, (c_t.shape[-1],), w["ln_c"][0], w["ln_c"][1])), c_t


@dataclass
class Kind:
    ours: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    module: type | None = None                     # a torch.nn module with the same weights ...
    step: Callable[..., tuple] | None = None       # ... or a torch step function of the equations


KINDS = {
    "LSTM": Kind(lk.LSTM, module=torch.nn.LSTM),
    "GRU": Kind(lk.GRU, module=torch.nn.GRU),
    "RNN_TANH": Kind(lk.SimpleRNN, {"nonlinearity": "tanh"}, module=torch.nn.RNN),
    "RNN_RELU": Kind(lk.SimpleRNN, {"nonlinearity": "relu"}, module=torch.nn.RNN),
    "PEEPHOLE": Kind(lk.PeepholeLSTM, step=torch_peephole_step),
    "LSTM_PROJ": Kind(lk.LSTM, {"proj_size": 3}, module=torch.nn.LSTM),     # h of 3 units, c of H
    "LAYER_NORM": Kind(lk.LayerNormLSTM, step=torch_layer_norm_step),
    "LSTM_BY_STEP": Kind(lk.LSTM, step=torch_lstm_step),       # the step oracle itself, checked on a known kind
}


class ModuleOracle:
    """A torch.nn recurrent module: ``run(x, state, lengths) -> (y, final state)``; ``params`` by PyTorch key."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.params = dict(module.named_parameters())

    def run(self, x: torch.Tensor, state: Any, lengths: list[int] | None) -> tuple[torch.Tensor, Any]:
        if lengths is None:
            return self.module(x, state)
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        yp, st = self.module(packed, state)
        return pad_packed_sequence(yp, batch_first=True, total_length=x.shape[1])[0], st


class StepOracle:
    """A stack of ``step`` over layers and directions, each sequence run over its own length (the reverse
    direction reversed within it), outputs zero past the length, the final state at each sequence's last step."""

    def __init__(self, step: Callable[..., tuple], params: dict[str, np.ndarray], L: int, bi: bool,
                 has_cell: bool) -> None:
        self.step, self.L, self.D, self.has_cell = step, L, 2 if bi else 1, has_cell
        self.params = {k: t64(v, True) for k, v in params.items()}

    def run(self, x: torch.Tensor, state: Any, lengths: list[int] | None, drops: Any = None
            ) -> tuple[torch.Tensor, Any]:
        """``drops``: the masks our layer drew (its StackRecord), applied where lstmkit applies them."""
        B, T, _ = x.shape
        lengths = lengths or [T] * B
        h0, c0 = state if self.has_cell else (state, None)
        if drops is not None and drops.x_mask is not None:
            x = x * t64(drops.x_mask)
        seqs = [x[b, :lengths[b]] for b in range(B)]
        h_n, c_n = [], []
        for k in range(self.L):
            outs = []
            for d in range(self.D):
                s, sfx = k * self.D + d, "_reverse" if d else ""
                w = {key[:-len(f"_l{k}{sfx}")]: p for key, p in self.params.items() if key.endswith(f"_l{k}{sfx}")}
                ent = drops.layers[k].dirs[d] if drops is not None else None
                if ent is not None and ent.wmask is not None:              # weight drop: W_hh ⊙ mask
                    w = {**w, "weight_hh": w["weight_hh"] * t64(ent.wmask)}
                ys, hs, cs = [], [], []
                for b, seq in enumerate(seqs):
                    w_b = w                                # recurrent dropout: (h ⊙ m_b) W_hhᵀ = h (W_hh ⊙ m_b)ᵀ
                    if ent is not None and ent.rmask is not None:
                        w_b = {**w, "weight_hh": w["weight_hh"] * t64(ent.rmask[b])[None, :]}
                    seq = seq.flip(0) if d else seq
                    h, c = h0[s, b:b + 1], None if c0 is None else c0[s, b:b + 1]
                    steps = []
                    for t in range(len(seq)):
                        h_new, c_new = self.step(seq[t:t + 1], h, c, w_b)
                        if ent is not None and ent.zone is not None:      # zoneout: keep h (c) where d is 1
                            z_h, z_c = (z if np.isscalar(z) else t64(z[b:b + 1]) for z in ent.zone.d(t))
                            h_new = z_h * h + (1 - z_h) * h_new
                            c_new = None if c is None else z_c * c + (1 - z_c) * c_new
                        h, c = h_new, c_new
                        steps.append(h)
                    y = torch.cat(steps)
                    ys.append(y.flip(0) if d else y)
                    hs.append(h)
                    cs.append(c)
                outs.append(ys)
                h_n.append(torch.cat(hs))
                c_n.append(torch.cat(cs) if self.has_cell else None)
            seqs = [torch.cat([outs[d][b] for d in range(self.D)], -1) for b in range(B)]
            if drops is not None and drops.layers[k].drop is not None:      # between layers, a mask per element
                seqs = [s * t64(drops.layers[k].drop[:len(s), b]) for b, s in enumerate(seqs)]
        y = torch.stack([torch.nn.functional.pad(s, (0, 0, 0, T - len(s))) for s in seqs])
        if drops is not None and drops.y_mask is not None:
            y = y * t64(drops.y_mask)
        hn = torch.stack(h_n)
        return y, ((hn, torch.stack(c_n)) if self.has_cell else hn)


def make_pair(kind: str, I: int, H: int, L: int, bi: bool, seed: int = 0, bias: bool = True):
    """(our layer, its oracle) with the same nonzero random weights, float64."""
    k = KINDS[kind]
    ours = k.ours(I, H, num_layers=L, bidirectional=bi, bias=bias, dtype="float64", **k.kwargs)
    if k.module is not None:
        torch.manual_seed(seed)
        theirs = k.module(I, H, num_layers=L, bidirectional=bi, batch_first=True, bias=bias, dtype=torch.float64,
                          **k.kwargs)
        randomise_torch(theirs, seed)
        ours.load_torch_state_dict(torch_params(theirs))
        return ours, ModuleOracle(theirs)
    g = np.random.default_rng(seed)
    ours.load_torch_state_dict({key: g.standard_normal(v.shape) * 0.5 for key, v in ours.torch_state_dict().items()})
    return ours, StepOracle(k.step, ours.torch_state_dict(), L, bi, ours.kernel.has_cell)
