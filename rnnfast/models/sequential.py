"""``Sequential``: Keras' workflow (``compile``, ``fit``, ``evaluate``, ``predict``,
``summary``, ``save``) over a stack of ``rnnfast`` layers::

    model = Sequential([Embedding(1000, 100), LSTM(100), Dense(46, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=100, epochs=20,
                        validation_data=(x_test, y_test))
    print(history["val_accuracy"])                  # also history.history["val_accuracy"]

Layers are those of ``rnnfast.models.layers`` (Keras-style recurrent layers, Embedding,
Input, Activation, Bidirectional) and of ``rnnfast.nn`` (Dense, Dropout, Conv1D, pooling,
Flatten, LayerNorm, TimeDistributed, activations). PyTorch-style recurrent layers
(``rnnfast.nn.LSTM``, which return ``(output, state)``) are refused: use the Keras-style
ones. Inputs are batch-first, as in Keras.

The padding mask of ``Embedding(mask_zero=True)`` (or of ``Masking``) flows through Dropout,
Dense, activations, LayerNorm and TimeDistributed to the next recurrent layer, which then stops
at each row's last token; other layers (Conv1D, pooling, Flatten) cannot take a mask and say
so. When it reaches the output (``return_sequences=True`` and per-step layers after it),
``output_mask`` holds it after each forward, and ``fit`` / ``evaluate`` average the loss and
the metrics over the real steps only (Keras' masked loss); ``sample_weight`` weights samples or
steps as in Keras.

A Sequential is itself an ``rnnfast.nn.Module``: ``forward`` / ``backward`` /
``parameters()`` / ``state_dict()`` work as for any layer (names ``<layer name>.<param>``).
"""
import re

import numpy as np

from rnnfast import nn
from rnnfast.models import saving, training
from rnnfast.models.functional import (FREE_LENGTHS, MAX_LAYERS, NESTED_CLASSES, KerasTensor,
                                       _restore, _snapshot, _takes_ids, expanded_calls,
                                       input_dtype, layer_from_spec, layer_spec, run_layer,
                                       sample_shape, spend_calls, type_label,
                                       unique_layer_name)
from rnnfast.models.layers import Conv1D, Dense, InputSpec
from rnnfast.nn.module import Module
from rnnfast.nn.recurrent import RNNBase

__all__ = ["Sequential"]


class Sequential(training.BaseModel):
    """A linear stack of layers with Keras' training workflow."""

    def __init__(self, layers=None, name=None, *, seed=None):
        super().__init__()
        self.name = "sequential" if name is None else str(name)
        self._default_name = name is None
        self.layers = []
        self.layer_names = []
        self.input_spec = None
        self.input_shape = None
        self.output_shapes = None
        self.built = False
        self._checked = None  # (input signature, output shapes) of the last _engine_check
        self._init_training(seed)
        self.output_mask = None
        if layers is not None:
            if isinstance(layers, (Module, InputSpec, KerasTensor)):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # layers -------------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer (or an ``Input`` first)."""
        if isinstance(layer, KerasTensor) and layer.spec is not None:  # Keras' Input(...)
            layer = layer.spec
        if isinstance(layer, InputSpec):
            if self.layers or self.input_spec is not None:
                raise ValueError("Input: must be the first item of a Sequential")
            self.input_spec = layer
            return
        if not isinstance(layer, Module):
            raise TypeError(f"layer: expected an rnnfast layer, got {type(layer).__name__}")
        if isinstance(layer, RNNBase):
            keras_name = {"RNN": "SimpleRNN"}.get(type(layer).__name__, type(layer).__name__)
            raise TypeError(f"layer: rnnfast.nn.{type(layer).__name__} returns (output, state) "
                            f"as in PyTorch; in a Sequential use rnnfast.models.layers."
                            f"{keras_name}(units, return_sequences=...)")
        if layer is self:
            raise ValueError("layer: a Sequential cannot contain itself")
        if isinstance(layer, training.BaseModel):  # a nested model: one input, one output
            if len(layer._nested_inputs()) != 1 or len(layer._output_names()) != 1:
                raise ValueError(f"layer: the model {layer.name!r} has "
                                 f"{len(layer._nested_inputs())} inputs and "
                                 f"{len(layer._output_names())} outputs; a Sequential passes one "
                                 "tensor from layer to layer")
            if any(m is self for _, m in layer.named_modules()):
                raise ValueError("layer: the model contains this Sequential (a cycle)")
        if getattr(layer, "return_state", False):
            raise ValueError("layer: return_state=True gives several outputs, which a "
                             "Sequential cannot pass on")
        if any(layer is other for other in self.layers):
            raise ValueError("layer: this layer object is already in the model")
        name = unique_layer_name(layer, self._modules)
        if name is None:
            raise ValueError(f"layer: the name {layer.name!r} is already used in this model")
        self._modules[name] = layer
        self.layers.append(layer)
        self.layer_names.append(name)
        self.built = False
        self.output_shapes = None
        self._checked = None
        if self._declared_input() is not None:  # Keras builds as layers come in
            try:
                self.build()
            except (ValueError, TypeError):
                del self._modules[name]
                self.layers.pop()
                self.layer_names.pop()
                if self.layers:
                    self.build()
                raise

    def get_layer(self, name=None, index=None):
        """A layer by name or by index."""
        if index is not None:
            return self.layers[index]
        if name not in self.layer_names:
            raise ValueError(f"name: no layer {name!r}; layers: {self.layer_names}")
        return self._modules[name]

    def _first_takes_ids(self):
        return bool(self.layers) and _takes_ids(self.layers[0])

    # as a layer of another model (a nested model) ----------------------------------------
    def _nested_inputs(self):
        return [self.input_shape]

    def _takes_ids(self):
        return self._first_takes_ids()

    def _nested_call(self, arrays, masks):
        """The output and its mask for an input array (and mask) given by an outer model."""
        if not self.built:
            self.build((None,) + arrays[0].shape[1:], arrays[0].dtype)
        out = self._forward(arrays[0], masks[0])
        return [out], [self.output_mask]

    def _nested_backward(self, grads):
        return [self.backward(grads[0])]

    def _expanded_calls(self):
        return sum(expanded_calls(layer) for layer in self.layers)

    # forward / backward -------------------------------------------------------------------
    def _call_layer(self, layer, x, mask):
        outs, masks = run_layer(layer, [x], [mask])
        return outs[0], masks[0]

    def prepare_input(self, x, name="x"):
        """``x`` as an array the first layer takes (ints stay ints for an Embedding, and are
        cast to float32 otherwise); ragged lists raise a TypeError."""
        arr = x if isinstance(x, np.ndarray) else np.asarray(x) if not _is_ragged(x) else None
        if arr is None or arr.dtype == object:
            raise TypeError(f"{name}: expected a rectangular numeric array; pad ragged sequences "
                            "first (rnnfast.utils.pad_sequences)")
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        if arr.ndim < 1:
            raise ValueError(f"{name}: expected a batch of samples (at least 1-D), got a scalar")
        if arr.dtype.kind != "f" and not self._first_takes_ids():
            arr = arr.astype(np.float32)
        return arr

    def forward(self, x):
        """The model's output for the batch ``x`` in the current mode (``train()`` keeps what
        ``backward`` needs)."""
        return self._forward(x, None)

    def _forward(self, x, mask):
        if not self.layers:
            raise ValueError("Sequential: the model has no layers")
        out = x
        self.output_mask = None
        fused = None  # the Dropout run with the Embedding before it
        for i, (name, layer) in enumerate(zip(self.layer_names, self.layers)):
            if layer is fused:
                continue
            shape = getattr(out, "shape", None)
            try:
                fused = self._dropout_after(i)
                if fused is not None:
                    out = layer.forward_dropped(out, fused)
                    mask = layer.mask if layer.mask is not None and layer.mask.ndim == 2 else None
                elif mask is None and (pool := self._pool_after(i)) is not None:
                    fused, out = self._forward_pooled(layer, pool, out)
                else:
                    out, mask = self._call_layer(layer, out, mask)
            except (ValueError, TypeError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError
                raise kind(f"layer {i} '{name}' ({type(layer).__name__}), input of shape "
                           f"{shape}: {exc}") from exc
        if mask is not None and mask.shape == out.shape[:mask.ndim] and out.ndim > mask.ndim:
            self.output_mask = mask
        return out

    def _dropout_after(self, i):
        """The Dropout after layer ``i`` when that is an Embedding whose lookup the forward
        runs with it in one pass (``Embedding.forward_dropped``) and whose backward drops the
        gradient while adding it (``backward_dropped``), else None."""
        if not self._fuse_embedding_dropout or i + 1 >= len(self.layers):
            return None
        layer, after = self.layers[i], self.layers[i + 1]
        if (type(after) is nn.Dropout and isinstance(layer, nn.Embedding)
                and getattr(layer, "activity_regularizer", None) is None):
            return after
        return None

    def _pool_after(self, i):
        """The MaxPooling1D after layer ``i`` when that is a Conv1D whose forward runs with it
        in one call (``Conv1D.forward_pooled``), which the backward then differentiates as one
        (``backward_through_pool``), else None."""
        fuse = self._fuse_conv_pool and self._fuse_conv_pool_forward
        if not fuse or i + 1 >= len(self.layers):
            return None
        layer, after = self.layers[i], self.layers[i + 1]
        return after if isinstance(layer, Conv1D) and layer.fuses_pool(after) else None

    def _forward_pooled(self, layer, pool, x):
        """``(pool, pool's output)`` of the pair in one call; an input either refuses is left to
        the two calls, whose errors name their own layer (None, layer's output)."""
        try:
            return pool, layer.forward_pooled(x, pool)
        except (ValueError, TypeError):
            return None, self._call_layer(layer, x, None)[0]

    def backward(self, dy):
        """Gradient of the last training-mode forward: adds parameter gradients to ``.grad``
        and returns the input gradient (None when the first layer is an Embedding)."""
        i = len(self.layers) - 1
        while i >= 0:
            layer, before = self.layers[i], self.layers[i - 1] if i > 0 else None
            if (self._fuse_conv_pool and isinstance(before, Conv1D)
                    and before.pools_into(layer)):
                dy = before.backward_through_pool(layer, dy)
                i -= 2
            elif i > 0 and self._dropout_after(i - 1) is layer:
                dy = before.backward_dropped(dy, layer)
                i -= 2
            else:
                dy = layer.backward(dy)
                i -= 1
            if dy is None:
                return None
        return dy

    # building -----------------------------------------------------------------------------
    def _declared_input(self):
        """``(sample_shape, dtype)`` from an Input or the first layer's ``input_shape``."""
        if self.input_spec is not None:
            return self.input_spec.shape, self.input_spec.dtype
        first = self.layers[0] if self.layers else None
        shape = getattr(first, "input_shape", None)
        if shape is not None:
            return tuple(shape), None
        if type(first) is Dense and first.built:  # Keras: Dense(units, input_dim=...)
            return (first.in_features,), None
        return None

    def _default_dtype(self):
        return np.dtype(np.int32) if self._first_takes_ids() else np.dtype(np.float32)

    def _trace(self, sample_shape, dtype):
        """Output shape (no batch axis) of each layer for one zero sample, in eval mode;
        keeps every module's mode and saved state."""
        modes = [(m, m.training) for _, m in self.named_modules()]
        kept = _snapshot(self)  # also a nested model's records of its calls
        states = [(m, m.states) for _, m in self.named_modules() if "states" in m.__dict__]
        self.eval()
        try:
            out, mask, shapes = np.zeros((1,) + tuple(sample_shape), dtype), None, []
            for i, (name, layer) in enumerate(zip(self.layer_names, self.layers)):
                in_shape = (None,) + out.shape[1:]
                try:
                    out, mask = self._call_layer(layer, out, mask)
                except (ValueError, TypeError) as exc:
                    kind = TypeError if isinstance(exc, TypeError) else ValueError
                    raise kind(f"layer {i} '{name}' ({type(layer).__name__}) cannot take an "
                               f"input of shape {in_shape}: {exc}") from exc
                shapes.append(out.shape[1:])
            return shapes
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)
            _restore(kept)
            for module, value in states:  # a stateful layer keeps its states
                object.__setattr__(module, "states", value)

    def build(self, input_shape=None, dtype=None):
        """Create every layer's weights for inputs of ``input_shape`` (Keras: the batch axis
        first, e.g. ``(None, 100)``; None for free sizes), and work out the output shapes.
        Without ``input_shape``: the model's ``Input`` or first layer's ``input_shape``."""
        if not self.layers:
            raise ValueError("Sequential: the model has no layers")
        if input_shape is None:
            declared = self._declared_input()
            if declared is None:
                raise ValueError("input_shape: the model has no Input and its first layer no "
                                 "input_shape; give build() the input shape, e.g. (None, 100)")
            sample, declared_dtype = declared
            dtype = dtype if dtype is not None else declared_dtype
        else:
            if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 1:
                raise ValueError(f"input_shape: expected a tuple with the batch axis first, "
                                 f"e.g. (None, 100), got {input_shape!r}")
            sample = tuple(input_shape)[1:]
        sample = tuple(None if d is None else int(d) for d in sample)
        dtype = self._default_dtype() if dtype is None else np.dtype(dtype)
        if None in sample:
            traces = [self._trace([n if d is None else d for d in sample], dtype)
                      for n in FREE_LENGTHS]
            shapes = [tuple(a if a == b else None for a, b in zip(s0, s1))
                      for s0, s1 in zip(*traces)]
        else:
            shapes = self._trace(sample, dtype)
        self.input_shape = (None,) + sample
        self.input_dtype = dtype
        self.output_shapes = [(None,) + tuple(s) for s in shapes]
        self.built = True
        self._checked = None if None in sample else (self._check_key(sample, dtype),
                                                     list(self.output_shapes))
        return self

    def _check_key(self, sample_shape, dtype):
        return tuple(sample_shape), np.dtype(dtype), tuple(id(layer) for layer in self.layers)

    def _ensure_built(self, x):
        if not self.built:
            if self._declared_input() is not None:
                self.build()
            else:
                self.build((None,) + x.shape[1:], x.dtype)
        if self._optimizer_spec is not None:
            self._ensure_optimizer()

    @property
    def output_shape(self):
        return None if not self.output_shapes else self.output_shapes[-1]

    # the training engine's protocol (rnnfast.models.training) ------------------------------
    def _output_names(self):
        return [self.layer_names[-1] if self.layers else "output"]

    def _compiled(self):
        if not self.built and self._declared_input() is not None:
            self.build()
        if self.built:
            self._ensure_optimizer()

    def _engine_inputs(self, x, name):
        return [self.prepare_input(x, name)]

    def _engine_targets(self, y, n, name):
        return [training.targets(y, n, name)]

    def _engine_build(self, xs):
        self._ensure_built(xs[0])

    def _engine_check(self, xs):
        """Build (from x if needed) and trace one sample to catch shape mismatches: once per
        sample shape, dtype and layers (a WaveNet's sample is a long sequence; fit, evaluate
        and each fit of a loop would run it again), the output shapes kept."""
        x = xs[0]
        self._ensure_built(x)
        key = self._check_key(x.shape[1:], x.dtype)
        if self._checked is None or self._checked[0] != key:
            shapes = self._trace(x.shape[1:], x.dtype)
            self._checked = (key, [(None,) + tuple(s) for s in shapes])
        self.output_shapes = list(self._checked[1])

    def _engine_output_shapes(self):
        return [self.output_shape]

    def _engine_forward(self, xs):
        out = self.forward(xs[0])
        self._engine_masks = [self.output_mask]
        return [out]

    def _engine_backward(self, grads):
        self.backward(grads[0])

    # summary / saving ---------------------------------------------------------------------
    def summary(self, line_length=65, print_fn=None):
        """Print Keras' table of layers, output shapes and parameter counts.

        The counts are those of rnnfast's parameters, which keep PyTorch's layout: its
        recurrent layers have two bias vectors (``b_ih`` and ``b_hh``) where Keras' SimpleRNN
        and LSTM (and GRU with ``reset_after=False``) have one, so each such layer counts
        ``gates * units`` more per direction than Keras' table: ``LSTM(100)`` on 100 features
        has 80,800 parameters here and 80,400 in Keras, ``SimpleRNN(units)`` ``units`` more,
        ``GRU(units)`` with ``reset_after=True`` (Keras' default, which has two biases too) the
        same. The model computes the same functions: Keras' weights load with their bias in
        ``b_ih`` and ``b_hh = 0`` (``rnnfast.models.set_keras_weights``)."""
        if not self.built:
            if self._declared_input() is None:
                raise ValueError("This model has not yet been built. Build the model first by "
                                 "calling build(input_shape) or fit() with some data, or "
                                 "start it with Input(shape=...).")
            self.build()
        rows = [[f"{name} ({type_label(layer)})", shape,
                 sum(p.size for p in layer.parameters())]
                for name, layer, shape in zip(self.layer_names, self.layers, self.output_shapes)]
        self.print_table(rows, line_length, print_fn,
                         (["Layer (type)", "Output Shape", "Param #"], [0.45, 0.85]))

    def get_config(self):
        """Keras' model config (JSON data): the name, the ``Input``, each layer's name,
        registered class and ``get_config()``, and the input it was built for."""
        return {"name": self.name,
                "input": None if self.input_spec is None else self.input_spec.get_config(),
                "layers": [dict(layer_spec(layer), name=name)
                           for name, layer in zip(self.layer_names, self.layers)],
                "build_input_shape": list(self.input_shape) if self.built else None,
                "build_input_dtype": np.dtype(self.input_dtype).name if self.built else None}

    @classmethod
    def from_config(cls, config):
        """The model ``get_config()`` describes (built when it was), with fresh weights; every
        value is checked first (ValueError naming it)."""
        keys = {"name", "input", "layers", "build_input_shape", "build_input_dtype"}
        if not isinstance(config, dict) or set(config) != keys:
            raise ValueError(f"config: expected the keys {sorted(keys)}")
        if not isinstance(config["name"], str) or len(config["name"]) > 256:
            raise ValueError("config.name: expected a string of at most 256 characters")
        model = cls(name=config["name"])
        spec = config["input"]
        if spec is not None:
            if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
                raise ValueError("config.input: expected {'shape': [...], 'dtype': ...}")
            shape = sample_shape(spec["shape"], "config.input.shape")
            model.add(InputSpec(shape, input_dtype(spec["dtype"], "config.input.dtype", True)))
        layers = config["layers"]
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
            raise ValueError(f"config.layers: expected a list of at most {MAX_LAYERS} layers")
        calls = 0
        for i, entry in enumerate(layers):
            where = f"config.layers[{i}]"
            if not isinstance(entry, dict) or set(entry) != {"name", "class_name", "config"}:
                raise ValueError(f"{where}: expected {{'name', 'class_name', 'config'}}")
            name = entry["name"]
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,128}", name):
                raise ValueError(f"{where}.name: expected 1 to 128 letters, digits, '_' or "
                                 f"'-', got {str(name)[:80]!r}")
            layer = layer_from_spec(entry, where)
            calls = spend_calls(calls, layer, where)
            declared = getattr(layer, "input_shape", None)
            if not model.layers and spec is None and declared is not None:
                sample_shape(list(declared), f"{where}: the input shape it declares")
            layer.name = name
            layer._default_name = False
            model.add(layer)
        shape = config["build_input_shape"]
        if shape is not None:
            if not isinstance(shape, list) or not shape or shape[0] is not None:
                raise ValueError("config.build_input_shape: expected [null, ...] (the batch "
                                 "axis first)")
            sample = sample_shape(shape[1:], "config.build_input_shape")
            model.build((None,) + sample,
                        input_dtype(config["build_input_dtype"], "config.build_input_dtype"))
        elif config["build_input_dtype"] is not None:
            raise ValueError("config.build_input_dtype: expected null for an unbuilt model")
        return model

    def extra_repr(self):
        return f"name={self.name!r}"


def _is_ragged(x):
    """True for a list of sequences of different lengths (before NumPy sees it)."""
    if not isinstance(x, (list, tuple)) or not x:
        return False
    lengths = set()
    for item in x:
        if not hasattr(item, "__len__"):
            return False
        lengths.add(len(item))
    return len(lengths) > 1


saving.register_model(Sequential)
NESTED_CLASSES["models.Sequential"] = Sequential
