"""Keras' weight and activity regularizers: ``L1(l1=0.01)``, ``L2(l2=0.01)``,
``L1L2(l1=0.0, l2=0.0)``, by name (``"l1"``, ``"l2"``, ``"l1_l2"``) or as objects.

A regularizer is a penalty ``r(w)`` (``l1 * sum|w| + l2 * sum(w**2)``, Keras 3's formula: no
factor 1/2) with its gradient ``grad(w)``. A layer's ``kernel_regularizer`` /
``recurrent_regularizer`` / ``bias_regularizer`` (``embeddings_regularizer``) penalise its
weights in Keras' layout, ``activity_regularizer`` its output(s), divided by the batch size as
Keras 3 does. ``fit`` adds every layer's penalty (``penalty(model)``) to the loss it
minimises and reports, and ``evaluate`` to the loss it reports, as Keras does.
"""
import numpy as np

from rnnfast.models._lookup import class_config, lookup

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "penalty", "serialize"]


def _factor(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """``l1 * sum|w| + l2 * sum(w**2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor(l1, "l1"), _factor(l2, "l2")

    def __call__(self, w):
        w = np.asarray(w, np.float64)
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def grad(self, w):
        """The gradient of ``self(w)`` (``w``'s dtype); 0 is the subgradient of ``|w|`` at 0."""
        w = np.asarray(w)
        g = np.zeros_like(w)
        if self.l1:
            g += w.dtype.type(self.l1) * np.sign(w)
        if self.l2:
            g += w.dtype.type(2 * self.l2) * w
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.get_config().items())})"


class L1(Regularizer):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    pass


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier, name="regularizer"):
    """None, or a ``Regularizer`` from a name, an object, or a class/config dict."""
    if identifier is None:
        return None
    return lookup(identifier, name, "regularizer", Regularizer, _NAMES, _CLASSES,
                  "'l1', 'l2', 'l1_l2' or an rnnfast.models.regularizers object")

def serialize(regularizer):
    """None, or a class/config dict."""
    return class_config(regularizer)


def penalty(model):
    """The sum of every layer's weight penalties (at the current weights) and of the activity
    penalties of its last forward: what Keras adds to the loss."""
    total = 0.0
    for module in model._modules_with("regularization_penalty"):
        total += module.regularization_penalty()
    return total
