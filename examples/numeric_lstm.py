"""A two-unit LSTM worked by hand: every gate of every step, printed.

The weights act on the concatenation [x_t, h_{t-1}] (one input feature, two
hidden units), written per gate as a learner would on paper. We split each
matrix into PyTorch's W_ih (input column) and W_hh (hidden columns), stack the
gates in PyTorch's order (i, f, g, o), and run lstmkit's LSTMCell, whose
``trace`` holds each step's pre-activations and gates.

    python examples/numeric_lstm.py
"""

from __future__ import annotations

import numpy as np

import lstmkit as lk

XS = [0.5, 1.5, 2.5]
W = {  # rows: hidden units; columns: [x, h1, h2]
    "f": [[0.65, -0.15, 0.25], [0.55, 0.35, -0.05]],
    "i": [[0.25, 0.35, -0.15], [0.15, 0.45, 0.05]],
    "g": [[0.45, 0.25, 0.15], [0.25, 0.35, 0.05]],     # the candidate "c" gate
    "o": [[0.15, 0.45, 0.35], [0.25, 0.25, 0.3]],
}
B = {"f": [0.55, 0.35], "i": [0.15, 0.25], "g": [0.35, 0.15], "o": [0.25, 0.15]}
W_Y, B_Y = [[0.55, 0.45]], [0.15]


def build() -> tuple[lk.LSTMCell, lk.Dense]:
    cell = lk.LSTMCell(1, 2, dtype="float64")
    stacked = np.concatenate([np.array(W[g]) for g in "ifgo"])          # (8, 3), PyTorch gate order
    cell.load_torch_state_dict({
        "weight_ih": stacked[:, :1], "weight_hh": stacked[:, 1:],
        "bias_ih": np.concatenate([B[g] for g in "ifgo"]), "bias_hh": np.zeros(8),
    })
    head = lk.Dense(2, 1, dtype="float64")
    head.load_state_dict({"weight": np.array(W_Y), "bias": np.array(B_Y)})
    return cell, head


def run(verbose: bool = True) -> dict[str, object]:
    """Run the three steps; return each step's trace and the final output."""
    cell, head = build()
    h, c = np.zeros((1, 2)), np.zeros((1, 2))
    steps = []
    for t, x in enumerate(XS, start=1):
        h, c = cell.forward(np.array([[x]]), (h, c))
        tr = {k: v[0].copy() for k, v in cell.trace.items()}
        steps.append(tr)
        if verbose:
            print(f"step {t}: x = {x}")
            for g, label in zip("ifgo", ["input gate", "forget gate", "candidate", "output gate"]):
                fn = "tanh" if g == "g" else "σ"
                print(f"  {label:12s} pre = {np.round(tr['pre_' + g], 4)}  {g} = {fn}(pre) = {np.round(tr[g], 4)}")
            print(f"  c_{t} = f ⊙ c_{t - 1} + i ⊙ g = {np.round(tr['c'], 4)}")
            print(f"  h_{t} = o ⊙ tanh(c_{t}) = {np.round(tr['h'], 4)}")
    y = head.forward(h)[0, 0]
    if verbose:
        print(f"output y = W_y · h_3 + b_y = {y:.4f}")
    return {"steps": steps, "y": float(y), "h": h[0]}


if __name__ == "__main__":
    run()
