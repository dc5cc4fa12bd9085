"""MaxPool1D and global max / average pooling kernels against the NumPy reference."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import REF_FACTOR, REF_FLOOR_ULPS, assert_as_accurate_as

TOL = {np.float64: 1e-10, np.float32: 1e-4}


def rel_err(got, want):
    return np.abs(np.asarray(got, np.float64) - want).max() / max(1.0, np.abs(want).max())


def tie_free(rng, shape):
    """Distinct values: the maximum of every window is unique."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) / n


def check_op(rng, name, x, **kw):
    forward, backward = getattr(F, name + "_forward"), getattr(F, name + "_backward")
    y_ref, ctx_ref = getattr(R, name + "_forward")(x, training=True, **kw)
    dy = rng.standard_normal(y_ref.shape).astype(x.dtype)
    dx_ref = getattr(R, name + "_backward")(ctx_ref, dy)["x"]
    y, ctx = forward(x, training=True, **kw)
    assert y.dtype == x.dtype and y.shape == y_ref.shape
    dx = backward(ctx, dy)
    assert set(dx) == {"x"}
    assert dx["x"].dtype == x.dtype and dx["x"].shape == x.shape
    tol = TOL[x.dtype.type]
    assert rel_err(y, y_ref) < tol
    assert rel_err(dx["x"], dx_ref) < tol
    if x.dtype == np.float32:  # within the float32 reference's own error (recurrent_cases)
        y32, ctx32 = getattr(R, name + "_forward")(x, training=True, dtype=np.float32, **kw)
        dx32 = getattr(R, name + "_backward")(ctx32, dy)["x"]
        assert_as_accurate_as(y, y32, y_ref, "y", factor=REF_FACTOR, floor_ulps=REF_FLOOR_ULPS)
        assert_as_accurate_as(dx["x"], dx32, dx_ref, "dx", factor=REF_FACTOR,
                              floor_ulps=REF_FLOOR_ULPS)
    return y, dx["x"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool_size,stride", [(1, None), (2, None), (3, None), (3, 1), (3, 2),
                                              (4, 3), (2, 3), (5, 1), (11, 4)])
@pytest.mark.parametrize("L", [11, 12])
def test_max_pool1d_matches_reference(rng, dtype, channels_last, padding, pool_size, stride, L):
    x = tie_free(rng, (2, L, 5) if channels_last else (2, 5, L)).astype(dtype)
    check_op(rng, "max_pool1d", x, pool_size=pool_size, stride=stride, padding=padding,
             channels_last=channels_last)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize("name", ["global_max_pool1d", "global_avg_pool1d"])
@pytest.mark.parametrize("shape", [(3, 17, 6), (1, 1, 2), (2, 300, 33)])
def test_global_pools_match_reference(rng, dtype, channels_last, name, shape):
    B, L, C = shape
    x = tie_free(rng, (B, L, C) if channels_last else (B, C, L)).astype(dtype)
    y, _ = check_op(rng, name, x, channels_last=channels_last)
    assert y.shape == (B, C)


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_max_pool1d_ties_go_to_first_maximum_and_overlaps_accumulate(channels_last):
    seq = np.array([1.0, 3.0, 3.0, 0.0, 3.0, 3.0])
    x = seq[None, :, None] if channels_last else seq[None, None, :]
    y, ctx = F.max_pool1d_forward(x, pool_size=3, stride=1, channels_last=channels_last,
                                  training=True)
    np.testing.assert_array_equal(y.ravel(), [3.0, 3.0, 3.0, 3.0])
    dy = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(y.shape)
    dx = F.max_pool1d_backward(ctx, dy)["x"].ravel()
    # Windows [1,3,3] and [3,3,0] -> step 1; [3,0,3] -> step 2; [0,3,3] -> step 4.
    np.testing.assert_array_equal(dx, [0.0, 11.0, 100.0, 0.0, 1000.0, 0.0])


def test_global_max_pool1d_ties_go_to_first_maximum():
    x = np.array([[[2.0, 5.0], [7.0, 5.0], [7.0, 1.0]]])  # (B=1, L=3, C=2)
    y, ctx = F.global_max_pool1d_forward(x, training=True)
    np.testing.assert_array_equal(y, [[7.0, 5.0]])
    dx = F.global_max_pool1d_backward(ctx, np.array([[3.0, 4.0]]))["x"]
    np.testing.assert_array_equal(dx[0], [[0.0, 4.0], [3.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_max_pool1d_padding_never_wins(channels_last):
    x = np.full((1, 4, 1) if channels_last else (1, 1, 4), -np.inf)
    y, ctx = F.max_pool1d_forward(x, pool_size=3, stride=1, padding="same",
                                  channels_last=channels_last, training=True)
    assert y.shape == x.shape and np.all(y == -np.inf)
    dx = F.max_pool1d_backward(ctx, np.ones_like(y))["x"]
    np.testing.assert_array_equal(dx.ravel(), [2.0, 1.0, 1.0, 0.0])


def test_max_pool1d_nan_counts_as_maximum():
    x = np.array([[[1.0], [np.nan], [5.0], [np.nan]]])
    y, ctx = F.max_pool1d_forward(x, pool_size=4, training=True)
    assert np.isnan(y).all()
    dx = F.max_pool1d_backward(ctx, np.array([[[2.0]]]))["x"]
    np.testing.assert_array_equal(dx.ravel(), [0.0, 2.0, 0.0, 0.0])  # the first NaN


def test_max_pool1d_output_lengths():
    x = np.zeros((1, 10, 1))
    for kw, want in [(dict(pool_size=3), 3), (dict(pool_size=3, padding="same"), 4),
                     (dict(pool_size=2, stride=1), 9), (dict(pool_size=10), 1),
                     (dict(pool_size=4, stride=3, padding="same"), 4), (dict(pool_size=25, padding="same"), 1)]:
        assert F.max_pool1d_forward(x, **kw)[0].shape == (1, want, 1), kw


def test_pools_accept_odd_inputs_and_leave_them_unchanged(rng):
    x = tie_free(rng, (3, 12, 4))
    big = np.zeros((3, 24, 4))
    strided = big[:, ::2]
    strided[...] = x
    strided.setflags(write=False)
    fortran = np.asfortranarray(x)
    for name, kw in [("max_pool1d", dict(pool_size=3, stride=2, padding="same")),
                     ("global_max_pool1d", {}), ("global_avg_pool1d", {})]:
        forward, backward = getattr(F, name + "_forward"), getattr(F, name + "_backward")
        y0, ctx0 = forward(x, training=True, **kw)
        dy = rng.standard_normal(y0.shape)
        dx0 = backward(ctx0, dy)["x"]
        for variant in (strided, fortran):
            y, ctx = forward(variant, training=True, **kw)
            np.testing.assert_array_equal(y, y0)
            np.testing.assert_array_equal(backward(ctx, np.asfortranarray(dy))["x"], dx0)
            np.testing.assert_array_equal(variant, x)
        assert not big[:, 1::2].any()
        assert not backward(ctx0, None)["x"].any()


def test_pools_empty_batch_and_inference():
    y, ctx = F.max_pool1d_forward(np.zeros((0, 5, 2), np.float32), pool_size=2, training=True)
    assert y.shape == (0, 2, 2) and F.max_pool1d_backward(ctx, y)["x"].shape == (0, 5, 2)
    y, ctx = F.global_avg_pool1d_forward(np.zeros((2, 5, 3)))
    assert ctx is None and y.shape == (2, 3)


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_pools_bitwise_identical_for_any_thread_count(rng, channels_last):
    x = rng.standard_normal((9, 200, 16)).astype(np.float32)
    before = rnnfast.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            out = []
            for name, kw in [("max_pool1d", dict(pool_size=4, stride=2)), ("global_max_pool1d", {}),
                             ("global_avg_pool1d", {})]:
                y, ctx = getattr(F, name + "_forward")(x, channels_last=channels_last, training=True, **kw)
                dy = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
                out += [y, getattr(F, name + "_backward")(ctx, dy)["x"]]
            runs.append(out)
    finally:
        rnnfast.set_num_threads(before)
    for out in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(out, runs[0]))


# ------------------------------------------------------------------ the ctx (bad input: test_bad_input_matrix.py)


def test_pool_ctx_repr_and_op():
    _, ctx = F.max_pool1d_forward(np.zeros((2, 9, 4)), pool_size=2, training=True)
    assert "max_pool1d_forward" in repr(ctx) and ctx.op == "max_pool1d"


def test_max_pool1d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = tie_free(rng, (3, 6, 50)).astype(np.float32)
    for pool_size, stride in [(2, None), (3, 1), (5, 3)]:
        y, ctx = F.max_pool1d_forward(x, pool_size=pool_size, stride=stride, channels_last=False,
                                      training=True)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.max_pool1d(xt, pool_size, stride)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        yt.backward(torch.tensor(dy))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        _, ctx64 = R.max_pool1d_forward(x.astype(np.float64), pool_size=pool_size, stride=stride,
                                        channels_last=False, training=True)
        want = R.max_pool1d_backward(ctx64, dy.astype(np.float64))["x"]
        assert_as_accurate_as(F.max_pool1d_backward(ctx, dy)["x"], xt.grad.numpy(), want, "dx")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool_size,stride,C", [(4, 4, 37), (3, 2, 64), (5, 1, 17), (2, 2, 1)])
def test_max_pool1d_argmax_is_the_first_maximum_or_first_nan_in_every_lane(rng, dtype, pool_size,
                                                                         stride, C):
    """Channels last, many ties and NaNs, channel counts past the vector width and its tail:
    each window's gradient goes to its first maximum (its first NaN if it has one), as NumPy's
    argmax picks it."""
    B, L = 3, 41
    x = rng.integers(0, 3, (B, L, C)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    y, ctx = F.max_pool1d_forward(x, pool_size=pool_size, stride=stride, training=True)
    Lo = y.shape[1]
    dy = rng.standard_normal(y.shape).astype(dtype)
    want_dx = np.zeros_like(x)
    for t in range(Lo):
        window = x[:, t * stride:t * stride + pool_size]  # (B, pool, C)
        first = np.argmax(window, axis=1)  # NumPy: the first maximum, or the first NaN
        np.testing.assert_array_equal(y[:, t], np.take_along_axis(window, first[:, None], 1)[:, 0])
        b, c = np.meshgrid(np.arange(B), np.arange(C), indexing="ij")
        np.add.at(want_dx, (b, t * stride + first, c), dy[:, t])
    np.testing.assert_array_equal(F.max_pool1d_backward(ctx, dy)["x"], want_dx)
