"""Keras' weight constraints, applied to a weight (in Keras' layout) after every optimiser step,
as Keras' optimisers do: ``MaxNorm(max_value=2, axis=0)``, ``NonNeg()``, ``UnitNorm(axis=0)``,
``MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)``, by name (``"max_norm"``,
``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``) or as objects. ``axis`` is Keras': 0 for a
Dense kernel ``(in, units)`` constrains each unit's incoming weights.
"""
import numpy as np

from rnnfast.models._lookup import class_config, lookup

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "apply", "get",
           "serialize"]

EPSILON = 1e-7  # Keras' backend.epsilon()


def _number(value, name, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name}: expected a finite number{bound}, got {value!r}")
    return float(value)


def _axis(axis):
    if isinstance(axis, (list, tuple)):
        return [int(a) for a in axis]
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis: expected an int or a list of ints, got {axis!r}")
    return int(axis)


class Constraint:
    """``constraint(w) -> w'`` (a new array of ``w``'s dtype)."""

    def __call__(self, w):
        w = np.asarray(w)
        return self._apply(w.astype(np.float64)).astype(w.dtype)

    def get_config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def _norms(w, axis):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = _number(max_value, "max_value", 0), _axis(axis)

    def _apply(self, w):
        norms = _norms(w, self.axis)
        return w * (np.clip(norms, 0, self.max_value) / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def _apply(self, w):
        return w * (w >= 0)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def _apply(self, w):
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value", 0)
        self.max_value = _number(max_value, "max_value", 0)
        if self.max_value < self.min_value:
            raise ValueError(f"max_value: expected >= min_value ({self.min_value}), got "
                             f"{self.max_value}")
        self.rate, self.axis = _number(rate, "rate", 0), _axis(axis)

    def _apply(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + \
            (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


_CLASSES = {cls.__name__: cls for cls in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
          "min_max_norm": MinMaxNorm}


def get(identifier, name="constraint"):
    """None, or a ``Constraint`` from a name, an object, or a class/config dict."""
    if identifier is None:
        return None
    return lookup(identifier, name, "constraint", Constraint, _NAMES, _CLASSES,
                  "'max_norm', 'non_neg', 'unit_norm', 'min_max_norm' or an "
                  "rnnfast.models.constraints object")

def serialize(constraint):
    """None, or a class/config dict."""
    return class_config(constraint)


def apply(model):
    """Apply every layer's constraints to its weights (after an optimiser step)."""
    for module in model._modules_with("apply_constraints"):
        module.apply_constraints()
