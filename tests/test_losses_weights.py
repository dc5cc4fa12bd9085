"""Sample weights and masks of the losses (Keras' rules): values against a plain NumPy
computation of the per-sample losses, gradients against central finite differences, and the
shapes a weight or mask may have."""
import numpy as np
import pytest

from nn_cases import FD_TOL, numeric_grad, rel_err
from rnnfast import losses as L

EPS = 1e-7


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def per_sample(name, y_true, y_pred):
    """Keras' per-sample (per-step) losses, over the last axis of y_pred."""
    if name == "categorical_logits":
        return -(y_true * log_softmax(y_pred)).sum(axis=-1)
    if name == "categorical_probs":
        q = np.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), EPS, 1 - EPS)
        return -(y_true * np.log(q)).sum(axis=-1)
    if name == "sparse_logits":
        return -np.take_along_axis(log_softmax(y_pred), y_true[..., None], axis=-1)[..., 0]
    if name == "binary_logits":
        p = 1 / (1 + np.exp(-y_pred))
        return -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)).mean(axis=-1)
    if name == "binary_probs":
        p = np.clip(y_pred, EPS, 1 - EPS)
        return -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)).mean(axis=-1)
    if name == "mse":
        return ((y_pred - y_true) ** 2).mean(axis=-1)
    if name == "mae":
        return np.abs(y_pred - y_true).mean(axis=-1)
    raise AssertionError(name)


LOSSES = {
    "categorical_logits": lambda: L.CategoricalCrossentropy(from_logits=True),
    "categorical_probs": lambda: L.CategoricalCrossentropy(),
    "sparse_logits": lambda: L.SparseCategoricalCrossentropy(from_logits=True),
    "binary_logits": lambda: L.BinaryCrossentropy(from_logits=True),
    "binary_probs": lambda: L.BinaryCrossentropy(),
    "mse": L.MeanSquaredError,
    "mae": L.MeanAbsoluteError,
}


def case(name, rng, shape):
    """(y_true, y_pred) for a loss, predictions away from clipping and kinks."""
    if name.startswith("categorical"):
        t = rng.uniform(0.1, 1, shape)
        t /= t.sum(axis=-1, keepdims=True)
        p = rng.standard_normal(shape) if name.endswith("logits") else rng.uniform(0.1, 1, shape)
        return t, p
    if name == "sparse_logits":
        return rng.integers(0, shape[-1], shape[:-1]), rng.standard_normal(shape)
    if name.startswith("binary"):
        t = rng.uniform(0, 1, shape)
        p = rng.standard_normal(shape) if name.endswith("logits") else \
            rng.uniform(0.05, 0.95, shape)
        return t, p
    return rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("weight_shape", [(5,), (5, 4), (5, 1), ()])
def test_sample_weight_value_is_keras_sum_over_batch_size(rng, name, weight_shape):
    y_true, y_pred = case(name, rng, (5, 4, 3))
    w = rng.uniform(0, 2, weight_shape)
    if weight_shape:
        w[0] = 0.0
    l = per_sample(name, y_true, y_pred)  # (5, 4)
    full = w[:, None] if w.ndim == 1 else w  # (5, 1) and () broadcast as they are
    want = (l * np.broadcast_to(full, l.shape)).sum() / l.size
    got = LOSSES[name]()(y_true, y_pred, sample_weight=w)
    assert abs(got - want) < 1e-12
    assert abs(LOSSES[name]()(y_true, y_pred) - l.mean()) < 1e-12  # no weights: the mean


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_mask_averages_over_the_real_steps(rng, name):
    y_true, y_pred = case(name, rng, (4, 6, 3))
    lengths = np.array([6, 2, 4, 1])
    mask = np.arange(6)[None, :] < lengths[:, None]
    w = rng.uniform(0.5, 2, 4)
    l = per_sample(name, y_true, y_pred)
    want = (l * w[:, None] * mask).sum() / mask.sum()
    assert abs(LOSSES[name]()(y_true, y_pred, sample_weight=w, mask=mask) - want) < 1e-12
    want = (l * mask).sum() / mask.sum()
    assert abs(LOSSES[name]()(y_true, y_pred, mask=mask) - want) < 1e-12
    loss = LOSSES[name]()
    assert loss(y_true, y_pred, mask=np.zeros((4, 6), bool)) == 0.0
    assert not loss.backward().any()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_masked_weighted_gradient_matches_finite_differences(rng, name):
    y_true, y_pred = case(name, rng, (3, 5, 4))
    mask = np.arange(5)[None, :] < np.array([5, 3, 1])[:, None]
    w = rng.uniform(0.5, 2, (3, 5))
    loss = LOSSES[name]()
    loss.forward(y_true, y_pred, sample_weight=w, mask=mask)
    grad = loss.backward()
    assert grad.shape == y_pred.shape and grad.dtype == y_pred.dtype
    assert not grad[~mask].any()  # padded steps get no gradient
    want = numeric_grad(lambda: loss.forward(y_true, y_pred, sample_weight=w, mask=mask), y_pred)
    assert rel_err(grad, want) < FD_TOL


def test_one_dimensional_predictions_weigh_each_element(rng):
    y_true, y_pred = rng.standard_normal(6), rng.standard_normal(6)
    w = rng.uniform(0, 1, 6)
    mse = L.MeanSquaredError()
    assert abs(mse(y_true, y_pred, sample_weight=w) - np.mean(w * (y_pred - y_true) ** 2)) < 1e-12
    assert rel_err(mse.backward(), 2 * w * (y_pred - y_true) / 6) < 1e-12


def test_float32_gradient_keeps_dtype(rng):
    logits = rng.standard_normal((2, 3, 4)).astype(np.float32)
    loss = L.SparseCategoricalCrossentropy(from_logits=True)
    loss(rng.integers(0, 4, (2, 3)), logits, sample_weight=np.ones((2, 3)), mask=[[1, 1, 0]] * 2)
    assert loss.backward().dtype == np.float32


def test_bad_weights_and_masks(rng):
    mse = L.MeanSquaredError()
    y = rng.standard_normal((4, 3, 2))
    with pytest.raises(ValueError, match=r"sample_weight: expected a shape that \(4, 3\)"):
        mse(y, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"got \(4, 3, 2\)"):
        mse(y, y, sample_weight=np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match=r"mask: expected a shape that \(4, 3\)"):
        mse(y, y, mask=np.ones((3, 4), bool))
    with pytest.raises(TypeError, match="sample_weight: expected a numeric or boolean array"):
        mse(y, y, sample_weight=np.array(["a"] * 4))
    with pytest.raises(ValueError, match="sample_weight: expected finite weights"):
        mse(y, y, sample_weight=np.array([1, np.nan, 1, 1]))
