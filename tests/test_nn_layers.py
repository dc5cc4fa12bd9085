"""Linear, Dense, activations, Dropout, Flatten, LayerNorm, LastStep, TimeDistributed:
gradients against central finite differences (float64), values against PyTorch where it has
the layer, and bad arguments."""
import numpy as np
import pytest

from nn_cases import check_layer_gradients, rel_err
from rnnfast import nn
from rnnfast.models import layers as L


# Linear / Dense ----------------------------------------------------------------------------
def test_linear_gradients_on_sequences(rng):
    lin = nn.Linear(4, 3, dtype=np.float64, seed=0)
    check_layer_gradients(lin, rng.standard_normal((2, 5, 4)), rng)
    no_bias = nn.Linear(4, 3, bias=False, dtype=np.float64, seed=0)
    check_layer_gradients(no_bias, rng.standard_normal((6, 4)), rng)
    assert [n for n, _ in no_bias.named_parameters()] == ["weight"]


def test_linear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ref = torch.nn.Linear(5, 3)
    lin = nn.Linear(5, 3)
    lin.load_state_dict(ref.state_dict())
    x = rng.standard_normal((4, 5)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    out = ref(xt)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    (out * torch.from_numpy(dy)).sum().backward()
    assert rel_err(lin(x), out.detach().numpy()) < 1e-6
    assert rel_err(lin.backward(dy), xt.grad.numpy()) < 1e-6
    assert rel_err(lin.weight.grad, ref.weight.grad.numpy()) < 1e-6
    assert rel_err(lin.bias.grad, ref.bias.grad.numpy()) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_products_on_any_layout(rng, dtype):
    """The package's GEMM behind Linear: rank 1, 2 and 3 inputs, non-contiguous views, an empty
    batch and a size past the GEMM's tiles, against NumPy's products."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    lin = nn.Linear(37, 45, dtype=dtype, seed=0)
    w, b = lin.weight.data, lin.bias.data
    base = rng.standard_normal((6, 37, 9)).astype(dtype)
    inputs = [base[0, :, 0], base[:, :, 1], base.transpose(0, 2, 1), base.transpose(2, 0, 1)[::2],
              np.zeros((0, 37), dtype), rng.standard_normal((70, 37)).astype(dtype)]
    for x in inputs:
        y = lin(x)
        assert y.shape == x.shape[:-1] + (45,) and y.dtype == dtype
        np.testing.assert_allclose(y, x @ w.T + b, rtol=tol, atol=tol)
        dy = rng.standard_normal(y.shape).astype(dtype)
        lin.zero_grad()
        dx = lin.backward(dy)
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx, dy @ w, rtol=tol, atol=tol)
        dy2, x2 = dy.reshape(-1, 45), x.reshape(-1, 37)
        np.testing.assert_allclose(lin.weight.grad, dy2.T @ x2, rtol=tol, atol=tol)
        np.testing.assert_allclose(lin.bias.grad, dy2.sum(axis=0), rtol=tol, atol=tol)


def test_linear_initialisation_bounds():
    lin = nn.Linear(16, 300, seed=0)
    bound = 1 / np.sqrt(16)
    for p in lin.parameters():
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound


@pytest.mark.parametrize("activation", [None, "linear", "relu", "tanh", "sigmoid", "softmax"])
def test_dense_gradients_with_each_activation(rng, activation):
    dense = L.Dense(3, activation=activation, dtype=np.float64, seed=0)
    x = rng.standard_normal((4, 5))
    dense(x)  # builds
    dense.bias.data[...] = rng.standard_normal(3)
    check_layer_gradients(dense, x, rng)


def test_dense_is_lazy_and_keras_initialised(rng):
    dense = L.Dense(200, activation="relu", seed=0)
    assert dense.parameters() == [] and not dense.built
    y = dense(rng.standard_normal((3, 50)))
    assert y.shape == (3, 200) and y.dtype == np.float32 and np.all(y >= 0)
    limit = np.sqrt(6 / (50 + 200))
    assert dense.weight.shape == (200, 50)
    assert np.abs(dense.weight.data).max() <= limit
    assert np.abs(dense.weight.data).max() > 0.9 * limit
    assert np.all(dense.bias.data == 0)
    with pytest.raises(ValueError, match="x: expected 50 features"):
        dense(rng.standard_normal((3, 40)))
    with pytest.raises(ValueError, match="built for 50 input features"):
        dense.build(40)
    eager = L.Dense(4, input_dim=7, use_bias=False)
    assert [(n, p.shape) for n, p in eager.named_parameters()] == [("weight", (4, 7))]


def test_dense_builds_from_a_state_dict(rng):
    src = L.Dense(3, activation="tanh", input_dim=6, seed=1)
    dst = L.Dense(3, activation="tanh")
    dst.load_state_dict(src.state_dict())
    x = rng.standard_normal((2, 6))
    np.testing.assert_array_equal(dst(x), src(x))
    with pytest.raises(ValueError, match=r"state_dict\['weight'\]: expected shape \(units, "):
        L.Dense(4).load_state_dict(src.state_dict())


def test_dense_bad_arguments():
    with pytest.raises(ValueError, match="activation: expected one of"):
        L.Dense(3, activation="swish")
    with pytest.raises(ValueError, match="units"):
        L.Dense(0)
    with pytest.raises(TypeError, match="x: expected a float array"):
        L.Dense(2)(np.ones((2, 3), np.int32))


# activations ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.Softmax(),
                                   nn.Softmax(dim=0)], ids=["relu", "tanh", "sigmoid",
                                                           "softmax", "softmax0"])
def test_activation_gradients(rng, layer):
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from ReLU's kink
    check_layer_gradients(layer, x, rng)


def test_activations_are_stable_and_keep_dtype():
    x = np.array([[-1e4, 0.0, 1e4], [3.0, 2.0, 1.0]], np.float32)
    s = nn.Sigmoid()(x)
    assert s.dtype == np.float32 and np.all(np.isfinite(s))
    np.testing.assert_allclose(s[0], [0, 0.5, 1], atol=1e-7)
    p = nn.Softmax()(x)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=-1), 1)
    np.testing.assert_array_equal(nn.ReLU()(x)[0], [0, 0, 1e4])
    with pytest.raises(ValueError, match="dim: 2 is out of range"):
        nn.Softmax(dim=2)(x)
    with pytest.raises(TypeError, match="dim"):
        nn.Softmax(dim=1.0)


# Dropout -----------------------------------------------------------------------------------
def test_dropout_training_eval_and_gradient(rng):
    drop = nn.Dropout(0.25, seed=0)
    x = rng.standard_normal((200, 50)) + 3
    y = drop(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / 0.75)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(drop.backward(dy), np.where(kept, dy / 0.75, 0))
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(nn.Dropout(1.0)(x), 0)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)
    with pytest.raises(ValueError, match="p: expected a float in"):
        nn.Dropout(-0.1)


def test_dropout_is_reproducible_with_a_seed(rng):
    x = rng.standard_normal((10, 10))
    np.testing.assert_array_equal(nn.Dropout(0.5, seed=3)(x), nn.Dropout(0.5, seed=3)(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_dropout_rate_scale_and_dtype(dtype, p):
    x = np.ones((301, 333), dtype)  # an odd count: the last raw 64-bit draw is half used
    y = nn.Dropout(p, seed=5)(x)
    assert y.dtype == dtype
    kept = y != 0
    n = x.size
    assert abs((1 - kept.mean()) - p) < 5 * np.sqrt(p * (1 - p) / n)  # 5 sigma
    np.testing.assert_array_equal(y[kept], dtype(1) / dtype(1 - p))


def test_dropout_masks_follow_the_generator():
    """Two draws from one layer differ; a layer given a generator uses it (its state moves on);
    a generator without 64-bit raw outputs (MT19937) gives masks of the same rate."""
    x = np.ones((64, 50), np.float32)
    drop = nn.Dropout(0.5, seed=1)
    assert not np.array_equal(drop(x) != 0, drop(x) != 0)
    rng = np.random.default_rng(7)
    first = nn.Dropout(0.5, rng=rng)(x)
    np.testing.assert_array_equal(first, nn.Dropout(0.5, seed=7)(x))
    assert not np.array_equal(nn.Dropout(0.5, rng=rng)(x), first)
    mt = nn.Dropout(0.25, rng=np.random.Generator(np.random.MT19937(0)))(np.ones((400, 400)))
    assert abs((mt == 0).mean() - 0.25) < 0.005


# Flatten -----------------------------------------------------------------------------------
def test_flatten_shapes_and_gradient(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(0, -1)(x).shape == (120,)
    check_layer_gradients(nn.Flatten(), x, rng)
    with pytest.raises(ValueError, match="start_dim, end_dim"):
        nn.Flatten(3, 1)(x)
    flat = nn.Flatten()
    flat(x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 60\)"):
        flat.backward(np.ones((2, 61)))


# LayerNorm ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,affine,bias", [((5,), True, True), ((4, 5), True, False),
                                                ((5,), False, False)])
def test_layer_norm_gradients(rng, shape, affine, bias):
    ln = nn.LayerNorm(shape, elementwise_affine=affine, bias=bias, dtype=np.float64)
    for p in ln.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    check_layer_gradients(ln, rng.standard_normal((3, 4, 5)), rng)


def test_layer_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ref = torch.nn.LayerNorm(6, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(rng.standard_normal(6)))
        ref.bias.copy_(torch.from_numpy(rng.standard_normal(6)))
    ln = nn.LayerNorm(6, dtype=np.float64)
    ln.load_state_dict(ref.state_dict())
    x = rng.standard_normal((2, 3, 6))
    xt = torch.tensor(x, requires_grad=True)
    out = ref(xt)
    dy = rng.standard_normal(x.shape)
    (out * torch.from_numpy(dy)).sum().backward()
    assert rel_err(ln(x), out.detach().numpy()) < 1e-12
    assert rel_err(ln.backward(dy), xt.grad.numpy()) < 1e-12
    assert rel_err(ln.weight.grad, ref.weight.grad.numpy()) < 1e-12


def test_layer_norm_bad_arguments():
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)
    with pytest.raises(TypeError, match="normalized_shape"):
        nn.LayerNorm("a")
    with pytest.raises(ValueError, match=r"x: expected trailing axes \(4,\)"):
        nn.LayerNorm(4)(np.ones((2, 5)))


# LastStep ----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_last_step_is_the_final_state(rng, batch_first, bidirectional):
    gru = nn.GRU(3, 4, num_layers=2, batch_first=batch_first, bidirectional=bidirectional,
                 dtype=np.float64)
    x = rng.standard_normal((3, 6, 3) if batch_first else (6, 3, 3))
    lengths = np.array([6, 2, 4])
    y, h = gru(x, lengths=lengths)
    last = nn.LastStep(batch_first=batch_first, bidirectional=bidirectional)
    want = np.concatenate([h[-2], h[-1]], axis=-1) if bidirectional else h[-1]
    np.testing.assert_array_equal(last(y, lengths), want)
    check_layer_gradients(last, y.copy(), rng, call=lambda v: last(v, lengths))


def test_last_step_without_lengths_and_bad_lengths(rng):
    x = rng.standard_normal((5, 2, 4))
    np.testing.assert_array_equal(nn.LastStep()(x), x[-1])
    with pytest.raises(ValueError, match=r"lengths: every entry must be in 1..T = 1..5, got 6"):
        nn.LastStep()(x, [6, 1])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(batch,\) = \(2,\)"):
        nn.LastStep()(x, [1, 1, 1])
    with pytest.raises(TypeError, match="lengths: expected an integer array"):
        nn.LastStep()(x, [1.0, 2.0])
    with pytest.raises(ValueError, match="even number of features"):
        nn.LastStep(bidirectional=True)(x[..., :3])


# TimeDistributed ---------------------------------------------------------------------------
def test_time_distributed_applies_the_layer_per_step(rng):
    td = nn.TimeDistributed(L.Dense(3, activation="tanh", input_dim=4, dtype=np.float64))
    x = rng.standard_normal((2, 5, 4))
    y = td(x)
    for t in range(5):
        np.testing.assert_allclose(y[:, t], td.layer(x[:, t]), rtol=1e-14)
    check_layer_gradients(td, x, rng)
    assert [n for n, _ in td.named_parameters()] == ["layer.weight", "layer.bias"]
    with pytest.raises(TypeError, match="layer: expected an rnnfast.nn layer"):
        nn.TimeDistributed(lambda v: v)
