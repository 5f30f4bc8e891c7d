"""Export a model to ONNX (opset 17) with the ``onnx`` package (the optional extra ``lstmkit[onnx]``), so it runs
outside lstmkit — in onnxruntime, for one. The graph is standard operators only:

* recurrent layers (LSTM, GRU, SimpleRNN, PeepholeLSTM; stacked, bidirectional) as ONNX's LSTM / GRU / RNN
  operators with layout 0 (time-major: onnxruntime refuses batch-first recurrent layouts) between transposes,
  their gate blocks reordered (PyTorch's and lstmkit's i, f, g, o become ONNX's i, o, f, c; the GRU's r, z, n
  become z, r, h, with ``linear_before_reset`` as PyTorch's GRU), peepholes as the LSTM operator's P, ragged
  batches through ``sequence_lens`` (``lengths=True``: a graph input "lengths", int32 (B,));
* Embedding (Gather), Dense (MatMul + Add), Activation, Flatten; Dropout and the recurrent layers' regularisers
  vanish (inference);
* images (NHWC in lstmkit, NCHW in ONNX: each transposed around its operator): Conv2D (stride, dilation, "valid",
  "same" as SAME_UPPER, explicit padding), MaxPool2D, AvgPool2D (zero padding counted, as lstmkit), GlobalAvgPool2D,
  BatchNorm2D (its running statistics); TimeDistributed around any of these (B·T frames, reshaped back), so the
  video model (``lk.models.CNNLSTM``) exports whole.

    lk.onnx.export(model, "model.onnx", input_size=12)            # x (B, T, 12) -> the model's output
    lk.onnx.export(charlm, "lm.onnx", states=True)                 # ids (B, T) -> logits, and the state in and out

A layer with no ONNX form here (tree LSTMs, the projected or layer-normalised LSTM, zoneout's eval form, a
Bidirectional wrapper) is refused by name; the CTC decoders stay in lstmkit and run on the exported model's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .layers.base import Layer
from .layers.conv import Conv2D
from .layers.core import Activation, Dense, Dropout, Embedding, Flatten
from .layers.norm import BatchNorm2D
from .layers.peephole import PeepholeLSTM
from .layers.pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .layers.recurrent import GRU, LSTM, SimpleRNN
from .layers.rnn_base import _RNNBase
from .layers.wrappers import TimeDistributed
from .tbptt import recurrent_layers

OPSET = 17
_LSTM_ORDER, _GRU_ORDER = (0, 3, 1, 2), (1, 0, 2)     # ONNX's gate blocks, as indices into lstmkit's


class ExportError(ValueError):
    """The model has a layer or setting with no ONNX form here."""


class _Graph:
    """The nodes and weights being written, with fresh names."""

    def __init__(self, helper: Any, numpy_helper: Any, dtype: np.dtype) -> None:
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes: list[Any] = []
        self.weights: list[Any] = []
        self.count = 0
        self.source: dict[str, str] = {}        # each graph output: the value it is an Identity of

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value: np.ndarray, base: str = "w") -> str:
        name = self.name(base)
        self.weights.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> list[str]:
        names = [self.name(kind.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(kind, inputs, names, **attrs))
        return names

    def one(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        return self.op(kind, inputs, **attrs)[0]


def _blocks(a: np.ndarray, order: tuple[int, ...], axis: int = 0) -> np.ndarray:
    """``a``'s gate blocks along ``axis`` in ONNX's order."""
    return np.concatenate([np.split(a, len(order), axis=axis)[i] for i in order], axis=axis)


def _recurrent(g: _Graph, layer: _RNNBase, x: str, lengths: str, states: dict[str, str] | None) -> str:
    """A recurrent layer on x (B, T, I) -> its output as ``forward`` gives it (sequences or the last output)."""
    name = type(layer).__name__
    if not isinstance(layer, (LSTM, GRU, SimpleRNN, PeepholeLSTM)) or layer.options:
        raise ExportError(f"lk.onnx.export: {name}{' with proj_size' if layer.options else ''} has no ONNX "
                          "operator (ONNX has LSTM, GRU and RNN without projections or norms)")
    if layer.regularisers.zoneout or layer.regularisers.zoneout_cell:
        raise ExportError(f"lk.onnx.export: {name} with zoneout (its eval form mixes the states) has no ONNX operator")
    kind = "GRU" if isinstance(layer, GRU) else "RNN" if isinstance(layer, SimpleRNN) else "LSTM"
    order = _GRU_ORDER if kind == "GRU" else _LSTM_ORDER if kind == "LSTM" else (0,)
    D, H, dt = layer.num_directions, layer.hidden_size, layer.dtype
    attrs: dict[str, Any] = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        attrs["activations"] = ["Tanh" if layer.nonlinearity == "tanh" else "Relu"] * D
    seq = g.one("Transpose", [x], perm=[1, 0, 2])                             # (T, B, I)
    finals_h, finals_c = [], []
    for k in range(layer.num_layers):
        w = [layer._weights(k, d) for d in range(D)]
        W = np.stack([_blocks(v.w_ih, order) for v in w])
        R = np.stack([_blocks(v.w_hh, order) for v in w])
        zeros = np.zeros(W.shape[1], dt)
        Bias = np.stack([np.concatenate([_blocks(zeros if v.b_ih is None else v.b_ih, order),
                                         _blocks(zeros if v.b_hh is None else v.b_hh, order)]) for v in w])
        inputs = [seq, g.const(W, "W"), g.const(R, "R"), g.const(Bias, "B"), lengths]
        if states is not None:                                              # this layer's rows of h0 (and c0)
            rows = [g.const(np.array([k * D], np.int64)), g.const(np.array([(k + 1) * D], np.int64)),
                    g.const(np.array([0], np.int64))]
            inputs.append(g.one("Slice", [states["h0"], *rows]))
            if kind == "LSTM":
                inputs.append(g.one("Slice", [states["c0"], *rows]))
        if isinstance(layer, PeepholeLSTM):                                 # ONNX's P: [w_ci, w_co, w_cf]
            while len(inputs) < 7:
                inputs.append("")
            P = np.stack([np.concatenate([v.extra["weight_peephole"][i] for i in (0, 2, 1)]) for v in w])
            inputs.append(g.const(P, "P"))
        y, y_h, *y_c = g.op(kind, inputs, outputs=3 if kind == "LSTM" else 2, **attrs)
        finals_h.append(y_h)
        finals_c += y_c
        if D == 2:                                                          # (T, 2, B, H) -> (T, B, 2H)
            y = g.one("Transpose", [y], perm=[0, 2, 1, 3])
            seq = g.one("Reshape", [y, g.const(np.array([0, 0, -1], np.int64))])
        else:
            seq = g.one("Squeeze", [y, g.const(np.array([1], np.int64))])
    if states is not None:
        states["h_n"] = g.one("Concat", finals_h, axis=0)
        if finals_c:
            states["c_n"] = g.one("Concat", finals_c, axis=0)
    if layer.return_sequences is False:                                     # the last output: (D, B, H) -> (B, D·H)
        last = g.one("Transpose", [finals_h[-1]], perm=[1, 0, 2])
        return g.one("Reshape", [last, g.const(np.array([0, -1], np.int64))])
    return g.one("Transpose", [seq], perm=[1, 0, 2])                        # (B, T, D·H)


def _layer(g: _Graph, layer: Layer, x: str, lengths: str, states: dict[str, str] | None) -> str:
    """One layer of the model on x -> its output's name."""
    from .models.charlm import CharLM
    from .models.sequential import Sequential
    if isinstance(layer, Sequential):
        for sub in layer.layers:
            x = _layer(g, sub, x, lengths, states)
        return x
    if isinstance(layer, CharLM):
        x = _layer(g, layer.embed, x, lengths, states)
        x = _recurrent(g, layer.rnn, x, lengths, states)
        return _layer(g, layer.head, x, lengths, states)
    if isinstance(layer, _RNNBase):
        return _recurrent(g, layer, x, lengths, states)
    if isinstance(layer, TimeDistributed) and isinstance(layer.layer, (Dense, Activation, Dropout)):
        return _layer(g, layer.layer, x, lengths, states)                   # (all act on the last axis)
    if isinstance(layer, TimeDistributed):                                  # (B, T, ...) as B·T samples, and back
        shape = g.one("Shape", [x])
        frames = g.one("Reshape", [x, g.one("Concat", [g.const(np.array([-1], np.int64)),
                                                       g.one("Slice", [shape, g.const(np.array([2], np.int64)),
                                                                       g.const(np.array([2 ** 62], np.int64))])],
                                            axis=0)])
        y = _layer(g, layer.layer, frames, lengths, states)
        rest = g.one("Slice", [g.one("Shape", [y]), g.const(np.array([1], np.int64)),
                               g.const(np.array([2 ** 62], np.int64))])
        bt = g.one("Slice", [shape, g.const(np.array([0], np.int64)), g.const(np.array([2], np.int64))])
        return g.one("Reshape", [y, g.one("Concat", [bt, rest], axis=0)])
    if isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D, BatchNorm2D)):
        return _image(g, layer, x)
    if isinstance(layer, GlobalAvgPool2D):
        return g.one("ReduceMean", [x], axes=[1, 2], keepdims=0)            # (opset 17: axes an attribute)
    if isinstance(layer, Dense):
        y = g.one("MatMul", [x, g.const(layer.weight.value.T, "dense")])
        return y if layer.bias is None else g.one("Add", [y, g.const(layer.bias.value, "bias")])
    if isinstance(layer, Embedding):
        return g.one("Gather", [g.const(layer.weight.value, "embedding"), x], axis=0)
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, Flatten):
        return g.one("Flatten", [x], axis=1)
    if isinstance(layer, Activation):
        kinds = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "linear": "Identity"}
        if layer.name == "leaky_relu":
            return g.one("LeakyRelu", [x], alpha=float(layer.negative_slope))
        if layer.name == "softmax":
            return g.one("Softmax", [x], axis=-1)
        return g.one(kinds[layer.name], [x])
    raise ExportError(f"lk.onnx.export: {type(layer).__name__} has no ONNX form here (exported: Sequential, CharLM, "
                      "LSTM, GRU, SimpleRNN, PeepholeLSTM, Embedding, Dense, TimeDistributed, Activation, Dropout, "
                      "Flatten, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, BatchNorm2D)")


def _image(g: _Graph, layer: Layer, x: str) -> str:
    """A Conv2D, pooling or BatchNorm2D on NHWC x: its ONNX operator between NHWC -> NCHW and back."""
    nchw = g.one("Transpose", [x], perm=[0, 3, 1, 2])
    if isinstance(layer, Conv2D):
        attrs: dict[str, Any] = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
                                 "dilations": list(layer.dilation)}
        if layer.padding == "same":
            attrs["auto_pad"] = "SAME_UPPER"                                # (the odd zero below / right, as lstmkit)
        else:
            t, b, left, r = layer.pads(0, 0) if layer.padding == "valid" else \
                (layer.padding[0], layer.padding[0], layer.padding[1], layer.padding[1])
            attrs["pads"] = [t, left, b, r]
        inputs = [nchw, g.const(layer.weight.value.transpose(3, 2, 0, 1), "conv")]   # (kh, kw, C, O) -> (O, C, kh, kw)
        if layer.bias is not None:
            inputs.append(g.const(layer.bias.value, "bias"))
        y = g.one("Conv", inputs, **attrs)
    elif isinstance(layer, BatchNorm2D):
        if getattr(layer, "running_mean", None) is None:
            raise ExportError("lk.onnx.export: BatchNorm2D without running statistics normalises by each batch's own; "
                              "ONNX's BatchNormalization needs the running ones")
        C = layer.num_features
        scale = layer.weight.value if layer.weight is not None else np.ones(C, layer.dtype)
        shift = layer.bias.value if layer.bias is not None else np.zeros(C, layer.dtype)
        y = g.one("BatchNormalization", [nchw, g.const(scale), g.const(shift), g.const(layer.running_mean.value),
                                         g.const(layer.running_var.value)], epsilon=float(layer.eps))
    else:
        (ph, pw) = layer.padding
        attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer.stride), "pads": [ph, pw, ph, pw]}
        if isinstance(layer, AvgPool2D):
            attrs["count_include_pad"] = 1
        y = g.one("MaxPool" if isinstance(layer, MaxPool2D) else "AveragePool", [nchw], **attrs)
    return g.one("Transpose", [y], perm=[0, 2, 3, 1])


def _first_input(model: Layer) -> Layer:
    from .models.charlm import CharLM
    from .models.sequential import Sequential
    while isinstance(model, (Sequential, CharLM, TimeDistributed)):
        model = model.layers[0] if isinstance(model, Sequential) else model.embed if isinstance(model, CharLM) \
            else model.layer
    return model


def export(model: Layer, path: str | Path, input_size: int | None = None, lengths: bool = False,
           states: bool = False, input_shape: tuple[int | None, ...] | None = None) -> Path:
    """Write ``model`` (in its inference form) to ``path`` as an ONNX model; returns the path.

    Inputs: "x" — (B, T, input_size) float sequences, or (B, T) int64 ids when the model starts with an Embedding
    (``input_size`` is read from the first layer when not given), or with ``input_shape`` one sample's shape
    without the batch axis, None for a size left open (the video model: (None, H, W, C), T open); with
    ``lengths`` also "lengths", int32 (B,), each
    sequence's steps. With ``states`` (one recurrent layer: a CharLM, a bare layer) also "h0" (and "c0"), the
    initial state (num_layers·D, B, H), and outputs "h_n" (and "c_n"). Output: "y", what ``model.forward`` returns
    in eval mode (for a CharLM the logits (B, T, V)).
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("lk.onnx.export needs the onnx package: pip install 'lstmkit[onnx]'") from None
    first = _first_input(model)
    dt = np.dtype(getattr(first, "dtype", np.float32))
    elem = TensorProto.FLOAT if dt == np.float32 else TensorProto.DOUBLE
    g = _Graph(helper, numpy_helper, dt)
    if isinstance(first, Embedding):
        inputs = [helper.make_tensor_value_info("x", TensorProto.INT64, ["batch", "time"])]
    elif input_shape is not None:
        dims = ["batch", *(f"d{i}" if d is None else int(d) for i, d in enumerate(input_shape))]
        inputs = [helper.make_tensor_value_info("x", elem, dims)]
    else:
        size = input_size if input_size is not None else \
            getattr(first, "input_size", None) or getattr(first, "in_features", None)
        if size is None:
            raise ExportError(f"lk.onnx.export: give input_shape (one sample's shape; the first layer, "
                              f"{type(first).__name__}, does not say it)")
        inputs = [helper.make_tensor_value_info("x", elem, ["batch", "time", size])]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
    rnns = recurrent_layers(model)
    st: dict[str, str] | None = None
    if states:
        if len(rnns) != 1:
            raise ExportError(f"lk.onnx.export: states=True needs exactly one recurrent layer, the model has "
                              f"{len(rnns)}")
        rnn = rnns[0]
        st = {"h0": "h0", "c0": "c0"}
        shape = ["layers", "batch", rnn.state_size]
        inputs.append(helper.make_tensor_value_info("h0", elem, shape))
        if rnn.kernel.has_cell:
            inputs.append(helper.make_tensor_value_info("c0", elem, ["layers", "batch", rnn.cell_size]))
    y = _layer(g, model, "x", "lengths" if lengths else "", st)
    g.nodes.append(helper.make_node("Identity", [y], ["y"]))
    g.source["y"] = y
    outputs = [helper.make_tensor_value_info("y", elem, None)]
    if st is not None:
        for out in ("h_n", "c_n"):
            if out in st:
                g.nodes.append(helper.make_node("Identity", [st[out]], [out]))
                g.source[out] = st[out]
                outputs.append(helper.make_tensor_value_info(out, elem, None))
    graph = helper.make_graph(g.nodes, type(model).__name__, inputs, outputs, g.weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lstmkit")
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(proto).graph.value_info}
    for out in proto.graph.output:                                          # each output's shape, as inferred
        known = inferred.get(g.source[out.name])
        if known is not None:
            out.type.CopyFrom(known.type)
    onnx.checker.check_model(proto)
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"lk.onnx.export: {path}: no such folder to write into ({path.parent})")
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, tmp)
    tmp.replace(path)                                                       # (atomic: never half a file)
    return path

