"""``Dropout(p)``: in training mode zeroes each element with probability ``p`` and scales the
rest by ``1 / (1 - p)`` (inverted dropout, as PyTorch and Keras do); identity in eval mode."""
import numpy as np

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
