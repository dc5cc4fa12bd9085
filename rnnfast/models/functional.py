"""Keras' functional API: ``Input``, layers called on symbolic tensors, and ``Model(inputs,
outputs)`` with several inputs and outputs and shared layers::

    from rnnfast.models import Input, Model
    from rnnfast.models.layers import Embedding, LSTM, Dense, Attention
    from rnnfast.models.merging import Concatenate

    source = Input(shape=(None,), dtype="int32", name="source")
    target = Input(shape=(None,), dtype="int32", name="target")
    enc_out, h, c = LSTM(64, return_sequences=True, return_state=True)(
        Embedding(500, 32)(source))
    dec_out = LSTM(64, return_sequences=True)(Embedding(500, 32)(target), initial_state=[h, c])
    context = Attention()([dec_out, enc_out])
    probs = Dense(500, activation="softmax")(Concatenate()([dec_out, context]))
    model = Model([source, target], probs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit([x_source, x_target_in], y_target_out, epochs=10)

Calling a layer on symbolic tensors (``Input(...)`` or the outputs of other calls) records a
*node*: the layer, the tensors it was called on and how (one tensor, a list of tensors as the
merge and attention layers take, a recurrent layer's ``initial_state``, attention's
``return_attention_scores`` / ``use_causal_mask``). The layer is built then, as in Keras: one
zero sample of the inputs' shapes runs through it (twice, with two lengths, when an axis is
free) to find the output shapes. A layer called twice is *shared*: one set of weights, whose
gradients add up over its calls.

``Model(inputs, outputs)`` sorts the nodes between them topologically into a plain list of layer
calls; ``forward`` runs that list on NumPy arrays and ``backward`` runs it in reverse, adding the
gradients of tensors used several times. A shared layer keeps what backward needs per call
(each call's saved state is put back before its backward). A Conv1D whose output only a
MaxPooling1D takes is differentiated with it in one call, as in a Sequential (only the windows'
winners have gradients). It trains with the same engine as
``Sequential`` (``rnnfast.models.training``): ``compile`` / ``fit`` / ``evaluate`` /
``predict`` take inputs, targets, losses, metrics, loss weights and sample weights as lists (in
the model's order) or dicts by ``Input`` / output name; an output is named after the layer that
computed it.

Padding masks (``Embedding(mask_zero=True)``, ``Masking``) flow along the graph as in a
Sequential: to recurrent layers (which skip the padded steps), through per-step layers, into
``Attention`` as its query / value masks, through merges (the AND of the masks), and to an output
(where the loss and metrics skip the padded steps).

Saving (``save`` / ``load_model``) stores the graph as data: the inputs, each layer's registered
class and ``get_config()``, the nodes in order with their inputs as references to earlier
nodes, and the outputs; loading checks every part (no unknown layer, no reference to a node
that is not before the one using it, so no cycle, indices in range, every layer called) before
it replays the calls.
"""
import contextvars
import itertools
import re

import numpy as np

from rnnfast import nn
from rnnfast.models import merging, saving, training
from rnnfast.models.layers import (Activation, Bidirectional, Conv1D, Masking, MaxPooling1D,
                                   _Recurrent)
from rnnfast.models.layers import InputSpec
from rnnfast.nn.activation import _Elementwise
from rnnfast.nn.attention import AdditiveAttention, Attention, _BaseAttention
from rnnfast.nn.module import Module
from rnnfast.nn.serialization import MAX_CONFIG_INT, deserialize, register_layers, serialize

__all__ = ["Input", "KerasTensor", "Model", "run_layer"]

MASK_CONSUMERS = (_Recurrent, Bidirectional)
MASK_TRANSPARENT = (nn.Dropout, nn.Linear, _Elementwise, Activation, nn.LayerNorm,
                    nn.TimeDistributed)
FREE_LENGTHS = (61, 67)  # stand-ins for a None axis when tracing shapes
MAX_SAMPLE_ELEMENTS = 2 ** 22  # bound of one traced sample's size in a config
MAX_LAYERS = 4096
MAX_PORTS = 64  # bound of a model's inputs or outputs, and of one call's inputs
INPUT_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "float32", "float64")
CALL_OPTIONS = ("return_attention_scores", "use_causal_mask")
_NAME = re.compile(r"[A-Za-z0-9_\-]{1,128}")

MAX_MODEL_DEPTH = 4  # models nested in models, in a saved file
MAX_EXPANDED_CALLS = 4 * MAX_LAYERS  # layer calls of a file, a nested model's counted per call
NESTED_CLASSES = {}  # saved name -> model class that may be a layer of another model
_MODEL_DEPTH = contextvars.ContextVar("rnnfast_model_depth", default=0)

register_layers("layers", [Attention, AdditiveAttention])


def snake_case(name):
    """Keras' layer names: ``MaxPooling1D`` -> ``max_pooling1d``, ``SimpleRNN`` ->
    ``simple_rnn``."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# one layer call on arrays -------------------------------------------------------------------
def _takes_ids(layer):
    if isinstance(layer, nn.TimeDistributed):
        layer = layer.layer
    if isinstance(layer, training.BaseModel):  # a nested model: its first layer's input
        return layer._takes_ids()
    return isinstance(layer, nn.Embedding)


def run_layer(layer, arrays, masks, form="single", states=0, options=None):
    """Call ``layer`` on ``arrays`` (one, or a list for ``form="list"``; the last ``states``
    of them are a recurrent layer's ``initial_state``) with their padding ``masks``; returns
    ``(outputs, output masks)`` as lists. The one place that knows how each kind of layer is
    called and what it does to a mask."""
    options = options or {}
    if isinstance(layer, training.BaseModel):  # a nested model: its own layer calls
        return layer._nested_call(list(arrays), list(masks))
    if isinstance(layer, _BaseAttention):
        mask = None if all(m is None for m in masks) else list(masks[:2])
        out = layer.forward(list(arrays), mask=mask, **options)
        outs = list(out) if isinstance(out, tuple) else [out]
        return outs, [masks[0]] + [None] * (len(outs) - 1)
    if isinstance(layer, merging.Merge):
        y = layer.forward(list(arrays))
        return [y], [layer.compute_mask(list(masks), [a.shape for a in arrays])]
    x, mask = arrays[0], masks[0]
    if isinstance(layer, MASK_CONSUMERS):
        kwargs = {"initial_state": list(arrays[1:])} if states else {}
        out = layer.forward(x, mask=mask, **kwargs)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return outs, [layer.compute_output_mask(mask)] + [None] * (len(outs) - 1)
    if isinstance(layer, (nn.Embedding, Masking)):  # mask producers (Masking replaces one)
        y = layer.forward(x)
        return [y], [layer.mask if layer.mask is not None and layer.mask.ndim == 2 else None]
    if mask is not None and not isinstance(layer, MASK_TRANSPARENT):
        raise ValueError("cannot take the padding mask of Embedding(mask_zero=True) or "
                         "Masking; put a recurrent layer before it or drop the mask")
    return [layer.forward(x)], [mask]


def backward_layer(layer, grads):
    """The gradients of a call's inputs (a list, None where there is none) from those of its
    outputs (``grads``, the first one an array)."""
    if isinstance(layer, training.BaseModel):
        return layer._nested_backward(list(grads))
    if isinstance(layer, _BaseAttention):
        return layer.backward(grads[0], grads[1] if len(grads) > 1 else None)
    if isinstance(layer, merging.Merge):
        return layer.backward(grads[0])
    if isinstance(layer, MASK_CONSUMERS) and len(grads) > 1:  # return_state: [y, h(, c)]
        dx = layer.backward(grads[0], *grads[1:])
        return dx if isinstance(dx, list) else [dx]
    if isinstance(layer, _Recurrent):  # [dx, dh0(, dc0)] after an initial_state
        dx = layer.backward(grads[0])
        return dx if isinstance(dx, list) else [dx]
    return [layer.backward(grads[0])]


def _snapshot(layer):
    """What each module of ``layer`` kept for backward (a shared layer's call puts it back; a
    nested model's records of its own calls too)."""
    return [(m, m._cache, m.__dict__.get("_records")) for _, m in layer.named_modules()]


def _out_info(layer, y):
    """``(shape, dtype)`` of a call's output ``y`` for its backward; a Conv1D's never stored
    (None: run with its pool, ``Conv1D.forward_pooled``) from what the pool kept."""
    if y is not None:
        return y.shape, y.dtype
    return layer._saved()[1], layer.weight.dtype


def _restore(snapshot):
    for module, cache, records in snapshot:
        object.__setattr__(module, "_cache", cache)
        if records is not None:
            object.__setattr__(module, "_records", records)


# models as layers of other models (nested models) ------------------------------------------
def layer_spec(layer):
    """A layer's saved spec ``{"class_name", "config"}``; a nested model is saved by its own
    ``get_config()`` under ``"models.Model"`` / ``"models.Sequential"``."""
    if isinstance(layer, training.BaseModel):
        name = f"models.{type(layer).__name__}"
        if NESTED_CLASSES.get(name) is not type(layer):
            raise TypeError(f"layer: cannot save a nested {type(layer).__name__}")
        return {"class_name": name, "config": layer.get_config()}
    return serialize(layer)


def layer_from_spec(entry, where):
    """The layer of a saved spec (``entry`` holds ``class_name`` and ``config``): a registered
    layer through ``deserialize``, or a nested model through its class's ``from_config`` (at
    most ``MAX_MODEL_DEPTH`` models deep); ValueError naming the part."""
    spec = {"class_name": entry["class_name"], "config": entry["config"]}
    name = spec["class_name"]
    cls = NESTED_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        return deserialize(spec, where)
    depth = _MODEL_DEPTH.get()
    if depth >= MAX_MODEL_DEPTH:
        raise ValueError(f"{where}: models nested more than {MAX_MODEL_DEPTH} deep")
    token = _MODEL_DEPTH.set(depth + 1)
    try:
        return cls.from_config(spec["config"])
    except (TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{where} ({name}): {exc}") from None
    finally:
        _MODEL_DEPTH.reset(token)


def expanded_calls(layer):
    """Layer calls one call of ``layer`` makes (a nested model: all of its own, recursively)."""
    if isinstance(layer, training.BaseModel):
        return layer._expanded_calls()
    return 1


def spend_calls(total, layer, where):
    """``total`` plus ``layer``'s calls, or ValueError beyond ``MAX_EXPANDED_CALLS`` (a file
    calling a nested model many times cannot make loading run without bound)."""
    total += expanded_calls(layer)
    if total > MAX_EXPANDED_CALLS:
        raise ValueError(f"{where}: the model makes more than {MAX_EXPANDED_CALLS:,} layer calls "
                         "(nested models counted at each call)")
    return total


def type_label(layer):
    """A layer's class as Keras' summary shows it (a functional model: ``Functional``)."""
    return "Functional" if type(layer) is Model else type(layer).__name__


def unique_layer_name(layer, taken):
    """The name ``layer`` gets in a model whose names so far are ``taken``: its own (unless it
    is a model's default name, which is made unique as Keras does) or its class's, in snake
    case, with ``_1``, ``_2``... when taken; None for its own name when taken (the caller
    raises)."""
    name = getattr(layer, "name", None)
    default = getattr(layer, "_default_name", False)
    if isinstance(name, str) and name and not default:
        return None if name in taken else name
    base = name if default else snake_case(type(layer).__name__)
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


# symbolic tensors and nodes -----------------------------------------------------------------
class KerasTensor:
    """A symbolic tensor: the shape (batch axis first, None for free sizes) and dtype of
    what a layer call will give, the node that gives it (None for an ``Input``) and its
    position among that node's outputs."""

    _rnnfast_symbolic = True

    def __init__(self, shape, dtype, node=None, index=0, name=None, has_mask=False, spec=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index
        self.name = name
        self.has_mask = has_mask
        self.spec = spec  # the Input's InputSpec

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return (f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}" +
                (f", name={self.name}" if self.name else "") + ">")

    def __array__(self, *args, **kwargs):
        raise TypeError("a symbolic tensor (of Input or of a layer called on one) has no values; "
                        "build a Model(inputs, outputs) and call it on arrays")


def Input(shape=None, dtype=None, name=None, batch_size=None, batch_shape=None,
          **unsupported):
    """Keras' ``Input(shape, dtype=None, name=None)``: a symbolic tensor of samples of
    ``shape`` (no batch axis; None for a free length), for ``Model(inputs, outputs)`` or as
    the first item of a Sequential. ``dtype`` None feeds float32, as in Keras (integer data
    into an ``Embedding`` stays integer); ``batch_size`` is accepted and not fixed (any batch
    size runs), and so is the batch axis of Keras' ``batch_shape`` (``(batch, *shape)``, given
    instead of ``shape``; a stateful layer takes its batch size from its first batch)."""
    if unsupported:
        raise TypeError(f"Input: argument(s) {', '.join(sorted(unsupported))} not supported")
    if batch_shape is not None:
        if shape is not None:
            raise ValueError("shape, batch_shape: give one of them, not both")
        if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 1:
            raise ValueError(f"batch_shape: expected (batch, *sample shape), got {batch_shape!r}")
        if batch_shape[0] is not None:
            training._int_arg(batch_shape[0], "batch_shape[0]", 1)
        shape = tuple(batch_shape[1:])
    if shape is None:
        raise ValueError("shape: Input needs the shape of one sample, e.g. Input(shape=(None,))")
    if batch_size is not None:
        training._int_arg(batch_size, "batch_size", 1)
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ValueError(f"name: expected 1 to 128 letters, digits, '_' or '-', got {name!r}")
    spec = InputSpec(shape, dtype, name)
    return KerasTensor((None,) + spec.shape, spec.dtype or np.float32, name=name, spec=spec)


class Node:
    """One call of ``layer`` on ``inputs`` (a flat list of KerasTensors): ``form`` "single"
    (one tensor) or "list", the last ``states`` inputs a recurrent layer's initial state,
    ``options`` the call's keyword arguments; ``outputs`` its KerasTensors."""

    _created = itertools.count()

    def __init__(self, layer, inputs, form, states, options, mask_slots=()):
        self.order = next(Node._created)  # creation order: a topological order of the calls
        self.layer = layer
        self.inputs = list(inputs)
        self.form = form
        self.states = states
        self.options = dict(options)
        self.mask_slots = list(mask_slots)  # inputs given an explicit mask= (the last inputs)
        self.outputs = []
        self.returns_list = False

    def call(self, arrays, masks):
        """Run the layer on the arrays and masks of its input tensors (an explicit ``mask=``
        replaces the mask flowing with that input); returns ``(outputs, output masks)``."""
        n = len(self.mask_slots)
        if n:
            given = arrays[len(arrays) - n:]
            arrays, masks = list(arrays[:len(arrays) - n]), list(masks[:len(masks) - n])
            for slot, m in zip(self.mask_slots, given):
                m = np.asarray(m)
                x = arrays[slot]
                if x.ndim < 3:
                    raise ValueError(f"mask: the input of shape {x.shape} has no time axis (a "
                                     "mask is per step of a (batch, steps, features) input)")
                if m.ndim != 2 or m.shape != x.shape[:2]:
                    raise ValueError(f"mask: expected shape {x.shape[:2]} (batch, steps) for "
                                     f"an input of shape {x.shape}, got {m.shape}")
                masks[slot] = m if m.dtype == bool else m != 0
        return run_layer(self.layer, arrays, masks, self.form, self.states, self.options)


def _mask_argument(label, mask, form, count):
    """``(slots, tensors)`` of a symbolic call's ``mask=``: one tensor (a single input) or a
    list with a tensor or None per input (a list of inputs)."""
    if mask is None:
        return [], []
    if form == "single":
        if not isinstance(mask, KerasTensor):
            raise TypeError(f"{label}: mask: expected a symbolic tensor (batch, steps), got "
                            f"{type(mask).__name__}")
        items = [mask]
    else:
        if not isinstance(mask, (list, tuple)) or len(mask) > count or \
                not all(m is None or isinstance(m, KerasTensor) for m in mask):
            raise TypeError(f"{label}: mask: expected a list of at most {count} symbolic "
                            "tensors or None (one per input)")
        items = list(mask)
    slots = [i for i, m in enumerate(items) if m is not None]
    for i in slots:
        if items[i].ndim != 2:
            raise ValueError(f"{label}: mask: expected a tensor of shape (batch, steps), got "
                             f"{items[i].shape}")
    return slots, [items[i] for i in slots]


def _contains(model, inputs):
    """Whether the symbolic ``inputs`` are computed inside ``model`` (calling a model on its own
    tensors would make a cycle)."""
    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    own = set()
    for node in getattr(model, "_nodes", ()):
        own.update(id(t) for t in node.outputs)
    own.update(id(t) for t in getattr(model, "inputs", ()) or () if isinstance(t, KerasTensor))
    return any(id(t) in own for t in flat)


def _layer_label(layer):
    name = getattr(layer, "name", None)
    return f"'{name}' ({type(layer).__name__})" if isinstance(name, str) else \
        type(layer).__name__


def _trace(node, fill):
    """Run ``node``'s layer once on zero inputs (free sizes set to ``fill``), in eval mode,
    keeping every module's mode and saved state; returns ``(outputs, masks)``."""
    layer = node.layer
    arrays, masks = [], []
    first_mask = len(node.inputs) - len(node.mask_slots)
    for k, t in enumerate(node.inputs):
        shape = (2,) + tuple(fill if d is None else d for d in t.shape[1:])
        size = int(np.prod(shape, dtype=object))
        if size > 2 * MAX_SAMPLE_ELEMENTS:
            raise ValueError(f"inputs: a sample of shape {t.shape} is too large to trace "
                             f"({size // 2:,} elements, at most {MAX_SAMPLE_ELEMENTS:,})")
        dtype = np.int32 if (_takes_ids(layer) and t.dtype.kind not in "iu") else t.dtype
        arrays.append(np.ones(shape, bool) if k >= first_mask else np.zeros(shape, dtype))
        masks.append(np.ones(shape[:2], bool) if t.has_mask else None)
    modes = [(m, m.training) for _, m in layer.named_modules()]
    kept = _snapshot(layer)
    states = [(m, m.states) for _, m in layer.named_modules() if "states" in m.__dict__]
    layer.eval()
    try:
        outs, out_masks = node.call(arrays, masks)
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
        _restore(kept)
        for module, value in states:  # a stateful layer keeps its states
            object.__setattr__(module, "states", value)
    return outs, out_masks


def call_symbolic(layer, inputs, *args, **kwargs):
    """``layer(inputs, ...)`` on symbolic tensors: records a node, builds the layer and returns
    the output KerasTensor(s) (Module.__call__ comes here)."""
    label = _layer_label(layer)
    if args:
        raise TypeError(f"{label}: on symbolic tensors a layer takes one tensor or one list of "
                        f"tensors, got {1 + len(args)} positional arguments")
    if isinstance(layer, training.BaseModel) and _contains(layer, inputs):
        raise ValueError(f"{label}: a model cannot be called on its own tensors")
    options = {}
    for key in CALL_OPTIONS:
        if key in kwargs:
            if not isinstance(layer, _BaseAttention):
                raise TypeError(f"{label}: {key} is an argument of Attention / "
                                "AdditiveAttention only")
            options[key] = bool(kwargs.pop(key))
    initial_state = kwargs.pop("initial_state", None)
    mask = kwargs.pop("mask", None)
    if kwargs.get("training", None) is None:
        kwargs.pop("training", None)
    if kwargs:
        raise TypeError(f"{label}: argument(s) {', '.join(sorted(kwargs))} not supported on "
                        "symbolic tensors")
    form = "list" if isinstance(inputs, (list, tuple)) else "single"
    flat = list(inputs) if form == "list" else [inputs]
    if not flat or len(flat) > MAX_PORTS or not all(isinstance(t, KerasTensor) for t in flat):
        raise TypeError(f"{label}: expected symbolic tensors (of Input or other layers' calls), "
                        "or a list of them, for every input")
    if isinstance(layer, training.BaseModel):
        wanted = len(layer._nested_inputs())
        if len(flat) != wanted or (wanted > 1 and form != "list"):
            raise TypeError(f"{label}: the model has {wanted} input(s), got {len(flat)} tensor(s)")
    else:
        takes_list = isinstance(layer, (merging.Merge, _BaseAttention))
        if takes_list != (form == "list"):
            raise TypeError(f"{label}: " + ("takes a list of tensors" if takes_list else
                                            "takes one tensor, not a list"))
    mask_slots, mask_tensors = _mask_argument(label, mask, form, len(flat))
    if isinstance(layer, training.BaseModel) and not getattr(layer, "built", True):
        try:
            layer.build(flat[0].shape, flat[0].dtype)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{label} called on inputs of shape {flat[0].shape}: {exc}") from exc
    states = 0
    if initial_state is not None:
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"{label}: initial_state is an argument of SimpleRNN, LSTM and GRU")
        if isinstance(initial_state, KerasTensor):
            initial_state = [initial_state]
        if not isinstance(initial_state, (list, tuple)) or \
                not all(isinstance(t, KerasTensor) for t in initial_state):
            raise TypeError(f"{label}: initial_state: expected a list of symbolic tensors")
        states = len(initial_state)
        flat += list(initial_state)
    flat += mask_tensors
    node = Node(layer, flat, form, states, options, mask_slots)
    free = any(d is None for t in flat for d in t.shape[1:])
    try:
        traces = [_trace(node, fill) for fill in (FREE_LENGTHS if free else FREE_LENGTHS[:1])]
    except (ValueError, TypeError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"{label} called on inputs of shape "
                   f"{[t.shape for t in flat] if len(flat) > 1 else flat[0].shape}: "
                   f"{exc}") from exc
    outs, masks = traces[0]
    shapes = [(None,) + tuple(o.shape[1:]) for o in outs]
    for other, _ in traces[1:]:
        shapes = [tuple(a if a == b else None for a, b in zip(s, (None,) + o.shape[1:]))
                  for s, o in zip(shapes, other)]
    node.outputs = [KerasTensor(s, o.dtype, node, i, has_mask=m is not None)
                    for i, (s, o, m) in enumerate(zip(shapes, outs, masks))]
    node.returns_list = len(outs) > 1
    if not node.returns_list:
        return node.outputs[0]
    if isinstance(layer, _BaseAttention):
        return tuple(node.outputs)
    return list(node.outputs)


Module.symbolic_call = call_symbolic


def _flatten_io(value, what):
    """``(tensors, names or None)`` of Model's inputs / outputs: a tensor, list or dict."""
    names = None
    if isinstance(value, dict):
        names = [str(k) for k in value]
        value = list(value.values())
    elif isinstance(value, KerasTensor):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_PORTS:
        raise TypeError(f"{what}: expected a symbolic tensor, or a list or dict of 1 to "
                        f"{MAX_PORTS} of them")
    for i, t in enumerate(value):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"{what}[{i}]: expected a symbolic tensor (of Input or of a layer "
                            f"call), got {type(t).__name__}")
    return list(value), names


def _unique(names, base):
    seen, out = set(), []
    for name in names:
        name = name or base
        candidate, k = name, 0
        while candidate in seen:
            k += 1
            candidate = f"{name}_{k}"
        seen.add(candidate)
        out.append(candidate)
    return out


# the model ----------------------------------------------------------------------------------
class Model(training.BaseModel):
    """Keras' functional ``Model(inputs, outputs, name=None)``: the layer calls between the
    ``Input`` tensors ``inputs`` and the tensors ``outputs`` (each a tensor, a list, or a dict
    by name), trained and saved as a Sequential is."""

    multi_output_config = True  # saved compile settings: per output (rnnfast.models.saving)

    def __init__(self, inputs, outputs, name=None, *, seed=None):
        super().__init__()
        self.name = "functional" if name is None else str(name)
        self._default_name = name is None
        self._init_training(seed)
        self.inputs, _ = _flatten_io(inputs, "inputs")
        self.outputs, output_keys = _flatten_io(outputs, "outputs")
        for i, t in enumerate(self.inputs):
            if t.node is not None:
                raise ValueError(f"inputs[{i}]: expected an Input tensor, got the output of "
                                 f"{_layer_label(t.node.layer)}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("inputs: the same Input is given twice")
        self._nodes = self._sort_nodes()
        self.input_names = _unique([t.name for t in self.inputs], "input_layer")
        self.layers, self.layer_names = [], []
        for node in self._nodes:
            if any(node.layer is layer for layer in self.layers):
                continue
            self.layers.append(node.layer)
        taken = set(self.input_names)
        for layer in self.layers:
            name = unique_layer_name(layer, taken)
            if name is None:
                raise ValueError(f"layers: the name {layer.name!r} is used by two layers (or a "
                                 "layer and an Input) of this model")
            taken.add(name)
            self.layer_names.append(name)
            self._modules[name] = layer
        if output_keys is not None:
            if len(set(output_keys)) != len(output_keys):
                raise ValueError(f"outputs: duplicate names {output_keys}")
            self.output_names = output_keys
        else:
            self.output_names = _unique(
                [self.input_names[self._input_index(t)] if t.node is None else
                 self.layer_names[self._layer_index(t.node.layer)] for t in self.outputs],
                "output")
        self.built = True
        self._records = None
        self._engine_masks = [None] * len(self.outputs)
        self.output_masks = None
        self._conv_before_pool = self._conv_pool_pairs()

    def _conv_pool_pairs(self):
        """{index of a MaxPooling1D call: index of the Conv1D call whose output only that pool
        takes (not a model output, no other call)}: pairs whose backward may run in one call
        (``Conv1D.backward_through_pool``)."""
        consumers = {}
        for node in self._nodes:
            for t in node.inputs:
                consumers[id(t)] = consumers.get(id(t), 0) + 1
        outputs = {id(t) for t in self.outputs}
        index = {id(node): i for i, node in enumerate(self._nodes)}
        pairs = {}
        for i, node in enumerate(self._nodes):
            if not isinstance(node.layer, MaxPooling1D) or len(node.inputs) != 1:
                continue
            t = node.inputs[0]
            conv = t.node
            if (conv is not None and isinstance(conv.layer, Conv1D) and len(conv.outputs) == 1
                    and consumers[id(t)] == 1 and id(t) not in outputs):
                pairs[i] = index[id(conv)]
        return pairs

    def _input_index(self, tensor):
        return next(i for i, t in enumerate(self.inputs) if t is tensor)

    def _layer_index(self, layer):
        return next(i for i, other in enumerate(self.layers) if other is layer)

    def _sort_nodes(self):
        """The nodes the outputs depend on, in the order they were created (each after the
        nodes it takes inputs from)."""
        inputs = {id(t) for t in self.inputs}
        order, done, active = [], set(), set()
        for out in self.outputs:
            stack = [(out, False)]
            while stack:
                tensor, expanded = stack.pop()
                node = tensor.node
                if node is None:
                    if id(tensor) not in inputs:
                        raise ValueError(f"outputs: they depend on the Input {tensor!r}, which is "
                                         "not among the model's inputs")
                    continue
                if id(node) in done:
                    continue
                if expanded:
                    active.discard(id(node))
                    done.add(id(node))
                    order.append(node)
                    continue
                if id(node) in active:
                    raise ValueError("outputs: the layer calls form a cycle")
                active.add(id(node))
                stack.append((tensor, True))
                stack.extend((t, False) for t in reversed(node.inputs))
        return sorted(order, key=lambda node: node.order)

    # running ------------------------------------------------------------------------------
    def _run(self, xs, in_masks=None):
        values, masks = {}, {}
        for i, (t, x) in enumerate(zip(self.inputs, xs)):
            values[id(t)], masks[id(t)] = x, None if in_masks is None else in_masks[i]
        records = [] if self.training else None
        pool_of = ({j: i for i, j in self._conv_before_pool.items()}
                   if self._fuse_conv_pool and self._fuse_conv_pool_forward else {})
        pooled = {}  # index of a pool's call: (its output, what it kept) from its Conv1D's call
        for k, node in enumerate(self._nodes):
            arrays = [values[id(t)] for t in node.inputs]
            in_masks = [masks[id(t)] for t in node.inputs]
            try:
                if k in pooled:
                    y, kept = pooled.pop(k)
                    _restore(kept)
                    outs, out_masks = [y], [None]
                elif k in pool_of and self._run_pooled(node, self._nodes[pool_of[k]], arrays,
                                                       in_masks, pooled, pool_of[k]):
                    outs, out_masks = [None], [None]  # the Conv1D's output is never stored
                else:
                    outs, out_masks = node.call(arrays, in_masks)
            except (ValueError, TypeError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError
                name = self.layer_names[self._layer_index(node.layer)]
                raise kind(f"layer '{name}' ({type(node.layer).__name__}), inputs of shape "
                           f"{[getattr(a, 'shape', None) for a in arrays]}: {exc}") from exc
            for t, y, m in zip(node.outputs, outs, out_masks):
                values[id(t)], masks[id(t)] = y, m
            if records is not None:
                records.append((_snapshot(node.layer), [_out_info(node.layer, y) for y in outs]))
        self._records = records
        outputs = [values[id(t)] for t in self.outputs]
        self._engine_masks = []
        for y, t in zip(outputs, self.outputs):
            m = masks[id(t)]
            ok = m is not None and m.shape == y.shape[:m.ndim] and y.ndim > m.ndim
            self._engine_masks.append(m if ok else None)
        self.output_masks = list(self._engine_masks)
        return outputs

    @staticmethod
    def _run_pooled(node, pool_node, arrays, in_masks, pooled, index):
        """Runs a Conv1D call and the MaxPooling1D call that alone takes its output as one
        (``Conv1D.forward_pooled``) when it can: the pool's output and what the pool kept go to
        ``pooled[index]`` for its own turn. False (nothing run) otherwise, and for an input
        either refuses: the two calls then report it under their own names."""
        conv, pool = node.layer, pool_node.layer
        if (node.mask_slots or len(arrays) != 1 or in_masks[0] is not None
                or not conv.fuses_pool(pool)):
            return False
        try:
            y = conv.forward_pooled(arrays[0], pool)
        except (ValueError, TypeError):
            return False
        pooled[index] = (y, _snapshot(pool))
        return True

    def _run_backward(self, grads):
        if self._records is None or len(self._records) != len(self._nodes):
            raise RuntimeError("Model.backward: no forward pass to differentiate; call "
                               "forward() in training mode (model.train()) first")
        acc = {}

        def add(tensor, grad):
            if grad is None:
                return
            key = id(tensor)
            acc[key] = grad if key not in acc else acc[key] + grad

        for t, g in zip(self.outputs, grads):
            add(t, g)
        for i in reversed(range(len(self._nodes))):
            node, (snapshot, out_info) = self._nodes[i], self._records[i]
            out_grads = [acc.pop(id(t), None) for t in node.outputs]
            if all(g is None for g in out_grads):
                continue
            if out_grads[0] is None:
                out_grads[0] = np.zeros(*out_info[0])
            _restore(snapshot)
            in_grads = None
            j = self._conv_before_pool.get(i) if self._fuse_conv_pool else None
            if j is not None:
                conv = self._nodes[j]
                _restore(self._records[j][0])
                if conv.layer.pools_into(node.layer):
                    # the Conv1D and this pool in one call; the Conv1D's output gets no gradient
                    # (this pool is its only taker), so its own turn is skipped
                    node = conv
                    in_grads = [conv.layer.backward_through_pool(self._nodes[i].layer,
                                                                  out_grads[0])]
            if in_grads is None:
                in_grads = backward_layer(node.layer, out_grads)
            for t, g in zip(node.inputs, in_grads):
                add(t, g)
        return [acc.get(id(t)) for t in self.inputs]

    # as a layer of another model (a nested model) ----------------------------------------
    def _nested_inputs(self):
        return self.inputs

    def _takes_ids(self):
        return self._feeds_ids(self.inputs[0])

    def _nested_call(self, arrays, masks):
        """The outputs and their masks for input arrays (and masks) given by an outer model."""
        outs = self._run(arrays, masks)
        return outs, list(self._engine_masks)

    def _nested_backward(self, grads):
        return self._run_backward(grads)

    def _expanded_calls(self):
        return sum(expanded_calls(node.layer) for node in self._nodes)

    def forward(self, inputs):
        """The outputs for ``inputs`` (an array for one input, else a list or a dict by
        ``Input`` name), in the current mode: an array for one output, else a list."""
        outs = self._run(self._engine_inputs(inputs, "inputs"))
        return outs[0] if len(outs) == 1 else outs

    def backward(self, grads):
        """Gradients of the last training-mode forward from those of the outputs (an array, or
        a list with None for an output without one): adds the parameters' gradients to
        ``.grad`` and returns the inputs' (an array or a list; None for an input into an
        Embedding)."""
        if len(self.outputs) == 1 and not isinstance(grads, (list, tuple)):
            grads = [grads]
        if not isinstance(grads, (list, tuple)) or len(grads) != len(self.outputs):
            raise ValueError(f"grads: expected {len(self.outputs)} gradients (one per output), "
                             f"got {type(grads).__name__}")
        out = self._run_backward(list(grads))
        return out[0] if len(out) == 1 else out

    # the training engine's protocol (rnnfast.models.training) ------------------------------
    def _output_names(self):
        return list(self.output_names)

    def _by_input(self, x, name):
        if isinstance(x, dict):
            unknown = [k for k in x if k not in self.input_names]
            missing = [k for k in self.input_names if k not in x]
            if unknown or missing:
                raise ValueError(f"{name}: the model's inputs are {self.input_names}; "
                                 + (f"unknown {unknown}" if unknown else f"missing {missing}"))
            return [x[k] for k in self.input_names]
        if len(self.inputs) == 1 and not (isinstance(x, (list, tuple)) and len(x) == 1 and
                                          isinstance(x[0], np.ndarray)):
            return [x]
        if not isinstance(x, (list, tuple)) or len(x) != len(self.inputs):
            raise ValueError(f"{name}: the model has {len(self.inputs)} inputs "
                             f"{self.input_names}: give a list (in that order) or a dict by "
                             "name")
        return list(x)

    def _engine_inputs(self, x, name):
        parts = self._by_input(x, name)
        arrays = []
        for i, (t, value) in enumerate(zip(self.inputs, parts)):
            where = f"{name}[{self.input_names[i]!r}]" if len(self.inputs) > 1 else name
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            if arr.dtype == object or arr.dtype.kind not in "fiub":
                raise TypeError(f"{where}: expected a rectangular numeric array, got dtype "
                                f"{arr.dtype}")
            if arr.ndim != len(t.shape) or any(d is not None and d != g
                                               for d, g in zip(t.shape[1:], arr.shape[1:])):
                raise ValueError(f"{where}: expected shape {t.shape}, got {arr.shape}")
            spec_dtype = t.spec.dtype if t.spec is not None else None
            if spec_dtype is not None:
                arr = arr.astype(spec_dtype, copy=False)
            elif arr.dtype.kind == "f" or not self._feeds_ids(t):
                arr = arr.astype(np.float32, copy=False)  # Keras' Input: float32 by default
            arrays.append(arr)
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"{name}: the inputs have different numbers of samples "
                             f"{[len(a) for a in arrays]}")
        return arrays

    def _feeds_ids(self, tensor):
        return any(_takes_ids(node.layer) and node.inputs[0] is tensor for node in self._nodes)

    def _engine_targets(self, y, n, name):
        names = self.output_names
        heads = self._heads
        if len(names) == 1:
            if isinstance(y, dict):
                y = training.by_output(y, names, "targets", name)[0]
            elif isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
                y = y[0]
            return [training.targets(y, n, name)]
        per = training.by_output(y, names, "target arrays", name)
        if per is None:
            needed = [i for i, h in enumerate(heads) if h.needs_targets]
            if len(needed) != 1:
                raise ValueError(f"{name}: the model has {len(names)} outputs {names}: give a "
                                 "list (in that order) or a dict by name")
            per = [y if i == needed[0] else None for i in range(len(names))]
        out = []
        for i, (head, value) in enumerate(zip(heads, per)):
            if head.needs_targets:
                out.append(training.targets(value, n, f"{name}[{names[i]!r}]"))
            else:
                out.append(None)
        return out

    def _engine_build(self, xs):
        if self._optimizer_spec is not None:
            self._ensure_optimizer()

    def _engine_check(self, xs):
        self._engine_build(xs)

    def _engine_output_shapes(self):
        return [t.shape for t in self.outputs]

    def _engine_forward(self, xs):
        return self._run(xs)

    def _engine_backward(self, grads):
        self._run_backward(grads)

    # description --------------------------------------------------------------------------
    @property
    def output_shape(self):
        shapes = self._engine_output_shapes()
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def get_layer(self, name=None, index=None):
        """A layer by name or by index (in call order)."""
        if index is not None:
            return self.layers[index]
        if name not in self.layer_names:
            raise ValueError(f"name: no layer {name!r}; layers: {self.layer_names}")
        return self._modules[name]

    def _tensor_label(self, t):
        if t.node is None:
            return self.input_names[self._input_index(t)]
        calls = [node for node in self._nodes if node.layer is t.node.layer]
        k = next(i for i, node in enumerate(calls) if node is t.node)
        return f"{self.layer_names[self._layer_index(t.node.layer)]}[{k}][{t.index}]"

    def summary(self, line_length=98, print_fn=None):
        """Print Keras' table of the model: each Input and layer call, its output shape(s),
        parameter count (a shared layer's on its first call) and the tensors it takes."""
        rows = [[f"{name} (InputLayer)", t.shape, 0, "-"]
                for name, t in zip(self.input_names, self.inputs)]
        counted = set()
        for k, node in enumerate(self._nodes):
            index = self._layer_index(node.layer)
            count = 0 if index in counted else sum(p.size for p in node.layer.parameters())
            counted.add(index)
            shapes = [t.shape for t in node.outputs]
            rows.append([f"{self.layer_names[index]} ({type_label(node.layer)})",
                         shapes[0] if len(shapes) == 1 else shapes, count,
                         ", ".join(self._tensor_label(t) for t in node.inputs)])
        self.print_table(rows, line_length, print_fn,
                         (["Layer (type)", "Output Shape", "Param #", "Connected to"],
                          [0.3, 0.55, 0.67]))

    def extra_repr(self):
        return f"name={self.name!r}"

    # saving -------------------------------------------------------------------------------
    def _ref(self, tensor, node_index):
        if tensor.node is None:
            return ["input", self._input_index(tensor), 0]
        return ["node", node_index[id(tensor.node)], tensor.index]

    def get_config(self):
        """The graph as JSON data: the inputs (name, sample shape, dtype), the layers (name,
        registered class, ``get_config()``), the calls in order (``nodes``: the layer's index,
        its inputs as ``["input", i, 0]`` or ``["node", k, output]`` references to earlier
        calls, the call's form, number of initial states and options) and the outputs
        (references, names)."""
        node_index = {id(node): k for k, node in enumerate(self._nodes)}
        inputs = []
        for name, t in zip(self.input_names, self.inputs):
            spec = t.spec
            inputs.append({"name": name, "shape": list(t.shape[1:]),
                           "dtype": None if spec is None or spec.dtype is None
                           else spec.dtype.name})
        nodes = []
        for node in self._nodes:
            entry = {"layer": self._layer_index(node.layer),
                     "inputs": [self._ref(t, node_index) for t in node.inputs],
                     "form": node.form, "states": node.states, "options": dict(node.options)}
            if node.mask_slots:  # explicit mask= tensors: the last inputs
                entry["masks"] = list(node.mask_slots)
            nodes.append(entry)
        return {"name": self.name, "inputs": inputs,
                "layers": [dict(layer_spec(layer), name=name)
                           for name, layer in zip(self.layer_names, self.layers)],
                "nodes": nodes,
                "outputs": [self._ref(t, node_index) for t in self.outputs],
                "output_names": list(self.output_names)}

    @classmethod
    def from_config(cls, config):
        """The model ``get_config()`` describes, with fresh weights; every value is checked
        before anything is built (ValueError naming it)."""
        keys = {"name", "inputs", "layers", "nodes", "outputs", "output_names"}
        if not isinstance(config, dict) or set(config) != keys:
            raise ValueError(f"config: expected the keys {sorted(keys)}")
        if not isinstance(config["name"], str) or len(config["name"]) > 256:
            raise ValueError("config.name: expected a string of at most 256 characters")
        inputs = _bounded_list(config["inputs"], "config.inputs", MAX_PORTS, 1)
        tensors, names = [], set()
        for i, spec in enumerate(inputs):
            where = f"config.inputs[{i}]"
            if not isinstance(spec, dict) or set(spec) != {"name", "shape", "dtype"}:
                raise ValueError(f"{where}: expected {{'name', 'shape', 'dtype'}}")
            name = _check_name(spec["name"], f"{where}.name", names)
            shape = sample_shape(spec["shape"], f"{where}.shape", free=True)
            tensors.append(Input(shape, input_dtype(spec["dtype"], f"{where}.dtype", True),
                                 name))
        layers = _bounded_list(config["layers"], "config.layers", MAX_LAYERS, 1)
        built = []
        for i, entry in enumerate(layers):
            where = f"config.layers[{i}]"
            if not isinstance(entry, dict) or set(entry) != {"name", "class_name", "config"}:
                raise ValueError(f"{where}: expected {{'name', 'class_name', 'config'}}")
            name = _check_name(entry["name"], f"{where}.name", names)
            layer = layer_from_spec(entry, where)
            layer.name = name
            layer._default_name = False
            built.append(layer)
        nodes = _bounded_list(config["nodes"], "config.nodes", MAX_LAYERS, 1)
        results = []  # the output tensors of each node
        called = set()
        calls = 0
        keys = {"layer", "inputs", "form", "states", "options"}
        for k, entry in enumerate(nodes):
            where = f"config.nodes[{k}]"
            if not isinstance(entry, dict) or set(entry) not in (keys, keys | {"masks"}):
                raise ValueError(f"{where}: expected {{'layer', 'inputs', 'form', 'states', "
                                 "'options'(, 'masks')}")
            index = entry["layer"]
            if not _is_index(index, len(built)):
                raise ValueError(f"{where}.layer: expected a layer index below {len(built)}, got "
                                 f"{str(index)[:40]}")
            args = [_resolve(ref, tensors, results, f"{where}.inputs[{j}]")
                    for j, ref in enumerate(_bounded_list(entry["inputs"], f"{where}.inputs",
                                                          MAX_PORTS, 1))]
            form, states, options = entry["form"], entry["states"], entry["options"]
            if form not in ("single", "list"):
                raise ValueError(f"{where}.form: expected 'single' or 'list', got "
                                 f"{str(form)[:40]!r}")
            slots = entry.get("masks", [])
            if "masks" in entry and (not isinstance(slots, list) or
                                     not 1 <= len(slots) < len(args)):
                raise ValueError(f"{where}.masks: expected a list of 1 to {len(args) - 1} input "
                                 "positions")
            main_count = len(args) - len(slots)
            if any(not _is_index(i, main_count) for i in slots) or slots != sorted(set(slots)) \
                    or (form == "single" and slots and slots != [0]):
                raise ValueError(f"{where}.masks: expected increasing positions of inputs "
                                 f"below {main_count}, got {str(slots)[:40]}")
            masks_given = args[main_count:]
            args = args[:main_count]
            if not _is_index(states, 3) or states >= len(args) or \
                    (form == "single" and len(args) != 1 + states):
                raise ValueError(f"{where}.states: expected the number (0 to 2) of the inputs "
                                 f"that are an initial state, got {str(states)[:40]}")
            if form == "list" and states:
                raise ValueError(f"{where}.states: a call on a list takes no initial state")
            if not isinstance(options, dict) or not set(options) <= set(CALL_OPTIONS) or \
                    not all(isinstance(v, bool) for v in options.values()):
                raise ValueError(f"{where}.options: expected booleans among "
                                 f"{list(CALL_OPTIONS)}")
            main = args[:len(args) - states]
            call_args = main if form == "list" else main[0]
            kwargs = dict(options)
            if states:
                kwargs["initial_state"] = args[len(args) - states:]
            if slots:
                if form == "single":
                    kwargs["mask"] = masks_given[0]
                else:
                    full = [None] * (max(slots) + 1)
                    for i, m in zip(slots, masks_given):
                        full[i] = m
                    kwargs["mask"] = full
            calls = spend_calls(calls, built[index], where)
            out = built[index](call_args, **kwargs)
            results.append(list(out) if isinstance(out, (list, tuple)) else [out])
            called.add(index)
        unused = [i for i in range(len(built)) if i not in called]
        if unused:
            raise ValueError(f"config.layers[{unused[0]}]: the layer is not called by any node")
        outputs = [_resolve(ref, tensors, results, f"config.outputs[{j}]")
                   for j, ref in enumerate(_bounded_list(config["outputs"], "config.outputs",
                                                         MAX_PORTS, 1))]
        output_names = _bounded_list(config["output_names"], "config.output_names", MAX_PORTS,
                                     len(outputs))
        seen = set()
        for j, name in enumerate(output_names):
            _check_name(name, f"config.output_names[{j}]", seen)
        if len(output_names) != len(outputs):
            raise ValueError(f"config.output_names: expected {len(outputs)} names (one per "
                             "output)")
        model = cls(tensors, dict(zip(output_names, outputs)), name=config["name"])
        if len(model._nodes) != len(nodes):
            raise ValueError(f"config.nodes: {len(nodes) - len(model._nodes)} of the calls lead "
                             "to no output")
        return model


def _bounded_list(value, where, maximum, minimum=0):
    if not isinstance(value, list) or not minimum <= len(value) <= maximum:
        raise ValueError(f"{where}: expected a list of {minimum} to {maximum} items")
    return value


def _is_index(value, bound):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < bound


def _check_name(name, where, taken):
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{where}: expected 1 to 128 letters, digits, '_' or '-', got "
                         f"{str(name)[:80]!r}")
    if name in taken:
        raise ValueError(f"{where}: the name {name!r} is used twice")
    taken.add(name)
    return name


def _resolve(ref, inputs, results, where):
    """The tensor a saved reference names: ``["input", i, 0]`` or ``["node", k, output]`` of a
    node before the current one (so the calls cannot form a cycle)."""
    if not isinstance(ref, list) or len(ref) != 3 or ref[0] not in ("input", "node"):
        raise ValueError(f"{where}: expected ['input', index, 0] or ['node', index, output], "
                         f"got {str(ref)[:80]}")
    kind, index, output = ref
    if kind == "input":
        if not _is_index(index, len(inputs)) or output != 0 or isinstance(output, bool):
            raise ValueError(f"{where}: no input {str(index)[:40]} (the model has "
                             f"{len(inputs)})")
        return inputs[index]
    if not _is_index(index, len(results)):
        raise ValueError(f"{where}: node {str(index)[:40]} is not a call before this one (a "
                         "reference forward, to itself, or out of range: a cycle or a dangling "
                         "input)")
    if not _is_index(output, len(results[index])):
        raise ValueError(f"{where}: node {index} has {len(results[index])} output(s), not "
                         f"{str(output)[:40]}")
    return results[index][output]


def sample_shape(shape, where, free=False):
    """A config's sample shape (no batch axis): ints >= 1 or None, of bounded size (None
    counted as 1, or with ``free`` as the longest stand-in length a trace uses)."""
    if not isinstance(shape, list) or len(shape) > 8 or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or
                               not 1 <= d <= MAX_CONFIG_INT) for d in shape):
        raise ValueError(f"{where}: expected at most 8 sizes (ints >= 1 or null), got "
                         f"{str(shape)[:80]}")
    stand_in = max(FREE_LENGTHS) if free else 1
    size = int(np.prod([d or stand_in for d in shape], dtype=object))
    if size > MAX_SAMPLE_ELEMENTS:
        raise ValueError(f"{where}: a sample of {size:,} elements (at most "
                         f"{MAX_SAMPLE_ELEMENTS:,})")
    return tuple(shape)


def input_dtype(name, where, allow_none=False):
    if (name is None and allow_none) or name in INPUT_DTYPES:
        return name
    raise ValueError(f"{where}: expected one of {list(INPUT_DTYPES)}, got {str(name)[:40]!r}")


saving.register_model(Model)
NESTED_CLASSES["models.Model"] = Model
