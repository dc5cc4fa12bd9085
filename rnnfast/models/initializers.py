"""Keras' weight initializers, by name or as objects, drawn from a NumPy ``Generator``.

Names (Keras' snake-case names and class names): ``"glorot_uniform"`` (``GlorotUniform``),
``"glorot_normal"``, ``"he_uniform"``, ``"he_normal"``, ``"lecun_uniform"``, ``"lecun_normal"``,
``"orthogonal"``, ``"identity"``, ``"zeros"``, ``"ones"``, ``"constant"``, ``"random_normal"``
(also ``"normal"``), ``"random_uniform"`` (also ``"uniform"``), ``"truncated_normal"``,
``"variance_scaling"``. Objects: ``Constant(value)``, ``RandomNormal(mean, stddev, seed)``,
``RandomUniform(minval, maxval, seed)``, ``TruncatedNormal(mean, stddev, seed)``,
``VarianceScaling(scale, mode, distribution, seed)``, ``Orthogonal(gain, seed)``,
``Identity(gain)`` and the variance-scaling presets, with Keras' arguments and defaults.

An initializer is called with a shape in **Keras' layout** (a Dense kernel ``(in, units)``, a
Conv1D kernel ``(kernel_size, in_channels, filters)``, a recurrent kernel ``(units, gates *
units)``), so fans and orthogonality are Keras' own; the layers convert the result to their
PyTorch layout. The random ones draw from the layer's generator (its ``seed``), or from their
own when built with a ``seed``; the values follow Keras' distributions, not its random streams.
"""
import numpy as np

from rnnfast.models._lookup import lookup

__all__ = ["Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity",
           "Initializer", "LecunNormal", "LecunUniform", "Ones", "Orthogonal", "RandomNormal",
           "RandomUniform", "TruncatedNormal", "VarianceScaling", "Zeros", "get", "serialize"]


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def _positive(value, name):
    value = _number(value, name)
    if value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return value


class Initializer:
    """Base class: ``init(shape, dtype, rng) -> array``; ``get_config()`` gives its arguments."""

    seed = None

    def __call__(self, shape, dtype=np.float32, rng=None):
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng()
        return np.asarray(self._draw(tuple(int(d) for d in shape), rng), dtype=dtype)

    def _draw(self, shape, rng):
        raise NotImplementedError(f"{type(self).__name__} does not define _draw()")

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0 or None, got {seed!r}")
    return int(seed)


class Zeros(Initializer):
    def _draw(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    def _draw(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = _number(value, "value")

    def _draw(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = _number(mean, "mean"), _positive(stddev, "stddev")
        self.seed = _seed(seed)

    def _draw(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated(rng, shape, stddev):
    """Normal(0, stddev) values redrawn until they lie within two standard deviations."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * stddev


class TruncatedNormal(RandomNormal):
    def _draw(self, shape, rng):
        return self.mean + _truncated(rng, shape, self.stddev)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = _number(minval, "minval"), _number(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"maxval: expected >= minval ({self.minval}), got {self.maxval}")
        self.seed = _seed(seed)

    def _draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def compute_fans(shape):
    """Keras' ``(fan_in, fan_out)`` of a weight of ``shape`` (Keras' layout)."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        self.scale = _positive(scale, "scale")
        if mode not in self.MODES:
            raise ValueError(f"mode: expected one of {list(self.MODES)}, got {mode!r}")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"distribution: expected one of {list(self.DISTRIBUTIONS)}, got "
                             f"{distribution!r}")
        self.mode, self.distribution = mode, distribution
        self.seed = _seed(seed)

    def _draw(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        scale = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return _truncated(rng, shape, np.sqrt(scale) / 0.87962566103423978)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, np.sqrt(scale), shape)
        limit = np.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _preset(name, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": f"Keras' {name}: VarianceScaling({scale}, "
                                                      f"{mode!r}, {distribution!r})."})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """Keras' Orthogonal: the shape flattened to ``(prod(shape[:-1]), shape[-1])``, with
    orthonormal rows or columns (whichever are fewer), times ``gain``."""

    def __init__(self, gain=1.0, seed=None):
        self.gain = _number(gain, "gain")
        self.seed = _seed(seed)

    def _draw(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: expected a shape of at least 2 axes, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """Keras' Identity: ``gain * eye(rows, cols)`` for 2-D shapes."""

    def __init__(self, gain=1.0):
        self.gain = _number(gain, "gain")

    def _draw(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(f"Identity: expected a 2-D shape, got {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


_CLASSES = {cls.__name__: cls for cls in (
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal,
    Identity)}
_NAMES = {"zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
          "normal": RandomNormal, "random_uniform": RandomUniform, "uniform": RandomUniform,
          "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
          "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
          "he_uniform": HeUniform, "he_normal": HeNormal, "lecun_uniform": LecunUniform,
          "lecun_normal": LecunNormal, "orthogonal": Orthogonal, "identity": Identity}


def get(identifier, name="initializer"):
    """An ``Initializer`` from a Keras name, a class name, an ``Initializer``, or a
    ``{"class_name": ..., "config": {...}}`` dict (what ``serialize`` gives)."""
    return lookup(identifier, name, "initializer", Initializer, _NAMES, _CLASSES,
                  "an initializer name such as 'glorot_uniform' or an "
                  "rnnfast.models.initializers object")

def serialize(initializer):
    """A name (for an initializer built from one with its defaults) or a class/config dict."""
    config = initializer.get_config()
    for key, cls in _NAMES.items():
        if type(initializer) is cls and config == cls().get_config():
            return key
    return {"class_name": type(initializer).__name__, "config": config}
