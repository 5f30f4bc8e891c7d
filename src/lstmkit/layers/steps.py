"""One step of each recurrence, as the equations read (docs/design.md states them).

These are the plain reference: no fused weights, no scaling tricks, no buffers. The
fused scans are tested against them (a second oracle beside PyTorch), and the
single-step cells use them for their teaching trace. ``w`` holds one direction's
weights under PyTorch's cell keys: ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H) and,
with bias, ``bias_ih``/``bias_hh`` (G·H,). x (B, I); h, c (B, H).
"""

from __future__ import annotations

import numpy as np

from ..functional import sigmoid


def preactivations(x: np.ndarray, h: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(W_ih x + b_ih, W_hh h + b_hh), each (B, G·H)."""
    px, ph = x @ w["weight_ih"].T, h @ w["weight_hh"].T
    if "bias_ih" in w:
        px, ph = px + w["bias_ih"], ph + w["bias_hh"]
    return px, ph


def lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: dict[str, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step -> (h_t, c_t), each (B, H)."""
    px, ph = preactivations(x, h, w)
    p_i, p_f, p_g, p_o = np.split(px + ph, 4, axis=-1)
    i, f, g, o = sigmoid(p_i), sigmoid(p_f), np.tanh(p_g), sigmoid(p_o)
    c_t = f * c + i * g
    return o * np.tanh(c_t), c_t


def gru_step(x: np.ndarray, h: np.ndarray, c: None, w: dict[str, np.ndarray]) -> tuple[np.ndarray, None]:
    """One GRU step (PyTorch's variant) -> (h_t, None)."""
    px, ph = preactivations(x, h, w)
    x_r, x_z, x_n = np.split(px, 3, axis=-1)
    h_r, h_z, h_n = np.split(ph, 3, axis=-1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, None


def rnn_tanh_step(x: np.ndarray, h: np.ndarray, c: None, w: dict[str, np.ndarray]) -> tuple[np.ndarray, None]:
    """One Elman step with tanh -> (h_t, None)."""
    px, ph = preactivations(x, h, w)
    return np.tanh(px + ph), None


def rnn_relu_step(x: np.ndarray, h: np.ndarray, c: None, w: dict[str, np.ndarray]) -> tuple[np.ndarray, None]:
    """One Elman step with ReLU -> (h_t, None)."""
    px, ph = preactivations(x, h, w)
    return np.maximum(px + ph, 0), None
