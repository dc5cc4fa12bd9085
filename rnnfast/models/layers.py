"""Keras-style layers for ``rnnfast.models.Sequential``, so a model reads like its Keras
original::

    from rnnfast.models import Sequential
    from rnnfast.models.layers import Embedding, LSTM, Dense

    model = Sequential([Embedding(1000, 100), LSTM(100), Dense(46, activation="softmax")])

- ``Input(shape, dtype=None)``: the shape of one sample, as the first item of a Sequential.
- ``Embedding(input_dim, output_dim, embeddings_initializer="uniform",
  embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False)``: with
  ``mask_zero`` the padding mask flows to the recurrent layers, which then stop at each
  sequence's last token.
- ``SimpleRNN / LSTM / GRU(units, activation="tanh", ...)`` with Keras 3's arguments and
  semantics (the table in docs/DESIGN.md lists every one, supported or not): batch-first, built
  from the first input (or ``input_shape`` / ``input_dim``); Keras' initializers (by default
  Glorot-uniform kernel, orthogonal recurrent kernel, zero bias, forget-gate bias 1 with the
  LSTM's ``unit_forget_bias``), regularizers and constraints; ``dropout`` (one mask of the
  input features per sequence, the same at every step, as Keras 3), ``go_backwards`` (the
  reversed sequence, outputs in that order), ``stateful`` (the final states of a batch start
  the next one; ``reset_states()``; every batch the same size), ``return_sequences``,
  ``return_state`` (``[output, h]`` or ``[output, h, c]``) and ``unroll`` (accepted, no effect:
  each sequence is one fused kernel call). Without ``return_sequences`` the output is each
  sequence's state at its last valid step. Keras' one bias per layer where Keras has one
  (SimpleRNN, LSTM, GRU with ``reset_after=False``); GRU with ``reset_after=True`` has Keras'
  ``(2, 3 * units)`` pair. The weights live in an ``rnnfast.nn`` layer (``.rnn``, PyTorch's
  names and layout, without ``bias_hh`` where Keras has one bias).
- ``Bidirectional(layer, merge_mode="concat", weights=None, backward_layer=None)``: both
  directions in one kernel call each; merge modes ``"concat"``, ``"sum"``, ``"mul"``,
  ``"ave"``, None (a list of the two outputs).
- ``Dense`` and ``Conv1D`` with Keras' initializers, regularizers and constraints;
  ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True)`` (Keras' defaults;
  trailing axes only) and ``Masking(mask_value=0.0)``, whose mask flows as Embedding's does.
- Every layer takes Keras' ``input_shape`` (one sample's shape, for the first layer of a
  Sequential) and ``name``; Dense, Conv1D, Embedding, LayerNormalization, the recurrent layers,
  Bidirectional, Attention and AdditiveAttention have Keras' ``get_weights()`` /
  ``set_weights()`` (Keras' order and layout).
- ``Activation(name)``, ``Dropout``, ``Flatten``, ``TimeDistributed``, ``MaxPooling1D`` (alias
  ``MaxPool1D``), ``AveragePooling1D`` (alias ``AvgPool1D``), ``GlobalMaxPooling1D`` (alias ``GlobalMaxPool1D``),
  ``GlobalAveragePooling1D`` (alias ``GlobalAvgPool1D``).
- ``Attention`` and ``AdditiveAttention`` (Keras' call: ``layer([query, value], mask=[query_mask,
  value_mask], return_attention_scores=True, use_causal_mask=False)``).

Masks: padded steps are skipped when the padding is all at the end (``padding="post"``) or
all at the start (``"pre"``, Keras' default) of a row; a pre-padded batch is shifted so that
the kernels see post-padded rows, and ``return_sequences`` outputs are shifted back (their
padded steps are zeros; Keras repeats the last output there). A fully padded row gives the
initial state (zeros, or a stateful layer's carried state) and takes no part in the gradients,
as in Keras. Padding in the middle of a row raises ValueError.
"""
import numpy as np

from rnnfast import functional as F
from rnnfast import nn
from rnnfast._checks import check_probability
from rnnfast._policy import policy_name, resolve_dtype
from rnnfast.functional.stack import CELLS, param_name
from rnnfast.models import constraints, initializers, regularizers
from rnnfast.models.keras_weights import get_keras_weights, set_keras_weights
from rnnfast.nn.activation import ReLU, activation_name, get_activation
from rnnfast.nn.conv import _data_format, _Pool
from rnnfast.nn.module import (
    KerasWeightless,
    Module,
    Parameter,
    _to_numpy,
    as_array,
    as_float_input,
    check_build_size,
    check_dtype,
    check_grad,
    check_int,
    check_layer_precision,
    keras_input_shape,
    make_rng,
    parameter_zeros,
    credit_parameter_budget,
)
from rnnfast.nn.serialization import deserialize, register_layers, serialize

__all__ = [
    "Activation",
    "AdditiveAttention",
    "AveragePooling1D",
    "AvgPool1D",
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


def _dtype_name(dtype):
    return np.dtype(dtype).name


class InputSpec:
    """The shape of one sample (no batch axis; None for a free length) and its dtype: what
    Keras' ``Input(shape, dtype, name)`` (``rnnfast.models.functional.Input``, also exported
    here as ``Input``) records. A Sequential keeps its first item's as ``input_spec``: it lets
    the model build (and ``summary()``) before it sees data."""

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
        return f"InputSpec(shape={self.shape}, dtype={self.dtype})"


class KerasWeights:
    """Keras' per-layer weights, initializers, regularizers and constraints.

    ``get_weights()`` / ``set_weights(weights)``: the arrays in Keras' order and layout (a
    Dense's ``[kernel (in, units), bias (units,)]``, ...), converted from and to the layer's
    parameters by ``rnnfast.models.keras_weights``; an unbuilt layer has none.

    A layer lists its Keras weights' roles (``"kernel"``, ``"recurrent"``, ``"bias"``,
    ``"embeddings"``) in ``get_weights()`` order (``_roles``) and the parameters holding each
    role (``_role_params``); its ``regularizers`` and ``constraints`` are keyed by role.
    ``regularization_penalty()`` is the sum of the weight penalties and of the activity
    penalty of the last forward; ``backward`` adds the weight penalties' gradients to the
    parameters' (``_add_penalty_grads``); ``apply_constraints()`` runs after each optimiser
    step (L1 and L2 are sums over elements, so they need no layout; constraints act on Keras'
    layout)."""

    regularizers = {}
    constraints = {}
    activity_regularizer = None
    _activity_penalty = 0.0

    def get_weights(self):
        return get_keras_weights(self)

    def set_weights(self, weights):
        set_keras_weights(self, weights)

    def _roles(self):
        return []

    def _role_params(self):
        return {}

    def _set_regularization(self, activity=None, **by_role):
        """``by_role``: ``kernel=(regularizer, constraint)``, ..."""
        self.regularizers = {role: regularizers.get(r, f"{role}_regularizer")
                             for role, (r, _) in by_role.items()}
        self.constraints = {role: constraints.get(c, f"{role}_constraint")
                            for role, (_, c) in by_role.items()}
        self.activity_regularizer = regularizers.get(activity, "activity_regularizer")
        self._activity_penalty = 0.0

    def regularization_penalty(self):
        total = self._activity_penalty
        if not any(r is not None for r in self.regularizers.values()):
            return total
        for role, params in self._role_params().items():
            reg = self.regularizers.get(role)
            if reg is not None:
                total += sum(reg(p.data) for p in params)
        return total

    def _add_penalty_grads(self):
        if not any(r is not None for r in self.regularizers.values()):
            return
        for role, params in self._role_params().items():
            reg = self.regularizers.get(role)
            if reg is not None:
                for p in params:
                    p.accumulate(reg.grad(p.data))

    def _activity(self, outputs):
        """Record the activity penalty of ``outputs`` (Keras divides it by the batch size)."""
        reg = self.activity_regularizer
        if reg is not None:
            self._activity_penalty = sum(reg(y) / max(len(y), 1) for y in outputs)

    def _activity_grad(self, grad, y):
        """``grad`` (of output ``y``, None for zeros) plus the activity penalty's gradient."""
        reg = self.activity_regularizer
        if reg is None:
            return grad
        extra = reg.grad(y) / y.dtype.type(max(len(y), 1))
        return extra if grad is None else grad + extra

    def apply_constraints(self):
        if all(c is None for c in self.constraints.values()):
            return
        roles = self._roles()
        if not any(self.constraints.get(role) is not None for role in roles):
            return
        weights = self.get_weights()
        for i, role in enumerate(roles):
            c = self.constraints.get(role)
            if c is not None:
                weights[i] = c(weights[i])
        self.set_weights(weights)

    def _regularization_config(self):
        config = {}
        for role, reg in self.regularizers.items():
            config[f"{self._role_names[role]}_regularizer"] = regularizers.serialize(reg)
        for role, c in self.constraints.items():
            config[f"{self._role_names[role]}_constraint"] = constraints.serialize(c)
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    _role_names = {"kernel": "kernel", "recurrent": "recurrent", "bias": "bias",
                   "embeddings": "embeddings"}


def _init(value, name):
    return initializers.get(value, name)


class Embedding(KerasWeights, nn.Embedding):
    """Keras' ``Embedding(input_dim, output_dim, embeddings_initializer="uniform",
    embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False)``;
    ``"uniform"`` is uniform in +-0.05."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 input_length=None, *, activity_regularizer=None, input_shape=None,
                 dtype=np.float32, seed=None, rng=None, name=None):
        self_init = _init(embeddings_initializer, "embeddings_initializer")
        object.__setattr__(self, "embeddings_initializer", self_init)  # read by reset
        super().__init__(input_dim, output_dim, mask_zero=mask_zero, dtype=dtype, seed=seed,
                         rng=rng)
        if input_length is not None:
            input_length = check_int(input_length, "input_length", 1)
        self.input_length = input_length
        self.input_shape = keras_input_shape(input_shape) or (input_length,)
        self.name = name
        self._set_regularization(activity_regularizer,
                                 embeddings=(embeddings_regularizer, embeddings_constraint))

    @property
    def input_dim(self):
        return self.num_embeddings

    @property
    def output_dim(self):
        return self.embedding_dim

    def reset_parameters(self):
        self.weight.data[...] = self.embeddings_initializer(self.weight.shape, self.dtype,
                                                            self.rng)

    def _roles(self):
        return ["embeddings"]

    def _role_params(self):
        return {"embeddings": [self.weight]}

    def forward(self, x):
        y = super().forward(x)
        self._activity([y])
        if self.activity_regularizer is not None:
            object.__setattr__(self, "_activity_out", y if self.training else None)
        return y

    def backward(self, dy):
        if self.activity_regularizer is not None:
            dy = self._activity_grad(as_float_input(dy, "dy", self.dtype), self._activity_out)
        dx = super().backward(dy)
        self._add_penalty_grads()
        return dx

    def backward_dropped(self, dy, dropout):
        if self.activity_regularizer is not None:  # (its gradient is on the rows before dropout)
            return self.backward(dropout.backward(dy))
        dx = super().backward_dropped(dy, dropout)
        self._add_penalty_grads()
        return dx

    def get_config(self):
        config = {"input_dim": self.input_dim, "output_dim": self.output_dim,
                  "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                  "mask_zero": self.mask_zero, "input_length": self.input_length,
                  "dtype": _dtype_name(self.dtype)}
        config.update(self._regularization_config())
        return config


class _KernelLayer(KerasWeights):
    """Dense and Conv1D: a kernel and a bias, an optional activation, Keras' initializers,
    regularizers and constraints."""

    def _set_kernel_options(self, activation, kernel_initializer, bias_initializer,
                            kernel_regularizer, bias_regularizer, activity_regularizer,
                            kernel_constraint, bias_constraint):
        self.activation = get_activation(activation)
        self.kernel_initializer = _init(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _init(bias_initializer, "bias_initializer")
        self._set_regularization(activity_regularizer,
                                 kernel=(kernel_regularizer, kernel_constraint),
                                 bias=(bias_regularizer, bias_constraint))

    def _keras_kernel_shape(self):
        return self.weight.shape[::-1]

    def reset_parameters(self):
        """Keras' initialisation (by default Glorot-uniform kernel, zero bias), drawn in
        Keras' layout (its fans) and stored transposed."""
        kernel = self.kernel_initializer(self._keras_kernel_shape(), self.dtype, self.rng)
        self.weight.data[...] = kernel.T
        if self.bias is not None:
            self.bias.data[...] = self.bias_initializer(self.bias.shape, self.dtype, self.rng)

    def _roles(self):
        return ["kernel"] + (["bias"] if self.bias is not None else [])

    def _role_params(self):
        if self.weight is None:
            return {}
        return {"kernel": [self.weight], "bias": [] if self.bias is None else [self.bias]}

    def _finish(self, y, activated=False):
        """The activation (unless the kernel ``activated`` y), the activity regularizer."""
        object.__setattr__(self, "_kernel_activated", activated)
        if not activated and self.activation is not None:
            y = self.activation.forward(y)
        self._activity([y])
        if self.activity_regularizer is not None:
            object.__setattr__(self, "_activity_out", y if self.training else None)
        return y

    def _start_backward(self, dy):
        if self.activity_regularizer is not None:
            dy = self._activity_grad(as_float_input(dy, "dy", self.dtype), self._activity_out)
        if self.activation is None or getattr(self, "_kernel_activated", False):
            return dy
        return self.activation.backward(dy)

    def _kernel_config(self):
        config = {"activation": activation_name(self.activation),
                  "use_bias": self.use_bias,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer)}
        config.update(self._regularization_config())
        return config


class Dense(_KernelLayer, nn.Linear):
    """Keras' ``Dense(units, activation=None, use_bias=True, kernel_initializer=
    "glorot_uniform", bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
    activity_regularizer=None, kernel_constraint=None, bias_constraint=None)``.

    The weight keeps PyTorch's layout ``(units, in_features)`` and name (``weight``; Keras'
    ``kernel`` is its transpose). The input size is taken from the first input (or
    ``input_dim``, ``input_shape``, ``build(in_features)``, or a loaded state_dict): until then
    the layer has no parameters, so build it before handing ``parameters()`` to an optimiser."""

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, *, input_dim=None,
                 input_shape=None, dtype=np.float32, seed=None, rng=None, name=None):
        Module.__init__(self)
        self.name = name
        self.input_shape = keras_input_shape(input_shape)
        self.out_features = self.units = check_int(units, "units", 1)
        self.in_features = None
        self.use_bias = bool(use_bias)
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        self._set_kernel_options(activation, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer, activity_regularizer,
                                 kernel_constraint, bias_constraint)
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if input_dim is not None:
            self.build(input_dim)
        if self.input_shape is not None and self.input_shape[-1] is not None:
            self.build(self.input_shape[-1])

    @property
    def built(self):
        return self.in_features is not None

    def build(self, in_features):
        """Create the parameters for inputs with ``in_features`` features (once)."""
        in_features = check_build_size(in_features, "in_features", self.in_features, "Dense",
                                       "input features")
        if self.built:
            return self
        self.in_features = in_features
        self.weight = Parameter(parameter_zeros((self.units, in_features), self.dtype))
        if self.use_bias:
            self.bias = Parameter(parameter_zeros(self.units, self.dtype))
        self.reset_parameters()
        return self

    def _build_from_state(self, state_dict, prefix):
        key = prefix + "weight"
        if not self.built and key in state_dict:
            shape = _to_numpy(state_dict[key], key).shape
            if len(shape) != 2 or shape[0] != self.units:
                raise ValueError(f"state_dict[{key!r}]: expected shape (units, in_features) = "
                                 f"({self.units}, in_features), got {shape}")
            self.build(shape[1])

    def forward(self, x):
        if not self.built:
            x = as_float_input(x, "x", self.dtype)
            if x.ndim < 1:
                raise ValueError(f"x: expected at least 1 dimension, got shape {x.shape}")
            self.build(x.shape[-1])
        return self._finish(self._affine(x))

    def backward(self, dy):
        dx = self._affine_backward(self._start_backward(dy))
        self._add_penalty_grads()
        return dx

    def get_config(self):
        config = {"units": self.units, "input_dim": self.in_features,
                  "dtype": self.dtype.name}
        config.update(self._kernel_config())
        return config

    def extra_repr(self):
        return f"units={self.units}, in_features={self.in_features}, use_bias={self.use_bias}"


class Conv1D(_KernelLayer, nn.Conv1d):
    """Keras' ``Conv1D(filters, kernel_size, strides=1, padding="valid",
    data_format="channels_last", dilation_rate=1, groups=1, activation=None, use_bias=True,
    kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
    bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
    bias_constraint=None)``: channels last, lazily built; padding ``"valid"``, ``"same"`` or
    ``"causal"``. The weight keeps PyTorch's layout and name (``weight``; Keras' ``kernel``
    ``(kernel_size, in_channels // groups, filters)`` is its ``transpose(2, 1, 0)``)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 data_format="channels_last", dilation_rate=1, groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, *, input_shape=None,
                 dtype=None, seed=None, rng=None, name=None):
        Module.__init__(self)
        self.name = name
        self.out_channels = self.filters = check_int(filters, "filters", 1)
        # a dtype policy ("mixed_bfloat16": float32 weights, bfloat16 products), None: global
        dtype, precision = resolve_dtype(dtype)
        self._configure(kernel_size, strides, padding, dilation_rate, groups,
                        _data_format(data_format), dtype, seed, rng, precision)
        if not isinstance(self.padding, str):
            raise ValueError(f"padding: expected 'valid', 'same' or 'causal', got {padding!r}")
        self.use_bias = bool(use_bias)
        self._set_kernel_options(activation, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer, activity_regularizer,
                                 kernel_constraint, bias_constraint)
        self.in_channels = None
        self.input_shape = None
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if input_shape is not None:
            if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 2:
                raise ValueError(f"input_shape: expected (steps, channels) without the batch "
                                 f"axis, got {input_shape!r}")
            self.input_shape = tuple(input_shape)
            self.build(input_shape[-1] if self.channels_last else input_shape[0])

    def forward(self, x):
        # a ReLU runs in the kernel's last pass over the output (and its gradient in the
        # backward's first)
        fused = type(self.activation) is ReLU
        y = self._convolve(x, allow_unbatched=False, activation="relu" if fused else None)
        return self._finish(y, activated=fused)

    def backward(self, dy):
        dx = self._convolve_backward(self._start_backward(dy))
        self._add_penalty_grads()
        return dx

    def fuses_pool(self, pool):
        """Whether ``forward_pooled(x, pool)`` can run this layer and the MaxPooling1D ``pool``
        that takes its output in one call: what ``pools_into`` asks, known before the forward
        (the activation None or the kernel's ReLU, no activity regularizer, one layout)."""
        return (isinstance(pool, MaxPooling1D) and self.activity_regularizer is None
                and (self.activation is None or type(self.activation) is ReLU)
                and pool.channels_last == self.channels_last)

    def forward_pooled(self, x, pool):
        """``pool.forward(self.forward(x))`` (``fuses_pool(pool)``) in one kernel call that never
        stores this layer's output (``F.conv1d_max_pool1d_forward``); both layers keep what
        ``backward_through_pool`` needs (``backward`` alone refuses a ReLU's: its output is
        gone)."""
        relu = type(self.activation) is ReLU
        x3, _ = self._input(x, allow_unbatched=False)
        b = None if self.bias is None else self.bias.data
        py, ctx, pool_ctx = F.conv1d_max_pool1d_forward(
            x3, self.weight.data, b, **self._conv_options(), activation="relu" if relu else None,
            pool_size=pool.kernel_size, pool_stride=pool.stride, pool_padding=pool.padding)
        shape = None if pool_ctx is None else pool_ctx.input_shape
        self._keep((ctx, shape, False))
        self._finish(py, activated=relu)  # (records the ReLU as the kernel's; nothing else runs)
        pool._keep((pool_ctx, py.shape, py.dtype, False))
        return py

    def pools_into(self, pool):
        """Whether ``backward_through_pool(pool, dy)`` can differentiate this layer and the
        MaxPooling1D ``pool`` that took its output in the last training forward: the activation
        (if any) is the kernel's ReLU and there is no activity regularizer."""
        return (isinstance(pool, MaxPooling1D) and self.activity_regularizer is None
                and (self.activation is None or getattr(self, "_kernel_activated", False))
                and pool.channels_last == self.channels_last
                and self._cache is not None and pool._cache is not None)

    def backward_through_pool(self, pool, dy):
        """``self.backward(pool.backward(dy))`` in one kernel call: only the winner of each
        pooling window has a gradient, so the products run over those steps alone
        (``F.conv1d_backward``'s ``pool``)."""
        pool_ctx, pool_shape, pool_dtype, _ = pool._saved()
        ctx = self._saved()[0]
        grads = self._accumulate(F.conv1d_backward(
            ctx, check_grad(dy, "dy", pool_shape, pool_dtype), pool=pool_ctx))
        self._add_penalty_grads()
        return grads["x"]

    def get_config(self):
        config = {"filters": self.filters, "kernel_size": self.kernel_size,
                  "strides": self.stride, "padding": self.padding,
                  "data_format": "channels_last" if self.channels_last else "channels_first",
                  "dilation_rate": self.dilation, "groups": self.groups,
                  "input_shape": None if self.input_shape is None else list(self.input_shape),
                  "dtype": policy_name(self.dtype, self.precision)}
        config.update(self._kernel_config())
        return config

    def extra_repr(self):
        s = (f"filters={self.filters}, kernel_size={self.kernel_size}, strides={self.stride}, "
             f"padding={self.padding!r}")
        if self.dilation != 1:
            s += f", dilation_rate={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.channels_last:
            s += ", data_format='channels_first'"
        return s


class MaxPooling1D(KerasWeightless, nn.MaxPool1d):
    """Keras' ``MaxPooling1D(pool_size=2, strides=None, padding="valid")``, channels last."""

    allow_unbatched = False

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format="channels_last",
                 *, name=None, input_shape=None):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding: expected 'valid' or 'same', got {padding!r}")
        super().__init__(pool_size, strides, padding, channels_last=_data_format(data_format))
        self.pool_size = self.kernel_size
        self.name = name
        self.input_shape = keras_input_shape(input_shape)

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.stride, "padding": self.padding,
                "data_format": "channels_last" if self.channels_last else "channels_first"}

    def extra_repr(self):
        s = f"pool_size={self.pool_size}, strides={self.stride}, padding={self.padding!r}"
        return s + ("" if self.channels_last else ", data_format='channels_first'")


class AveragePooling1D(KerasWeightless, _Pool):
    """Keras' ``AveragePooling1D(pool_size=2, strides=None, padding="valid",
    data_format="channels_last")``: the mean of each window of ``pool_size`` steps, every
    ``strides`` (``pool_size`` by default) steps. ``padding="same"`` gives ``ceil(length /
    strides)`` outputs with Keras 3's padding (on its torch backend): ``(pool_size - 1)`` steps
    in all with stride 1, else what the last window needs, split with the extra step at the
    end; padded steps are left out of the mean when both sides get as many, and repeat the edge
    step otherwise (as Keras 3 on torch computes it). A padding mask cannot reach it."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format="channels_last",
                 *, name=None, input_shape=None):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ValueError(f"padding: expected 'valid' or 'same', got {padding!r}")
        self.pool_size = check_int(pool_size, "pool_size", 1)
        self.strides = self.pool_size if strides is None else check_int(strides, "strides", 1)
        self.padding = padding
        self.channels_last = _data_format(data_format)
        self.name = name
        self.input_shape = keras_input_shape(input_shape)

    def _windows(self, length):
        """``(index, weight)``, each ``(outputs, pool_size)``: the input step each window term
        reads and its weight in the mean."""
        k, s = self.pool_size, self.strides
        if self.padding == "valid":
            if length < k:
                raise ValueError(f"x: {length} steps are fewer than pool_size={k} "
                                 "(padding='valid')")
            left = right = 0
            outputs = (length - k) // s + 1
        else:
            total = k - 1 if s == 1 else max(0, ((length + s - 1) // s - 1) * s + k - length)
            left, right = total // 2, total - total // 2
            outputs = (length + left + right - k) // s + 1
        index = np.arange(outputs)[:, None] * s - left + np.arange(k)[None, :]
        if left == right:  # padded steps left out of the mean
            inside = (index >= 0) & (index < length)
            weight = inside / inside.sum(axis=1, keepdims=True)
        else:  # the edge step repeated into the padding
            weight = np.full(index.shape, 1.0 / k)
        return np.clip(index, 0, length - 1), weight

    def _apply(self, x):
        xc = x if self.channels_last else x.transpose(0, 2, 1)
        index, weight = self._windows(xc.shape[1])
        weight = weight.astype(x.dtype)
        y = np.zeros((xc.shape[0], index.shape[0], xc.shape[2]), x.dtype)
        for j in range(self.pool_size):
            y += weight[None, :, j, None] * xc[:, index[:, j], :]
        return (y if self.channels_last else y.transpose(0, 2, 1)), (xc.shape, index, weight)

    def _grad(self, ctx, dy):
        shape, index, weight = ctx
        dyc = dy if self.channels_last else dy.transpose(0, 2, 1)
        dx = np.zeros(shape, dy.dtype)
        for j in range(self.pool_size):
            np.add.at(dx, (slice(None), index[:, j]), weight[None, :, j, None] * dyc)
        return {"x": dx if self.channels_last else dx.transpose(0, 2, 1)}

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "data_format": "channels_last" if self.channels_last else "channels_first"}

    def extra_repr(self):
        s = f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"
        return s + ("" if self.channels_last else ", data_format='channels_first'")


class _GlobalPool(KerasWeightless, _Pool):
    def __init__(self, data_format="channels_last", keepdims=False, *, name=None,
                 input_shape=None):
        super().__init__()
        self.channels_last = _data_format(data_format)
        self.keepdims = bool(keepdims)
        self.name = name
        self.input_shape = keras_input_shape(input_shape)

    def _apply(self, x):
        return self._forward_op(x, channels_last=self.channels_last, training=self.training)

    def _finish(self, y):
        if not self.keepdims:
            return y
        return y[:, None, :] if self.channels_last else y[:, :, None]

    def _unfinish(self, shape):
        if not self.keepdims:
            return shape
        return (shape[0], 1, shape[1]) if self.channels_last else (shape[0], shape[1], 1)

    def get_config(self):
        return {"data_format": "channels_last" if self.channels_last else "channels_first",
                "keepdims": self.keepdims}

    def extra_repr(self):
        s = "" if self.channels_last else "data_format='channels_first'"
        return s + (", keepdims=True" if self.keepdims else "")


class GlobalMaxPooling1D(_GlobalPool):
    """Keras' ``GlobalMaxPooling1D()``: the maximum over time, ``(B, C)``."""

    def _forward_op(self, x, **kw):
        return F.global_max_pool1d_forward(x, **kw)

    def _grad(self, ctx, dy):
        return F.global_max_pool1d_backward(ctx, dy)


class GlobalAveragePooling1D(_GlobalPool):
    """Keras' ``GlobalAveragePooling1D()``: the mean over time, ``(B, C)``."""

    def _forward_op(self, x, **kw):
        return F.global_avg_pool1d_forward(x, **kw)

    def _grad(self, ctx, dy):
        return F.global_avg_pool1d_backward(ctx, dy)


# Keras' aliases
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D


class Activation(KerasWeightless, Module):
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


class _OneBiasStack:
    """A ``RecurrentStack`` whose ``b_hh`` parameters (``dropped``) do not exist: the kernels
    get None for them, and ``backward`` returns no gradient for them."""

    def __init__(self, stack, dropped):
        self._stack = stack
        self.dropped = frozenset(dropped)

    def __getattr__(self, name):
        return getattr(self.__dict__["_stack"], name)

    def backward(self, ctx, dy=None, dh_n=None, dc_n=None):
        dx, dh0, dc0, grads = self._stack.backward(ctx, dy, dh_n, dc_n)
        return dx, dh0, dc0, {k: g for k, g in grads.items() if k not in self.dropped}


class _KerasCore:
    """The ``rnnfast.nn`` RNN/LSTM/GRU inside a Keras-style recurrent layer. With
    ``single_bias`` (Keras' SimpleRNN, LSTM and GRU(reset_after=False)) it has Keras' one bias
    per layer and direction: ``bias_ih_l*`` only, the kernels get no ``b_hh``, so the bias
    learns as Keras' does (two summed biases would learn twice as fast). A state_dict saved
    with the two biases (older model files) loads with them summed (the same function)."""

    def _init_core(self, single_bias):
        self.single_bias = bool(single_bias) and self.bias
        if self.single_bias:
            dropped = [n for names in self.stack.names for n in names
                       if n.startswith("bias_hh")]
            for name in dropped:
                del self._parameters[name]  # their elements were credited (_credit)
            self.stack = _OneBiasStack(self.stack, dropped)

    def weight_arrays(self):
        return {name: (self._parameters[name].data if name in self._parameters else None)
                for name in self.stack.shapes}

    def _upgrade_state_dict(self, state_dict, prefix):
        if not self.single_bias or not any(prefix + n in state_dict
                                           for n in self.stack.dropped):
            return state_dict
        state_dict = dict(state_dict)
        for name in sorted(self.stack.dropped):
            if prefix + name not in state_dict:
                continue
            b_hh = _to_numpy(state_dict.pop(prefix + name), prefix + name)
            key = prefix + name.replace("bias_hh", "bias_ih", 1)
            if key in state_dict:
                b_ih = _to_numpy(state_dict[key], key)
                if b_ih.shape == b_hh.shape:
                    state_dict[key] = b_ih + b_hh
        return state_dict


def _credit(cell, args, kwargs, single_bias):
    """Credit the ``b_hh`` a single-bias core creates and drops to the parameter budget."""
    if single_bias and kwargs.get("bias", True):
        hidden = args[1]
        directions = 2 if kwargs.get("bidirectional") else 1
        credit_parameter_budget(directions * CELLS[cell].gates * hidden)


class _RNNCore(_KerasCore, nn.RNN):
    def __init__(self, *args, single_bias=True, **kwargs):
        _credit(self.cell, args, kwargs, single_bias)
        super().__init__(*args, **kwargs)
        self._init_core(single_bias)


class _LSTMCore(_KerasCore, nn.LSTM):
    def __init__(self, *args, single_bias=True, **kwargs):
        _credit(self.cell, args, kwargs, single_bias)
        super().__init__(*args, **kwargs)
        self._init_core(single_bias)


class _GRUCore(_KerasCore, nn.GRU):
    def __init__(self, *args, single_bias=True, **kwargs):
        _credit(self.cell, args, kwargs, single_bias)
        super().__init__(*args, **kwargs)
        self._init_core(single_bias)


class _Recurrent(KerasWeights, Module):
    """Keras' recurrent layer interface over an ``rnnfast.nn`` layer (``.rnn``), run through
    its ``RecurrentStack`` (``rnnfast.functional.stack``)."""

    core = None  # the rnnfast.nn subclass holding the weights
    kind = ""
    keras_recurrent = True  # how rnnfast.models.keras_weights recognises the layer
    _defaults = {}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 *, kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto",
                 input_shape=None, input_dim=None, dtype=None, rng=None, name=None,
                 zoneout=0.0, **unsupported):
        super().__init__()
        if unsupported:
            raise TypeError(f"{self.kind}: argument(s) {', '.join(sorted(unsupported))} "
                            "not supported")
        self.units = check_int(units, "units", 1)
        self.activation = self._check_activation(activation)
        if self.kind != "SimpleRNN" and recurrent_activation != "sigmoid":
            raise ValueError(f"recurrent_activation: the {self.kind} kernel uses 'sigmoid', got "
                             f"{recurrent_activation!r}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = _init(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = _init(bias_initializer, "bias_initializer")
        self._set_regularization(activity_regularizer,
                                 kernel=(kernel_regularizer, kernel_constraint),
                                 recurrent=(recurrent_regularizer, recurrent_constraint),
                                 bias=(bias_regularizer, bias_constraint))
        self.dropout = check_probability(dropout, "dropout")
        if self.dropout >= 1:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        # Keras' recurrent dropout: in training one mask per gate (0 or 1 / (1 - p), fixed over
        # the steps of a call) on h in that gate's recurrent product; nothing at inference
        self.recurrent_dropout = check_probability(recurrent_dropout, "recurrent_dropout")
        if self.recurrent_dropout >= 1:
            raise ValueError(f"recurrent_dropout: expected a probability in [0, 1), got "
                             f"{recurrent_dropout!r}")
        if self.dropout and self.recurrent_dropout and self.kind != "SimpleRNN":
            raise ValueError(f"{self.kind}: dropout={self.dropout} with recurrent_dropout="
                             f"{self.recurrent_dropout} is not supported: Keras then draws one "
                             "input mask per gate, rnnfast one per sequence; use one of them")
        # zoneout (not a Keras argument; Krueger et al., as rnnfast.nn's): in training each unit
        # of the state keeps its previous value with this probability, at inference the expectation
        self.zoneout = check_probability(zoneout, "zoneout")
        if self.zoneout >= 1:
            raise ValueError(f"zoneout: expected a probability in [0, 1), got {zoneout!r}")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)  # accepted, no effect: every sequence is one fused kernel call
        self.states = None
        self.bidirectional = False
        # a dtype policy ("mixed_bfloat16": float32 weights, bfloat16 products), None: global
        self.dtype, precision = resolve_dtype(dtype)
        self.seed = seed
        self.rng = make_rng(seed, rng)
        self.name = name
        self.input_size = None
        self._modules["rnn"] = None
        self.precision = precision
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
    def single_bias(self):
        """Keras' one bias vector per direction (all but GRU(reset_after=True))."""
        return True

    @property
    def built(self):
        return self.input_size is not None

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def build(self, input_size):
        """Create the weights for inputs with ``input_size`` features (once)."""
        input_size = check_build_size(input_size, "input_size", self.input_size, self.kind,
                                      "input features")
        if self.built:
            return self
        self.input_size = input_size
        self.rnn = self.core(input_size, self.units, bias=self.use_bias, batch_first=True,
                             bidirectional=self.bidirectional, dtype=self.dtype, rng=self.rng,
                             single_bias=self.single_bias, precision=self.precision,
                             zoneout=self.zoneout, recurrent_dropout=self.recurrent_dropout,
                             **self._options())
        self.reset_parameters()
        return self

    def _keras_bias(self, gh):
        return self.bias_initializer((gh,), self.dtype, self.rng)

    def reset_parameters(self):
        """Keras' initialisation, drawn in Keras' layout (by default Glorot-uniform kernel,
        orthogonal recurrent kernel, zero bias; forget-gate bias 1 in an LSTM with
        ``unit_forget_bias``)."""
        H, I = self.units, self.input_size
        GH = CELLS[self.core.cell].gates * H
        weights = []
        for _ in range(self.num_directions):
            weights += [self.kernel_initializer((I, GH), self.dtype, self.rng),
                        self.recurrent_initializer((H, GH), self.dtype, self.rng)]
            if self.use_bias:
                weights.append(self._keras_bias(GH))
        set_keras_weights(self, weights)

    @property
    def precision(self):
        """``"float32"`` or ``"bfloat16"`` (the products; ``dtype="mixed_bfloat16"``)."""
        return self._precision if self.rnn is None else self.rnn.precision

    @precision.setter
    def precision(self, value):
        self._precision = check_layer_precision(value, self.dtype)
        if self.rnn is not None:
            self.rnn.precision = value

    def recurrent_module(self):
        """The ``rnnfast.nn`` layer that runs this one (for ``rnnfast.generation``)."""
        if not self.built:
            raise ValueError("layer: build the layer first (call it once or give input_dim)")
        return self.rnn

    def _build_from_state(self, state_dict, prefix):
        input_weight = CELLS[self.core.cell].params[0]  # (gates * units, input_size)
        key = prefix + "rnn." + param_name(input_weight.prefix, 0)
        if not self.built and key in state_dict:
            self.build(_to_numpy(state_dict[key], key).shape[-1])

    # Keras weights ------------------------------------------------------------------------
    def _roles(self):
        if not self.built:
            return []
        return (["kernel", "recurrent"] + (["bias"] if self.use_bias else [])) * \
            self.num_directions

    def _role_params(self):
        if not self.built:
            return {}
        p = self.rnn._parameters
        roles = {"kernel": [], "recurrent": [], "bias": []}
        for names in self.rnn.stack.names:
            roles["kernel"].append(p[names[0]])
            roles["recurrent"].append(p[names[1]])
            roles["bias"] += [p[n] for n in names[2:] if n in p]
        return roles

    def compute_output_mask(self, mask):
        return mask if self.return_sequences else None

    # states -------------------------------------------------------------------------------
    def reset_states(self):
        """Zero the states a ``stateful`` layer carries (the next batch may have another
        size)."""
        self.states = None

    def _start_state(self, batch):
        """``(h0, c0)`` (``(D, batch, H)`` arrays or None) for the next call."""
        if not self.stateful or self.states is None:
            return None, None
        h0, c0 = self.states
        if h0.shape[1] != batch:
            raise ValueError(f"{self.kind}: stateful=True carries the states of {h0.shape[1]} "
                             f"sequences from batch to batch, got a batch of {batch}; give "
                             "every batch that size (as Keras requires) or call reset_states()")
        return h0, c0

    # forward / backward -------------------------------------------------------------------
    def _run(self, x, mask=None, initial_state=None):
        """The layer on ``x`` ``(batch, steps, features)``: ``(y, h_n, c_n)`` with ``y`` the
        sequence ``(batch, steps, D * H)`` or the last state ``(batch, D * H)``, ``h_n`` and
        ``c_n`` ``(D, batch, H)`` (``c_n`` None without a cell state). ``initial_state``:
        Keras' list ``[h0]`` (``[h0, c0]`` for an LSTM) of ``(batch, units)`` arrays."""
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
        if mask is not None:
            mask = as_array(mask).astype(bool, copy=False)
        if self.go_backwards:  # Keras: the reversed sequence in, its outputs in that order
            x = x[:, ::-1]
            mask = mask[:, ::-1] if mask is not None and mask.ndim == 2 else mask
        lengths, index = align_mask(mask, batch, steps)
        empty = None if mask is None else ~mask.any(axis=1)
        empty = empty if empty is not None and empty.any() else None
        if initial_state is None:
            h0, c0 = self._start_state(batch)
        else:
            h0, c0 = self._initial_state(initial_state, batch)
        rows = None if index is None else np.arange(batch)[:, None]
        xin = x if index is None else x[rows, index]
        drop = None
        if self.training and self.dropout > 0:  # one mask per sequence, as Keras
            keep = self.rng.random((batch, 1, x.shape[-1])) >= self.dropout
            drop = keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout)
            xin = xin * drop
        seeds = None
        if self.training and (self.zoneout > 0 or self.recurrent_dropout > 0):
            # one seed per layer and direction, as nn's
            seeds = [int(v) for v in self.rng.integers(0, 2 ** 63 - 1,
                                                       size=len(self.rnn.stack.names))]
        rnn = self.rnn
        out, h_n, c_n, ctx = rnn.stack.forward(
            rnn.weight_arrays(), np.ascontiguousarray(xin), h0, c0, lengths=lengths,
            batch_first=True, training=self.training, seeds=seeds)
        if empty is not None:  # Keras: a fully masked row keeps its initial state
            out[empty] = 0
            for state, start in ((h_n, h0), (c_n, c0)):
                if state is not None:
                    state[:, empty] = 0 if start is None else start[:, empty]
        if self.return_sequences:
            y = out
            if index is not None:
                y = np.empty_like(out)
                y[rows, index] = out
        else:
            y = h_n[0] if not self.bidirectional else np.concatenate([h_n[0], h_n[1]], axis=1)
        if self.stateful:
            self.states = (h_n.copy(), None if c_n is None else c_n.copy())
        self._keep((x.shape, index, empty, drop, ctx, initial_state is not None))
        return y, h_n, c_n

    def _initial_state(self, initial_state, batch):
        """Keras' ``initial_state`` list as ``(h0, c0)`` (``(1, batch, H)`` arrays, ``c0``
        None without a cell state)."""
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
            states.append(np.ascontiguousarray(s[None]))
        return (states[0], states[1] if count == 2 else None)

    def _run_backward(self, dy, dh, dc, with_state0=False):
        """``dx`` of the last ``_run`` from the gradients of ``y`` and of ``h_n``, ``c_n``
        (``(D, batch, H)`` or None); with ``with_state0``, ``(dx, dh0, dc0)``."""
        shape, index, empty, drop, ctx, _ = self._saved()
        batch, steps = shape[:2]
        D, H = self.num_directions, self.units
        rows = None if index is None else np.arange(batch)[:, None]
        dseq = None
        if self.return_sequences:
            dseq = check_grad(dy, "dy", (batch, steps, D * H), self.dtype)
            if index is not None:
                dseq = dseq[rows, index]
        else:
            dy = check_grad(dy, "dy", (batch, D * H), self.dtype)
            last = np.ascontiguousarray(dy.reshape(batch, D, H).transpose(1, 0, 2))
            dh = last if dh is None else dh + last
        if empty is not None:
            if dseq is not None:
                dseq = dseq.copy()
                dseq[empty] = 0
            dh = None if dh is None else np.where(empty[None, :, None], 0, dh).astype(self.dtype)
            dc = None if dc is None else np.where(empty[None, :, None], 0, dc).astype(self.dtype)
        rnn = self.rnn
        dx, dh0, dc0, grads = rnn.stack.backward(ctx, dseq, dh, dc)
        params = rnn._parameters
        for name, grad in grads.items():  # (a new array of the kernel's per parameter)
            params[name].accumulate(grad, owned=True)
        self._add_penalty_grads()
        if drop is not None:
            dx = dx * drop
        if index is not None:
            out = np.empty_like(dx)
            out[rows, index] = dx
            dx = out
        dx = dx[:, ::-1] if self.go_backwards else dx
        return (dx, dh0, dc0) if with_state0 else dx

    def _outputs(self, y, h_n, c_n):
        """The Keras outputs: ``y``, or ``[y, h(, c)]`` with ``return_state``."""
        if not self.return_state:
            return y
        return [y, h_n[0]] + ([] if c_n is None else [c_n[0]])

    def forward(self, x, mask=None, initial_state=None):
        """The layer's output (with ``return_state``: ``[output, h]``, plus ``c`` for an
        LSTM); ``initial_state`` is Keras' list ``[h0]`` (``[h0, c0]`` for an LSTM) of
        ``(batch, units)`` arrays, zeros when None."""
        y, h_n, c_n = self._run(x, mask, initial_state)
        outputs = self._outputs(y, h_n, c_n)
        self._activity(outputs if self.return_state else [outputs])
        if self.activity_regularizer is not None:
            object.__setattr__(self, "_activity_out", outputs if self.training else None)
        return outputs

    def backward(self, dy, *dstates):
        """``dx`` of the last forward; ``dstates`` (``dh`` and, for an LSTM, ``dc``) are the
        gradients of the states it returned with ``return_state`` (None means zeros). After a
        forward with ``initial_state``: ``[dx, dh0]`` (``[dx, dh0, dc0]`` for an LSTM)."""
        has_cell = self.rnn.has_cell_state
        if len(dstates) > (2 if has_cell else 1) or (dstates and not self.return_state):
            raise ValueError(f"dstates: expected at most {2 if has_cell else 1} state gradients "
                             "and only with return_state=True")
        batch, H = self._saved()[0][0], self.units
        grads = [dy] + list(dstates)
        if self.activity_regularizer is not None:
            outs = self._activity_out if self.return_state else [self._activity_out]
            grads += [None] * (len(outs) - len(grads))
            grads = [self._activity_grad(g, y) for g, y in zip(grads, outs)]
        dy, dstates = grads[0], grads[1:]
        dh = dc = None
        for i, ds in enumerate(dstates):
            if ds is None:
                continue
            ds = check_grad(ds, f"dstates[{i}]", (batch, H), self.dtype)[None]
            if i == 0:
                dh = ds
            else:
                dc = ds
        if not self._saved()[-1]:
            return self._run_backward(dy, dh, dc)
        dx, dh0, dc0 = self._run_backward(dy, dh, dc, with_state0=True)
        zero = np.zeros((batch, H), self.dtype)
        parts = (dh0, dc0) if has_cell else (dh0,)
        return [dx] + [zero.copy() if d is None else d[0] for d in parts]

    def get_config(self):
        config = {"units": self.units, "activation": self.activation,
                  "use_bias": self.use_bias,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer),
                  "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                  "zoneout": self.zoneout, "seed": self.seed,
                  "return_sequences": self.return_sequences,
                  "return_state": self.return_state, "go_backwards": self.go_backwards,
                  "stateful": self.stateful, "unroll": self.unroll,
                  "input_dim": self.input_size, "dtype": policy_name(self.dtype, self.precision)}
        config.update(self._regularization_config())
        config.update(self._options_config())
        return config

    def _options_config(self):
        return {}

    def extra_repr(self):
        s = f"units={self.units}"
        for flag in ("return_sequences", "return_state", "go_backwards", "stateful"):
            if getattr(self, flag):
                s += f", {flag}=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        return s


class SimpleRNN(_Recurrent):
    """Keras' ``SimpleRNN(units, activation="tanh", use_bias=True, ...)`` (activation
    ``"relu"`` also).

    Keyword arguments (Keras 3's, same defaults): ``kernel_initializer="glorot_uniform"``,
    ``recurrent_initializer="orthogonal"``, ``bias_initializer="zeros"``,
    ``kernel_regularizer`` / ``recurrent_regularizer`` / ``bias_regularizer`` /
    ``activity_regularizer`` (None), ``kernel_constraint`` / ``recurrent_constraint`` /
    ``bias_constraint`` (None), ``dropout=0.0``, ``recurrent_dropout=0.0`` (Keras' masks),
    ``seed=None``, ``return_sequences=False``, ``return_state=False``, ``go_backwards=False``,
    ``stateful=False``, ``unroll=False`` and ``use_cudnn="auto"`` (no effect),
    ``input_shape``, ``input_dim``, ``dtype`` (None: the global policy), ``name``, and
    rnnfast's ``zoneout=0.0`` (``rnnfast.nn``'s); any other raises TypeError naming the layer.
    Methods beyond a layer's: ``reset_states()``, ``get_weights()`` / ``set_weights()``,
    ``regularization_penalty()``."""

    core = _RNNCore
    kind = "SimpleRNN"

    def __init__(self, units, activation="tanh", use_bias=True, **kwargs):
        super().__init__(units, activation, "sigmoid", use_bias, **kwargs)

    def _check_activation(self, activation):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation: the SimpleRNN kernel computes 'tanh' or 'relu', got "
                             f"{activation!r}")
        return activation

    def _options(self):
        return {"nonlinearity": self.activation}


class LSTM(_Recurrent):
    """Keras' ``LSTM(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    unit_forget_bias=True, ...)``; gates in PyTorch's (and Keras') order i, f, g, o.

    Keyword arguments and methods: ``SimpleRNN``'s."""

    core = _LSTMCore
    kind = "LSTM"

    def __init__(self, units, *args, unit_forget_bias=True, **kwargs):
        object.__setattr__(self, "unit_forget_bias", bool(unit_forget_bias))  # read by build()
        super().__init__(units, *args, **kwargs)

    def _keras_bias(self, gh):
        if not self.unit_forget_bias:
            return super()._keras_bias(gh)
        H = gh // 4
        init = self.bias_initializer
        return np.concatenate([init((H,), self.dtype, self.rng), np.ones(H, self.dtype),
                               init((2 * H,), self.dtype, self.rng)])

    def _options_config(self):
        return {"unit_forget_bias": self.unit_forget_bias}


class GRU(_Recurrent):
    """Keras' ``GRU(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    reset_after=True, ...)``; gates r, z, n. With ``reset_after=True`` the
    bias is Keras' ``(2, 3 * units)`` pair (input and recurrent biases), else one vector.

    Keyword arguments and methods: ``SimpleRNN``'s."""

    core = _GRUCore
    kind = "GRU"

    def __init__(self, units, *args, reset_after=True, **kwargs):
        object.__setattr__(self, "reset_after", bool(reset_after))  # read by build()
        super().__init__(units, *args, **kwargs)

    @property
    def single_bias(self):
        return not self.reset_after

    def _keras_bias(self, gh):
        if not self.reset_after:
            return super()._keras_bias(gh)
        return self.bias_initializer((2, gh), self.dtype, self.rng)

    def _options(self):
        return {"reset_after": self.reset_after}

    def _options_config(self):
        return {"reset_after": self.reset_after}


MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Module):
    """Keras' ``Bidirectional(layer, merge_mode="concat", backward_layer=None)`` of an unbuilt
    SimpleRNN, LSTM or GRU: both directions run in one kernel call each. ``merge_mode``:
    ``"concat"`` (``2 * units`` features), ``"sum"``, ``"mul"``, ``"ave"``, or None (the two
    outputs as a list ``[forward, backward]``). With ``return_state`` the layer returns
    ``[output(s)..., forward states..., backward states...]`` as Keras does.
    ``backward_layer`` may be given if it is the same layer type and configuration with
    ``go_backwards=True`` (one kernel runs both directions)."""

    bidirectional = True
    keras_wrapper = True  # its weights are its layer's (rnnfast.models.keras_weights)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, *,
                 input_shape=None, name=None, **unsupported):
        super().__init__()
        if unsupported:
            raise TypeError(f"Bidirectional: argument(s) {', '.join(sorted(unsupported))} not "
                            "supported")
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"layer: expected a SimpleRNN, LSTM or GRU of rnnfast.models.layers, "
                            f"got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode: expected one of {list(MERGE_MODES)}, "
                             f"got {merge_mode!r}")
        if layer.built:
            raise ValueError("layer: wrap the recurrent layer before it is built (before its "
                             "first call, without input_shape / input_dim)")
        if layer.go_backwards:
            raise ValueError("Bidirectional: layer: go_backwards=True is not supported for the "
                             "forward layer (the reverse direction is the backward layer's)")
        if backward_layer is not None:
            self._check_backward_layer(layer, backward_layer)
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
        if weights is not None:
            self.set_weights(weights)

    @staticmethod
    def _check_backward_layer(layer, backward):
        if type(backward) is not type(layer) or backward.built:
            raise ValueError(f"Bidirectional: backward_layer: expected an unbuilt "
                             f"{type(layer).__name__} like the forward layer, got "
                             f"{type(backward).__name__}")
        if not backward.go_backwards:
            raise ValueError("Bidirectional: backward_layer: expected go_backwards=True (as "
                             "Keras requires)")
        mine, theirs = layer.get_config(), backward.get_config()
        for key in sorted(set(mine) | set(theirs)):
            if key not in ("go_backwards", "seed") and mine.get(key) != theirs.get(key):
                raise ValueError(f"Bidirectional: backward_layer: {key}={theirs.get(key)!r} "
                                 f"differs from the forward layer's {mine.get(key)!r}; one "
                                 "kernel runs both directions, so only go_backwards may differ")

    @property
    def return_sequences(self):
        return self.layer.return_sequences

    @property
    def return_state(self):
        return self.layer.return_state

    @property
    def built(self):
        return self.layer.built

    def build(self, input_size):
        self.layer.build(input_size)
        return self

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights):
        self.layer.set_weights(weights)

    def reset_states(self):
        self.layer.reset_states()

    def compute_output_mask(self, mask):
        return self.layer.compute_output_mask(mask)

    def recurrent_module(self):
        """The ``rnnfast.nn`` layer that runs both directions."""
        return self.layer.recurrent_module()

    def _merge(self, y):
        H = self.layer.units
        f, b = y[..., :H], y[..., H:]
        mode = self.merge_mode
        if mode == "concat":
            return y
        if mode is None:
            return [f, b]
        return f + b if mode == "sum" else f * b if mode == "mul" else (f + b) / 2

    def _unmerge(self, dy):
        """The gradient of the concatenated output from that of the merged one(s)."""
        layer, mode = self.layer, self.merge_mode
        y = self._saved()
        H = layer.units
        if mode == "concat":
            return dy
        if mode is None:
            if not isinstance(dy, (list, tuple)) or len(dy) != 2:
                raise TypeError("dy: expected [d_forward, d_backward] for merge_mode=None")
            df, db = (check_grad(d, f"dy[{i}]", y.shape[:-1] + (H,), layer.dtype)
                      for i, d in enumerate(dy))
        else:
            dy = check_grad(dy, "dy", y.shape[:-1] + (H,), layer.dtype)
            if mode == "sum":
                df = db = dy
            elif mode == "ave":
                df = db = dy / layer.dtype.type(2)
            else:
                df, db = dy * y[..., H:], dy * y[..., :H]
        return np.concatenate([df, db], axis=-1)

    def forward(self, x, mask=None):
        layer = self.layer
        y, h_n, c_n = layer._run(x, mask)
        object.__setattr__(self, "_cache", y if self.training else None)
        merged = self._merge(y)
        outputs = merged if isinstance(merged, list) else [merged]
        if layer.return_state:
            for d in range(2):
                outputs += [h_n[d]] + ([] if c_n is None else [c_n[d]])
        layer._activity([y] + outputs[1 if self.merge_mode else 2:])
        if layer.activity_regularizer is not None:
            object.__setattr__(layer, "_activity_out", [y] + outputs[1 if self.merge_mode
                                                                     else 2:])
        if len(outputs) == 1:
            return outputs[0]
        return outputs

    def backward(self, dy, *dstates):
        """``dx`` from the gradient of the output (a list of two for ``merge_mode=None``) and,
        with ``return_state``, of the states (forward's then backward's; None means zeros)."""
        layer = self.layer
        if self.merge_mode is None and not dstates and isinstance(dy, (list, tuple)) and \
                len(dy) > 2:
            dy, dstates = dy[:2], tuple(dy[2:])
        has_cell = layer.rnn.has_cell_state
        per = 2 if has_cell else 1
        if len(dstates) > 2 * per or (dstates and not layer.return_state):
            raise ValueError(f"dstates: expected at most {2 * per} state gradients and only "
                             "with return_state=True")
        dcat = self._unmerge(dy)
        batch, H = dcat.shape[0], layer.units
        dstates = list(dstates) + [None] * (2 * per - len(dstates))
        if layer.activity_regularizer is not None:
            outs = layer._activity_out
            dcat = layer._activity_grad(dcat, outs[0])
            if layer.return_state:
                dstates = [layer._activity_grad(g, s) for g, s in zip(dstates, outs[1:])]
        dh = dc = None
        for d in range(2):
            for j in range(per):
                g = dstates[d * per + j]
                if g is None:
                    continue
                g = check_grad(g, f"dstates[{d * per + j}]", (batch, H), layer.dtype)
                target = dh if j == 0 else dc
                if target is None:
                    target = np.zeros((2, batch, H), layer.dtype)
                target[d] += g
                if j == 0:
                    dh = target
                else:
                    dc = target
        return layer._run_backward(dcat, dh, dc)

    def get_config(self):
        layer = serialize(self.layer)
        layer["config"]["input_dim"] = None  # the wrapped layer is given unbuilt
        return {"layer": layer, "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(deserialize(config.pop("layer"), "layer"), **config)


class LayerNormalization(KerasWeights, nn.LayerNorm):
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


class Masking(KerasWeightless, Module):
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
register_layers("layers", [Dense, Conv1D, MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D,
                           GlobalAveragePooling1D, Embedding, Activation, SimpleRNN, LSTM, GRU,
                           Bidirectional, LayerNormalization, Masking])


# Keras' attention layers (``[query, value(, key)]`` inputs, ``mask=[query_mask, value_mask]``,
# ``return_attention_scores``, ``use_causal_mask``), defined in ``rnnfast.nn.attention``.
from rnnfast.nn.attention import AdditiveAttention, Attention  # noqa: E402

# Keras' merge layers (``Concatenate``, ``Add``, ...), defined in ``rnnfast.models.merging``.
from rnnfast.models.merging import (  # noqa: E402
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract)

__all__ += ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract"]


def __getattr__(name):
    """``Input``: Keras' ``Input`` (one function in both places, as ``keras.Input is
    keras.layers.Input``), defined in ``rnnfast.models.functional``, which builds on this
    module."""
    if name == "Input":
        from rnnfast.models.functional import Input
        return Input
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
