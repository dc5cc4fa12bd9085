"""Losses with forward (the mean loss) and backward (its gradient with respect to the
predictions), in Keras' names and argument order: ``loss(y_true, y_pred)``.

- ``CategoricalCrossentropy``: targets are class probabilities (one-hot or soft), shape of y_pred.
- ``SparseCategoricalCrossentropy``: targets are class indices, y_pred's shape without its
  last axis (or with a last axis of 1).
- ``BinaryCrossentropy``: targets in [0, 1], y_pred's shape.
- ``MeanSquaredError``, ``MeanAbsoluteError``: y_pred's shape.

With ``from_logits=True`` the cross-entropies take logits and fuse softmax (sigmoid) into the
loss: computed through log-sum-exp (softplus), finite for any finite logits, with the gradient
``softmax(y_pred) - y_true`` (``sigmoid(y_pred) - y_true``) divided by the number of samples.
With ``from_logits=False`` (Keras' default) they take probabilities, clipped to
``[1e-7, 1 - 1e-7]`` as Keras does (categorical ones first normalised to sum 1).

Targets of shape ``(N,)`` against predictions ``(N, 1)`` are taken as ``(N, 1)`` (as Keras
does; no silent broadcasting to ``(N, N)``). ``backward()`` differentiates the last forward;
its result has y_pred's dtype.

Weights and masks (Keras' rules): every loss first gives one value per sample (per step for
sequences), over y_pred's last axis: ``y_pred.shape[:-1]`` (a 1-D y_pred: one value per
element). ``sample_weight`` (shape ``(B,)``, ``(B, T)``, ... a leading part of that shape,
optionally with a trailing axis of 1; or a scalar) multiplies them, and the result is their
sum divided by their number (Keras' ``"sum_over_batch_size"``: a weight of 0 still counts in
the denominator). ``mask`` (booleans of such a shape, True for real entries, e.g. the steps of
a padded sequence) drops the masked entries and averages over the real ones only:
``sum(w * loss * mask) / sum(mask)`` (0 when nothing is real), as Keras does with the mask a
padded ``Embedding(mask_zero=True)`` puts on a many-to-many output.
"""
import numpy as np

from rnnfast.nn.module import as_array

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "get",
]

EPSILON = 1e-7  # Keras' backend epsilon, the clip of probabilities


def _predictions(y_pred):
    y_pred = as_array(y_pred)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"y_pred: expected a float array, got dtype {y_pred.dtype}")
    if y_pred.ndim < 1 or y_pred.size == 0:
        raise ValueError(f"y_pred: expected a non-empty array of at least 1 dimension, got shape "
                         f"{y_pred.shape}")
    return y_pred


def _dense_targets(y_true, y_pred):
    """Float targets of y_pred's shape (a missing trailing axis of 1 is added)."""
    y_true = as_array(y_true)
    if y_true.dtype.kind not in "fiub":
        raise TypeError(f"y_true: expected a numeric array, got dtype {y_true.dtype}")
    if y_true.shape != y_pred.shape and y_pred.shape[-1] == 1 and y_true.shape == y_pred.shape[:-1]:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true: expected shape {y_pred.shape} (the shape of y_pred), got "
                         f"{y_true.shape}")
    return y_true.astype(y_pred.dtype, copy=False)


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _mean(values):
    """``np.mean(values, dtype=np.float64)`` as a Python float, bitwise (NumPy's sum in float64,
    then one division by the count) without ``np.mean``'s Python layers."""
    if not values.size:
        return float(np.mean(values, dtype=np.float64))  # NaN, with NumPy's warning
    return float(np.add.reduce(values, axis=None, dtype=np.float64)) / values.size


def _loss_weights(sample_weight, mask, shape):
    """One float64 weight per value of a loss of ``shape`` (None: all 1), from Keras'
    ``sample_weight`` and ``mask`` (the mask scaled by ``size / number of real entries``, so
    that dividing by the number of values averages over the real ones)."""
    weights = None
    if sample_weight is not None:
        weights = _weight_array(sample_weight, "sample_weight", shape)
        if not np.all(np.isfinite(weights)):
            raise ValueError("sample_weight: expected finite weights, got inf or nan")
    if mask is not None:
        m = _weight_array(mask, "mask", shape)
        valid = m.sum()
        m = m * (m.size / valid) if valid else m
        weights = m if weights is None else weights * m
    return weights


def _weight_array(value, name, shape):
    """``value`` as float64 weights of ``shape``: its shape must be a leading part of
    ``shape`` (optionally with a trailing axis of 1); it is repeated over the other axes."""
    arr = as_array(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric or boolean array, got dtype {arr.dtype}")
    if arr.ndim and arr.shape[-1] == 1 and arr.shape[:-1] == shape[:arr.ndim - 1] and \
            arr.shape != shape[:arr.ndim]:
        arr = arr[..., 0]
    if arr.shape != shape[:arr.ndim]:
        raise ValueError(f"{name}: expected a shape that {shape} (one loss value per sample"
                         f"{' and step' if len(shape) > 1 else ''}) starts with, got {arr.shape}")
    arr = arr.astype(np.float64).reshape(arr.shape + (1,) * (len(shape) - arr.ndim))
    return np.broadcast_to(arr, shape)


class Loss:
    """Base of the losses: ``loss(y_true, y_pred, sample_weight=None, mask=None)`` is
    ``loss.forward(...)``."""

    #: True when ``_compute`` gives one value per element of y_pred (MSE, MAE, binary
    #: cross-entropy), which Keras averages over the last axis; False for one value per
    #: sample (the categorical cross-entropies).
    elementwise = False

    def __init__(self):
        self._grad = None

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        return self.forward(y_true, y_pred, sample_weight, mask)

    def forward(self, y_true, y_pred, sample_weight=None, mask=None):
        """The mean loss (a Python float), weighted by ``sample_weight`` and restricted to the
        real entries of ``mask`` (see the module's docstring); keeps its gradient for
        ``backward``."""
        y_pred = _predictions(y_pred)
        values, grad = self._compute(y_true, y_pred)
        # the package's losses give a gradient array of their own: scaled in place (the same
        # values as the expressions' new arrays)
        own = type(self)._compute in _OWN_GRADIENTS and grad.dtype == y_pred.dtype
        if sample_weight is None and mask is None:
            value = _mean(values)
            grad = np.divide(grad, values.size, out=grad if own else None)
        else:
            per_sample = self.elementwise and y_pred.ndim >= 2
            shape = y_pred.shape[:-1] if per_sample else values.shape
            weights = _loss_weights(sample_weight, mask, shape)
            if per_sample:
                values = values.mean(axis=-1, dtype=np.float64)
            scale = weights / (values.size * (y_pred.shape[-1] if per_sample else 1))
            value = float(np.sum(values * weights, dtype=np.float64) / values.size)
            scale = scale.reshape(scale.shape + (1,) * (grad.ndim - scale.ndim))
            if own:  # the product in float64, rounded once to the gradient's dtype
                grad = np.multiply(grad, scale, out=grad, casting="unsafe")
            else:
                grad = grad * scale
        self._grad = grad.astype(y_pred.dtype, copy=False)
        return value

    def backward(self):
        """The gradient of the last forward's mean loss with respect to y_pred."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward() first")
        return self._grad

    def __repr__(self):
        return f"{type(self).__name__}()"


class _Crossentropy(Loss):
    def __init__(self, from_logits=False):
        super().__init__()
        self.from_logits = bool(from_logits)

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _categorical_from_probabilities(t, p):
    """Keras' categorical cross-entropy of probabilities: normalised, clipped, -sum t log p;
    per-sample losses and the gradient of their sum."""
    total = p.sum(axis=-1, keepdims=True)
    q = p / total
    inside = (q > EPSILON) & (q < 1 - EPSILON)
    qc = np.clip(q, EPSILON, 1 - EPSILON)
    losses = -(t * np.log(qc)).sum(axis=-1)
    dq = np.where(inside, -t / qc, 0)
    return losses, (dq - (dq * q).sum(axis=-1, keepdims=True)) / total


def _along_last(idx):
    """The index that picks ``idx`` (integers of shape ``lead + (1,)``) along the last axis:
    ``a[_along_last(idx)]`` is ``np.take_along_axis(a, idx, axis=-1)``, and assigning to it
    is ``np.put_along_axis`` (one entry per row here), without their Python layers."""
    lead = idx.shape[:-1]
    return tuple(np.arange(n).reshape((n,) + (1,) * (len(lead) - k))
                 for k, n in enumerate(lead)) + (idx,)


def _sparse_from_probabilities(idx, p):
    """``_categorical_from_probabilities`` of the one-hot targets of ``idx`` (``p``'s shape
    without its class axis, then an axis of 1), bitwise, from each row's target entry: the loss
    is ``-log(qc)`` there (the row's other terms are zeros), dq is zero but there, and every
    other gradient entry is ``(0 - s) / total``, ``s = dq * q`` at the target. A row whose ``s``
    is zero (its target clipped, or of probability 0) has signed zeros to keep, and one whose
    ``s`` is not finite NaNs: those rows take the one-hot formula itself."""
    total = p.sum(axis=-1, keepdims=True)
    at = _along_last(idx)
    q = p[at] / total
    inside = (q > EPSILON) & (q < 1 - EPSILON)
    qc = np.clip(q, EPSILON, 1 - EPSILON)
    losses = -np.log(qc)[..., 0]
    dq = np.where(inside, -np.ones_like(qc) / qc, 0)
    s = dq * q
    grad = np.empty_like(p)
    np.divide(-s, total, out=grad, casting="unsafe")  # broadcast over the class axis
    grad[at] = (dq - s) / total
    zero = (s == 0)[..., 0] | ~np.isfinite(s[..., 0])  # (and rows of NaN, as the formula's)
    if zero.any():
        onehot = np.zeros(p[zero].shape, p.dtype)
        np.put_along_axis(onehot, idx[zero], 1, axis=-1)
        losses[zero], grad[zero] = _categorical_from_probabilities(onehot, p[zero])
    return losses, grad


class CategoricalCrossentropy(_Crossentropy):
    """Cross-entropy against class probabilities over the last axis, mean over samples."""

    def _compute(self, y_true, y_pred):
        t = _dense_targets(y_true, y_pred)
        if self.from_logits:
            log_p = _log_softmax(y_pred)
            losses = -(t * log_p).sum(axis=-1)
            grad = np.exp(log_p) * t.sum(axis=-1, keepdims=True) - t
        else:
            losses, grad = _categorical_from_probabilities(t, y_pred)
        return losses, grad


class SparseCategoricalCrossentropy(_Crossentropy):
    """Cross-entropy against integer class indices, mean over samples."""

    def _compute(self, y_true, y_pred):
        classes = y_pred.shape[-1]
        idx = as_array(y_true)
        if idx.shape == y_pred.shape[:-1] + (1,) and idx.shape != y_pred.shape[:-1]:
            idx = idx[..., 0]
        if idx.shape != y_pred.shape[:-1]:
            raise ValueError(f"y_true: expected class indices of shape {y_pred.shape[:-1]} "
                             f"(y_pred's shape without its class axis), got {idx.shape}")
        if idx.dtype.kind == "f":
            if not np.all(np.floor(idx) == idx):
                raise ValueError("y_true: expected integer class indices, got non-integer floats")
        elif idx.dtype.kind not in "iu":
            raise TypeError(f"y_true: expected integer class indices, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= classes):
            bad = idx.min() if idx.min() < 0 else idx.max()
            raise ValueError(f"y_true: class indices must be in 0..{classes - 1}, got {bad}")
        idx = idx.astype(np.int64)[..., None]
        if self.from_logits:  # log_softmax and exp(log_p) - onehot in two arrays, not six
            shifted = y_pred - y_pred.max(axis=-1, keepdims=True)
            e = np.exp(shifted)
            log_p = np.subtract(shifted, np.log(e.sum(axis=-1, keepdims=True)), out=shifted)
            at = _along_last(idx)
            losses = -log_p[at][..., 0]
            grad = np.exp(log_p, out=e)
            grad[at] = grad[at] - 1
        else:
            losses, grad = _sparse_from_probabilities(idx, y_pred)
        return losses, grad


class BinaryCrossentropy(_Crossentropy):
    """Element-wise binary cross-entropy, mean over all elements."""

    elementwise = True

    def _compute(self, y_true, y_pred):
        t = _dense_targets(y_true, y_pred)
        if self.from_logits:
            # max(z, 0) - z t + log(1 + exp(-|z|)), gradient sigmoid(z) - t
            losses = np.maximum(y_pred, 0) - y_pred * t + np.log1p(np.exp(-np.abs(y_pred)))
            grad = np.exp(-np.logaddexp(0, -y_pred)) - t
        else:
            inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
            p = np.clip(y_pred, EPSILON, 1 - EPSILON)
            q = 1 - p
            losses = -(t * np.log(p) + (1 - t) * np.log(q))
            grad = np.where(inside, (p - t) / (p * q), 0)
        return losses, grad


class MeanSquaredError(Loss):
    """mean((y_pred - y_true) ** 2) over all elements."""

    elementwise = True

    def _compute(self, y_true, y_pred):
        diff = y_pred - _dense_targets(y_true, y_pred)
        return diff * diff, 2 * diff


class MeanAbsoluteError(Loss):
    """mean(|y_pred - y_true|) over all elements (gradient 0 where they are equal)."""

    elementwise = True

    def _compute(self, y_true, y_pred):
        diff = y_pred - _dense_targets(y_true, y_pred)
        return np.abs(diff), np.sign(diff)


# the _compute methods whose gradient is an array of their own (Loss.forward scales it in place)
_OWN_GRADIENTS = {cls._compute for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                           BinaryCrossentropy, MeanSquaredError,
                                           MeanAbsoluteError)}

_NAMES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}


def get(identifier):
    """A loss from a Keras name (``"mse"``, ``"sparse_categorical_crossentropy"``, ...) or a
    ``Loss`` instance (returned as is). Cross-entropies by name take probabilities (Keras'
    default); construct them with ``from_logits=True`` for logits."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _NAMES:
        return _NAMES[identifier]()
    raise ValueError(f"loss: expected a Loss or one of {sorted(_NAMES)}, got {identifier!r}")
