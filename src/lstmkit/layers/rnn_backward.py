"""The backward half of the recurrent frame (``rnn_base.py`` holds the forward and says what the frame does):
back through the stack's layers and directions, the kind's backward scan (compiled or NumPy) on each, the weight
and bias gradients as whole-sequence products, and the regularisers' masks (``regularise.py``) applied where the
forward applied them."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import compiled
from . import zoneout
from .scan import DirectionRecord, StackRecord


class StackBackward:
    """``_RNNBase``'s backward (a mixin: it reads the layer's parameters, record and buffers)."""

    def backward(self, dy: np.ndarray | None, dstate: Any = None) -> np.ndarray:
        """Back-propagate; accumulate parameter gradients; return dx (B, T, input_size).

        Args:
            dy: gradient w.r.t. the forward output: (B, T, D·H) for sequences,
                (B, D·H) with ``return_sequences=False``; None means zeros.
            dstate: gradient w.r.t. the final state (dh_n or, for the LSTM,
                (dh_n, dc_n)), each (num_layers·D, B, H); None means zeros.

        After the call, ``initial_state_grad`` holds dh_0 (or (dh_0, dc_0)).
        """
        record = self._record
        if record is None:
            raise self._unkept(self._name)
        B, T = record.B, record.T
        H, D = self.state_size, self.num_directions                          # H: units of h
        shape, c_shape = self._state_shape(B), self._state_shape(B, self.cell_size)
        dh_n = np.zeros(shape, self.dtype)
        dc_n = np.zeros(c_shape, self.dtype) if self._has_cell else None
        if dstate is not None:
            parts = dstate if self._has_cell else (dstate,)
            if self._has_cell and (not isinstance(dstate, (tuple, list)) or len(dstate) != 2):
                raise ValueError(f"{self._name}.backward: expected dstate as a tuple (dh_n, dc_n)")
            for dst, s in zip((dh_n, dc_n), parts):
                if s is not None and dst is not None:
                    s = np.asarray(s)
                    if s.shape != dst.shape:
                        raise ValueError(f"{self._name}.backward: expected final-state gradient of shape "
                                         f"{dst.shape}, got {s.shape}")
                    dst += s
        if self.return_sequences is False:
            if dy is None or np.shape(dy) != (B, D * H):
                raise ValueError(f"{self._name}.backward: expected dy of shape {(B, D * H)}, "
                                 f"got {None if dy is None else np.shape(dy)}")
            dy = np.asarray(dy) if record.y_mask is None else dy * record.y_mask[:, 0]
            dh_n[-D:] += dy.reshape(B, D, H).transpose(1, 0, 2)
            dy = None
        if dy is None:
            dout = np.zeros((T, B, D * H), self.dtype)
        else:
            dy = np.asarray(dy)
            if dy.shape != (B, T, D * H):
                raise ValueError(f"{self._name}.backward: expected dy of shape {(B, T, D * H)}, got {dy.shape}")
            if record.y_mask is not None:
                dy = dy * record.y_mask
            dout = dy.transpose(1, 0, 2)              # (T, B, D·H) view: the compiled scan reads it in place
        dh0 = np.empty(shape, self.dtype)
        dc0 = np.empty(c_shape, self.dtype) if self._has_cell else None
        # The compiled scan of the bottom layer (its first direction) writes the (B, T, I) input gradient itself.
        dx_out = np.empty((B, T, self.input_size), self.dtype) if record.core else None

        with compiled.holding_blas(record.core):
            for k in range(self.num_layers - 1, -1, -1):
                dout = self._layer_backward(record, k, dout, (dh_n, dc_n), (dh0, dc0), dx_out)
        self.initial_state_grad = (dh0, dc0) if self._has_cell else dh0
        dx = np.ascontiguousarray(dout.transpose(1, 0, 2))
        return dx if record.x_mask is None else np.multiply(dx, record.x_mask, out=dx)

    def _layer_backward(self, rec: StackRecord, k: int, dout: np.ndarray, final: tuple[np.ndarray, np.ndarray | None],
                        init: tuple[np.ndarray, np.ndarray | None], dx_out: np.ndarray | None) -> np.ndarray:
        """Back through layer k: dout (T, B, D·h) its output's gradient; final: (dh_n, dc_n) of every layer and
        direction; init: where (dh_0, dc_0) go; dx_out: where the compiled scan of a one-direction bottom layer writes
        dx itself. Returns the gradient of the layer's input (T, B, in_k)."""
        layer = rec.layers[k]
        if layer.drop is not None:
            dout = dout * layer.drop
        if rec.mask is not None:
            dout = dout * rec.mask
        run = functools.partial(self._direction_backward, rec, k, dout, final, init, dx_out)
        dinps = self._directions(run, rec.B, rec.core)
        return dinps[0] if self.num_directions == 1 else np.add(dinps[0], dinps[1], out=dinps[0])

    def _direction_backward(self, rec: StackRecord, k: int, dout: np.ndarray,
                            final: tuple[np.ndarray, np.ndarray | None], init: tuple[np.ndarray, np.ndarray | None],
                            dx_out: np.ndarray | None, d: int) -> np.ndarray:
        """Direction d of layer k back: its half of dout, its final-state gradients entering at each sequence's last
        step; dh_0 (and dc_0) into ``init``. Returns its input's gradient in the input's time order."""
        (dh_n, dc_n), (dh0, dc0) = final, init
        s, H = k * self.num_directions + d, self.state_size
        dys = dout[:, :, d * H:(d + 1) * H]
        if d == 1:
            dys = self._reverse(dys, rec.rev)
        inject = self._inject_map(rec.T, rec.last, dh_n[s], None if dc_n is None else dc_n[s])
        into = dx_out.transpose(1, 0, 2) if dx_out is not None and k == 0 and d == 0 else None
        dinp_d, dh0[s], dc_s = self._scan_backward(k, d, rec.layers[k].dirs[d], dys, inject, rec.core, into)
        if dc0 is not None:
            dc0[s] = dc_s
        return dinp_d if d == 0 else self._reverse(dinp_d, rec.rev)

    def _scan_backward(self, k: int, d: int, ent: DirectionRecord, dys: np.ndarray, inject: dict, core: bool,
                       into: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The kernel's backward, then the weight gradients (and dx, unless the compiled scan formed it) as
        whole-sequence GEMMs. dys (T, B, H) may be a view; ``into``: where the compiled scan writes dx (a
        time-major view of the layer's (B, T, I) input gradient) instead of a workspace buffer."""
        T, B, H = dys.shape
        sfx = self._suffixes()[d]
        ws = self._ws_for(k, d)
        w = self._weights(k, d, ent.wmask)
        if core:                                  # the compiled scan also forms dinp = dxp_t · W_ih as it goes
            dinp = into if into is not None else ws.empty("dinp", (T, B, w.w_ih.shape[1]), self.dtype)
            grads = compiled.scan_backward(self.kernel, ent.scan, w, dys, inject, ws, dinp, ent.rmask, ent.zone)
        else:
            dinp = ws.empty("dinp", (T, B, w.w_ih.shape[1]), self.dtype)
            dys = np.ascontiguousarray(dys, self.dtype)
            if ent.zone is not None:
                grads = zoneout.backward(self.kernel, ent.scan, w.w_hh, dys, inject, ent.zone, w.extra, ent.rmask)
            else:
                grads = self.kernel.backward(ent.scan, w.w_hh, dys, inject, ws, w.extra, ent.rmask)
        dxp, dhp, dh0, dc0 = grads.d_xproj, grads.d_hproj, grads.dh0, grads.dc0
        for name, g in grads.extra.items():
            self.params[f"{name}_l{k}{sfx}"].grad += g
        hs = ent.scan.hs
        dxp2, dhp2 = dxp.reshape(T * B, -1), dhp.reshape(T * B, -1)
        # Weight gradients for all steps at once: dW_hh = Σ_t dhp_t^T h_{t−1}, dW_ih = Σ_t dxp_t^T x_t; with the
        # regularisers, h_{t−1} as W_hh saw it (⊙ rmask), and only the weights weight drop kept (⊙ wmask).
        g_hh, g_ih = self.params[f"weight_hh_l{k}{sfx}"].grad, self.params[f"weight_ih_l{k}{sfx}"].grad
        into_hh = g_hh if ent.wmask is None else np.zeros_like(g_hh)
        h_in = hs[:-1] if ent.rmask is None else hs[:-1] * ent.rmask
        h2 = h_in.reshape(T * B, H)
        if core and into_hh.flags.c_contiguous and g_ih.flags.c_contiguous:      # in place, one job on the core's
            compiled.weight_grads([(dxp2, ent.inp, g_ih), (dhp2, h2, into_hh)])  # threads; x (T, B, I) as it lies
        else:
            into_hh += dhp2.T @ h2
            g_ih += dxp2.T @ np.ascontiguousarray(ent.inp).reshape(T * B, -1)
        if ent.wmask is not None:
            g_hh += into_hh * ent.wmask
        if self.bias and grads.bias is not None:                  # summed by the kernel
            self.params[f"bias_ih_l{k}{sfx}"].grad += grads.bias[0]
            self.params[f"bias_hh_l{k}{sfx}"].grad += grads.bias[1]
        elif self.bias:                          # Σ over steps and batch as a BLAS product: 2x a column sum
            ones = ws.empty("ones", (T * B,), self.dtype)
            ones.fill(1)
            db_ih = ones @ dxp2
            self.params[f"bias_ih_l{k}{sfx}"].grad += db_ih
            self.params[f"bias_hh_l{k}{sfx}"].grad += db_ih if dhp is dxp else ones @ dhp2
        if not core:
            np.matmul(dxp2, w.w_ih, out=dinp.reshape(T * B, -1))
        return dinp, dh0, dc0

    @staticmethod
    def _inject_map(T: int, last: np.ndarray | None, dh_n: np.ndarray,
                    dc_n: np.ndarray | None) -> dict[int, tuple[Any, np.ndarray, np.ndarray | None]]:
        """Where each sequence's final-state gradient enters the backward loop."""
        if last is None:
            return {T - 1: (slice(None), dh_n, dc_n)}
        out = {}
        for t in np.unique(last):
            idx = np.flatnonzero(last == t)
            out[int(t)] = (idx, dh_n[idx], None if dc_n is None else dc_n[idx])
        return out
