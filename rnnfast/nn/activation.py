"""Element-wise activations and softmax, as layers with forward and backward.

Each keeps its input's float dtype (non-float inputs raise TypeError). ``get_activation``
turns a Keras-style name (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"softmax"``, ``"linear"``
or None) into a layer, for ``Dense(units, activation=...)``.
"""
import numpy as np

from rnnfast.nn.module import Module, as_float_input, check_grad

__all__ = ["ReLU", "Tanh", "Sigmoid", "Softmax", "get_activation", "activation_name"]


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for any x."""
    return np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the maximum for stability."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class _Elementwise(Module):
    """An activation whose backward needs only its output or input (kept in training mode)."""

    def forward(self, x):
        x = as_float_input(x, "x")
        y = self._apply(x)
        self._keep((x, y))
        return y

    def backward(self, dy):
        x, y = self._saved()
        dy = check_grad(dy, "dy", y.shape, y.dtype)
        return self._grad(x, y, dy)

    def get_config(self):
        return {}


class ReLU(_Elementwise):
    """max(x, 0)."""

    def _apply(self, x):
        return np.maximum(x, 0)

    def _grad(self, x, y, dy):
        return dy * (x > 0)


class Tanh(_Elementwise):
    """tanh(x)."""

    def _apply(self, x):
        return np.tanh(x)

    def _grad(self, x, y, dy):
        return dy * (1 - y * y)


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)), stable for any x."""

    def _apply(self, x):
        return sigmoid(x)

    def _grad(self, x, y, dy):
        return dy * y * (1 - y)


class Softmax(_Elementwise):
    """Softmax along ``dim`` (default: the last axis)."""

    def __init__(self, dim=-1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
        self.dim = int(dim)

    def _apply(self, x):
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"dim: {self.dim} is out of range for x of shape {x.shape}")
        return softmax(x, self.dim)

    def _grad(self, x, y, dy):
        return y * (dy - (dy * y).sum(axis=self.dim, keepdims=True))

    def get_config(self):
        return {"dim": self.dim}

    def extra_repr(self):
        return f"dim={self.dim}"


_NAMES = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softmax": Softmax}


def get_activation(activation):
    """A layer for a Keras-style activation: a name, an activation layer, or None/"linear"."""
    if activation is None or activation == "linear":
        return None
    if isinstance(activation, Module):
        return activation
    if isinstance(activation, str) and activation in _NAMES:
        return _NAMES[activation]()
    raise ValueError(f"activation: expected one of {sorted(_NAMES) + ['linear', None]} or a "
                     f"layer, got {activation!r}")


def activation_name(activation):
    """The name ``get_activation`` turns back into ``activation`` (a layer from it, or None):
    ``"linear"`` for None; TypeError for a layer no name gives (e.g. ``Softmax(dim=0)``)."""
    if activation is None:
        return "linear"
    for name, cls in _NAMES.items():
        if type(activation) is cls and activation.get_config() == cls().get_config():
            return name
    raise TypeError(f"activation: {activation!r} has no Keras name ({sorted(_NAMES)}); a layer "
                    "with it cannot be saved")
