"""Convolution and pooling layers over the Conv1D / pooling kernels (``rnnfast.functional``).

PyTorch's names and defaults, channels first (``(B, C, L)``, or ``(C, L)`` unbatched):

- ``Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
  bias=True)``: weight ``(out_channels, in_channels // groups, kernel_size)``, PyTorch's
  initialisation (uniform in +-1/sqrt(fan_in)), so ``torch.nn.Conv1d`` state_dicts load 1:1.
- ``MaxPool1d(kernel_size, stride=None, padding=0)``.

The pools are written for both layouts (``channels_last``), and their shared machinery
(``_Pool``) also serves Keras' ``Conv1D``, ``MaxPooling1D``, ``GlobalMaxPooling1D`` and
``GlobalAveragePooling1D``, which live in ``rnnfast.models.layers``.

Every layer also takes ``channels_last``. Padding: ``"valid"``, ``"same"``
(``ceil(L / stride)`` outputs), ``"causal"`` (convolutions only), an int or a ``(left, right)``
pair (convolutions only). Pools never let padded positions win.
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.module import (
    Module,
    Parameter,
    _to_numpy,
    as_float_input,
    check_build_size,
    check_dtype,
    check_grad,
    check_int,
    check_layer_precision,
    make_rng,
    parameter_zeros,
)

__all__ = ["Conv1d", "MaxPool1d"]


def _single_int(value, name, minimum):
    """An int, or a 1-tuple of one (PyTorch accepts ``kernel_size=(3,)``)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name}: expected an int or a 1-tuple, got {value!r}")
        value = value[0]
    return check_int(value, name, minimum)


def _check_padding(padding, allowed_words, allow_ints=True):
    """A padding word, an int >= 0 or a (left, right) pair of ints >= 0."""
    if isinstance(padding, str):
        if padding not in allowed_words:
            raise ValueError(f"padding: expected one of {list(allowed_words)}"
                             f"{' or an int or a (left, right) pair' if allow_ints else ''}, "
                             f"got {padding!r}")
        return padding
    if not allow_ints:
        raise TypeError(f"padding: expected one of {list(allowed_words)}, got {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            return check_int(padding[0], "padding", 0)
        if len(padding) != 2:
            raise ValueError(f"padding: expected an int or a (left, right) pair, got {padding!r}")
        return (check_int(padding[0], "padding[0]", 0), check_int(padding[1], "padding[1]", 0))
    return check_int(padding, "padding", 0)


def _padding_config(padding):
    """A checked padding as JSON data (a pair as a list)."""
    return list(padding) if isinstance(padding, tuple) else padding


def _data_format(data_format):
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format: expected 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    return data_format == "channels_last"


def _batched(x, channels_last, allow_unbatched):
    """``x`` as a 3-D array and whether a batch axis was added."""
    layout = "(batch, length, channels)" if channels_last else "(batch, channels, length)"
    if x.ndim == 2 and allow_unbatched:
        return x[None], True
    if x.ndim != 3:
        extra = " or a 2-D unbatched array" if allow_unbatched else ""
        raise ValueError(f"x: expected a 3-D array {layout}{extra}, got shape {x.shape}")
    return x, False


class Conv1d(Module):
    """1-D convolution (cross-correlation), PyTorch's interface; channels first by default."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, channels_last=False,
                 dtype=np.float32, device=None, seed=None, rng=None, precision="float32"):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported, got {padding_mode!r}")
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self._configure(kernel_size, stride, padding, dilation, groups, channels_last, dtype,
                        seed, rng, precision)
        self.use_bias = bool(bias)
        self.in_channels = None
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        self.build(in_channels)

    def _configure(self, kernel_size, stride, padding, dilation, groups, channels_last, dtype,
                   seed, rng, precision):
        self.kernel_size = _single_int(kernel_size, "kernel_size", 1)
        self.stride = _single_int(stride, "stride", 1)
        self.dilation = _single_int(dilation, "dilation", 1)
        self.groups = check_int(groups, "groups", 1)
        if self.out_channels % self.groups:
            raise ValueError(f"groups: expected a divisor of the output channels "
                             f"({self.out_channels}), got {self.groups}")
        self.padding = _check_padding(padding, ("valid", "same", "causal"))
        self.channels_last = bool(channels_last)
        self.dtype = check_dtype(dtype)
        # "bfloat16": the products from bfloat16 operands, float32 sums (float32 layers)
        self.precision = check_layer_precision(precision, self.dtype)
        self.rng = make_rng(seed, rng)

    @property
    def built(self):
        return self.in_channels is not None

    def build(self, in_channels):
        """Create the parameters for inputs with ``in_channels`` channels (once)."""
        in_channels = check_build_size(in_channels, "in_channels", self.in_channels, "layer",
                                       "input channels")
        if self.built:
            return self
        if in_channels % self.groups:
            raise ValueError(f"groups: expected a divisor of the input channels "
                             f"({in_channels}), got {self.groups}")
        self.in_channels = in_channels
        shape = (self.out_channels, in_channels // self.groups, self.kernel_size)
        self.weight = Parameter(parameter_zeros(shape, self.dtype))
        if self.use_bias:
            self.bias = Parameter(parameter_zeros(self.out_channels, self.dtype))
        self.reset_parameters()
        return self

    def _fan_in(self):
        return (self.in_channels // self.groups) * self.kernel_size

    def reset_parameters(self):
        """PyTorch's initialisation: weight and bias uniform in +-1/sqrt(fan_in)."""
        bound = 1.0 / np.sqrt(self._fan_in())
        self.weight.data[...] = self.rng.uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias.data[...] = self.rng.uniform(-bound, bound, self.bias.shape)

    def _build_from_state(self, state_dict, prefix):
        key = prefix + "weight"
        if not self.built and key in state_dict:
            shape = _to_numpy(state_dict[key], key).shape
            if len(shape) != 3 or shape[0] != self.out_channels or shape[2] != self.kernel_size:
                raise ValueError(f"state_dict[{key!r}]: expected shape (out_channels, "
                                 f"in_channels // groups, kernel_size) = ({self.out_channels}, "
                                 f"in_channels // {self.groups}, {self.kernel_size}), got {shape}")
            self.build(shape[1] * self.groups)

    def _channels(self, x):
        return x.shape[-1] if self.channels_last else x.shape[-2]

    def _input(self, x, allow_unbatched):
        """``(x as a 3-D array of the layer's dtype, whether a batch axis was added)``, checked
        against the layer (built from it if not yet)."""
        x = as_float_input(x, "x", self.dtype)
        x3, unbatched = _batched(x, self.channels_last, allow_unbatched)
        if not self.built:
            self.build(self._channels(x3))
        if self._channels(x3) != self.in_channels:
            axis = "last" if self.channels_last else "channel (second to last)"
            raise ValueError(f"x: expected {self.in_channels} channels on the {axis} axis, got "
                             f"shape {x.shape}")
        return x3, unbatched

    def _conv_options(self):
        """The kernel's arguments after the arrays (``F.conv1d_forward``'s)."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, channels_last=self.channels_last,
                    training=self.training, precision=self.precision)

    def _convolve(self, x, allow_unbatched, add=None, activation=None):
        """The forward; ``add`` (None, or an array of the output's shape, batched) is summed into
        the output by the kernel (``F.conv1d_forward``'s ``add``), then ``activation`` (None or
        ``"relu"``) applied by it."""
        x3, unbatched = self._input(x, allow_unbatched)
        b = None if self.bias is None else self.bias.data
        y, ctx = F.conv1d_forward(x3, self.weight.data, b, **self._conv_options(),
                                  add=add[None] if unbatched and add is not None else add,
                                  activation=activation)
        self._keep((ctx, y.shape, unbatched))
        return y[0] if unbatched else y

    def _convolve_backward(self, dy, add=None):
        """The backward; ``add`` (None, or an array of the input's shape, batched) is summed into
        the returned input gradient by the kernel (``F.conv1d_backward``'s ``add``)."""
        ctx, shape, unbatched = self._saved()
        dy = check_grad(dy, "dy", shape[1:] if unbatched else shape, self.dtype)
        if unbatched:
            dy = dy[None]
            add = None if add is None else add[None]
        grads = self._accumulate(F.conv1d_backward(ctx, dy, add=add))
        return grads["x"][0] if unbatched else grads["x"]

    def _accumulate(self, grads):
        """Adds a ``conv1d_backward`` result's ``"w"`` and ``"b"`` to the parameters' gradients;
        returns ``grads``."""
        self.weight.accumulate(grads["w"], owned=True)  # (new arrays of the kernel's)
        if self.bias is not None:
            self.bias.accumulate(grads["b"], owned=True)
        return grads

    def forward(self, x):
        return self._convolve(x, allow_unbatched=True)

    def backward(self, dy):
        return self._convolve_backward(dy)

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": _padding_config(self.padding), "dilation": self.dilation,
                "groups": self.groups, "bias": self.use_bias,
                "channels_last": self.channels_last, "dtype": self.dtype.name,
                "precision": self.precision}

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != 0:
            s += f", padding={self.padding!r}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None and self.built:
            s += ", bias=False"
        if self.channels_last:
            s += ", channels_last=True"
        if self.precision != "float32":
            s += f", precision={self.precision!r}"
        return s


class _Pool(Module):
    """Shared forward/backward of the pools: ``_apply(x3) -> (y, ctx)``, ``_grad(ctx, dy)``."""

    allow_unbatched = False

    def forward(self, x):
        x = as_float_input(x, "x")
        x3, unbatched = _batched(x, self.channels_last, self.allow_unbatched)
        y, ctx = self._apply(x3)
        self._keep((ctx, y.shape, y.dtype, unbatched))
        return self._finish(y[0] if unbatched else y)

    def _finish(self, y):
        return y

    def _unfinish(self, dy_shape):
        return dy_shape

    def backward(self, dy):
        ctx, shape, dtype, unbatched = self._saved()
        out_shape = shape[1:] if unbatched else shape
        dy = check_grad(dy, "dy", self._unfinish(out_shape), dtype).reshape(out_shape)
        dx = self._grad(ctx, dy[None] if unbatched else dy)["x"]
        return dx[0] if unbatched else dx


class MaxPool1d(_Pool):
    """PyTorch's ``MaxPool1d(kernel_size, stride=None, padding=0)``; channels first by default.

    Only ``padding=0`` (also ``"valid"``) or ``"same"``, ``dilation=1``, ``ceil_mode=False``
    and ``return_indices=False`` are supported."""

    allow_unbatched = True

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, *, channels_last=False):
        super().__init__()
        self.kernel_size = _single_int(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _single_int(stride, "stride", 1)
        if padding in (0, (0,), "valid"):
            padding = "valid"
        elif padding != "same":
            raise ValueError(f"padding: only 0 ('valid') or 'same' are supported, got {padding!r}")
        self.padding = padding
        if _single_int(dilation, "dilation", 1) != 1:
            raise ValueError(f"dilation: only 1 is supported, got {dilation!r}")
        if return_indices:
            raise ValueError("return_indices: only False is supported")
        if ceil_mode:
            raise ValueError("ceil_mode: only False is supported")
        self.channels_last = bool(channels_last)

    def _apply(self, x):
        return F.max_pool1d_forward(x, pool_size=self.kernel_size, stride=self.stride,
                                    padding=self.padding, channels_last=self.channels_last,
                                    training=self.training)

    def _grad(self, ctx, dy):
        return F.max_pool1d_backward(ctx, dy)

    def get_config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "channels_last": self.channels_last}

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != "valid":
            s += f", padding={self.padding!r}"
        return s + (", channels_last=True" if self.channels_last else "")
