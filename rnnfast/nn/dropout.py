"""``Dropout(p)``: in training mode zeroes each element with probability ``p`` and scales the
rest by ``1 / (1 - p)`` (inverted dropout, as PyTorch and Keras do); identity in eval mode."""
import numpy as np

from rnnfast.nn.module import Module, as_float_input, check_grad, check_probability, make_rng

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout with its own seeded generator (``seed`` or ``rng``)."""

    def __init__(self, p=0.5, *, seed=None, rng=None):
        super().__init__()
        self.p = check_probability(p, "p")
        self.rng = make_rng(seed, rng)

    def forward(self, x):
        x = as_float_input(x, "x")
        if not self.training or self.p == 0.0:
            self._keep((None, x.shape, x.dtype))
            return x
        if self.p == 1.0:
            mask = np.zeros(x.shape, x.dtype)
        else:
            keep = self.rng.random(x.shape) >= self.p
            mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        self._keep((mask, x.shape, x.dtype))
        return x * mask

    def backward(self, dy):
        mask, shape, dtype = self._saved()
        dy = check_grad(dy, "dy", shape, dtype)
        return dy if mask is None else dy * mask

    def get_config(self):
        return {"p": self.p}

    def extra_repr(self):
        return f"p={self.p}"
