"""PyTorch's fully connected layer ``Linear(in_features, out_features)`` (Keras' ``Dense`` is
built on it in ``rnnfast.models.layers``).

It computes ``y = x W^T + b`` over the last axis of an input of any rank, so they also act
per time step on a sequence ``(T, B, F)`` / ``(B, T, F)``. The weight has PyTorch's layout
``(out_features, in_features)`` (Keras' ``kernel`` is its transpose) and the name ``weight``,
so ``torch.nn.Linear`` state_dicts load 1:1.

The products run on the package's GEMM (``rnnfast.functional.linear_forward`` /
``linear_backward``), not on NumPy's BLAS (see bench/RESULTS.md).
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.module import (
    Module,
    Parameter,
    as_float_input,
    check_dtype,
    check_grad,
    check_int,
    make_rng,
    parameter_zeros,
)

__all__ = ["Linear"]


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
        self.weight.accumulate(grads["w"], owned=True)  # (new arrays: a product, a sum)
        if self.bias is not None:
            self.bias.accumulate(grads["b"], owned=True)
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
