"""``Dropout(p)``: in training mode zeroes each element with probability ``p`` and scales the
rest by ``1 / (1 - p)`` (inverted dropout, as PyTorch and Keras do); identity in eval mode.

Each training call draws one 64-bit seed from the layer's generator and runs
``rnnfast.functional.dropout`` (a C++ kernel: the mask is 32 bits of a counter-based
generator per element, compared with ``ceil(p * 2**32)``, so the drop probability is within
``2**-32`` of ``p``); the backward recomputes the mask from the seed (nothing is stored). The
same seed gives the same masks at any thread count.
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.module import (
    KerasWeightless,
    Module,
    as_float_input,
    check_grad,
    check_probability,
    keras_input_shape,
    make_rng,
)

__all__ = ["Dropout"]


class Dropout(KerasWeightless, Module):
    """Inverted dropout with its own seeded generator (``seed`` or ``rng``); ``rate`` is
    Keras' name of ``p`` (``Dropout(rate=0.5)``), ``noise_shape`` (Keras) is not supported."""

    def __init__(self, p=0.5, *, rate=None, noise_shape=None, seed=None, rng=None, name=None,
                 input_shape=None):
        super().__init__()
        if rate is not None:
            if p != 0.5:
                raise ValueError(f"rate, p: give one of them (the same probability), got rate="
                                 f"{rate!r} and p={p!r}")
            p = rate
        if noise_shape is not None:
            raise ValueError(f"Dropout: noise_shape={noise_shape!r} is not supported (only None: "
                             "an independent draw for every element)")
        self.p = check_probability(p, "rate" if rate is not None else "p")
        self.rng = make_rng(seed, rng)
        self.name = name
        self.input_shape = keras_input_shape(input_shape)

    def forward(self, x):
        x = as_float_input(x, "x")
        return self._dropped(x, self._draw(x.shape, x.dtype))

    def _draw(self, shape, dtype):
        """The seed of a forward on an input of ``shape`` and ``dtype`` (None: identity, -1:
        zeros, as p = 1), drawn from the layer's generator and kept for the backward."""
        if not self.training or self.p == 0.0:
            seed = None
        elif self.p == 1.0:
            seed = -1
        else:
            seed = int(self.rng.integers(0, 2 ** 64, dtype=np.uint64))
        self._keep((seed, tuple(shape), np.dtype(dtype)))
        return seed

    def _dropped(self, x, seed):
        """The forward's output for the seed ``_draw`` gave."""
        if seed is None:
            return x
        if seed < 0:
            return x * x.dtype.type(0.0)  # NaN and infinities stay NaN, as 0 * x
        return F.dropout(x, self.p, seed)

    def backward(self, dy):
        seed, shape, dtype = self._saved()
        dy = check_grad(dy, "dy", shape, dtype)
        if seed is None:
            return dy
        if seed < 0:  # p == 1
            return dy * dtype.type(0.0)
        return F.dropout(dy, self.p, seed)

    def get_config(self):
        return {"p": self.p}

    def extra_repr(self):
        return f"p={self.p}"
