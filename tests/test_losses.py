"""Losses: values against PyTorch / closed forms, gradients against central finite
differences (float64), stability with huge logits, target shapes and bad arguments."""
import numpy as np
import pytest

from nn_cases import FD_TOL, numeric_grad, rel_err
from rnnfast import losses as L


def fd_check(loss, y_true, y_pred):
    loss.forward(y_true, y_pred)
    grad = loss.backward()
    assert grad.shape == y_pred.shape and grad.dtype == y_pred.dtype
    assert rel_err(grad, numeric_grad(lambda: loss.forward(y_true, y_pred), y_pred)) < FD_TOL


def probabilities(rng, shape):
    p = rng.uniform(0.1, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)])
@pytest.mark.parametrize("from_logits", [True, False])
def test_categorical_gradients(rng, shape, from_logits):
    y_true = probabilities(rng, shape)  # soft labels exercise the general formula
    y_pred = rng.standard_normal(shape) if from_logits else rng.uniform(0.1, 1.0, shape)
    fd_check(L.CategoricalCrossentropy(from_logits=from_logits), y_true, y_pred)


@pytest.mark.parametrize("from_logits", [True, False])
def test_sparse_gradients(rng, from_logits):
    y_pred = rng.standard_normal((2, 3, 4)) if from_logits else rng.uniform(0.1, 1, (2, 3, 4))
    fd_check(L.SparseCategoricalCrossentropy(from_logits=from_logits),
             rng.integers(0, 4, (2, 3)), y_pred)


@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_gradients(rng, from_logits):
    y_pred = rng.standard_normal((5, 3)) if from_logits else rng.uniform(0.05, 0.95, (5, 3))
    fd_check(L.BinaryCrossentropy(from_logits=from_logits), rng.uniform(0, 1, (5, 3)), y_pred)


def test_regression_gradients(rng):
    fd_check(L.MeanSquaredError(), rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))
    fd_check(L.MeanAbsoluteError(), rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))


def test_values_match_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    logits = rng.standard_normal((6, 5))
    idx = rng.integers(0, 5, 6)
    onehot = np.eye(5)[idx]
    soft = probabilities(rng, (6, 5))
    t = torch.from_numpy
    assert abs(L.SparseCategoricalCrossentropy(from_logits=True)(idx, logits)
               - tf.cross_entropy(t(logits), t(idx)).item()) < 1e-12
    assert abs(L.CategoricalCrossentropy(from_logits=True)(onehot, logits)
               - tf.cross_entropy(t(logits), t(idx)).item()) < 1e-12
    assert abs(L.CategoricalCrossentropy(from_logits=True)(soft, logits)
               - tf.cross_entropy(t(logits), t(soft)).item()) < 1e-12
    targets = rng.uniform(0, 1, (6, 5))
    assert abs(L.BinaryCrossentropy(from_logits=True)(targets, logits)
               - tf.binary_cross_entropy_with_logits(t(logits), t(targets)).item()) < 1e-12
    mse = tf.mse_loss(t(logits), t(targets)).item()
    assert abs(L.MeanSquaredError()(targets, logits) - mse) < 1e-12
    mae = tf.l1_loss(t(logits), t(targets)).item()
    assert abs(L.MeanAbsoluteError()(targets, logits) - mae) < 1e-12
    # Sequences: (B, T, C) logits against (B, T) indices, the mean over all B*T steps.
    seq = rng.standard_normal((2, 4, 5))
    seq_idx = rng.integers(0, 5, (2, 4))
    loss = L.SparseCategoricalCrossentropy(from_logits=True)
    want = tf.cross_entropy(t(seq.reshape(8, 5)), t(seq_idx.reshape(8)))
    assert abs(loss(seq_idx, seq) - want.item()) < 1e-12


def test_probability_inputs_follow_keras(rng):
    p = probabilities(rng, (4, 3))
    idx = np.array([0, 2, 1, 1])
    want = -np.mean(np.log(p[np.arange(4), idx]))
    assert abs(L.CategoricalCrossentropy()(np.eye(3)[idx], p) - want) < 1e-12
    assert abs(L.SparseCategoricalCrossentropy()(idx, p) - want) < 1e-12
    assert abs(L.CategoricalCrossentropy()(np.eye(3)[idx], 2 * p) - want) < 1e-12  # normalised
    q = rng.uniform(0.1, 0.9, (4, 1))
    t = np.array([1, 0, 1, 1])
    want = -np.mean(t * np.log(q[:, 0]) + (1 - t) * np.log(1 - q[:, 0]))
    assert abs(L.BinaryCrossentropy()(t, q) - want) < 1e-12
    clipped = L.BinaryCrossentropy()(np.array([1.0]), np.array([0.0]))
    assert abs(clipped + np.log(1e-7)) < 1e-6


def test_huge_logits_stay_finite():
    logits = np.array([[1e4, -1e4, 0.0], [-1e30, 1e30, 5.0]], np.float32)
    for loss, target in [(L.CategoricalCrossentropy(from_logits=True), np.eye(3)[[1, 0]]),
                         (L.SparseCategoricalCrossentropy(from_logits=True), np.array([1, 0])),
                         (L.BinaryCrossentropy(from_logits=True), np.ones((2, 3)))]:
        value = loss(target, logits)
        grad = loss.backward()
        assert np.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == np.float32
    sce = L.SparseCategoricalCrossentropy(from_logits=True)
    assert abs(sce(np.array([0]), np.array([[1e4, -1e4]]))) < 1e-12
    assert abs(sce(np.array([1]), np.array([[1e4, -1e4]])) - 2e4) < 1e-6


def test_target_shapes_like_keras(rng):
    y_pred = rng.standard_normal((4, 1))
    y_true = rng.integers(0, 2, 4)
    a = L.BinaryCrossentropy(from_logits=True)(y_true, y_pred)
    b = L.BinaryCrossentropy(from_logits=True)(y_true[:, None], y_pred)
    assert a == b
    assert L.MeanSquaredError()(y_true, y_pred) == L.MeanSquaredError()(y_true[:, None], y_pred)
    sce = L.SparseCategoricalCrossentropy(from_logits=True)
    logits = rng.standard_normal((4, 3))
    idx = rng.integers(0, 3, 4)
    assert sce(idx, logits) == sce(idx[:, None], logits) == sce(idx.astype(float), logits)


def test_bad_arguments(rng):
    mse = L.MeanSquaredError()
    with pytest.raises(RuntimeError, match="call forward"):
        mse.backward()
    with pytest.raises(ValueError, match=r"y_true: expected shape \(4, 3\)"):
        mse(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"y_true: expected shape \(4,\)"):
        mse(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(TypeError, match="y_pred: expected a float array"):
        mse(np.zeros(3), np.zeros(3, np.int64))
    sce = L.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match=r"class indices must be in 0..2, got 3"):
        sce(np.array([0, 3]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-integer floats"):
        sce(np.array([0.5, 1]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y_true: expected class indices of shape \(2,\)"):
        sce(np.array([0, 1, 2]), np.zeros((2, 3)))


def test_get_by_keras_name():
    assert isinstance(L.get("mse"), L.MeanSquaredError)
    assert isinstance(L.get("mean_absolute_error"), L.MeanAbsoluteError)
    sce = L.get("sparse_categorical_crossentropy")
    assert isinstance(sce, L.SparseCategoricalCrossentropy) and not sce.from_logits
    mine = L.BinaryCrossentropy(from_logits=True)
    assert L.get(mine) is mine
    with pytest.raises(ValueError, match="loss: expected a Loss or one of"):
        L.get("hinge")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_probabilities_bitwise_the_one_hot_formula(dtype):
    """The sparse cross-entropy of probabilities works from each row's target entry: losses and
    gradient byte for byte those of the one-hot categorical formula, for saturated, clipped,
    unnormalised, zero, negative, infinite and NaN entries, 2-D and 3-D."""
    rng = np.random.default_rng(5)
    for trial in range(700):
        shape = [(7, 5), (3, 4, 9), (1, 1), (64, 40), (2, 3, 2), (5, 3)][trial % 6]
        z = rng.standard_normal(shape) * rng.choice([0.1, 3, 30, 80, 200])
        p = np.exp(z - z.max(-1, keepdims=True))
        p = (p / p.sum(-1, keepdims=True)).astype(dtype)
        spot = rng.integers(p.size)
        kind = trial % 8
        if kind == 1:
            p = p * dtype(3.7)
        elif kind == 2:
            p[..., 0] = 0
        elif kind == 3:
            p[...] = 0
        elif kind in (4, 5, 6, 7):
            p.flat[spot] = [np.nan, np.inf, -0.5, 1.0][kind - 4]
        idx = rng.integers(0, shape[-1], shape[:-1])
        onehot = np.zeros_like(p)
        np.put_along_axis(onehot, idx[..., None], 1, axis=-1)
        with np.errstate(all="ignore"):
            want = L._categorical_from_probabilities(onehot, p)
            loss = L.SparseCategoricalCrossentropy()
            got = loss._compute(idx, p)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), (trial, kind)


def test_along_last_is_take_and_put_along_axis():
    """``_along_last(idx)`` picks and assigns what ``np.take_along_axis`` /
    ``np.put_along_axis`` do along the last axis, for 1-D to 4-D arrays."""
    rng = np.random.default_rng(11)
    for shape in [(6,), (1, 1), (7, 5), (3, 4, 9), (2, 3, 1, 4)]:
        a = rng.standard_normal(shape)
        idx = rng.integers(0, shape[-1], shape[:-1] + (1,))
        at = L._along_last(idx)
        assert a[at].shape == idx.shape
        assert (a[at] == np.take_along_axis(a, idx, axis=-1)).all()
        values = rng.standard_normal(idx.shape)
        put, want = a.copy(), a.copy()
        put[at] = values
        np.put_along_axis(want, idx, values, axis=-1)
        assert put.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_logits_bitwise_the_along_axis_formula(dtype):
    """The sparse cross-entropy of logits gathers and scatters its target entries with
    ``_along_last``: the losses and gradient of ``take_along_axis`` / ``put_along_axis``."""
    rng = np.random.default_rng(12)
    for shape in [(7, 5), (3, 4, 9), (1, 1), (64, 40), (5,)]:
        z = (rng.standard_normal(shape) * 20).astype(dtype)
        idx = rng.integers(0, shape[-1], shape[:-1])
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        log_p = shifted - np.log(e.sum(axis=-1, keepdims=True))
        want_loss = -np.take_along_axis(log_p, idx[..., None], axis=-1)[..., 0]
        want_grad = np.exp(log_p)
        np.put_along_axis(want_grad, idx[..., None],
                          np.take_along_axis(want_grad, idx[..., None], axis=-1) - 1, axis=-1)
        loss, grad = L.SparseCategoricalCrossentropy(from_logits=True)._compute(idx, z)
        assert loss.tobytes() == want_loss.tobytes() and grad.tobytes() == want_grad.tobytes()
