"""Keras-style layers for ``rnnfast.models.Sequential``, so a model reads like its Keras
original::

    from rnnfast.models import Sequential
    from rnnfast.models.layers import Embedding, LSTM, Dense

    model = Sequential([Embedding(1000, 100), LSTM(100), Dense(46, activation="softmax")])

- ``Input(shape, dtype=None)``: the shape of one sample, as the first item of a Sequential.
- ``Embedding(input_dim, output_dim, mask_zero=False, input_length=None)``: Keras'
  initialisation (uniform in +-0.05); with ``mask_zero`` the padding mask flows to the
  recurrent layers, which then stop at each sequence's last token.
- ``SimpleRNN / LSTM / GRU(units, activation="tanh", return_sequences=False,
  return_state=False, ...)``: batch-first, built from the first input (or ``input_shape`` /
  ``input_dim``), Keras' initialisation (Glorot-uniform input weights, orthogonal recurrent
  weights, zero biases, forget-gate bias 1 for the LSTM). Without ``return_sequences`` the
  output is each sequence's state at its last valid step. The weights live in a PyTorch-layout
  layer (``.rnn``, an ``rnnfast.nn.RNN/LSTM/GRU``), so the LSTM and SimpleRNN have PyTorch's two
  bias vectors (``units`` or ``4 * units`` more parameters than Keras counts).
- ``Bidirectional(layer, merge_mode="concat")`` runs both directions in one kernel call each.
- ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True)`` (Keras' defaults;
  trailing axes only) and ``Masking(mask_value=0.0)``, whose mask flows as Embedding's does.
- Every layer takes Keras' ``input_shape`` (one sample's shape, for the first layer of a
  Sequential) and ``name``; Dense, Conv1D, Embedding, LayerNormalization and the recurrent
  layers have Keras' ``get_weights()`` / ``set_weights()`` (Keras' order and layout).
- ``Activation(name)``, ``Dense``, ``Dropout``, ``Flatten``, ``TimeDistributed``, ``Conv1D``,
  ``MaxPooling1D`` (alias ``MaxPool1D``), ``GlobalMaxPooling1D`` (alias ``GlobalMaxPool1D``),
  ``GlobalAveragePooling1D`` (alias ``GlobalAvgPool1D``).
- ``Attention`` and ``AdditiveAttention`` (Keras' call: ``layer([query, value], mask=[query_mask,
  value_mask], return_attention_scores=True, use_causal_mask=False)``).

Masks: padded steps are skipped when the padding is all at the end (``padding="post"``) or
all at the start (``"pre"``, Keras' default) of a row; a pre-padded batch is shifted so that
the kernels see post-padded rows, and ``return_sequences`` outputs are shifted back (their
padded steps are zeros; Keras repeats the last output there). Padding in the middle of a row
raises ValueError.
"""
import numpy as np

from rnnfast import nn
from rnnfast.functional.stack import CELLS, param_name
from rnnfast.nn.activation import get_activation
from rnnfast.nn.conv import Conv1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from rnnfast.nn.linear import Dense
from rnnfast.nn.module import (
    KerasWeights,
    Module,
    Parameter,
    _to_numpy,
    as_array,
    as_float_input,
    check_build_size,
    check_dtype,
    check_grad,
    check_int,
    keras_input_shape,
    make_rng,
    parameter_zeros,
)
from rnnfast.nn.serialization import deserialize, register_layers, serialize

__all__ = [
    "Activation",
    "AdditiveAttention",
    "Attention",
    "Bidirectional",
    "Conv1D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalAvgPool1D",
    "GlobalMaxPool1D",
    "GlobalMaxPooling1D",
    "Input",
    "LSTM",
    "LayerNormalization",
    "Masking",
    "MaxPool1D",
    "MaxPooling1D",
    "SimpleRNN",
    "TimeDistributed",
]

Dropout = nn.Dropout
Flatten = nn.Flatten
TimeDistributed = nn.TimeDistributed
# Keras' aliases
MaxPool1D = MaxPooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D


def _dtype_name(dtype):
    return np.dtype(dtype).name


class Input:
    """The shape of one sample (no batch axis; None for a free length) and its dtype.

    Only as the first item of a Sequential: it lets the model build (and ``summary()``) before
    it sees data."""

    def __init__(self, shape, dtype=None, name=None):
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        try:
            shape = tuple(None if d is None else int(d) for d in shape)
        except (TypeError, ValueError):
            raise TypeError(f"shape: expected a tuple of ints or None, got {shape!r}") from None
        if any(d is not None and d < 1 for d in shape):
            raise ValueError(f"shape: expected sizes >= 1 (or None), got {shape}")
        self.shape = shape
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.name = name

    def get_config(self):
        return {"shape": list(self.shape),
                "dtype": None if self.dtype is None else self.dtype.name}

    def __repr__(self):
        return f"Input(shape={self.shape}, dtype={self.dtype})"


class Embedding(nn.Embedding, KerasWeights):
    """Keras' ``Embedding(input_dim, output_dim, mask_zero=False)``: uniform(-0.05, 0.05)."""

    def __init__(self, input_dim, output_dim, mask_zero=False, input_length=None, *,
                 input_shape=None, dtype=np.float32, seed=None, rng=None, name=None):
        super().__init__(input_dim, output_dim, mask_zero=mask_zero, dtype=dtype, seed=seed,
                         rng=rng)
        if input_length is not None:
            input_length = check_int(input_length, "input_length", 1)
        self.input_length = input_length
        self.input_shape = keras_input_shape(input_shape) or (input_length,)
        self.name = name

    @property
    def input_dim(self):
        return self.num_embeddings

    @property
    def output_dim(self):
        return self.embedding_dim

    def reset_parameters(self):
        self.weight.data[...] = self.rng.uniform(-0.05, 0.05, self.weight.shape)

    def get_config(self):
        return {"input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero, "input_length": self.input_length,
                "dtype": _dtype_name(self.dtype)}


class Activation(Module):
    """Keras' ``Activation(name)``: ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"softmax"`` or
    ``"linear"`` (the identity)."""

    per_step = True  # acts on each time step alone (rnnfast.generation runs it step by step)

    def __init__(self, activation, name=None, *, input_shape=None):
        super().__init__()
        self.input_shape = keras_input_shape(input_shape)
        if not isinstance(activation, str):
            raise TypeError(f"activation: expected a name such as 'relu', got "
                            f"{type(activation).__name__}")
        self.activation_name = activation
        self.fn = get_activation(activation)
        self.name = name

    @property
    def activation(self):
        """The ``rnnfast.nn`` activation layer, or None for ``"linear"``."""
        return self.fn

    def forward(self, x):
        if self.fn is None:
            x = as_float_input(x, "x")
            self._keep((x.shape, x.dtype))
            return x
        return self.fn.forward(x)

    def backward(self, dy):
        if self.fn is None:
            shape, dtype = self._saved()
            return check_grad(dy, "dy", shape, dtype)
        return self.fn.backward(dy)

    def get_config(self):
        return {"activation": self.activation_name}

    def extra_repr(self):
        return repr(self.activation_name)


def align_mask(mask, batch, steps):
    """``(lengths, index)`` for a ``(batch, steps)`` padding mask (True = token): ``lengths``
    (int64, or None when nothing is padded) and ``index`` (None, or the ``(batch, steps)``
    gather that moves each pre-padded row's tokens to its start)."""
    if mask is None:
        return None, None
    mask = as_array(mask).astype(bool, copy=False)
    if mask.shape != (batch, steps):
        raise ValueError(f"mask: expected shape (batch, steps) = ({batch}, {steps}), got "
                         f"{mask.shape}")
    count = mask.sum(axis=1)
    t = np.arange(steps)[None, :]
    prefix = (mask == (t < count[:, None])).all(axis=1)
    suffix = (mask == (t >= steps - count[:, None])).all(axis=1)
    bad = ~(prefix | suffix)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"mask: row {row} has padding between tokens; the recurrent kernels "
                         "take rows padded at the start or at the end only")
    lengths = np.maximum(count, 1).astype(np.int64)
    shift = np.where(prefix, 0, steps - count)
    index = None if not shift.any() else (t + shift[:, None]) % steps
    if index is None and np.all(count == steps):
        lengths = None
    return lengths, index


def _glorot_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def _orthogonal(rng, rows, cols):
    """A (rows, cols) matrix with orthonormal columns (rows >= cols), Keras' Orthogonal."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


class _Recurrent(Module, KerasWeights):
    """Keras' recurrent layer interface over an ``rnnfast.nn`` layer (``.rnn``)."""

    module = None  # the rnnfast.nn class
    kind = ""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 return_sequences=False, return_state=False, *, input_shape=None,
                 input_dim=None, dtype=np.float32, seed=None, rng=None, name=None, **unsupported):
        super().__init__()
        if unsupported:
            raise TypeError(f"{type(self).__name__}: argument(s) {', '.join(sorted(unsupported))} "
                            "not supported")
        self.units = check_int(units, "units", 1)
        self.activation = self._check_activation(activation)
        if self.module is not nn.RNN and recurrent_activation != "sigmoid":
            raise ValueError(f"recurrent_activation: the {self.kind} kernel uses 'sigmoid', got "
                             f"{recurrent_activation!r}")
        self.use_bias = bool(use_bias)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.bidirectional = False
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        self.name = name
        self.input_size = None
        self._modules["rnn"] = None
        self.input_shape = None
        if input_shape is not None:
            if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 2:
                raise ValueError(f"input_shape: expected (steps, features) without the batch "
                                 f"axis, got {input_shape!r}")
            self.input_shape = tuple(input_shape)
            self.build(input_shape[-1])
        elif input_dim is not None:
            self.build(input_dim)

    def _check_activation(self, activation):
        if activation != "tanh":
            raise ValueError(f"activation: the {self.kind} kernel computes 'tanh', got "
                             f"{activation!r}")
        return activation

    def _options(self):
        return {}

    @property
    def built(self):
        return self.input_size is not None

    def build(self, input_size):
        """Create the weights for inputs with ``input_size`` features (once)."""
        input_size = check_build_size(input_size, "input_size", self.input_size, self.kind,
                                      "input features")
        if self.built:
            return self
        self.input_size = input_size
        self.rnn = self.module(input_size, self.units, bias=self.use_bias, batch_first=True,
                               bidirectional=self.bidirectional, dtype=self.dtype, rng=self.rng,
                               **self._options())
        self.reset_parameters()
        return self

    def reset_parameters(self):
        """Keras' initialisation: Glorot-uniform ``w_ih``, orthogonal ``w_hh``, zero biases
        (forget-gate bias 1 in an LSTM)."""
        H = self.units
        for names in self.rnn.stack.names:
            params = [self.rnn._parameters[n] for n in names]
            w_ih, w_hh = params[0], params[1]
            gh, features = w_ih.shape
            w_ih.data[...] = _glorot_uniform(self.rng, w_ih.shape, features, gh)
            w_hh.data[...] = _orthogonal(self.rng, gh, H)
            for bias in params[2:]:
                bias.data[...] = 0
            if self.module is nn.LSTM and self.use_bias:
                params[2].data[H:2 * H] = 1

    def recurrent_module(self):
        """The ``rnnfast.nn`` layer that runs this one (for ``rnnfast.generation``)."""
        if not self.built:
            raise ValueError("layer: build the layer first (call it once or give input_dim)")
        return self.rnn

    def _build_from_state(self, state_dict, prefix):
        input_weight = CELLS[self.module.cell].params[0]  # (gates * units, input_size)
        key = prefix + "rnn." + param_name(input_weight.prefix, 0)
        if not self.built and key in state_dict:
            self.build(_to_numpy(state_dict[key], key).shape[-1])

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def output_features(self):
        return self.units * self.num_directions

    def compute_output_mask(self, mask):
        return mask if self.return_sequences else None

    def forward(self, x, mask=None, initial_state=None):
        """The layer's output (with ``return_state``: ``[output, h]``, plus ``c`` for an
        LSTM); ``initial_state`` is Keras' list ``[h0]`` (``[h0, c0]`` for an LSTM) of
        ``(batch, units)`` arrays, zeros when None."""
        x = as_float_input(x, "x", self.dtype)
        if x.ndim != 3:
            raise ValueError(f"x: expected a 3-D array (batch, steps, features), got shape "
                             f"{x.shape}")
        if not self.built:
            self.build(x.shape[-1])
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected {self.input_size} features on the last axis, got "
                             f"shape {x.shape}")
        batch, steps = x.shape[:2]
        lengths, index = align_mask(mask, batch, steps)
        rows = np.arange(batch)[:, None]
        state0 = self._initial_state(initial_state, batch)
        out, state = self.rnn(x if index is None else x[rows, index], state0, lengths=lengths)
        h_n, c_n = state if self.rnn.has_cell_state else (state, None)
        if self.return_sequences:
            y = out
            if index is not None:
                y = np.empty_like(out)
                y[rows, index] = out
        else:
            y = h_n[0] if not self.bidirectional else np.concatenate([h_n[0], h_n[1]], axis=1)
        self._keep((x.shape, index, state0 is not None))
        if self.return_state:
            return [y, h_n[0]] + ([] if c_n is None else [c_n[0]])
        return y

    def _initial_state(self, initial_state, batch):
        """Keras' ``initial_state`` list as the ``rnnfast.nn`` layer's state (or None)."""
        if initial_state is None:
            return None
        count = 2 if self.rnn.has_cell_state else 1
        if self.bidirectional:
            raise ValueError("initial_state: not supported inside Bidirectional")
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != count:
            raise ValueError(f"initial_state: {type(self).__name__} takes a list of {count} "
                             f"arrays ({'[h, c]' if count == 2 else '[h]'}), got "
                             f"{type(initial_state).__name__}")
        states = []
        for i, s in enumerate(initial_state):
            s = as_float_input(s, f"initial_state[{i}]", self.dtype)
            if s.shape != (batch, self.units):
                raise ValueError(f"initial_state[{i}]: expected shape (batch, units) = "
                                 f"({batch}, {self.units}), got {s.shape}")
            states.append(s[None])
        return tuple(states) if count == 2 else states[0]

    def backward(self, dy, *dstates):
        """``dx`` of the last forward; ``dstates`` (``dh`` and, for an LSTM, ``dc``) are the
        gradients of the states it returned with ``return_state`` (None means zeros). After a
        forward with ``initial_state``: ``[dx, dh0]`` (``[dx, dh0, dc0]`` for an LSTM)."""
        shape, index, has_state0 = self._saved()
        batch, steps = shape[:2]
        D, H = self.num_directions, self.units
        has_cell = self.rnn.has_cell_state
        if len(dstates) > (2 if has_cell else 1) or (dstates and not self.return_state):
            raise ValueError(f"dstates: expected at most {2 if has_cell else 1} state gradients "
                             "and only with return_state=True")
        rows = np.arange(batch)[:, None]
        dh = dc = dseq = None
        if self.return_sequences:
            dseq = check_grad(dy, "dy", (batch, steps, D * H), self.dtype)
            if index is not None:
                dseq = dseq[rows, index]
        else:
            dy = check_grad(dy, "dy", (batch, D * H), self.dtype)
            dh = np.ascontiguousarray(dy.reshape(batch, D, H).transpose(1, 0, 2))
        for i, ds in enumerate(dstates):
            if ds is None:
                continue
            ds = check_grad(ds, f"dstates[{i}]", (batch, H), self.dtype)
            if i == 0:
                dh = ds[None].copy() if dh is None else dh + ds[None]
            else:
                dc = ds[None]
        dstate = (dh, dc) if has_cell else dh
        if has_cell and dh is None and dc is None:
            dstate = None
        dx, dstate0 = self.rnn.backward(dseq, dstate)
        if index is not None:
            out = np.empty_like(dx)
            out[rows, index] = dx
            dx = out
        if not has_state0:
            return dx
        zero = np.zeros((batch, H), self.dtype)
        parts = (dstate0 if has_cell else (dstate0,)) if dstate0 is not None else \
            (None,) * (2 if has_cell else 1)
        return [dx] + [zero.copy() if d is None else d[0] for d in parts]

    def get_config(self):
        config = {"units": self.units, "activation": self.activation,
                  "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                  "return_state": self.return_state, "input_dim": self.input_size,
                  "dtype": _dtype_name(self.dtype)}
        config.update(self._options_config())
        return config

    def _options_config(self):
        return {}

    def extra_repr(self):
        s = f"units={self.units}"
        if self.return_sequences:
            s += ", return_sequences=True"
        if self.return_state:
            s += ", return_state=True"
        return s


class SimpleRNN(_Recurrent):
    """Keras' ``SimpleRNN(units, activation="tanh")`` (``"relu"`` also)."""

    module = nn.RNN
    kind = "SimpleRNN"

    def _check_activation(self, activation):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation: the SimpleRNN kernel computes 'tanh' or 'relu', got "
                             f"{activation!r}")
        return activation

    def _options(self):
        return {"nonlinearity": self.activation}


class LSTM(_Recurrent):
    """Keras' ``LSTM(units)``; gates in PyTorch's (and Keras') order i, f, g, o."""

    module = nn.LSTM
    kind = "LSTM"


class GRU(_Recurrent):
    """Keras' ``GRU(units, reset_after=True)``; gates r, z, n."""

    module = nn.GRU
    kind = "GRU"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 return_sequences=False, return_state=False, reset_after=True, **kwargs):
        object.__setattr__(self, "reset_after", bool(reset_after))  # read by build()
        super().__init__(units, activation, recurrent_activation, use_bias, return_sequences,
                         return_state, **kwargs)

    def _options(self):
        return {"reset_after": self.reset_after}

    def _options_config(self):
        return {"reset_after": self.reset_after}


class Bidirectional(Module, KerasWeights):
    """Keras' ``Bidirectional(layer, merge_mode="concat")`` of an unbuilt SimpleRNN, LSTM or
    GRU: the forward and backward outputs side by side (``2 * units`` features)."""

    bidirectional = True

    def __init__(self, layer, merge_mode="concat", name=None, *, input_shape=None):
        super().__init__()
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"layer: expected a SimpleRNN, LSTM or GRU of rnnfast.models.layers, "
                            f"got {type(layer).__name__}")
        if merge_mode != "concat":
            raise ValueError(f"Bidirectional: merge_mode: only 'concat' is supported, got "
                             f"{merge_mode!r}")
        if layer.built:
            raise ValueError("layer: wrap the recurrent layer before it is built (before its "
                             "first call, without input_shape / input_dim)")
        if layer.return_state:
            raise ValueError("layer: return_state=True is not supported inside Bidirectional")
        layer.bidirectional = True
        self.layer = layer
        self.merge_mode = merge_mode
        self.name = name
        self.input_shape = keras_input_shape(input_shape)
        if self.input_shape is not None:
            if len(self.input_shape) != 2 or self.input_shape[-1] is None:
                raise ValueError(f"input_shape: expected (steps, features) without the batch "
                                 f"axis, got {input_shape!r}")
            self.build(self.input_shape[-1])

    @property
    def return_sequences(self):
        return self.layer.return_sequences

    def build(self, input_size):
        self.layer.build(input_size)
        return self

    def compute_output_mask(self, mask):
        return self.layer.compute_output_mask(mask)

    def recurrent_module(self):
        """The ``rnnfast.nn`` layer that runs both directions."""
        return self.layer.recurrent_module()

    def forward(self, x, mask=None):
        return self.layer.forward(x, mask=mask)

    def backward(self, dy):
        return self.layer.backward(dy)

    def get_config(self):
        layer = serialize(self.layer)
        layer["config"]["input_dim"] = None  # the wrapped layer is given unbuilt
        return {"layer": layer, "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(deserialize(config.pop("layer"), "layer"), **config)


class LayerNormalization(nn.LayerNorm, KerasWeights):
    """Keras' ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True)``:
    ``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over ``axis`` (an int or a list of the
    input's trailing axes: other axes, and Keras' ``rms_scaling``, raise ValueError), ``gamma``
    ones and ``beta`` zeros at start (``scale`` / ``center`` False: without them); built from the
    first input (or ``input_shape``). ``weight`` is Keras' gamma, ``bias`` its beta."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", *, input_shape=None,
                 dtype=np.float32, name=None):
        Module.__init__(self)
        if rms_scaling:
            raise ValueError("LayerNormalization: rms_scaling=True is not supported")
        for arg, value, default in (("beta_initializer", beta_initializer, "zeros"),
                                    ("gamma_initializer", gamma_initializer, "ones")):
            if value != default:
                raise ValueError(f"LayerNormalization: {arg}={value!r} is not supported (only "
                                 f"{default!r})")
        axes = [axis] if isinstance(axis, (int, np.integer)) else axis
        try:
            self.axis = tuple(int(a) for a in axes)
        except (TypeError, ValueError):
            raise TypeError(f"axis: expected an int or a list of ints, got {axis!r}") from None
        if not self.axis or len(set(self.axis)) != len(self.axis):
            raise ValueError(f"axis: expected distinct axes, got {axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or \
                not epsilon > 0:
            raise ValueError(f"epsilon: expected a positive float, got {epsilon!r}")
        self.eps = self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.elementwise_affine = self.center or self.scale
        self.dtype = check_dtype(dtype)
        self.normalized_shape = None
        self.name = name
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        self.input_shape = keras_input_shape(input_shape)
        if self.input_shape is not None and None not in self._trailing(self.input_shape, 1):
            self.build((None,) + self.input_shape)

    def _trailing(self, shape, lead):
        """The sizes of ``shape`` (``lead`` leading axes not in it) on ``axis``, which must be
        its last axes."""
        n = len(shape) + lead
        resolved = sorted(a + n if a < 0 else a for a in self.axis)
        if resolved != list(range(n - len(resolved), n)) or resolved[0] < 1:
            raise ValueError(f"axis: {self.axis} are not the last axes (after the batch axis) of "
                             f"inputs of {n} axes; LayerNormalization normalises trailing axes "
                             "only (axis=-1, [-2, -1], ...)")
        return tuple(shape)[len(shape) - len(resolved):]

    @property
    def built(self):
        return self.normalized_shape is not None

    def build(self, input_shape):
        """Create gamma and beta for inputs of ``input_shape`` (batch axis first)."""
        shape = self._trailing(tuple(input_shape), 0)
        if self.built:
            if shape != self.normalized_shape:
                raise ValueError(f"x: expected the sizes {self.normalized_shape} on axis "
                                 f"{self.axis}, got shape {tuple(input_shape)}")
            return self
        self.normalized_shape = tuple(int(d) for d in shape)
        if self.scale:
            self.weight = Parameter(parameter_zeros(self.normalized_shape, self.dtype) + 1)
        if self.center:
            self.bias = Parameter(parameter_zeros(self.normalized_shape, self.dtype))
        return self

    def build_for_sizes(self, sizes):
        """Build for inputs with ``sizes`` on ``axis`` (the shape of gamma and beta)."""
        ndim = max([len(sizes) + 1] + [a + 1 for a in self.axis if a >= 0])
        return self.build((None,) * (ndim - len(sizes)) + tuple(sizes))

    def _build_from_state(self, state_dict, prefix):
        for key in ("weight", "bias"):
            if not self.built and prefix + key in state_dict:
                self.build_for_sizes(_to_numpy(state_dict[prefix + key], prefix + key).shape)

    def forward(self, x):
        x = as_float_input(x, "x", self.dtype)
        self.build(x.shape)
        return super().forward(x)

    def get_config(self):
        return {"axis": list(self.axis), "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "dtype": _dtype_name(self.dtype)}

    def extra_repr(self):
        return (f"axis={self.axis}, epsilon={self.epsilon}, center={self.center}, "
                f"scale={self.scale}")


class Masking(Module):
    """Keras' ``Masking(mask_value=0.0)``: the time steps whose features all equal
    ``mask_value`` are masked: their output is zero, and in a Sequential the mask (``.mask``,
    ``(batch, steps)``, True = kept) flows on as ``Embedding(mask_zero=True)``'s does, so the
    next recurrent layer skips them (padding at the start or at the end of each row)."""

    def __init__(self, mask_value=0.0, *, input_shape=None, name=None):
        super().__init__()
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.number)):
            raise TypeError(f"mask_value: expected a number, got {type(mask_value).__name__}")
        self.mask_value = float(mask_value)
        self.input_shape = keras_input_shape(input_shape)
        self.name = name
        self.mask = None

    def forward(self, x):
        x = as_float_input(x, "x")
        if x.ndim < 2:
            raise ValueError(f"x: expected at least 2 axes (batch, ..., features), got shape "
                             f"{x.shape}")
        keep = np.any(x != x.dtype.type(self.mask_value), axis=-1, keepdims=True)
        self.mask = keep[..., 0]
        self._keep((keep, x.shape, x.dtype))
        return x * keep

    def backward(self, dy):
        keep, shape, dtype = self._saved()
        return check_grad(dy, "dy", shape, dtype) * keep

    def get_config(self):
        return {"mask_value": self.mask_value}

    def extra_repr(self):
        return f"mask_value={self.mask_value}"


# The layers a saved model may name (as "layers.<class>"); rnnfast.nn registers its own.
register_layers("layers", [Dense, Conv1D, MaxPooling1D, GlobalMaxPooling1D,
                           GlobalAveragePooling1D, Embedding, Activation, SimpleRNN, LSTM, GRU,
                           Bidirectional, LayerNormalization, Masking])


# Keras' attention layers (``[query, value(, key)]`` inputs, ``mask=[query_mask, value_mask]``,
# ``return_attention_scores``, ``use_causal_mask``), defined in ``rnnfast.nn.attention``.
from rnnfast.nn.attention import AdditiveAttention, Attention  # noqa: E402

# Keras' merge layers (``Concatenate``, ``Add``, ...), defined in ``rnnfast.models.merging``.
from rnnfast.models.merging import (  # noqa: E402
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract)

__all__ += ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract"]
