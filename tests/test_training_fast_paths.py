"""The training loop's cheaper paths give what the plain ones gave: the losses' in-place
gradients bitwise against their former NumPy expressions (every loss, float32 and float64,
with and without sample weights and masks), and ``fit``'s input check (one sample traced
through the model) run once per input signature and layers, with the same errors."""
import numpy as np
import pytest

from rnnfast import losses, nn
from rnnfast.models import Sequential
from rnnfast.models import layers as L

DTYPES = [np.float32, np.float64]


# the losses as they were written before their gradients were scaled in place ------------------
def _former_log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _former_sparse(loss, y_true, y_pred):
    idx = np.asarray(y_true)
    if idx.shape == y_pred.shape[:-1] + (1,) and idx.shape != y_pred.shape[:-1]:
        idx = idx[..., 0]
    idx = idx.astype(np.int64)
    onehot = np.zeros_like(y_pred)
    np.put_along_axis(onehot, idx[..., None], 1, axis=-1)
    if loss.from_logits:
        log_p = _former_log_softmax(y_pred)
        values = -np.take_along_axis(log_p, idx[..., None], axis=-1)[..., 0]
        return values, np.exp(log_p) - onehot
    return losses._categorical_from_probabilities(onehot, y_pred)


def _former_forward(loss, y_true, y_pred, sample_weight=None, mask=None):
    """(value, gradient) of Loss.forward as it was."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        values, grad = _former_sparse(loss, y_true, y_pred)
    else:
        values, grad = loss._compute(y_true, y_pred)
    if sample_weight is None and mask is None:
        value, grad = float(np.mean(values, dtype=np.float64)), grad / values.size
    else:
        per_sample = loss.elementwise and y_pred.ndim >= 2
        shape = y_pred.shape[:-1] if per_sample else values.shape
        weights = losses._loss_weights(sample_weight, mask, shape)
        if per_sample:
            values = values.mean(axis=-1, dtype=np.float64)
        scale = weights / (values.size * (y_pred.shape[-1] if per_sample else 1))
        value = float(np.sum(values * weights, dtype=np.float64) / values.size)
        grad = grad * scale.reshape(scale.shape + (1,) * (grad.ndim - scale.ndim))
    return value, grad.astype(y_pred.dtype, copy=False)


def _targets(rng, loss, shape, dtype):
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return rng.integers(0, shape[-1], shape[:-1])
    if isinstance(loss, losses.CategoricalCrossentropy):
        return np.eye(shape[-1], dtype=dtype)[rng.integers(0, shape[-1], shape[:-1])]
    return (rng.random(shape) < 0.5).astype(dtype)


def _predictions(rng, loss, shape, dtype):
    z = rng.standard_normal(shape) * 3
    if getattr(loss, "from_logits", True):
        return z.astype(dtype)
    if isinstance(loss, losses.BinaryCrossentropy):
        return (1 / (1 + np.exp(-z))).astype(dtype)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype)


LOSSES = [losses.SparseCategoricalCrossentropy(from_logits=True),
          losses.SparseCategoricalCrossentropy(),
          losses.CategoricalCrossentropy(from_logits=True), losses.CategoricalCrossentropy(),
          losses.BinaryCrossentropy(from_logits=True), losses.BinaryCrossentropy(),
          losses.MeanSquaredError(), losses.MeanAbsoluteError()]


@pytest.mark.parametrize("weighting", ["none", "sample_weight", "mask", "both"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 9), (1, 1, 2)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_losses_bitwise_their_former_expressions(loss, dtype, shape, weighting):
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    y_pred = _predictions(rng, loss, shape, dtype)
    categorical = isinstance(loss, (losses.CategoricalCrossentropy,
                                    losses.SparseCategoricalCrossentropy))
    # a tie: exact zeros (a uniform distribution for the categorical probabilities)
    y_pred[(0,) * (len(shape) - 1)] = 1 / shape[-1] if categorical and not loss.from_logits \
        else 0
    y_true = _targets(rng, loss, shape, dtype)
    kept = y_pred.copy()
    kw = {}
    if weighting in ("sample_weight", "both"):
        kw["sample_weight"] = rng.random(shape[0]) * 2
    if weighting in ("mask", "both"):
        kw["mask"] = rng.random(shape[:-1]) < 0.7
    value = loss.forward(y_true, y_pred, **kw)
    grad = loss.backward()
    want_value, want_grad = _former_forward(loss, y_true, y_pred, **kw)
    assert value == want_value
    assert grad.dtype == want_grad.dtype == y_pred.dtype
    assert np.array_equal(grad.view(np.uint8), want_grad.view(np.uint8))
    assert np.array_equal(y_pred, kept)  # the predictions are not touched


def test_a_loss_subclass_gradient_is_not_scaled_in_place():
    """A Loss subclass whose gradient is an array it keeps (here y_pred itself) gets a new
    array: only the package's losses, whose gradients are their own, are scaled in place."""
    class Identity(losses.Loss):
        def _compute(self, y_true, y_pred):
            return y_pred.sum(axis=-1), y_pred

    y_pred = np.arange(6, dtype=np.float32).reshape(2, 3)
    loss = Identity()
    loss.forward(None, y_pred)
    assert np.array_equal(y_pred, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(loss.backward(), y_pred / 2)
    loss.forward(None, y_pred, sample_weight=np.array([1.0, 3.0]))
    assert np.array_equal(y_pred, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(loss.backward(), (y_pred * np.array([[0.5], [1.5]])).astype(np.float32))


# fit's input check --------------------------------------------------------------------------------
def _counting(model):
    calls = []
    trace = model._trace

    def counted(sample_shape, dtype):
        calls.append((tuple(sample_shape), np.dtype(dtype)))
        return trace(sample_shape, dtype)
    model._trace = counted
    return calls


def test_fit_checks_a_signature_once():
    rng = np.random.default_rng(0)
    model = Sequential([L.LSTM(4), L.Dense(2)], seed=0)
    model.compile(loss="mse", optimizer="adam")
    x, y = rng.standard_normal((6, 5, 3)).astype(np.float32), rng.standard_normal((6, 2))
    calls = _counting(model)
    model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert calls == [((5, 3), np.dtype(np.float32))]
    assert model.output_shape == (None, 2)
    model.fit(x[:, :4], y, epochs=1, verbose=0)  # another sample shape: checked again
    model.fit(x.astype(np.float64)[:, :4], y, epochs=1, verbose=0)  # another dtype
    assert [c[0] for c in calls] == [(5, 3), (4, 3), (4, 3)]
    model.build((None, 5, 3))  # rebuilt: checked again
    model.fit(x, y, epochs=1, verbose=0)
    assert len(calls) == 4


def test_fit_check_errors_stay_clear_and_are_not_cached():
    model = Sequential([nn.Linear(5, 3), nn.Linear(4, 2)])
    model.compile(loss="mse")
    x, y = np.zeros((4, 5), np.float32), np.zeros((4, 2))
    for _ in range(2):  # a failed check is not remembered as a passed one
        with pytest.raises(ValueError, match=r"layer 1 'linear_1' \(Linear\) cannot take an "
                                             r"input of shape \(None, 3\)"):
            model.fit(x, y, verbose=0)
    good = Sequential([L.LSTM(3), L.Dense(2)])
    good.compile(loss="mse")
    good.fit(np.zeros((4, 5, 2), np.float32), np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match=r"layer 0 'lstm' \(LSTM\).*expected a 3-D array"):
        good.fit(np.zeros((4, 5)), np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match="wrong target shape"):
        good.fit(np.zeros((4, 5, 2), np.float32), np.zeros((4, 3)), verbose=0)
