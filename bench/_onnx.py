"""A single ONNX ``RNN`` / ``LSTM`` / ``GRU`` node holding PyTorch-layout weights, for ONNX Runtime.

The node is built with ``onnx.helper`` (no export from PyTorch), time-major (``layout=0``), one
direction, the weights and biases as initializers (so ONNX Runtime may pre-pack them, as it does
for an exported model). PyTorch's weights map onto ONNX's as follows:

- gate blocks are reordered: LSTM ``i, f, g, o`` -> ``i, o, f, c``; GRU ``r, z, n`` -> ``z, r, h``;
- ``W = w_ih[None]``, ``R = w_hh[None]``, ``B = concat(b_ih, b_hh)[None]`` (ONNX's ``Wb`` then
  ``Rb``);
- PyTorch's GRU applies the reset gate after the recurrent product (``r * (W_hn h + b_hn)``):
  ONNX's ``linear_before_reset=1``;
- states are ``(num_directions=1, B, H)``; ``Y`` is ``(T, 1, B, H)``.

``missing()`` says why ONNX Runtime cannot be used (``None`` when it can); nothing else here
imports onnx or onnxruntime before it is called.
"""
import importlib.util
from typing import Optional

import numpy as np

# The first opset with the ``layout`` attribute of RNN/LSTM/GRU; every recent runtime has it.
OPSET = 14
OP_TYPES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# ONNX's gate blocks, as indices of PyTorch's: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
GATE_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}
# PyTorch's GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
GRU_LINEAR_BEFORE_RESET = 1


def missing() -> Optional[str]:
    """Why the ONNX Runtime peer cannot run here, or None when onnx and onnxruntime import."""
    absent = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if absent:
        return (f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} not installed "
                f"(pip install onnx onnxruntime, or the [bench] extra)")
    return None


def reorder_gates(a: np.ndarray, cell_name: str) -> np.ndarray:
    """``a`` with the gate blocks of its first axis (G blocks of H rows) in ONNX's order."""
    order = GATE_ORDER[cell_name]
    if a.shape[0] % len(order):
        raise ValueError(f"{cell_name}: first axis {a.shape[0]} is not a multiple of "
                         f"{len(order)} gates")
    blocks = np.split(a, len(order), axis=0)
    return np.ascontiguousarray(np.concatenate([blocks[k] for k in order], axis=0))


def onnx_weights(cell_name: str, w_ih, w_hh, b_ih, b_hh) -> dict:
    """ONNX's ``W``, ``R``, ``B`` from PyTorch's ``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``."""
    if cell_name not in GATE_ORDER:
        raise ValueError(f"cell: expected one of {sorted(GATE_ORDER)}, got {cell_name!r}")
    return {
        "W": reorder_gates(np.asarray(w_ih), cell_name)[None],
        "R": reorder_gates(np.asarray(w_hh), cell_name)[None],
        "B": np.concatenate([reorder_gates(np.asarray(b_ih), cell_name),
                             reorder_gates(np.asarray(b_hh), cell_name)])[None],
    }


def build_model(cell_name: str, w_ih, w_hh, b_ih, b_hh, *, T=None, B=None,
                nonlinearity: str = "tanh", with_y: bool = True):
    """An ``onnx.ModelProto`` of one node: inputs ``X`` ``(T, B, I)``, ``initial_h`` (and
    ``initial_c`` for LSTM) ``(1, B, H)``; outputs ``Y`` ``(T, 1, B, H)`` (unless ``with_y`` is
    False), ``Y_h`` (and ``Y_c``) ``(1, B, H)``. ``T`` and ``B`` are fixed when given, else
    symbolic. Weights and inputs are float32 (ONNX Runtime has no float64 recurrent kernels)."""
    import onnx
    from onnx import helper, numpy_helper

    for name, value in (("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh)):
        if np.asarray(value).dtype != np.float32:
            raise TypeError(f"{name}: expected float32 (ONNX Runtime's recurrent kernels are "
                            f"float32 only), got {np.asarray(value).dtype}")
    if nonlinearity not in ACTIVATIONS:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    weights = onnx_weights(cell_name, w_ih, w_hh, b_ih, b_hh)
    gates = len(GATE_ORDER[cell_name])
    H = weights["R"].shape[2]
    I = weights["W"].shape[2]
    if weights["W"].shape[1] != gates * H:
        raise ValueError(f"w_ih: expected {gates * H} rows ({gates} gates x H={H}), "
                         f"got {weights['W'].shape[1]}")
    elem = onnx.TensorProto.FLOAT
    t_dim = "T" if T is None else int(T)
    b_dim = "B" if B is None else int(B)
    lstm = cell_name == "lstm"

    state_names = ["initial_h", "initial_c"] if lstm else ["initial_h"]
    inputs = [helper.make_tensor_value_info("X", elem, [t_dim, b_dim, I])]
    inputs += [helper.make_tensor_value_info(n, elem, [1, b_dim, H]) for n in state_names]
    out_names = ["Y_h", "Y_c"] if lstm else ["Y_h"]
    outputs = ([helper.make_tensor_value_info("Y", elem, [t_dim, 1, b_dim, H])] if with_y else [])
    outputs += [helper.make_tensor_value_info(n, elem, [1, b_dim, H]) for n in out_names]
    initializers = [numpy_helper.from_array(weights[n], name=n) for n in "WRB"]

    attributes = {"hidden_size": H, "direction": "forward", "layout": 0}
    if cell_name == "gru":
        attributes["linear_before_reset"] = GRU_LINEAR_BEFORE_RESET
    if cell_name == "rnn":
        attributes["activations"] = [ACTIVATIONS[nonlinearity]]
    # Inputs X, W, R, B, sequence_lens (none: every sequence has T steps), initial_h[, initial_c].
    node = helper.make_node(OP_TYPES[cell_name], ["X", "W", "R", "B", ""] + state_names,
                            (["Y"] if with_y else [""]) + out_names, **attributes)
    graph = helper.make_graph([node], f"single_{cell_name}", inputs, outputs, initializers)
    opset = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opset,
                              ir_version=helper.find_min_ir_version_for(opset))
    onnx.checker.check_model(model, full_check=True)
    return model


def session(model, threads: int):
    """An ``InferenceSession`` on the CPU with ``threads`` intra-op threads and 1 inter-op."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def state_feeds(cell_name: str, h0, c0=None) -> dict:
    """The states as ONNX inputs: ``(B, H)`` arrays become ``(1, B, H)`` views."""
    feeds = {"initial_h": np.asarray(h0)[None]}
    if cell_name == "lstm":
        feeds["initial_c"] = np.asarray(c0)[None]
    return feeds

