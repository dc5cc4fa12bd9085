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

from rnnfast import losses
from rnnfast import nn
from rnnfast.models import metrics as metrics_mod
from rnnfast.models import optimizers as optimizers_mod
from rnnfast.models import saving, training
from rnnfast.models.layers import Activation, Bidirectional, Dense, Input, Masking, _Recurrent
from rnnfast.nn.activation import _Elementwise
from rnnfast.nn.module import Module, make_rng
from rnnfast.nn.recurrent import RNNBase
from rnnfast.nn.serialization import MAX_CONFIG_INT, deserialize, serialize

__all__ = ["Sequential"]

MASK_CONSUMERS = (_Recurrent, Bidirectional)
MASK_TRANSPARENT = (nn.Dropout, nn.Linear, _Elementwise, Activation, nn.LayerNorm,
                    nn.TimeDistributed)
FREE_LENGTHS = (61, 67)  # stand-ins for a None axis when tracing shapes
MAX_SAMPLE_ELEMENTS = 2 ** 22  # bound of one sample's size in a config (from_config)
MAX_LAYERS = 4096
INPUT_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "float32", "float64")


def snake_case(name):
    """Keras' layer names: ``MaxPooling1D`` -> ``max_pooling1d``, ``SimpleRNN`` ->
    ``simple_rnn``."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _positive(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number or None, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name}: expected a positive number or None, got {value}")
    return float(value)


class Sequential(Module):
    """A linear stack of layers with Keras' training workflow."""

    def __init__(self, layers=None, name=None, *, seed=None):
        super().__init__()
        self.name = "sequential" if name is None else str(name)
        self.layers = []
        self.layer_names = []
        self.input_spec = None
        self.input_shape = None
        self.output_shapes = None
        self.built = False
        self.rng = make_rng(seed)
        self.stop_training = False
        self.output_mask = None
        self.loss = None
        self.optimizer = None
        self.metrics = []
        self.clip = {"clipnorm": None, "clipvalue": None, "global_clipnorm": None}
        self._optimizer_spec = None
        self.optimizer_name = None
        self.metric_specs = []
        if layers is not None:
            if isinstance(layers, (Module, Input)):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # layers -------------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer (or an ``Input`` first)."""
        if isinstance(layer, Input):
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
        if isinstance(layer, Sequential):
            raise TypeError("layer: nesting a Sequential in a Sequential is not supported; add "
                            "its layers instead")
        if getattr(layer, "return_state", False):
            raise ValueError("layer: return_state=True gives several outputs, which a "
                             "Sequential cannot pass on")
        if any(layer is other for other in self.layers):
            raise ValueError("layer: this layer object is already in the model")
        name = getattr(layer, "name", None)
        if not isinstance(name, str) or not name:
            base = snake_case(type(layer).__name__)
            name, k = base, 0
            while name in self._modules:
                k += 1
                name = f"{base}_{k}"
        elif name in self._modules:
            raise ValueError(f"layer: the name {name!r} is already used in this model")
        self._modules[name] = layer
        self.layers.append(layer)
        self.layer_names.append(name)
        self.built = False
        self.output_shapes = None
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
        first = self.layers[0] if self.layers else None
        if isinstance(first, nn.TimeDistributed):
            first = first.layer
        return isinstance(first, nn.Embedding)

    # forward / backward -------------------------------------------------------------------
    def _call_layer(self, layer, x, mask):
        if isinstance(layer, MASK_CONSUMERS):
            return layer.forward(x, mask=mask), layer.compute_output_mask(mask)
        if isinstance(layer, (nn.Embedding, Masking)):  # mask producers (Masking replaces one)
            y = layer.forward(x)
            mask = layer.mask if layer.mask is not None and layer.mask.ndim == 2 else None
            return y, mask
        if mask is not None and not isinstance(layer, MASK_TRANSPARENT):
            raise ValueError("cannot take the padding mask of Embedding(mask_zero=True) or "
                             "Masking; put a recurrent layer before it or drop the mask")
        return layer.forward(x), mask

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
        if not self.layers:
            raise ValueError("Sequential: the model has no layers")
        out, mask = x, None
        self.output_mask = None
        for i, (name, layer) in enumerate(zip(self.layer_names, self.layers)):
            shape = getattr(out, "shape", None)
            try:
                out, mask = self._call_layer(layer, out, mask)
            except (ValueError, TypeError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError
                raise kind(f"layer {i} '{name}' ({type(layer).__name__}), input of shape "
                           f"{shape}: {exc}") from exc
        if mask is not None and mask.shape == out.shape[:mask.ndim] and out.ndim > mask.ndim:
            self.output_mask = mask
        return out

    def backward(self, dy):
        """Gradient of the last training-mode forward: adds parameter gradients to ``.grad``
        and returns the input gradient (None when the first layer is an Embedding)."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
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
        saved = [(m, m.training, m._cache) for _, m in self.named_modules()]
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
            for module, mode, cache in saved:
                object.__setattr__(module, "training", mode)
                object.__setattr__(module, "_cache", cache)
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
        return self

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

    # weights ------------------------------------------------------------------------------
    def count_params(self):
        return int(sum(p.size for p in self.parameters()))

    def get_weights(self):
        """Copies of every parameter array, in ``parameters()`` order (Keras)."""
        return [p.data.copy() for p in self.parameters()]

    def set_weights(self, weights):
        """Set every parameter from a list like ``get_weights()``'s."""
        params = self.parameters()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"weights: expected {len(params)} arrays, got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for i, (p, w) in enumerate(zip(params, arrays)):
            if w.shape != p.shape:
                raise ValueError(f"weights[{i}]: expected shape {p.shape}, got {w.shape}")
        for p, w in zip(params, arrays):
            p.data[...] = w

    # compile / fit / evaluate / predict ---------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, *, clipnorm=None,
                clipvalue=None, global_clipnorm=None):
        """Choose the loss (a Keras name such as ``"categorical_crossentropy"`` or an
        ``rnnfast.losses.Loss``), the optimiser (Keras' ``Adam(learning_rate=...)``,
        ``SGD``, ``RMSprop``, ``Adagrad``, ``AdamW`` of ``rnnfast.models.optimizers``, bound here
        to the model's parameters; a name ``"adam"``, ``"rmsprop"``, ``"sgd"``, ``"adamw"``; an
        ``rnnfast.optim.Optimizer`` or a factory ``params -> Optimizer``), the
        metrics (``["accuracy"]``, ...) and gradient clipping as Keras' optimisers do it:
        ``clipnorm`` (each gradient's norm), ``global_clipnorm`` (all together), ``clipvalue``
        (each element)."""
        if loss is None:
            raise ValueError("loss: compile() needs a loss, e.g. loss='mse' or "
                             "loss='categorical_crossentropy'")
        loss_obj = losses.get(loss)
        spec = optimizers_mod.resolve(optimizer)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, str) or callable(metrics):
            metrics = [metrics]
        elif not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics: expected a list of metric names or functions, got "
                            f"{type(metrics).__name__}")
        resolved = [metrics_mod.get(m, loss_obj) for m in metrics]
        names = [n for n, _ in resolved]
        if len(set(names)) != len(names):
            raise ValueError(f"metrics: duplicate names {names}")
        clip = {"clipnorm": _positive(clipnorm, "clipnorm"),
                "clipvalue": _positive(clipvalue, "clipvalue"),
                "global_clipnorm": _positive(global_clipnorm, "global_clipnorm")}
        if clip["clipnorm"] is not None and clip["global_clipnorm"] is not None:
            raise ValueError("clipnorm, global_clipnorm: give at most one of them")
        if isinstance(spec, optimizers_mod.Optimizer) and spec.clips and \
                any(v is not None for v in clip.values()):
            raise ValueError("clipnorm, clipvalue, global_clipnorm: the optimizer clips the "
                             "gradients already; give the clipping to compile() or to the "
                             "optimizer, not both")
        self.loss, self.metrics, self.clip = loss_obj, resolved, clip
        self._optimizer_spec, self.optimizer = spec, None
        self.optimizer_name = optimizer if isinstance(optimizer, str) else None
        self.metric_specs = list(metrics)
        if not self.built and self._declared_input() is not None:
            self.build()
        if self.built:
            self._ensure_optimizer()

    def _ensure_optimizer(self):
        params = self.parameters()
        if self.optimizer is not None and \
                {id(p) for g in self.optimizer.param_groups for p in g["params"]} == \
                {id(p) for p in params}:
            return
        if not params:
            raise ValueError("Sequential: the model has no parameters to train")
        self.optimizer = optimizers_mod.create(self._optimizer_spec, params)

    def _require_compiled(self):
        if self.loss is None:
            raise RuntimeError("You must compile your model before training/testing. Use "
                               "model.compile(optimizer, loss).")

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            sample_weight=None):
        """Train for ``epochs`` passes over ``(x, y)`` in batches of ``batch_size`` (32);
        returns a History (a dict of per-epoch lists: ``loss``, metrics, ``val_*``).
        ``verbose``: 0 silent, 1 (``"auto"``) a progress bar on a terminal and a line per
        epoch, 2 a line per epoch. Ctrl-C stops after the current batch, keeping the weights
        (a second Ctrl-C interrupts at once).

        ``sample_weight``: Keras' per-sample weights, shape ``(N,)``, or ``(N, T)`` per step
        for a model with one output per step (a padded many-to-many model: 0 on the padded
        steps); ``validation_data`` may then be ``(x_val, y_val, sample_weight_val)``, and
        ``validation_split`` splits the weights too. A padding mask that reaches the output
        (``Embedding(mask_zero=True)``) is applied without them."""
        self._require_compiled()
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks,
                            validation_split, validation_data, shuffle, initial_epoch,
                            sample_weight)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
                 sample_weight=None):
        """The loss (and metrics) over ``(x, y)``: a float without metrics, else
        ``[loss, metric, ...]`` (a dict with ``return_dict``); ``sample_weight`` as in
        ``fit``."""
        self._require_compiled()
        return training.evaluate(self, x, y, batch_size, verbose, return_dict, sample_weight)

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for ``x``, in inference mode, in batches of ``batch_size``."""
        return training.predict(self, x, batch_size, verbose)

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
        print_fn = print if print_fn is None else print_fn
        cols = [int(line_length * 0.45), int(line_length * 0.85), line_length]

        def row(fields):
            line = ""
            for field, end in zip(fields, cols):
                line = (line + " " + str(field))[:end - 1].ljust(end)
            return line.rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        print_fn(row(["Layer (type)", "Output Shape", "Param #"]))
        print_fn("=" * line_length)
        for i, (name, layer, shape) in enumerate(zip(self.layer_names, self.layers,
                                                     self.output_shapes)):
            count = sum(p.size for p in layer.parameters())
            print_fn(row([f"{name} ({type(layer).__name__})", shape, count]))
            print_fn("=" * line_length if i == len(self.layers) - 1 else "")
        params = self.parameters()
        trainable = sum(p.size for p in params if p.requires_grad)
        total = sum(p.size for p in params)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * line_length)

    def get_config(self):
        """Keras' model config (JSON data): the name, the ``Input``, each layer's name,
        registered class and ``get_config()``, and the input it was built for."""
        return {"name": self.name,
                "input": None if self.input_spec is None else self.input_spec.get_config(),
                "layers": [dict(serialize(layer), name=name)
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
            shape = _sample_shape(spec["shape"], "config.input.shape")
            model.add(Input(shape, _input_dtype(spec["dtype"], "config.input.dtype", True)))
        layers = config["layers"]
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
            raise ValueError(f"config.layers: expected a list of at most {MAX_LAYERS} layers")
        for i, entry in enumerate(layers):
            where = f"config.layers[{i}]"
            if not isinstance(entry, dict) or set(entry) != {"name", "class_name", "config"}:
                raise ValueError(f"{where}: expected {{'name', 'class_name', 'config'}}")
            name = entry["name"]
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,128}", name):
                raise ValueError(f"{where}.name: expected 1 to 128 letters, digits, '_' or "
                                 f"'-', got {str(name)[:80]!r}")
            layer = deserialize({"class_name": entry["class_name"], "config": entry["config"]},
                                where)
            declared = getattr(layer, "input_shape", None)
            if not model.layers and spec is None and declared is not None:
                _sample_shape(list(declared), f"{where}: the input shape it declares")
            layer.name = name
            model.add(layer)
        shape = config["build_input_shape"]
        if shape is not None:
            if not isinstance(shape, list) or not shape or shape[0] is not None:
                raise ValueError("config.build_input_shape: expected [null, ...] (the batch "
                                 "axis first)")
            sample = _sample_shape(shape[1:], "config.build_input_shape")
            model.build((None,) + sample,
                        _input_dtype(config["build_input_dtype"], "config.build_input_dtype"))
        elif config["build_input_dtype"] is not None:
            raise ValueError("config.build_input_dtype: expected null for an unbuilt model")
        return model

    def save(self, path):
        """Write the model (layers' configuration as JSON, weights, compile settings and the
        optimiser's state, random generators' states) to ``path``, exactly there (any suffix)
        and atomically; no pickled code. ``load_model(path)`` gives back the same model, bit
        for bit. Returns the path."""
        return saving.save_model(self, path)

    @classmethod
    def load(cls, path):
        """A model saved by ``save``."""
        model = saving.load_model(path)
        if not isinstance(model, cls):
            raise ValueError(f"path: {path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def save_weights(self, path):
        """Write only the parameters (``state_dict``) to ``path`` (exactly there, atomically;
        NumPy's ``.npz`` layout)."""
        return saving.save_weights(self, path)

    def load_weights(self, path):
        """Load parameters written by ``save_weights`` (the model must have the same layers);
        the file is checked as ``load_model`` checks one."""
        saving.load_weights(self, path)

    def extra_repr(self):
        return f"name={self.name!r}"


def _sample_shape(shape, where):
    """A config's sample shape (no batch axis): ints >= 1 or None, of bounded size."""
    if not isinstance(shape, list) or len(shape) > 8 or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or
                               not 1 <= d <= MAX_CONFIG_INT) for d in shape):
        raise ValueError(f"{where}: expected at most 8 sizes (ints >= 1 or null), got "
                         f"{str(shape)[:80]}")
    size = int(np.prod([d or 1 for d in shape], dtype=object))
    if size > MAX_SAMPLE_ELEMENTS:
        raise ValueError(f"{where}: a sample of {size:,} elements (at most "
                         f"{MAX_SAMPLE_ELEMENTS:,})")
    return tuple(shape)


def _input_dtype(name, where, allow_none=False):
    if (name is None and allow_none) or name in INPUT_DTYPES:
        return name
    raise ValueError(f"{where}: expected one of {list(INPUT_DTYPES)}, got {str(name)[:40]!r}")


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
