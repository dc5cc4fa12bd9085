"""Keras weights into rnnfast layers.

``set_keras_weights(target, weights)`` takes the list that Keras' ``layer.get_weights()``
returns (or ``model.get_weights()``, for a ``Sequential`` whose layers match the Keras model's
one for one) and writes it into ``target``'s parameters, building lazily-built layers from the
weights' shapes. Keras' lists, and where they go:

- ``Dense``: ``[kernel (in, units), bias (units,)]``; ``weight = kernel.T``.
- ``Embedding``: ``[embeddings (input_dim, output_dim)]``.
- ``Conv1D``: ``[kernel (K, C_in // groups, C_out), bias (C_out,)]``;
  ``weight = kernel.transpose(2, 1, 0)`` (PyTorch's ``(C_out, C_in // groups, K)``).
- ``LayerNormalization``: ``[gamma, beta]`` into ``weight``, ``bias``.
- ``SimpleRNN``: ``[kernel (I, H), recurrent_kernel (H, H), bias (H,)]``.
- ``LSTM``: ``[kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]``, gates i, f, c, o:
  PyTorch's order i, f, g, o, so only the transposes.
- ``GRU``: ``[kernel (I, 3H), recurrent_kernel (H, 3H), bias]``, gates z, r, h, reordered to
  PyTorch's r, z, n; ``bias`` is ``(2, 3H)`` with ``reset_after=True`` (the input and the
  recurrent bias) and ``(3H,)`` with ``reset_after=False``, which must match the target.
- ``Bidirectional``: the forward layer's list, then the backward layer's.
- Layers without weights (Dropout, Activation, pooling, Flatten) take none; ``TimeDistributed``
  takes its layer's. Without ``use_bias`` in Keras the lists have no bias: build the target
  without bias too.

Biases: Keras' SimpleRNN, LSTM and GRU with ``reset_after=False`` have one bias vector. The
Keras-style layers of ``rnnfast.models.layers`` have that one bias too (``b_ih``; their
``rnnfast.nn`` core has no ``b_hh``), so they count and train as Keras. The PyTorch-style
``rnnfast.nn`` layers keep PyTorch's two (``b_ih`` and ``b_hh``, which the cell adds): Keras'
bias goes into ``b_ih`` and ``b_hh`` is set to zero, the same function (DESIGN.md's cell
equations with ``b_hh = 0`` are Keras' equations). GRU with ``reset_after=True`` has two biases
in Keras too: ``bias[0]`` goes into ``b_ih`` and ``bias[1]`` into ``b_hh``.

This module imports no layer class of ``rnnfast.models``: it recognises the Keras-style
layers by their markers (``keras_recurrent``, ``keras_wrapper``) and their ``rnnfast.nn``
bases, so the layers can use it.
"""
import numpy as np

from rnnfast import nn
from rnnfast.functional.stack import CELLS
from rnnfast.nn.attention import AdditiveAttention, _BaseAttention
from rnnfast.nn.recurrent import RNNBase

__all__ = ["get_keras_weights", "keras_recurrent_weights", "set_keras_weights"]

#: Keras' recurrent layer -> rnnfast's cell
_KERAS_CELLS = {"SimpleRNN": "rnn", "LSTM": "lstm", "GRU": "gru"}
_GATES = {kind: CELLS[cell].gates for kind, cell in _KERAS_CELLS.items()}


def _array(value, name):
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def _check_shape(arr, name, shape, what):
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected {what} of shape {tuple(shape)}, got {arr.shape}")


def _gru_order(block, hidden):
    """Keras' z, r, h blocks of the last axis in PyTorch's r, z, n order."""
    z, r, h = (block[..., k * hidden:(k + 1) * hidden] for k in range(3))
    return np.concatenate([r, z, h], axis=-1)


def keras_recurrent_weights(kind, weights, reset_after=True):
    """PyTorch-layout weights of one Keras recurrent layer (one direction).

    Args:
        kind: ``"SimpleRNN"``, ``"LSTM"`` or ``"GRU"``.
        weights: Keras' ``[kernel, recurrent_kernel]`` or ``[kernel, recurrent_kernel, bias]``.
        reset_after: the Keras GRU's ``reset_after`` (it decides the bias' shape).

    Returns:
        A dict ``{"weight_ih", "weight_hh", "bias_ih", "bias_hh"}`` of float arrays (the
        biases None when Keras' list has none): ``weight_ih = kernel.T``, ``weight_hh =
        recurrent_kernel.T`` (GRU gates reordered), Keras' single bias in ``bias_ih`` and
        zeros in ``bias_hh``, except for a GRU with ``reset_after=True``, whose two biases go
        to ``bias_ih`` and ``bias_hh``.
    """
    return _convert_recurrent(kind, weights, reset_after, None)


def _a(kind):
    return ("an " if kind == "LSTM" else "a ") + kind


def _convert_recurrent(kind, weights, reset_after, names):
    if kind not in _GATES:
        raise ValueError(f"kind: expected one of {sorted(_GATES)}, got {kind!r}")
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        raise ValueError(f"weights: expected Keras' [kernel, recurrent_kernel, bias] (or "
                         f"without bias) of {_a(kind)}, got "
                         f"{len(weights) if isinstance(weights, (list, tuple)) else weights!r}")
    names = names or [f"weights[{i}]" for i in range(len(weights))]
    kernel = _array(weights[0], names[0])
    recurrent = _array(weights[1], names[1])
    if recurrent.ndim != 2 or recurrent.shape[1] != _GATES[kind] * recurrent.shape[0]:
        raise ValueError(f"{names[1]}: expected {_a(kind)} recurrent_kernel of shape (units, "
                         f"{_GATES[kind]} * units), got {recurrent.shape}")
    H = recurrent.shape[0]
    GH = _GATES[kind] * H
    if kernel.ndim != 2 or kernel.shape[1] != GH:
        raise ValueError(f"{names[0]}: expected {_a(kind)} kernel of shape (input_dim, {GH}), got "
                         f"{kernel.shape}")
    w_ih, w_hh = kernel.T, recurrent.T
    if kind == "GRU":
        w_ih, w_hh = _gru_order(kernel, H).T, _gru_order(recurrent, H).T
    b_ih = b_hh = None
    if len(weights) == 3:
        bias = _array(weights[2], names[2])
        if kind == "GRU" and reset_after:
            if bias.shape != (2, GH):
                raise ValueError(f"{names[2]}: expected a GRU(reset_after=True) bias of shape "
                                 f"{(2, GH)} (input and recurrent biases; a (3 * units,) bias "
                                 f"comes from reset_after=False), got {bias.shape}")
            b_ih, b_hh = _gru_order(bias[0], H), _gru_order(bias[1], H)
        else:
            if bias.shape != (GH,):
                note = " (reset_after=False; a (2, 3 * units) bias comes from reset_after=True)" \
                    if kind == "GRU" else ""
                raise ValueError(f"{names[2]}: expected {_a(kind)} bias of shape {(GH,)}{note}, "
                                 f"got {bias.shape}")
            b_ih = _gru_order(bias, H) if kind == "GRU" else bias
            b_hh = np.zeros_like(b_ih)
    return {"weight_ih": np.ascontiguousarray(w_ih), "weight_hh": np.ascontiguousarray(w_hh),
            "bias_ih": b_ih, "bias_hh": b_hh}


def _kind(rnn):
    return next(kind for kind, cell in _KERAS_CELLS.items() if cell == rnn.stack.cell.name)


def _plan_recurrent(rnn, arrays, start, plan):
    """Plan every layer and direction of an ``rnnfast.nn`` RNN/LSTM/GRU from consecutive Keras
    lists (l0 forward, l0 backward, l1 forward, ...); returns how many arrays it takes."""
    kind, used = _kind(rnn), 0
    per_list = 3 if rnn.bias else 2
    reset_after = getattr(rnn, "reset_after", True)
    for names in rnn.stack.names:
        first = start + used
        chunk = arrays[first:first + per_list]
        if len(chunk) < per_list:
            raise ValueError(f"weights: the {kind} needs {per_list} arrays per layer and "
                             f"direction ({len(rnn.stack.names)} of them), the list ends at "
                             f"{len(arrays)}")
        labels = [f"weights[{first + i}]" for i in range(per_list)]
        GH, I = rnn._parameters[names[0]].shape
        H = rnn._parameters[names[1]].shape[1]
        keras_shapes = [(I, GH), (H, GH), (2, GH) if kind == "GRU" and reset_after else (GH,)]
        for i, what in enumerate(("kernel", "recurrent_kernel", "bias")[:per_list]):
            arr = _array(chunk[i], labels[i])
            if arr.shape != keras_shapes[i] and not (i == 2 and kind == "GRU"):
                raise ValueError(f"{labels[i]}: expected the {what} of a Keras {kind}({H}) on "
                                 f"{I} features, of shape {keras_shapes[i]}, got {arr.shape}")
        converted = _convert_recurrent(kind, chunk, reset_after, labels)
        for name, param in zip(names, rnn.stack.params):
            if name in rnn._parameters:  # a Keras-style core has no b_hh
                plan.append((rnn._parameters[name], converted[param.prefix]))
        used += per_list
    return used


def _plan_plain(layer, arrays, start, plan, convert):
    """Plan ``weight`` and ``bias`` of a Dense / Conv1D (whose Keras kernels are the reversed-axes
    transposes of PyTorch's weights, ``convert=True``) / LayerNorm / Embedding."""
    names = [n for n in ("weight", "bias") if layer._parameters.get(n) is not None]
    chunk = arrays[start:start + len(names)]
    if len(chunk) < len(names):
        raise ValueError(f"weights: {type(layer).__name__} needs {len(names)} arrays "
                         f"({', '.join(names)}), the list ends at {len(arrays)}")
    for i, (name, value) in enumerate(zip(names, chunk)):
        label = f"weights[{start + i}]"
        value = _array(value, label)
        shape = layer._parameters[name].shape
        if i == 0 and convert:
            shape = shape[::-1]
        what = ("the kernel" if convert else "the weight") if i == 0 else "the bias"
        _check_shape(value, label, shape, f"{what} of this {type(layer).__name__} (Keras' "
                     "layout)")
        plan.append((layer._parameters[name], value.T if i == 0 and convert else value))
    return len(names)


def _first(arrays, start, layer):
    if start >= len(arrays):
        raise ValueError(f"weights: the list ends at {len(arrays)} before the weights of "
                         f"{type(layer).__name__}")
    return _array(arrays[start], f"weights[{start}]")


def _wrapper(layer):
    """Bidirectional or TimeDistributed: the weights are its ``.layer``'s."""
    return isinstance(layer, nn.TimeDistributed) or getattr(layer, "keras_wrapper", False)


def _plan_layer(layer, arrays, start, plan):
    """Plan the writes of Keras arrays from ``arrays[start:]`` into ``layer`` (building it if
    needed); returns how many arrays it takes."""
    if isinstance(getattr(layer, "layers", None), list):  # a model: its layers in order
        used = 0
        for sub in layer.layers:
            used += _plan_layer(sub, arrays, start + used, plan)
        return used
    if _wrapper(layer):
        return _plan_layer(layer.layer, arrays, start, plan)
    if getattr(layer, "keras_recurrent", False):
        if not layer.built:
            layer.build(_first(arrays, start, layer).shape[0])
        return _plan_recurrent(layer.rnn, arrays, start, plan)
    if isinstance(layer, RNNBase):
        return _plan_recurrent(layer, arrays, start, plan)
    if isinstance(layer, nn.Linear):  # Dense too
        if not getattr(layer, "built", True):
            layer.build(_first(arrays, start, layer).shape[0])
        return _plan_plain(layer, arrays, start, plan, True)
    if isinstance(layer, nn.Conv1d):  # Conv1D too
        if not layer.built:
            layer.build(_first(arrays, start, layer).shape[1] * layer.groups)
        return _plan_plain(layer, arrays, start, plan, True)
    if isinstance(layer, nn.LayerNorm) and hasattr(layer, "build_for_sizes") and \
            not layer.built and (layer.center or layer.scale):  # Keras' LayerNormalization
        layer.build_for_sizes(_first(arrays, start, layer).shape)
    if isinstance(layer, (nn.Embedding, nn.LayerNorm)):
        return _plan_plain(layer, arrays, start, plan, False)
    if isinstance(layer, _BaseAttention):  # Keras' layout is the parameter list's
        count = len(layer.parameters())
        if not count and isinstance(layer, AdditiveAttention) and layer.use_scale:
            layer.build(_first(arrays, start, layer).shape[0])
            count = 1
        for i, param in enumerate(layer.parameters()):
            value = _first(arrays, start + i, layer)
            _check_shape(value, f"weights[{start + i}]", param.shape,
                         f"weight {i} of this {type(layer).__name__}")
            plan.append((param, value))
        return count
    if layer.parameters():
        raise TypeError(f"target: no Keras weight layout is known for {type(layer).__name__}")
    return 0


def set_keras_weights(target, weights):
    """Load Keras weights into an rnnfast layer or ``Sequential`` (see the module docstring).

    Args:
        target: a layer of ``rnnfast.models.layers`` or ``rnnfast.nn`` (an ``nn.LSTM`` with
            ``num_layers`` layers and both directions takes the Keras lists of its stacked
            layers in order, forward before backward), or a ``Sequential``.
        weights: Keras' ``get_weights()`` list (NumPy arrays, or anything ``np.asarray``
            takes).

    Returns:
        ``target``. Nothing is written unless every array fits (lazily-built layers may have
        been built from the shapes).

    Raises:
        ValueError: a weight of the wrong shape (naming its index, the expected and the given
            shape), or a list too short or too long for ``target``.
        TypeError: a non-numeric weight, or a layer with parameters of unknown layout.
    """
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights: expected a list of arrays (Keras' get_weights()), got "
                        f"{type(weights).__name__}")
    plan = []
    used = _plan_layer(target, list(weights), 0, plan)
    if used != len(weights):
        raise ValueError(f"weights: {type(target).__name__} takes {used} arrays, got "
                         f"{len(weights)}")
    for param, value in plan:
        param.data[...] = value
    return target


def _keras_recurrent_lists(rnn):
    """Keras' lists (one per layer and direction, in order) of an ``rnnfast.nn`` RNN/LSTM/GRU:
    the inverse of ``_convert_recurrent``; the two PyTorch biases of a single-bias Keras layer
    are summed (the same function)."""
    kind = _kind(rnn)
    reset_after = getattr(rnn, "reset_after", True)
    lists = []
    prefixes = [param.prefix for param in rnn.stack.params]
    for names in rnn.stack.names:
        by_prefix = dict(zip(prefixes, names))
        params = [rnn._parameters.get(by_prefix.get(k)) for k in
                  ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        params = [None if p is None else p.data for p in params]
        H = params[1].shape[1]
        order = (lambda a: _gru_order(a, H)) if kind == "GRU" else (lambda a: a)
        arrays = [np.ascontiguousarray(order(params[0].T)),
                  np.ascontiguousarray(order(params[1].T))]
        if rnn.bias:
            b_ih = order(params[2])
            b_hh = None if params[3] is None else order(params[3])  # a Keras-style core: none
            if kind == "GRU" and reset_after:
                arrays.append(np.stack([b_ih, b_hh]))
            else:
                arrays.append(b_ih.copy() if b_hh is None else b_ih + b_hh)
        lists.extend(arrays)
    return lists


def get_keras_weights(layer):
    """Keras' ``get_weights()`` list of an rnnfast layer (Keras' order and layout; copies): the
    inverse of ``set_keras_weights`` for one layer (see the module docstring for the layouts).
    An unbuilt layer has none (``[]``), as in Keras."""
    if _wrapper(layer):
        return get_keras_weights(layer.layer)
    if getattr(layer, "keras_recurrent", False):
        return _keras_recurrent_lists(layer.rnn) if layer.built else []
    if isinstance(layer, RNNBase):
        return _keras_recurrent_lists(layer)
    if isinstance(layer, (nn.Linear, nn.Conv1d)):  # Dense, Conv1D: the kernel reversed-axes
        if layer.weight is None:
            return []
        return [layer.weight.data.T.copy()] + \
            ([] if layer.bias is None else [layer.bias.data.copy()])
    if isinstance(layer, _BaseAttention):
        return layer.get_weights()
    if isinstance(layer, (nn.Embedding, nn.LayerNorm)):
        return [p.data.copy() for p in (layer._parameters.get("weight"),
                                        layer._parameters.get("bias")) if p is not None]
    if layer.parameters():
        raise TypeError(f"layer: no Keras weight layout is known for {type(layer).__name__}")
    return []
