"""Fully connected layers: PyTorch's ``Linear(in_features, out_features)`` and Keras'
``Dense(units, activation=None)``.

Both compute ``y = x W^T + b`` over the last axis of an input of any rank, so they also act
per time step on a sequence ``(T, B, F)`` / ``(B, T, F)``. The weight has PyTorch's layout
``(out_features, in_features)`` (Keras' ``kernel`` is its transpose) and the name ``weight``,
so ``torch.nn.Linear`` state_dicts load 1:1.

The products run on the package's GEMM (``rnnfast.functional.linear_forward`` /
``linear_backward``), not on NumPy's BLAS (see bench/RESULTS.md).
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.activation import activation_name, get_activation
from rnnfast.nn.module import (
    Module,
    Parameter,
    _to_numpy,
    as_float_input,
    check_build_size,
    check_dtype,
    check_grad,
    check_int,
    make_rng,
    parameter_zeros,
)

__all__ = ["Linear", "Dense"]


class Linear(Module):
    """``y = x W^T + b``; PyTorch's initialisation (uniform in +-1/sqrt(in_features))."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, device=None,
                 seed=None, rng=None):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.in_features = check_int(in_features, "in_features", 1)
        self.out_features = check_int(out_features, "out_features", 1)
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        self.weight = Parameter(parameter_zeros((self.out_features, self.in_features),
                                                self.dtype))
        self.register_parameter(
            "bias", Parameter(parameter_zeros(self.out_features, self.dtype)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / np.sqrt(self.in_features)
        self.weight.data[...] = self.rng.uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias.data[...] = self.rng.uniform(-bound, bound, self.bias.shape)

    def _affine(self, x):
        x = as_float_input(x, "x", self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected {self.in_features} features (in_features) on the last "
                             f"axis, got shape {x.shape}")
        y, ctx = F.linear_forward(x, self.weight.data,
                                  None if self.bias is None else self.bias.data,
                                  training=self.training)
        self._keep(ctx)
        return y

    def _affine_backward(self, dy):
        ctx = self._saved()
        dy = check_grad(dy, "dy", ctx.x_shape[:-1] + (self.out_features,), self.dtype)
        grads = F.linear_backward(ctx, dy)
        self.weight.accumulate(grads["w"])
        if self.bias is not None:
            self.bias.accumulate(grads["b"])
        return grads["x"]

    def forward(self, x):
        return self._affine(x)

    def backward(self, dy):
        return self._affine_backward(dy)

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "dtype": self.dtype.name}

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Dense(Linear):
    """Keras' ``Dense(units, activation=None, use_bias=True)``: Glorot-uniform weight, zero bias.

    The input size is taken from the first input (or ``input_dim``, ``build(in_features)``,
    or a loaded state_dict): until then the layer has no parameters, so build it before
    handing ``parameters()`` to an optimiser."""

    def __init__(self, units, activation=None, use_bias=True, *, input_dim=None,
                 dtype=np.float32, seed=None, rng=None):
        Module.__init__(self)
        self.out_features = self.units = check_int(units, "units", 1)
        self.in_features = None
        self.use_bias = bool(use_bias)
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        self.activation = get_activation(activation)
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if input_dim is not None:
            self.build(input_dim)

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

    def reset_parameters(self):
        limit = np.sqrt(6.0 / (self.in_features + self.units))
        self.weight.data[...] = self.rng.uniform(-limit, limit, self.weight.shape)
        if self.bias is not None:
            self.bias.data[...] = 0

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
        y = self._affine(x)
        return y if self.activation is None else self.activation.forward(y)

    def backward(self, dy):
        if self.activation is not None:
            dy = self.activation.backward(dy)
        return self._affine_backward(dy)

    def get_config(self):
        return {"units": self.units, "activation": activation_name(self.activation),
                "use_bias": self.use_bias, "input_dim": self.in_features,
                "dtype": self.dtype.name}

    def extra_repr(self):
        return f"units={self.units}, in_features={self.in_features}, use_bias={self.use_bias}"
