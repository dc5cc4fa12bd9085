"""Metrics of ``Sequential.compile(metrics=[...])``, Keras' names and rules.

Each metric is ``fn(y_true, y_pred)`` returning per-element values; ``fit`` reports their
mean over the epoch (each batch weighted by its samples), ``evaluate`` over the data.

``"accuracy"`` (or ``"acc"``) is resolved from the loss as Keras does: sparse categorical
cross-entropy gives ``sparse_categorical_accuracy``, categorical cross-entropy
``categorical_accuracy``, binary cross-entropy ``binary_accuracy`` (threshold 0.5 on
probabilities, 0 on logits with ``from_logits=True``); any other loss gives
``binary_accuracy`` when the model has one output and ``categorical_accuracy`` otherwise.
"""
import numpy as np

from rnnfast import losses

__all__ = [
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "mean_squared_error",
    "mean_absolute_error",
    "get",
]


def _align_dense(y_true, y_pred):
    y_true = np.asarray(y_true)
    if y_true.shape != y_pred.shape and y_pred.shape[-1] == 1 and \
            y_true.shape == y_pred.shape[:-1]:
        y_true = y_true[..., None]
    return y_true


def _sparse_labels(y_true, y_pred):
    y_true = np.asarray(y_true)
    if y_true.shape == y_pred.shape[:-1] + (1,) and y_true.shape != y_pred.shape[:-1]:
        y_true = y_true[..., 0]
    return y_true


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where ``y_pred > threshold`` agrees with ``y_true > 0.5`` (per element)."""
    y_true = _align_dense(y_true, y_pred)
    return ((y_pred > threshold) == (y_true > 0.5)).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """1 where the arg-max of ``y_pred`` is the arg-max of the one-hot ``y_true``."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the arg-max of ``y_pred`` is the integer label ``y_true``."""
    labels = _sparse_labels(y_true, y_pred)
    return (labels == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _in_top_k(labels, y_pred, k):
    k = min(k, y_pred.shape[-1])
    score = np.take_along_axis(y_pred, labels[..., None].astype(np.int64), axis=-1)
    return ((y_pred > score).sum(axis=-1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the one-hot label is among the ``k`` largest predictions."""
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the integer label is among the ``k`` largest predictions."""
    return _in_top_k(_sparse_labels(y_true, y_pred), y_pred, k)


def mean_squared_error(y_true, y_pred):
    return (y_pred - _align_dense(y_true, y_pred)) ** 2


def mean_absolute_error(y_true, y_pred):
    return np.abs(y_pred - _align_dense(y_true, y_pred))


_NAMES = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
}


def _accuracy_for(loss):
    """The accuracy function Keras picks for ``"accuracy"`` under ``loss``."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, losses.CategoricalCrossentropy):
        return categorical_accuracy
    if isinstance(loss, losses.BinaryCrossentropy):
        threshold = 0.0 if loss.from_logits else 0.5
        return lambda y_true, y_pred: binary_accuracy(y_true, y_pred, threshold)

    def by_output(y_true, y_pred):
        if y_pred.shape[-1] == 1:
            return binary_accuracy(y_true, y_pred)
        return categorical_accuracy(y_true, y_pred)
    return by_output


def get(identifier, loss):
    """``(name, fn)`` of a metric: a Keras name (``"accuracy"``, ``"mae"``, ...) or a function
    ``fn(y_true, y_pred)`` returning per-sample values (its ``__name__`` names it)."""
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return identifier, _accuracy_for(loss)
        if identifier in _NAMES:
            return identifier, _NAMES[identifier]
        raise ValueError(f"metrics: unknown metric {identifier!r}; expected 'accuracy' or one of "
                         f"{sorted(_NAMES)}, or a function f(y_true, y_pred)")
    if callable(identifier):
        return getattr(identifier, "__name__", type(identifier).__name__), identifier
    raise TypeError(f"metrics: expected metric names or functions, got "
                    f"{type(identifier).__name__}")
