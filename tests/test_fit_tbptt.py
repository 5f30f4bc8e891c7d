"""fit(tbptt=K): windows of K steps, one training step each, the recurrent state carried across a batch's windows
with no gradient crossing their edges — against PyTorch doing the same by hand; resume mid-batch; the char LM
trains on the same mechanism (lstmkit.tbptt); what is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit as lk
from lstmkit.tbptt import StateCarry, recurrent_layers

from .conftest import assert_close


def _model(seed: int = 0, kind: type = lk.LSTM) -> lk.Sequential:
    g = np.random.default_rng(seed)
    return lk.Sequential(kind(2, 5, num_layers=2, return_sequences=True, dtype="float64", rng=g),
                         lk.TimeDistributed(lk.Dense(5, 3, dtype="float64", rng=g)))


def _data(N: int = 4, T: int = 7, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.standard_normal((N, T, 2)), g.integers(0, 3, (N, T))


@pytest.mark.parametrize("kind", [lk.LSTM, lk.GRU])
def test_each_window_is_one_step_from_the_carried_state_as_torch_does_it(kind):
    """Two batches of three windows (the last one short): SGD after each window; torch runs the windows with
    h_0 = the previous window's final state, detached, and a fresh zero state for each batch."""
    x, y = _data(N=4, T=7)
    model = _model(0, kind)
    rnn, head = model.layers[0], model.layers[1].layer
    theirs = getattr(torch.nn, kind.__name__)(2, 5, num_layers=2, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(rnn.params[name].value))
        lin.weight.copy_(torch.from_numpy(head.weight.value))
        lin.bias.copy_(torch.from_numpy(head.bias.value))
    lk.fit(model, x, y, optimizer=lk.optim.SGD(model.parameters(), lr=0.5), batch_size=2, shuffle=False, epochs=1,
           tbptt=3, progress=False)
    params = [*theirs.parameters(), *lin.parameters()]
    for b in (slice(0, 2), slice(2, 4)):
        state = None                                               # each batch starts from zero state
        for s in (0, 3, 6):
            out, state = theirs(torch.from_numpy(x[b, s:s + 3]), state)
            target = torch.from_numpy(y[b, s:s + 3]).reshape(-1)
            loss = torch.nn.functional.cross_entropy(lin(out).reshape(-1, 3), target)
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= 0.5 * p.grad
            state = tuple(s_.detach() for s_ in state) if isinstance(state, tuple) else state.detach()
    for name, p in theirs.named_parameters():
        assert_close(rnn.params[name].value, p, 1e-12, name)
    assert_close(head.weight.value, lin.weight, 1e-12, "head")
    assert not rnn.carrying and rnn.carried is not None                # (off outside the training steps)


def test_resuming_mid_batch_ends_where_the_uninterrupted_run_does(tmp_path):
    """Stopped after 4 of a batch's windows (the carried state in the checkpoint), resumed: bit for bit."""
    x, y = _data(N=6, T=10)
    kw = dict(batch_size=3, tbptt=3, progress=False, seed=3)
    whole = _model(1)
    lk.fit(whole, x, y, optimizer=lk.optim.Adam(whole.parameters(), lr=1e-2), steps=10, **kw)
    part = _model(1)
    lk.fit(part, x, y, optimizer=lk.optim.Adam(part.parameters(), lr=1e-2), steps=5, run_dir=tmp_path / "run", **kw)
    again = _model(1)
    lk.fit(again, x, y, optimizer=lk.optim.Adam(again.parameters(), lr=1e-2), steps=10, run_dir=tmp_path / "run",
           resume=True, **kw)
    for (name, a), (_, b) in zip(whole.state_dict().items(), again.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_window_of_ignored_targets_moves_the_state_but_not_the_weights():
    """Padding marked with ignore_index can fill a whole window: it is run (the state moves on) but not learned
    from — no NaN, and the weights after it are those before it."""
    x, y = _data(N=2, T=6)
    y[:, 3:] = -100                                                 # the second window scores nothing
    runs = []
    for steps in (1, 2):
        model = _model(2)
        hist = lk.fit(model, x, y, loss=lk.CrossEntropyLoss(ignore_index=-100), batch_size=2, steps=steps, tbptt=3,
                      progress=False)
        assert hist.stop_reason != "nan"
        runs.append((model.state_dict(), model.layers[0].carried[0].copy()))
    (w1, h1), (w2, h2) = runs
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)
    assert not np.allclose(h1, h2)                                  # the state ran through the second window


def test_the_char_lm_and_fit_carry_state_the_same_way():
    """The char LM's trainer carries its LSTM's state with the same StateCarry: window by window, it gives what one
    pass over the whole sequence gives."""
    model = lk.models.CharLM(lk.models.CharLMConfig(vocab_size=5, embed=3, hidden=4, layers=2))
    carry = StateCarry(model.rnn)
    assert recurrent_layers(model) == [model.rnn] and carry.layers == [model.rnn]
    ids = np.random.default_rng(0).integers(0, 5, (2, 6))
    with carry.active():
        model.forward(ids[:, :3])
        model.forward(ids[:, 3:])
    model.eval()
    whole, _ = model.forward(ids)
    with carry.active():                                            # eval: the same numbers window by window
        carry.reset()
        first, _ = model.forward(ids[:, :3])
        second, _ = model.forward(ids[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(tbptt=0), "tbptt must be a positive number of steps"),
    (dict(tbptt=2, lengths=np.array([3, 7, 7, 2])), "tbptt cuts sequences .* takes no lengths="),
    (dict(tbptt=2, y=np.zeros(4, np.int64)), r"tbptt needs a target for every step, y \(N, 7, ...\)"),
])
def test_what_tbptt_refuses(kwargs, message):
    x, y = _data(N=4, T=7)
    args = {"y": y, **kwargs}
    with pytest.raises(ValueError, match=message):
        lk.fit(_model(), x, progress=False, **args)


def test_a_model_without_a_recurrent_layer_is_refused():
    x, y = _data(N=4, T=7)
    model = lk.Sequential(lk.TimeDistributed(lk.Dense(2, 3, dtype="float64")))
    with pytest.raises(ValueError, match=r"fit\(tbptt=...\): the model has no recurrent layer"):
        lk.fit(model, x, y, tbptt=2, progress=False)


def _kept_bytes(layer: lk.LSTM) -> int:
    """What the last forward keeps for the backward: every array of every layer and direction's scan record."""
    seen, total = set(), 0
    for ly in layer._record.layers:
        for ent in ly.dirs:
            s = ent.scan
            for a in (s.hs, s.gates, s.cs, *s.aux.values()):
                if a is not None and id(a) not in seen:
                    seen.add(id(a))
                    total += a.nbytes
    return total


@pytest.mark.parametrize("kernel", ["", "numpy"])
def test_full_bptt_keeps_what_the_guide_says_and_tbptt_a_window_of_it(kernel, monkeypatch):
    """The guide's "Long sequences": per step, layer and direction, the four gates, c_t, tanh c_t and h_t — 7·H
    numbers (issue 34, item 8). fit(tbptt=K) keeps K steps' worth, whatever T is."""
    monkeypatch.setenv("LSTMKIT_KERNEL", kernel)
    B, T, H = 4, 60, 16
    layer = lk.LSTM(2, H, num_layers=2, bidirectional=True, return_sequences=True)
    layer.forward(np.zeros((B, T, 2), np.float32))
    per_step = 7 * H * B * 4 * 2 * 2                       # float32; 2 layers x 2 directions
    assert per_step * T <= _kept_bytes(layer) <= per_step * (T + 2)
    model = lk.Sequential(layer, lk.TimeDistributed(lk.Dense(2 * H, 3)))
    lk.fit(model, np.zeros((B, T, 2), np.float32), np.zeros((B, T), np.int64), batch_size=B, steps=1, tbptt=10,
           progress=False)
    assert layer._record.T == 10 and _kept_bytes(layer) <= per_step * 12
