"""Conv1D kernels against the NumPy reference (forward, dx, dw, db), bad input, and PyTorch."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import REF_FACTOR, REF_FLOOR_ULPS, assert_as_accurate_as

# DESIGN.md "Numerical contract": max abs error / max(1, max |ref|).
TOL = {np.float64: (1e-10, 1e-10), np.float32: (1e-4, 1e-3)}  # (outputs, gradients)


def rel_err(got, want):
    return np.abs(np.asarray(got, np.float64) - want).max() / max(1.0, np.abs(want).max())


def make_inputs(rng, B, L, c_in, c_out, groups, K, channels_last, bias=True):
    x = rng.standard_normal((B, L, c_in) if channels_last else (B, c_in, L))
    w = rng.standard_normal((c_out, c_in // groups, K)) / np.sqrt(K * c_in // groups)
    b = rng.standard_normal(c_out) if bias else None
    return x, w, b


def check_against_reference(rng, x, w, b, dtypes=(np.float64, np.float32), **kw):
    """Kernel forward + backward in each dtype vs the float64 reference on the same values."""
    for dtype in dtypes:
        xd, wd = x.astype(dtype), w.astype(dtype)
        bd = None if b is None else b.astype(dtype)
        y_ref, ctx_ref = R.conv1d_forward(xd, wd, bd, training=True, **kw)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        want = R.conv1d_backward(ctx_ref, dy)
        y, ctx = F.conv1d_forward(xd, wd, bd, training=True, **kw)
        assert y.dtype == dtype and y.shape == y_ref.shape
        out_tol, grad_tol = TOL[dtype]
        assert rel_err(y, y_ref) < out_tol, ("y", dtype)
        got = F.conv1d_backward(ctx, dy)
        assert set(got) == {"x", "w", "b"}
        for name in ("x", "w"):
            assert got[name].dtype == dtype and got[name].shape == want[name].shape
            assert rel_err(got[name], want[name]) < grad_tol, (name, dtype)
        if b is None:
            assert got["b"] is None
        else:
            assert got["b"].dtype == dtype
            assert rel_err(got["b"], want["b"]) < grad_tol, ("b", dtype)
        # add= sums another array into y (forward) and into dx (backward) in the same pass:
        # bitwise the values of adding it afterwards
        add_y = rng.standard_normal(y.shape).astype(dtype)
        add_x = rng.standard_normal(xd.shape).astype(dtype)
        y_add, ctx_add = F.conv1d_forward(xd, wd, bd, training=True, add=add_y, **kw)
        np.testing.assert_array_equal(y_add, y + add_y)
        got_add = F.conv1d_backward(ctx_add, dy, add=add_x)
        np.testing.assert_array_equal(got_add["x"], got["x"] + add_x)
        np.testing.assert_array_equal(got_add["w"], got["w"])
        # activation="relu": max(y, 0) in the same pass; the backward through it is the
        # plain backward of dy * (y > 0), bitwise; and the reference's ReLU path agrees
        y_relu, ctx_relu = F.conv1d_forward(xd, wd, bd, training=True, add=add_y,
                                            activation="relu", **kw)
        np.testing.assert_array_equal(y_relu, np.maximum(y_add, 0))
        got_relu = F.conv1d_backward(ctx_relu, dy, add=add_x)
        got_masked = F.conv1d_backward(ctx_add, dy * (y_add > 0), add=add_x)
        for name in ("x", "w", "b"):
            np.testing.assert_array_equal(got_relu[name], got_masked[name])
        yr_ref, ctxr_ref = R.conv1d_forward(xd, wd, bd, training=True, activation="relu", **kw)
        assert rel_err(F.conv1d_forward(xd, wd, bd, activation="relu", **kw)[0], yr_ref) < out_tol
        want_relu = R.conv1d_backward(ctxr_ref, dy)
        got_relu = F.conv1d_backward(F.conv1d_forward(xd, wd, bd, training=True,
                                                      activation="relu", **kw)[1], dy)
        for name in ("x", "w", "b"):
            if want_relu[name] is not None:
                assert rel_err(got_relu[name], want_relu[name]) < grad_tol, ("relu", name, dtype)
        if dtype == np.float32:  # within the float32 reference's own error (recurrent_cases)
            y32, ctx32 = R.conv1d_forward(xd, wd, bd, training=True, dtype=np.float32, **kw)
            want32 = R.conv1d_backward(ctx32, dy)
            assert_as_accurate_as(y, y32, y_ref, "y", factor=REF_FACTOR, floor_ulps=REF_FLOOR_ULPS)
            # dw and db sum over every output position of the batch: a floor of sqrt(rows)
            rows = np.sqrt(y.shape[0] * y.shape[1 if kw.get("channels_last", True) else 2])
            for name in ("x", "w", "b"):
                if got[name] is not None:
                    assert_as_accurate_as(got[name], want32[name], want[name], "d" + name,
                                          factor=REF_FACTOR,
                                          floor_ulps=REF_FLOOR_ULPS * (1 if name == "x" else rows))


GROUPINGS = {"dense": (4, 6, 1), "groups2": (4, 6, 2), "depthwise": (4, 4, 4)}


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize("grouping", list(GROUPINGS))
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same", "causal", 2, (1, 3)], ids=str)
def test_conv1d_grid_matches_reference(rng, padding, stride, dilation, grouping, channels_last):
    c_in, c_out, groups = GROUPINGS[grouping]
    x, w, b = make_inputs(rng, 2, 11, c_in, c_out, groups, 3, channels_last)
    check_against_reference(rng, x, w, b, stride=stride, padding=padding, dilation=dilation,
                            groups=groups, channels_last=channels_last)


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize(
    "B,L,c_in,c_out,groups,K,kw",
    [
        (1, 7, 3, 5, 1, 3, dict(dilation=3)),                  # L equal to the receptive field
        (1, 9, 4, 4, 2, 5, dict(stride=2, dilation=2)),        # L equal to the receptive field
        (3, 13, 1, 6, 1, 4, dict(padding="same")),             # one input channel: direct kernel
        (2, 10, 3, 6, 3, 3, dict(padding="causal", dilation=2)),  # depthwise, multiplier 2
        (2, 15, 5, 7, 1, 1, dict(stride=2)),                   # K = 1
        (2, 6, 2, 3, 1, 3, dict(padding=(7, 0), stride=2)),    # padding wider than the kernel
        (2, 8, 2, 3, 1, 2, dict(padding=(0, 6), dilation=2)),
        (1, 1, 3, 2, 1, 1, {}),                                # a single step
        (2, 501, 64, 24, 1, 5, dict(padding="causal")),        # several time blocks, no-copy rows
        (2, 401, 48, 32, 4, 3, dict(padding="same", dilation=4)),
    ],
)
def test_conv1d_shapes_match_reference(rng, channels_last, B, L, c_in, c_out, groups, K, kw):
    x, w, b = make_inputs(rng, B, L, c_in, c_out, groups, K, channels_last)
    check_against_reference(rng, x, w, b, groups=groups, channels_last=channels_last, **kw)


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv1d_without_bias(rng, channels_last):
    x, w, _ = make_inputs(rng, 2, 9, 4, 6, 2, 3, channels_last, bias=False)
    check_against_reference(rng, x, w, None, groups=2, padding="same", channels_last=channels_last)


def test_conv1d_same_padding_puts_the_odd_step_right(rng):
    x = rng.standard_normal((1, 6, 1))
    w = np.zeros((1, 1, 4))
    w[0, 0, 0] = 1.0  # y[t] = xpad[t]: shows the left padding
    y, _ = F.conv1d_forward(x, w, padding="same")
    np.testing.assert_array_equal(y[0, :, 0], np.concatenate([[0.0], x[0, :5, 0]]))
    y, _ = F.conv1d_forward(x, w, padding="causal")
    np.testing.assert_array_equal(y[0, :, 0], np.concatenate([[0.0] * 3, x[0, :3, 0]]))


def test_conv1d_relu_nan_zero_and_bad_activation(rng):
    """The fused ReLU is NumPy's maximum (NaN stays NaN, -0 becomes +0); its gradient is dy
    times (y > 0) (0 where y is NaN); activation other than None or "relu" is refused."""
    x = np.array([[[1.0], [np.nan], [-2.0], [-0.0]]], np.float32)
    w = np.ones((1, 1, 1), np.float32)
    y, ctx = F.conv1d_forward(x, w, None, activation="relu", training=True)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert not np.signbit(y[0, 3, 0])
    grads = F.conv1d_backward(ctx, np.full(y.shape, 3.0, np.float32))
    np.testing.assert_array_equal(grads["x"][0, :, 0], [3.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(F.conv1d_backward(ctx, None)["x"], 0)
    for bad in ("tanh", "ReLU", 1, True):
        with pytest.raises(ValueError, match="activation: expected None or 'relu', got"):
            F.conv1d_forward(x, w, None, activation=bad)


def test_keras_conv1d_relu_runs_in_the_kernel(rng):
    """Conv1D(activation="relu") gives bitwise the values and gradients of the same layer with a
    separate ReLU layer after it (the kernel applies and differentiates the ReLU)."""
    from rnnfast.models import layers as L
    fused = L.Conv1D(6, 3, activation="relu", seed=1)
    plain = L.Conv1D(6, 3, seed=1)
    after = rnnfast.nn.ReLU()
    x = rng.standard_normal((4, 12, 5)).astype(np.float32)
    y = fused.forward(x)
    np.testing.assert_array_equal(y, after.forward(plain.forward(x)))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(fused.backward(dy), plain.backward(after.backward(dy)))
    np.testing.assert_array_equal(fused.weight.grad, plain.weight.grad)
    np.testing.assert_array_equal(fused.bias.grad, plain.bias.grad)
    # a Dense still runs its activation layer (and a tanh Conv1D too)
    other = L.Conv1D(6, 3, activation="tanh", seed=1)
    np.testing.assert_array_equal(other.forward(x), np.tanh(plain.forward(x)))


def test_conv1d_none_dy_means_zeros(rng):
    x, w, b = make_inputs(rng, 2, 9, 4, 6, 1, 3, True)
    _, ctx = F.conv1d_forward(x, w, b, training=True)
    grads = F.conv1d_backward(ctx, None)
    for name, like in (("x", x), ("w", w), ("b", b)):
        assert grads[name].shape == like.shape and not grads[name].any()


def test_conv1d_inference_returns_no_ctx(rng):
    x, w, b = make_inputs(rng, 2, 9, 4, 6, 1, 3, True)
    y, ctx = F.conv1d_forward(x, w, b)
    assert ctx is None and y.shape == (2, 7, 6)


def test_conv1d_empty_batch(rng):
    _, w, b = make_inputs(rng, 1, 9, 4, 6, 1, 3, False)
    y, ctx = F.conv1d_forward(np.zeros((0, 4, 9)), w, b, channels_last=False, training=True)
    assert y.shape == (0, 6, 7)
    grads = F.conv1d_backward(ctx, np.zeros((0, 6, 7)))
    assert grads["x"].shape == (0, 4, 9) and not grads["w"].any() and not grads["b"].any()


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv1d_odd_inputs_are_accepted_and_not_modified(rng, channels_last):
    x, w, b = make_inputs(rng, 3, 12, 4, 6, 2, 3, channels_last)
    kw = dict(padding="same", groups=2, stride=2, channels_last=channels_last, training=True)
    y0, ctx0 = F.conv1d_forward(x, w, b, **kw)
    dy = rng.standard_normal(y0.shape)
    g0 = F.conv1d_backward(ctx0, dy)

    big = np.zeros((3, 24, 8) if channels_last else (3, 8, 24))
    strided = big[:, ::2, ::2]
    strided[...] = x
    fortran_w = np.asfortranarray(w)
    readonly_b = b.copy()
    readonly_b.setflags(write=False)
    readonly_dy = np.asfortranarray(dy)
    readonly_dy.setflags(write=False)
    saved = [a.copy() for a in (strided, fortran_w, readonly_b, readonly_dy)]
    y1, ctx1 = F.conv1d_forward(strided, fortran_w, readonly_b, **kw)
    g1 = F.conv1d_backward(ctx1, readonly_dy)
    np.testing.assert_array_equal(y1, y0)
    for name in ("x", "w", "b"):
        np.testing.assert_array_equal(g1[name], g0[name])
    for a, s in zip((strided, fortran_w, readonly_b, readonly_dy), saved):
        np.testing.assert_array_equal(a, s)
    assert not big[:, 1::2].any()


def test_conv1d_lists_are_accepted(rng):
    x, w, b = make_inputs(rng, 1, 5, 2, 3, 1, 2, True)
    y, _ = F.conv1d_forward(x.tolist(), w.tolist(), b.tolist())
    np.testing.assert_allclose(y, R.conv1d_forward(x, w, b)[0], atol=1e-12)


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize("groups", [1, 8])
@pytest.mark.parametrize("padding", ["causal", "valid"])
def test_conv1d_bitwise_identical_for_any_thread_count(rng, channels_last, groups, padding):
    x, w, b = make_inputs(rng, 5, 300, 8, 16, groups, 3, channels_last)
    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    kw = dict(padding=padding, dilation=2 if padding == "causal" else 1, groups=groups,
              channels_last=channels_last, training=True, activation="relu")
    dy = rng.standard_normal(F.conv1d_forward(x, w, b, **kw)[0].shape).astype(np.float32)
    before = rnnfast.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            y, ctx = F.conv1d_forward(x, w, b, **kw)
            results.append((y, F.conv1d_backward(ctx, dy)))
    finally:
        rnnfast.set_num_threads(before)
    for y, grads in results[1:]:
        assert np.array_equal(y, results[0][0])
        for name in ("x", "w", "b"):
            assert np.array_equal(grads[name], results[0][1][name])


# The backward of a "valid" convolution (channels last, one group, stride 1, dilation 1, float32
# or float64) runs as two products over the whole batch, reading the patches of x and of the
# padded dy in place; the patches across two sequences meet zero rows of dy.
@pytest.mark.parametrize(
    "B,L,c_in,c_out,K",
    [(3, 13, 5, 7, 4), (1, 4, 3, 2, 4), (2, 9, 17, 33, 1), (7, 20, 100, 64, 5), (4, 6, 1, 3, 2)],
)
def test_conv1d_valid_whole_batch_backward_matches_reference(rng, B, L, c_in, c_out, K):
    x, w, b = make_inputs(rng, B, L, c_in, c_out, 1, K, True)
    check_against_reference(rng, x, w, b, padding="valid")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_conv1d_valid_backward_with_non_finite_x_at_a_seam(rng, dtype, bad):
    """A non-finite x where two sequences meet gives the reference's dw (the products over the
    patches across the seam would turn zero dy into NaN there): inf / NaN only where the
    reference has them."""
    B, L, c_in, c_out, K = 3, 8, 4, 5, 3
    x, w, b = make_inputs(rng, B, L, c_in, c_out, 1, K, True)
    x[1, 0, 2] = bad       # first rows of a sequence: read by patches across the seam
    x[0, L - 1, 1] = bad   # last rows of a sequence
    xd, wd, bd = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    y_ref, ctx_ref = R.conv1d_forward(xd, wd, bd, training=True)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    want = R.conv1d_backward(ctx_ref, dy)
    got = F.conv1d_backward(F.conv1d_forward(xd, wd, bd, training=True)[1], dy)
    for name in ("x", "w", "b"):
        g, r = np.asarray(got[name], np.float64), want[name]
        np.testing.assert_array_equal(np.isfinite(g), np.isfinite(r), err_msg=name)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=name)
        fin = np.isfinite(r)
        assert fin.any() and rel_err(g[fin], r[fin]) < TOL[dtype][1], name


# ------------------------------------------------------------------ the ctx (bad input: test_bad_input_matrix.py)


def test_conv1d_ctx_repr(rng):
    x, w, b = make_inputs(rng, 2, 9, 4, 6, 1, 3, True)
    _, ctx = F.conv1d_forward(x, w, b, training=True)
    assert "conv1d_forward" in repr(ctx)


def test_conv1d_ctx_is_reusable(rng):
    x, w, b = make_inputs(rng, 2, 9, 4, 6, 1, 3, False)
    y, ctx = F.conv1d_forward(x, w, b, channels_last=False, training=True)
    dy = rng.standard_normal(y.shape)
    first = F.conv1d_backward(ctx, dy)
    second = F.conv1d_backward(ctx, dy)
    for name in ("x", "w", "b"):
        assert np.array_equal(first[name], second[name])


# ------------------------------------------------------------------ PyTorch


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(stride=2, padding=3, dilation=2, groups=2), dict(padding="same", dilation=3),
     dict(groups=8, padding=1, stride=3)],
    ids=str,
)
def test_conv1d_matches_torch(rng, kw):
    torch = pytest.importorskip("torch")
    x, w, b = make_inputs(rng, 3, 40, 8, 16, kw.get("groups", 1), 3, False)
    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    y, ctx = F.conv1d_forward(x, w, b, channels_last=False, training=True, **kw)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv1d(xt, wt, bt, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    grads = F.conv1d_backward(ctx, dy)
    y64, ctx64 = R.conv1d_forward(*(a.astype(np.float64) for a in (x, w, b)), channels_last=False,
                                  training=True, **kw)
    want = R.conv1d_backward(ctx64, dy.astype(np.float64))
    assert_as_accurate_as(y, yt.detach().numpy(), y64, "y")
    for name, t in (("x", xt), ("w", wt), ("b", bt)):
        assert_as_accurate_as(grads[name], t.grad.numpy(), want[name], "d" + name)


def test_conv1d_accepts_numpy_integers(rng):
    x, w, b = make_inputs(rng, 2, 12, 4, 6, 2, 3, True)
    want, _ = R.conv1d_forward(x, w, b, stride=2, padding=(1, 2), dilation=2, groups=2)
    got, _ = F.conv1d_forward(x, w, b, stride=np.int64(2), padding=(np.int32(1), np.uint8(2)),
                              dilation=np.int16(2), groups=np.int64(2))
    assert rel_err(got, want) < 1e-10


def test_conv1d_from_several_python_threads(rng):
    from concurrent.futures import ThreadPoolExecutor

    x, w, b = make_inputs(rng, 4, 200, 16, 16, 1, 3, True)
    dy = rng.standard_normal((4, 200, 16))

    def step(_):
        y, ctx = F.conv1d_forward(x, w, b, padding="same", training=True)
        return y, F.conv1d_backward(ctx, dy)

    want = step(None)
    with ThreadPoolExecutor(4) as pool:
        for y, grads in pool.map(step, range(8)):
            assert np.array_equal(y, want[0])
            for name in ("x", "w", "b"):
                assert np.array_equal(grads[name], want[1][name])


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv1d_add_without_dy_and_bad_add(rng, channels_last):
    """backward(dy=None, add=a) gives dx = a; add of the wrong shape or dtype is refused with
    its name and the expected shape; the inputs are not modified."""
    x, w, b = make_inputs(rng, 2, 9, 3, 4, 1, 3, channels_last)
    add_y = rng.standard_normal((2, 7, 4) if channels_last else (2, 4, 7))
    kept = add_y.copy()
    y, ctx = F.conv1d_forward(x, w, b, training=True, channels_last=channels_last, add=add_y)
    np.testing.assert_array_equal(add_y, kept)
    add_x = rng.standard_normal(x.shape)
    grads = F.conv1d_backward(ctx, None, add=add_x)
    np.testing.assert_array_equal(grads["x"], add_x)
    assert not np.any(grads["w"]) and not np.any(grads["b"])
    with pytest.raises(ValueError, match=r"add: expected shape y's .* = \(2, "):
        F.conv1d_forward(x, w, b, channels_last=channels_last, add=add_y[:, :-1])
    with pytest.raises(TypeError, match="add"):
        F.conv1d_forward(x, w, b, channels_last=channels_last, add=add_y.astype(np.float32))
    with pytest.raises(ValueError, match=r"add: expected shape x's"):
        F.conv1d_backward(ctx, None, add=add_x[:1])
    with pytest.raises(TypeError, match="add: expected dtype float64"):
        F.conv1d_backward(ctx, None, add=add_x.astype(np.float32))
    # non-contiguous add (a strided view) gives the same values
    wide = np.repeat(add_y, 2, axis=-1)[..., ::2]
    y2, _ = F.conv1d_forward(x, w, b, channels_last=channels_last, add=wide)
    np.testing.assert_array_equal(y2, y)


# ------------------------------------------------------------------ WaveNet's gated activation


def _gated_want(a, dz):
    a = a.astype(np.float64)
    C = a.shape[-1] // 2
    f = np.tanh(a[..., :C])
    g = 0.5 * (1 + np.tanh(0.5 * a[..., C:]))
    return f * g, np.concatenate([dz * g * (1 - f * f), dz * f * g * (1 - g)], axis=-1)


def _runs_per_isa(call):
    """For every ISA this CPU supports: (isa, [call() at 1, 2 and 3 threads]); the ISA and the
    thread count are restored afterwards."""
    isa0, threads0 = rnnfast.active_isa(), rnnfast.get_num_threads()
    try:
        for isa in rnnfast.supported_isas():
            rnnfast.set_isa(isa)
            runs = []
            for n in (1, 2, 3):
                rnnfast.set_num_threads(n)
                runs.append(call())
            yield isa, runs
    finally:
        rnnfast.set_isa(isa0)
        rnnfast.set_num_threads(threads0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 2), (1, 1, 34), (3, 5, 66), (2, 301, 34), (700, 130)])
def test_gated_activation_every_isa_and_thread_count(rng, dtype, shape):
    """_C.gated_activation_* in every instruction set this CPU supports (the row kernels are
    compiled once per set): against the float64 math (odd channel counts, not a multiple of the
    SIMD width; one row; saturating and huge inputs), bitwise the same for 1, 2 and 3 threads."""
    from rnnfast import _C

    a = (rng.standard_normal(shape) * 4).astype(dtype)
    a.flat[::7] = 60.0
    a.flat[3::11] = -1e30
    dz = rng.standard_normal(shape[:-1] + (shape[-1] // 2,)).astype(dtype)
    z_want, da_want = _gated_want(a, dz)
    z_tol, da_tol = (3e-7, 1e-6 * max(1.0, np.abs(dz).max())) if dtype == np.float32 else \
        (1e-15, 1e-14 * max(1.0, np.abs(dz).max()))
    for isa, runs in _runs_per_isa(
            lambda: (_C.gated_activation_forward(a), _C.gated_activation_backward(a, dz))):
        z, da = runs[0]
        assert z.dtype == da.dtype == dtype and da.shape == a.shape
        np.testing.assert_allclose(z, z_want, atol=z_tol, rtol=0, err_msg=isa)
        np.testing.assert_allclose(da, da_want, atol=da_tol, rtol=0, err_msg=isa)
        for zn, dan in runs[1:]:
            np.testing.assert_array_equal(zn, z)
            np.testing.assert_array_equal(dan, da)


def test_gated_activation_functional(rng):
    """rnnfast.functional's gated activation (what nn.GatedActivation calls): the float64 math,
    and a clear error for an odd number of features."""
    a = rng.standard_normal((2, 7, 10))
    dz = rng.standard_normal((2, 7, 5))
    z_want, da_want = _gated_want(a, dz)
    np.testing.assert_allclose(F.gated_activation_forward(a), z_want, atol=1e-15, rtol=0)
    np.testing.assert_allclose(F.gated_activation_backward(a, dz), da_want, atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="even"):
        F.gated_activation_forward(np.zeros((2, 3)))


# ---------------------------------------------------------------- backward through a max pool
# conv1d_backward(ctx, dpy, pool=pool_ctx): the gradient of Conv1D -> MaxPooling1D from the
# pool's output gradient. Channels last, one group, dilation 1, "valid" padding and float32
# products sum only each window's winner; every other configuration (and non-finite x or w)
# scatters dpy into the dense dy and runs the plain backward.

POOL_CASES = [
    # B, L, c_in, c_out, K, conv kw, pool_size, pool kw
    (3, 17, 5, 7, 3, {}, 2, {}),
    (1, 1, 1, 1, 1, {}, 1, {}),                      # T = 1, B = 1
    (2, 40, 33, 19, 4, {}, 3, {}),                   # odd sizes, a partial window dropped
    (4, 30, 17, 33, 5, {}, 4, {}),                   # the IMDB shape, smaller
    (2, 12, 64, 5, 4, {}, 2, {}),                    # kernel * c_in * 4 B = 1 KiB (float32)
    (2, 13, 32, 6, 4, {}, 3, {}),                    # 1 KiB in float64, 512 B in float32
    (2, 11, 16, 5, 5, {}, 2, {}),                    # 320 B: whole cache lines, no padding
    (3, 23, 6, 5, 3, {"stride": 2}, 2, {}),
    (2, 21, 4, 9, 2, {}, 3, {"stride": 1}),          # overlapping windows accumulate
    (2, 19, 4, 9, 3, {}, 4, {"padding": "same"}),    # the pool's padding never wins
    (3, 15, 4, 6, 3, {"padding": "same"}, 2, {}),    # dense route: conv padding
    (2, 18, 4, 6, 3, {"dilation": 2}, 2, {}),        # dense route: dilation
    (2, 14, 4, 6, 3, {"groups": 2}, 2, {}),          # dense route: groups
]


def _pool_chain(x, w, b, conv_kw, pool_size, pool_kw, relu, dpy_rng, module=F):
    y, ctx = module.conv1d_forward(x, w, b, training=True, activation="relu" if relu else None,
                                   **conv_kw)
    py, pctx = module.max_pool1d_forward(y, pool_size=pool_size, training=True, **pool_kw)
    return y, ctx, py, pctx


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_conv1d_pool_backward_matches_reference(rng, case, relu):
    B, L, c_in, c_out, K, conv_kw, pool_size, pool_kw = case
    channels_last = conv_kw.get("channels_last", True)
    x, w, b = make_inputs(rng, B, L, c_in, c_out, conv_kw.get("groups", 1), K, channels_last,
                          bias=relu)
    for dtype in (np.float64, np.float32):
        xd, wd = x.astype(dtype), w.astype(dtype)
        bd = None if b is None else b.astype(dtype)
        y_ref, ctx_ref, py_ref, pctx_ref = _pool_chain(xd, wd, bd, conv_kw, pool_size, pool_kw,
                                                       relu, rng, module=R)
        dpy = rng.standard_normal(py_ref.shape).astype(dtype)
        want = R.conv1d_backward(ctx_ref, R.max_pool1d_backward(pctx_ref, dpy)["x"])
        _, ctx, py, pctx = _pool_chain(xd, wd, bd, conv_kw, pool_size, pool_kw, relu, rng)
        got = F.conv1d_backward(ctx, dpy, pool=pctx)
        apart = F.conv1d_backward(ctx, F.max_pool1d_backward(pctx, dpy)["x"])
        _, grad_tol = TOL[dtype]
        for name in ("x", "w"):
            assert got[name].dtype == dtype and got[name].shape == want[name].shape
            assert rel_err(got[name], want[name]) < grad_tol, (name, dtype)
            assert rel_err(got[name], apart[name]) < grad_tol, (name, dtype)
        if b is None:
            assert got["b"] is None
        else:
            assert rel_err(got["b"], want["b"]) < grad_tol, ("b", dtype)
        # add= sums another path's gradient into dx in the same pass
        add_x = rng.standard_normal(xd.shape).astype(dtype)
        got_add = F.conv1d_backward(ctx, dpy, pool=pctx, add=add_x)
        np.testing.assert_array_equal(got_add["x"], got["x"] + add_x)
        np.testing.assert_array_equal(got_add["w"], got["w"])


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv1d_pool_backward_channels_first_and_none_dy(rng, channels_last):
    x, w, b = make_inputs(rng, 2, 16, 3, 5, 1, 3, channels_last)
    kw = dict(channels_last=channels_last)
    y, ctx = F.conv1d_forward(x, w, b, training=True, activation="relu", **kw)
    py, pctx = F.max_pool1d_forward(y, pool_size=3, training=True, **kw)
    dpy = rng.standard_normal(py.shape)
    got = F.conv1d_backward(ctx, dpy, pool=pctx)
    want = F.conv1d_backward(ctx, F.max_pool1d_backward(pctx, dpy)["x"])
    for name in ("x", "w", "b"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12)
    zero = F.conv1d_backward(ctx, None, pool=pctx)
    for name in ("x", "w", "b"):
        assert not zero[name].any()


POOL_ISA_CASES = [
    # B, L, c_in, c_out, K, conv kw, pool_size, pool kw
    (37, 26, 33, 19, 5, {}, 4, {}),              # dx rows 33 apart; odd c_out
    (9, 31, 7, 6, 3, {"stride": 2}, 3, {}),      # dx rows 14 apart
    (5, 40, 40, 8, 2, {}, 2, {"stride": 1}),     # 40 apart, overlapping pool windows
    (6, 17, 16, 3, 1, {}, 5, {}),                # one tap: 16-value patches, 3 dw rows
    (4, 22, 31, 64, 5, {}, 4, {}),               # the IMDB shape's 64 channels, 31 inputs
    (3, 40, 9, 21, 3, {}, 12, {}),               # windows whose winners span 8 steps or more
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_ISA_CASES, ids=[str(i) for i in range(len(POOL_ISA_CASES))])
def test_conv1d_pool_backward_every_isa_and_thread_count(rng, dtype, case):
    """The winners' kernels are compiled once per instruction set: each against the reference,
    bitwise the same for 1, 2 and 3 threads (patches not a multiple of the SIMD width; more
    sequences than weight accumulators; dx rows 14 to 40 values apart, closer than some
    instruction sets' register blocks and farther than others'; odd numbers of rows; a stride;
    overlapping pool windows)."""
    B, L, c_in, c_out, K, conv_kw, pool_size, pool_kw = case
    x, w, b = make_inputs(rng, B, L, c_in, c_out, 1, K, True)
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    y_ref, ctx_ref, py_ref, pctx_ref = _pool_chain(x, w, b, conv_kw, pool_size, pool_kw, True,
                                                   rng, module=R)
    dpy = rng.standard_normal(py_ref.shape).astype(dtype)
    want = R.conv1d_backward(ctx_ref, R.max_pool1d_backward(pctx_ref, dpy)["x"])
    def pooled_backward():
        _, ctx, _, pctx = _pool_chain(x, w, b, conv_kw, pool_size, pool_kw, True, rng)
        return F.conv1d_backward(ctx, dpy, pool=pctx)

    for isa, runs in _runs_per_isa(pooled_backward):
        for name in ("x", "w", "b"):
            assert rel_err(runs[0][name], want[name]) < TOL[dtype][1], (isa, name)
            for other in runs[1:]:
                np.testing.assert_array_equal(other[name], runs[0][name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    (7, 29, 9, 11, 3, {}, 4, {}),                # windows of four: ties among a window's steps
    (5, 26, 6, 13, 4, {"stride": 2}, 3, {"stride": 1}),  # overlapping windows, a conv stride
    (3, 20, 5, 4, 2, {}, 2, {"padding": "same"}),  # a padded last window
])
def test_conv1d_pool_backward_zero_gradients_and_ties(rng, dtype, case):
    """Exact zeros in the pool's gradient (+0 and -0; whole windows and whole channels of a
    sequence, and all of one sequence) are left out of the winners' lists, and x of few distinct
    values makes ties in the pool's windows (the first maximum wins): against the reference and
    the two calls, in every instruction set, bitwise the same for 1, 2 and 3 threads."""
    B, L, c_in, c_out, K, conv_kw, pool_size, pool_kw = case
    x = rng.integers(-2, 3, size=(B, L, c_in)).astype(dtype)
    w = rng.integers(-2, 3, size=(c_out, c_in, K)).astype(dtype) / 4
    b = rng.integers(-1, 2, size=c_out).astype(dtype)
    _, ctx_ref, py_ref, pctx_ref = _pool_chain(x, w, b, conv_kw, pool_size, pool_kw, True, rng,
                                               module=R)
    dpy = rng.standard_normal(py_ref.shape).astype(dtype)
    dpy[rng.random(dpy.shape) < 0.3] = 0.0
    dpy[rng.random(dpy.shape) < 0.1] = -0.0
    dpy[0] = 0.0                                  # a sequence without gradient
    dpy[1, 1] = 0.0                               # a window of every channel
    dpy[-1, :, 0] = -0.0                          # a channel of a sequence
    want = R.conv1d_backward(ctx_ref, R.max_pool1d_backward(pctx_ref, dpy)["x"])
    assert not want["x"][0].any()

    def pooled_backward():
        _, ctx, _, pctx = _pool_chain(x, w, b, conv_kw, pool_size, pool_kw, True, rng)
        return F.conv1d_backward(ctx, dpy, pool=pctx), F.conv1d_backward(
            ctx, F.max_pool1d_backward(pctx, dpy)["x"])

    for isa, runs in _runs_per_isa(pooled_backward):
        for name in ("x", "w", "b"):
            got, apart = runs[0][0][name], runs[0][1][name]
            assert rel_err(got, want[name]) < TOL[dtype][1], (isa, name)
            assert rel_err(got, apart) < TOL[dtype][1], (isa, name)
            for other in runs[1:]:
                np.testing.assert_array_equal(other[0][name], got)
        assert not runs[0][0]["x"][0].any()


@pytest.mark.parametrize("windows", ["apart", "overlapping", "wide"])
def test_conv1d_pool_backward_sums_a_steps_winners_in_the_pools_order(windows):
    """The winners at one step add into its dx in the order of the pool's output (windows, then
    channels), on every instruction set and thread count (the lists by step are built 16
    channels at a time on AVX-512, a window whose winners span 8 steps or more one entry at a
    time): with one tap and one input channel, dx[t] is the sum of dpy * w over the winners at
    t, and 2^24, 1, -2^24 give 0 in float32 in that order (1 with the last two swapped, or
    taken by channel where windows overlap)."""
    a, b, c = np.float32(2 ** 24), np.float32(1), np.float32(-(2 ** 24))
    assert (a + b) + c == 0 and (a + c) + b == 1 and (b + c) + a == 1
    x = np.array([0, 1, 5, 2, 3, 0, 1, 0, 0, 0, -9, 0, 0, 0, 0, 0], np.float32).reshape(1, 16, 1)
    w = np.zeros((40, 1, 1), np.float32)  # the other channels add exact zeros
    picked = [3, 20, 27]  # one 16-channel block, then both halves of the next
    w[picked] = 1
    w[30] = -1  # wins where x is least (step 10 in the wide window)
    pool = {"apart": dict(pool_size=4), "overlapping": dict(pool_size=4, stride=1),
            "wide": dict(pool_size=12)}[windows]
    y, ctx = F.conv1d_forward(x, w, None, training=True)
    py, pctx = F.max_pool1d_forward(y, training=True, **pool)
    dpy = np.zeros(py.shape, np.float32)
    dpy[0, 0, 30] = 1
    if windows == "overlapping":  # step 2 wins windows 0, 1 and 2: the gradients by window
        dpy[0, 0, 27], dpy[0, 1, 3], dpy[0, 2, 20] = a, b, c
    else:  # step 2 wins window 0 for every picked channel (with step 10 for "wide")
        dpy[0, 0, picked] = [a, b, c]
    want = F.conv1d_backward(ctx, F.max_pool1d_backward(pctx, dpy)["x"])["x"]
    if windows == "wide":  # channel 30 at step 10: the window's winners span steps 0 to 10
        assert want[0, 10, 0] == -1
    for isa, runs in _runs_per_isa(lambda: F.conv1d_backward(ctx, dpy, pool=pctx)):
        for got in runs:
            assert got["x"][0, 2, 0] == 0, isa
            np.testing.assert_array_equal(np.delete(got["x"], 2, axis=1),
                                          np.delete(want, 2, axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_conv1d_pool_backward_non_finite_as_the_dense_route(rng, dtype, where, bad):
    """A non-finite x or w takes the dense route (whose zero products of it are NaN): the
    values of the two backwards one after the other, bitwise; a NaN in dpy reaches the same
    gradients as there (NaN where the dense products carry it)."""
    x, w, b = make_inputs(rng, 3, 20, 6, 5, 1, 3, True)
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    if where == "x":
        x[1, 7, 2] = bad
    elif where == "w":
        w[2, 1, 0] = bad
    _, ctx, py, pctx = _pool_chain(x, w, b, {}, 2, {}, True, rng)
    dpy = rng.standard_normal(py.shape).astype(dtype)
    if where == "dy":
        dpy[0, 3, 1] = bad
    got = F.conv1d_backward(ctx, dpy, pool=pctx)
    want = F.conv1d_backward(ctx, F.max_pool1d_backward(pctx, dpy)["x"])
    for name in ("x", "w", "b"):
        assert np.array_equal(np.isnan(got[name]), np.isnan(want[name])), name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
        if where != "dy":
            np.testing.assert_array_equal(got[name], want[name])


def test_conv1d_pool_backward_bad_pool(rng):
    x, w, b = make_inputs(rng, 2, 12, 3, 4, 1, 3, True)
    y, ctx = F.conv1d_forward(x, w, b, training=True, activation="relu")
    py, pctx = F.max_pool1d_forward(y, pool_size=2, training=True)
    dpy = np.zeros(py.shape)
    other = F.max_pool1d_forward(y[:, :-1], pool_size=2, training=True)[1]
    with pytest.raises(ValueError, match=r"pool: expected the ctx of a max_pool1d_forward over "
                                         r"this convolution's output \(2, 10, 4\)"):
        F.conv1d_backward(ctx, dpy, pool=other)
    single = F.max_pool1d_forward(y.astype(np.float32), pool_size=2, training=True)[1]
    with pytest.raises(ValueError, match="float32"):
        F.conv1d_backward(ctx, dpy, pool=single)
    glob = F.global_max_pool1d_forward(y, training=True)[1]
    with pytest.raises(ValueError, match="pool: expected the ctx of max_pool1d_forward"):
        F.conv1d_backward(ctx, dpy, pool=glob)
    with pytest.raises((TypeError, ValueError), match="pool"):
        F.conv1d_backward(ctx, dpy, pool=ctx)
    with pytest.raises(ValueError, match=r"dy.*\(2, 5, 4\)"):
        F.conv1d_backward(ctx, np.zeros(y.shape), pool=pctx)
