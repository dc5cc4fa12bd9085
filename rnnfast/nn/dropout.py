"""``Dropout(p)``: in training mode zeroes each element with probability ``p`` and scales the
rest by ``1 / (1 - p)`` (inverted dropout, as PyTorch and Keras do); identity in eval mode.

The mask is drawn as 32 random bits per element from the layer's generator (an element is
dropped when its bits, read as an unsigned integer ``u``, are below ``ceil(p * 2**32)``: a drop
probability within ``2**-32`` of ``p``), not as float64 uniforms: a quarter of the memory
traffic. The same seed gives the same masks.
"""
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

# Bit generators whose raw outputs are 64 uniformly random bits (MT19937's are 32 bits).
_RAW64 = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)


def random_bits(rng, shape):
    """A uint32 array of ``shape`` of independent uniform random bits from ``rng``: two per raw
    64-bit output of its bit generator when it has them, else ``rng.integers``."""
    n = int(np.prod(shape, dtype=np.int64))
    if isinstance(rng.bit_generator, _RAW64):
        return rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(shape)
    return rng.integers(0, 2 ** 32, size=shape, dtype=np.uint32)


def drop_threshold(p):
    """``ceil(p * 2**32)`` as a uint32 (``p`` in (0, 1)): 32 random bits below it drop."""
    return np.uint32(min(int(np.ceil(p * 2.0 ** 32)), 2 ** 32 - 1))


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
            mask = (random_bits(self.rng, x.shape) >= drop_threshold(self.p)).astype(x.dtype)
            mask *= x.dtype.type(1.0) / x.dtype.type(1.0 - self.p)
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
