"""``Flatten``: merge the axes ``start_dim..end_dim`` into one (PyTorch's defaults, 1 and -1,
flatten everything but the batch axis, as Keras' Flatten does)."""
import numpy as np

from rnnfast.nn.module import KerasWeightless, Module, as_float_input, check_grad, keras_input_shape

__all__ = ["Flatten"]


class Flatten(KerasWeightless, Module):
    """Reshape ``(B, d1, ..., dn)`` to ``(B, d1 * ... * dn)`` (by default)."""

    def __init__(self, start_dim=1, end_dim=-1, *, name=None, input_shape=None):
        super().__init__()
        self.name = name
        self.input_shape = keras_input_shape(input_shape)
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        x = as_float_input(x, "x")
        n = max(x.ndim, 1)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        if not (0 <= start < n and 0 <= end < n) or start > end:
            raise ValueError(f"start_dim, end_dim: ({self.start_dim}, {self.end_dim}) do not "
                             f"select axes of x of shape {x.shape}")
        y = x.reshape(x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:])
        self._keep((x.shape, y.shape, x.dtype))
        return y

    def backward(self, dy):
        in_shape, out_shape, dtype = self._saved()
        return check_grad(dy, "dy", out_shape, dtype).reshape(in_shape)

    def get_config(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
