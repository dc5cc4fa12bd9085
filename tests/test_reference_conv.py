"""The NumPy reference of Conv1D and pooling: central finite differences, ties, and PyTorch."""
import numpy as np
import pytest

from rnnfast import reference as R

EPS = 1e-6
FD_TOL = 1e-6


def numeric_grad(f, a):
    """Central differences of the scalar f() with respect to every element of a (in place)."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * EPS)
    return g


def assert_close(got, want, tol=FD_TOL):
    scale = max(1.0, np.abs(want).max())
    assert np.abs(got - want).max() / scale < tol


CONV_CASES = [
    # (channels_last, padding, stride, dilation, c_in, c_out, groups, K, L)
    (True, "valid", 1, 1, 3, 4, 1, 3, 7),
    (False, "same", 2, 1, 4, 6, 2, 3, 8),
    (True, "causal", 1, 2, 2, 3, 1, 2, 6),
    (False, 2, 3, 1, 3, 3, 3, 3, 7),
    (True, (0, 3), 2, 2, 4, 4, 2, 3, 9),
    (True, "same", 3, 2, 2, 4, 2, 2, 5),
]


@pytest.mark.parametrize("channels_last,padding,stride,dilation,c_in,c_out,groups,K,L", CONV_CASES)
def test_conv1d_gradients_match_finite_differences(rng, channels_last, padding, stride, dilation,
                                                    c_in, c_out, groups, K, L):
    B = 2
    x = rng.standard_normal((B, L, c_in) if channels_last else (B, c_in, L))
    w = rng.standard_normal((c_out, c_in // groups, K))
    b = rng.standard_normal(c_out)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
              channels_last=channels_last)
    y, ctx = R.conv1d_forward(x, w, b, training=True, **kw)
    dy = rng.standard_normal(y.shape)
    grads = R.conv1d_backward(ctx, dy)

    def loss():
        return float(np.sum(R.conv1d_forward(x, w, b, **kw)[0] * dy))

    assert_close(grads["x"], numeric_grad(loss, x))
    assert_close(grads["w"], numeric_grad(loss, w))
    assert_close(grads["b"], numeric_grad(loss, b))


def test_conv1d_without_bias_gives_no_bias_gradient(rng):
    x = rng.standard_normal((1, 5, 2))
    w = rng.standard_normal((3, 2, 2))
    y, ctx = R.conv1d_forward(x, w, training=True)
    assert R.conv1d_backward(ctx, rng.standard_normal(y.shape))["b"] is None


def test_conv1d_output_lengths():
    x = np.zeros((1, 10, 1))
    w = np.zeros((1, 1, 3))
    for padding, stride, dilation, want in [("valid", 1, 1, 8), ("valid", 3, 1, 3), ("same", 1, 2, 10),
                                            ("same", 3, 1, 4), ("causal", 2, 2, 5), (1, 1, 1, 10),
                                            ((2, 0), 1, 1, 10)]:
        y, _ = R.conv1d_forward(x, w, stride=stride, padding=padding, dilation=dilation)
        assert y.shape == (1, want, 1), (padding, stride, dilation)


def tie_free(rng, shape):
    """Distinct values at least 1/size apart: the max of every window is unique."""
    return rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape)


POOL_CASES = [(2, None, "valid"), (3, 1, "valid"), (3, 2, "same"), (4, 3, "same"), (2, 3, "valid"),
              (5, 2, "same")]


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("pool_size,stride,padding", POOL_CASES)
def test_max_pool1d_gradient_matches_finite_differences(rng, channels_last, pool_size, stride,
                                                        padding):
    x = tie_free(rng, (2, 9, 3) if channels_last else (2, 3, 9))
    kw = dict(pool_size=pool_size, stride=stride, padding=padding, channels_last=channels_last)
    y, ctx = R.max_pool1d_forward(x, training=True, **kw)
    dy = rng.standard_normal(y.shape)
    dx = R.max_pool1d_backward(ctx, dy)["x"]
    assert_close(dx, numeric_grad(lambda: float(np.sum(R.max_pool1d_forward(x, **kw)[0] * dy)), x))


@pytest.mark.parametrize("name", ["global_max_pool1d", "global_avg_pool1d"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_global_pool_gradients_match_finite_differences(rng, name, channels_last):
    forward = getattr(R, name + "_forward")
    backward = getattr(R, name + "_backward")
    x = tie_free(rng, (2, 7, 3) if channels_last else (2, 3, 7))
    y, ctx = forward(x, channels_last=channels_last, training=True)
    assert y.shape == (2, 3)
    dy = rng.standard_normal(y.shape)
    dx = backward(ctx, dy)["x"]
    assert_close(dx, numeric_grad(lambda: float(np.sum(forward(x, channels_last=channels_last)[0] * dy)), x))


def test_max_pool1d_ties_go_to_first_maximum_and_overlaps_accumulate():
    x = np.array([[[1.0], [3.0], [3.0], [0.0], [3.0]]])  # (B=1, L=5, C=1)
    y, ctx = R.max_pool1d_forward(x, pool_size=3, stride=1, training=True)
    np.testing.assert_array_equal(y[0, :, 0], [3.0, 3.0, 3.0])
    dx = R.max_pool1d_backward(ctx, np.array([[[1.0], [10.0], [100.0]]]))["x"]
    # Windows [1,3,3] -> step 1; [3,3,0] -> step 1; [3,0,3] -> step 2.
    np.testing.assert_array_equal(dx[0, :, 0], [0.0, 11.0, 100.0, 0.0, 0.0])


def test_max_pool1d_same_padding_never_picks_padding():
    x = -np.ones((1, 1, 4)) * np.inf  # every input is -inf: padding must still lose
    y, ctx = R.max_pool1d_forward(x, pool_size=3, stride=1, padding="same", channels_last=False,
                                  training=True)
    assert y.shape == (1, 1, 4)
    dx = R.max_pool1d_backward(ctx, np.ones((1, 1, 4)))["x"]
    np.testing.assert_array_equal(dx[0, 0], [2.0, 1.0, 1.0, 0.0])


def test_backward_rejects_the_ctx_of_another_op(rng):
    _, ctx = R.max_pool1d_forward(rng.standard_normal((1, 4, 2)), pool_size=2, training=True)
    with pytest.raises(ValueError, match="ctx: expected the ctx of conv1d_forward"):
        R.conv1d_backward(ctx, np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="ctx: expected the ctx of max_pool1d_forward"):
        R.max_pool1d_backward(None, np.zeros((1, 2, 2)))


def test_reference_matches_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rng.standard_normal((2, 4, 13))
    w = rng.standard_normal((6, 2, 3))
    b = rng.standard_normal(6)
    y, ctx = R.conv1d_forward(x, w, b, stride=2, padding=3, dilation=2, groups=2,
                              channels_last=False, training=True)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = tf.conv1d(xt, wt, bt, stride=2, padding=3, dilation=2, groups=2)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    grads = R.conv1d_backward(ctx, dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    for name, t in (("x", xt), ("w", wt), ("b", bt)):
        np.testing.assert_allclose(grads[name], t.grad.numpy(), atol=1e-12)

    x = tie_free(rng, (2, 3, 11))
    y, ctx = R.max_pool1d_forward(x, pool_size=3, stride=2, channels_last=False, training=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = tf.max_pool1d(xt, 3, 2)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(R.max_pool1d_backward(ctx, dy)["x"], xt.grad.numpy(), atol=1e-12)
