"""``LayerNorm``: PyTorch's layer normalisation over the trailing ``normalized_shape`` axes,
``y = (x - mean) / sqrt(var + eps) * weight + bias`` (biased variance), weight 1 and bias 0
at start; ``torch.nn.LayerNorm`` state_dicts load 1:1."""
import numpy as np

from rnnfast.nn.module import (
    Module,
    Parameter,
    as_float_input,
    check_dtype,
    check_grad,
    parameter_zeros,
)

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """Normalise each sample over its last ``len(normalized_shape)`` axes."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *,
                 dtype=np.float32, device=None):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        try:
            shape = tuple(int(d) for d in normalized_shape)
        except (TypeError, ValueError):
            raise TypeError(f"normalized_shape: expected an int or a tuple of ints, got "
                            f"{normalized_shape!r}") from None
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"normalized_shape: expected positive sizes, got {shape}")
        if not eps > 0:
            raise ValueError(f"eps: expected a positive float, got {eps!r}")
        self.normalized_shape = shape
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.dtype = check_dtype(dtype)
        self.register_parameter("weight", Parameter(parameter_zeros(shape, self.dtype))
                                if self.elementwise_affine else None)
        self.register_parameter("bias", Parameter(parameter_zeros(shape, self.dtype))
                                if self.elementwise_affine and bias else None)
        if self.weight is not None:
            self.weight.data[...] = 1

    def forward(self, x):
        x = as_float_input(x, "x", self.dtype)
        n = len(self.normalized_shape)
        if x.ndim < n or x.shape[x.ndim - n:] != self.normalized_shape:
            raise ValueError(f"x: expected trailing axes {self.normalized_shape} "
                             f"(normalized_shape), got shape {x.shape}")
        axes = tuple(range(x.ndim - n, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + self.eps)
        xhat = centred * inv_std
        self._keep((xhat, inv_std, axes))
        y = xhat if self.weight is None else xhat * self.weight.data
        return y if self.bias is None else y + self.bias.data

    def backward(self, dy):
        xhat, inv_std, axes = self._saved()
        dy = check_grad(dy, "dy", xhat.shape, self.dtype)
        lead = tuple(range(xhat.ndim - len(axes)))
        if self.bias is not None:
            self.bias.accumulate(dy.sum(axis=lead))
        if self.weight is not None:
            self.weight.accumulate((dy * xhat).sum(axis=lead))
            dy = dy * self.weight.data
        mean_d = dy.mean(axis=axes, keepdims=True)
        mean_dx = (dy * xhat).mean(axis=axes, keepdims=True)
        return (dy - mean_d - xhat * mean_dx) * inv_std

    def get_config(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine,
                "bias": self.bias is not None or not self.elementwise_affine,
                "dtype": self.dtype.name}

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
