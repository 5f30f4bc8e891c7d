"""Tree-structured LSTMs: a node's memory is composed from its children's.

Both cells read a batch of trees as node inputs x (B, N, D) and ``parents``
(B, N) (see ``tree_base``) and return every node's hidden state h (B, N, H).
σ is the logistic sigmoid, ⊙ the element-wise product; leaves are nodes with no
children (their child states are zero).

Child-sum Tree-LSTM (Tai, Socher & Manning, 2015), node j with children C(j):

    h̃_j   = Σ_{k∈C(j)} h_k
    i_j   = σ(W_i x_j + U_i h̃_j + b_i)
    o_j   = σ(W_o x_j + U_o h̃_j + b_o)
    u_j   = tanh(W_u x_j + U_u h̃_j + b_u)
    f_jk  = σ(W_f x_j + U_f h_k + b_f)                  one forget gate per child k
    c_j   = i_j ⊙ u_j + Σ_k f_jk ⊙ c_k
    h_j   = o_j ⊙ tanh(c_j)

Binary S-LSTM memory block (Zhu, Sobhani & Guo, 2015), node j with children L, R:

    i_j   = σ(W_i x_j + U^L_i h_L + U^R_i h_R + V^L_i c_L + V^R_i c_R + b_i)
    fL_j  = σ(W_fL x_j + U^L_fL h_L + U^R_fL h_R + V^L_fL c_L + V^R_fL c_R + b_fL)
    fR_j  = σ(W_fR x_j + U^L_fR h_L + U^R_fR h_R + V^L_fR c_L + V^R_fR c_R + b_fR)
    g_j   = tanh(W_g x_j + U^L_g h_L + U^R_g h_R + b_g)
    c_j   = fL_j ⊙ c_L + fR_j ⊙ c_R + i_j ⊙ g_j
    o_j   = σ(W_o x_j + U^L_o h_L + U^R_o h_R + V_o c_j + b_o)   the output gate sees the new cell
    h_j   = o_j ⊙ tanh(c_j)

The paper's internal nodes have x_j = 0; here x_j is an optional input at every
node (zero where a node has none), so an operator can be an internal node's input.
A node with one child takes it as L (R's state is zero).

Weights are fused per source: ``weight_ih`` (G·H, D) maps x_j to every gate,
``weight_hh`` the children's hidden states and ``weight_ch`` (S-LSTM) their cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import sigmoid
from .tree_base import Level, _TreeLayer


class ChildSumTreeLSTM(_TreeLayer):
    """Child-sum Tree-LSTM (any number of children): x (B, N, D), parents (B, N) -> h (B, N, H).

    Parameters (gate rows in the order i, o, u, f; f last, as it is the gate computed
    once per child): ``weight_ih`` (4H, D), ``weight_hh`` (4H, H), ``bias`` (4H,).
    """

    _name = "ChildSumTreeLSTM"
    gates = 4

    def __init__(self, input_size: int, hidden_size: int, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, dtype, rng)
        self.weight_hh = self._param((4 * hidden_size, hidden_size), "weight_hh")
        self.bias = self._param((4 * hidden_size,), "bias")

    def _level_forward(self, lv: Level, z: np.ndarray, h: np.ndarray, c: np.ndarray) -> Any:
        H = self.hidden_size
        a = z[lv.nodes]                                                  # (n, 4H) pre-activations [i o u f]
        if lv.kids.size:
            U = self.weight_hh.value
            hk = h[lv.kids]                                              # (k, H)
            hs = np.add.reduceat(hk, lv.starts, axis=0)                 # (n, H)  h̃ = Σ children h
            a[:, :3 * H] += hs @ U[:3 * H].T
            f = sigmoid(a[lv.seg, 3 * H:] + hk @ U[3 * H:].T)            # (k, H)  one forget gate per child
        sigmoid(a[:, :2 * H], out=a[:, :2 * H])                          # i, o
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])                # u
        i, o, u = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H]
        cj = i * u
        if lv.kids.size:
            cj += np.add.reduceat(f * c[lv.kids], lv.starts, axis=0)
        tc = np.tanh(cj)
        c[lv.nodes], h[lv.nodes] = cj, o * tc
        return (a, tc, hk, hs, f) if lv.kids.size else (a, tc)

    def _level_backward(self, lv: Level, saved: Any, h: np.ndarray, c: np.ndarray, dh: np.ndarray,
                        dc: np.ndarray, dz: np.ndarray) -> None:
        H = self.hidden_size
        a, tc = saved[0], saved[1]
        i, o, u = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H]
        dhn = dh[lv.nodes]
        dcn = dc[lv.nodes] + dhn * o * (1 - tc * tc)
        dp = np.empty((len(lv.nodes), 4 * H), self.dtype)
        dp[:, :H] = dcn * u * i * (1 - i)
        dp[:, H:2 * H] = dhn * tc * o * (1 - o)
        dp[:, 2 * H:3 * H] = dcn * i * (1 - u * u)
        if lv.kids.size:
            hk, hs, f = saved[2:]
            U, dU = self.weight_hh.value, self.weight_hh.grad
            dck = dcn[lv.seg]                                            # (k, H) dL/dc_j at each child's parent
            dpf = dck * c[lv.kids] * f * (1 - f)                        # (k, H) forget pre-activations
            dc[lv.kids] += dck * f
            dp[:, 3 * H:] = np.add.reduceat(dpf, lv.starts, axis=0)     # W_f x_j + b_f feeds every f_jk
            dU[:3 * H] += dp[:, :3 * H].T @ hs
            dU[3 * H:] += dpf.T @ hk
            dh[lv.kids] += (dp[:, :3 * H] @ U[:3 * H])[lv.seg] + dpf @ U[3 * H:]
        else:
            dp[:, 3 * H:] = 0
        dz[lv.nodes] = dp


class SLSTM(_TreeLayer):
    """Binary S-LSTM memory block (at most two children): x (B, N, D), parents (B, N) -> h (B, N, H).

    Parameters (gate rows in the order i, fL, fR, o, g): ``weight_ih`` (5H, D),
    ``weight_hh`` (5H, 2H) over [h_L, h_R], ``weight_ch`` (3H, 2H) over [c_L, c_R] into
    i, fL, fR, ``weight_co`` (H, H) from the new cell into o, ``bias`` (5H,).
    """

    _name = "SLSTM"
    gates = 5
    max_children = 2

    def __init__(self, input_size: int, hidden_size: int, dtype: str = "float32",
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, dtype, rng)
        H = hidden_size
        self.weight_hh = self._param((5 * H, 2 * H), "weight_hh")
        self.weight_ch = self._param((3 * H, 2 * H), "weight_ch")
        self.weight_co = self._param((H, H), "weight_co")
        self.bias = self._param((5 * H,), "bias")

    def _level_forward(self, lv: Level, z: np.ndarray, h: np.ndarray, c: np.ndarray) -> Any:
        H = self.hidden_size
        a = z[lv.nodes]                                                  # (n, 5H) [i fL fR o g]
        inner = lv.kids.size > 0
        if inner:
            hlr = np.concatenate([h[lv.left], h[lv.right]], axis=1)     # (n, 2H)
            clr = np.concatenate([c[lv.left], c[lv.right]], axis=1)     # (n, 2H)
            a += hlr @ self.weight_hh.value.T
            a[:, :3 * H] += clr @ self.weight_ch.value.T
        sigmoid(a[:, :3 * H], out=a[:, :3 * H])                          # i, fL, fR
        np.tanh(a[:, 4 * H:], out=a[:, 4 * H:])                          # g
        cj = a[:, :H] * a[:, 4 * H:]
        if inner:
            cj += a[:, H:2 * H] * clr[:, :H] + a[:, 2 * H:3 * H] * clr[:, H:]
        a[:, 3 * H:4 * H] += cj @ self.weight_co.value.T
        sigmoid(a[:, 3 * H:4 * H], out=a[:, 3 * H:4 * H])                # o sees the new cell
        tc = np.tanh(cj)
        c[lv.nodes], h[lv.nodes] = cj, a[:, 3 * H:4 * H] * tc
        return (a, cj, tc, hlr, clr) if inner else (a, cj, tc)

    def _level_backward(self, lv: Level, saved: Any, h: np.ndarray, c: np.ndarray, dh: np.ndarray,
                        dc: np.ndarray, dz: np.ndarray) -> None:
        H = self.hidden_size
        a, cj, tc = saved[:3]
        i, fL, fR, o, g = (a[:, k * H:(k + 1) * H] for k in range(5))
        dhn = dh[lv.nodes]
        dp = np.empty((len(lv.nodes), 5 * H), self.dtype)
        dp[:, 3 * H:4 * H] = dpo = dhn * tc * o * (1 - o)
        dcn = dc[lv.nodes] + dhn * o * (1 - tc * tc) + dpo @ self.weight_co.value
        self.weight_co.grad += dpo.T @ cj
        dp[:, :H] = dcn * g * i * (1 - i)
        dp[:, 4 * H:] = dcn * i * (1 - g * g)
        if lv.kids.size:
            hlr, clr = saved[3:]
            dp[:, H:2 * H] = dcn * clr[:, :H] * fL * (1 - fL)
            dp[:, 2 * H:3 * H] = dcn * clr[:, H:] * fR * (1 - fR)
            self.weight_hh.grad += dp.T @ hlr
            self.weight_ch.grad += dp[:, :3 * H].T @ clr
            dhlr = dp @ self.weight_hh.value                             # (n, 2H)
            dclr = dp[:, :3 * H] @ self.weight_ch.value
            dclr[:, :H] += dcn * fL
            dclr[:, H:] += dcn * fR
            dh[lv.left] += dhlr[:, :H]                                   # every child has one parent:
            dc[lv.left] += dclr[:, :H]                                   # no index repeats (bar the zero row M)
            dh[lv.right] += dhlr[:, H:]
            dc[lv.right] += dclr[:, H:]
        else:
            dp[:, H:3 * H] = 0
        dz[lv.nodes] = dp
