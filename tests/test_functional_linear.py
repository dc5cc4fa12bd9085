"""rnnfast.functional.linear_forward / linear_backward (the package's GEMM) against NumPy and the
float64 reference; the reference against central finite differences."""
import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R

# DESIGN.md's numerical contract: (outputs, gradients) relative to max(1, max |ref|).
TOL = {np.float32: (1e-4, 1e-3), np.float64: (1e-10, 1e-10)}
SHAPES = [((1,), 1), ((7,), 3), ((5, 17), 33), ((3, 4, 9), 2), ((2, 1, 3, 65), 31)]


def rel_err(got, want):
    return np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,out_features", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_numpy_and_the_reference(rng, dtype, x_shape, out_features, bias):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_features, x_shape[-1])).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype) if bias else None
    dy = rng.standard_normal(x_shape[:-1] + (out_features,)).astype(dtype)
    y, ctx = F.linear_forward(x, w, b, training=True)
    grads = F.linear_backward(ctx, dy)
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    want_y = x64 @ w64.T + (0 if b is None else b.astype(np.float64))
    want = {"x": dy64 @ w64,
            "w": dy64.reshape(-1, out_features).T @ x64.reshape(-1, x_shape[-1]),
            "b": dy64.reshape(-1, out_features).sum(axis=0) if bias else None}
    ref_y, ref_ctx = R.linear_forward(x, w, b, training=True)
    ref = R.linear_backward(ref_ctx, dy)
    out_tol, grad_tol = TOL[dtype]
    assert y.dtype == dtype and y.shape == want_y.shape
    assert rel_err(y, want_y) < out_tol and rel_err(ref_y, want_y) < 1e-12
    for name in ("x", "w", "b"):
        if want[name] is None:
            assert grads[name] is None and ref[name] is None
            continue
        assert grads[name].dtype == dtype and grads[name].shape == want[name].shape
        assert rel_err(grads[name], want[name]) < grad_tol, name
        assert rel_err(ref[name], want[name]) < 1e-12, name


def test_inference_keeps_nothing_and_dy_none_is_zeros(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    y, ctx = F.linear_forward(x, w)
    assert ctx is None
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-12, atol=1e-12)
    grads = F.linear_backward(F.linear_forward(x, w, np.ones(5), training=True)[1])
    assert not grads["x"].any() and not grads["w"].any() and not grads["b"].any()


def test_non_contiguous_and_read_only_inputs_are_not_modified(rng):
    x = rng.standard_normal((6, 8))[:, ::2]
    w = np.asfortranarray(rng.standard_normal((5, 4)))
    x.flags.writeable = w.flags.writeable = False
    x_copy, w_copy = x.copy(), w.copy()
    y, ctx = F.linear_forward(x, w, training=True)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal((6, 5))
    grads = F.linear_backward(ctx, dy)
    np.testing.assert_allclose(grads["w"], dy.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["x"], dy @ w, rtol=1e-12, atol=1e-12)
    assert np.array_equal(x, x_copy) and np.array_equal(w, w_copy)


def test_same_inputs_give_bitwise_the_same_results(rng):
    x, w = rng.standard_normal((37, 19)).astype(np.float32), rng.standard_normal((23, 19))
    w = w.astype(np.float32)
    first = F.linear_forward(x, w, training=True)
    second = F.linear_forward(x, w, training=True)
    assert np.array_equal(first[0], second[0])
    dy = rng.standard_normal((37, 23)).astype(np.float32)
    for name, g in F.linear_backward(first[1], dy).items():
        assert g is None or np.array_equal(g, F.linear_backward(second[1], dy)[name])


def test_reference_gradients_match_finite_differences(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    dy = rng.standard_normal((2, 3, 5))
    grads = R.linear_backward(R.linear_forward(x, w, b, training=True)[1], dy)
    args = {"x": x, "w": w, "b": b}
    eps = 1e-6
    for name, value in args.items():
        numeric = np.empty_like(value)
        for i in np.ndindex(value.shape):
            plus, minus = dict(args), dict(args)
            plus[name], minus[name] = value.copy(), value.copy()
            plus[name][i] += eps
            minus[name][i] -= eps
            numeric[i] = ((R.linear_forward(**plus)[0] - R.linear_forward(**minus)[0]) * dy
                          ).sum() / (2 * eps)
        assert rel_err(grads[name], numeric) < 1e-6, name


def _misaligned(a):
    buf = np.empty(a.nbytes + 1, np.uint8)[1:]
    out = buf.view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


ODD = {
    "fortran": np.asfortranarray,
    "misaligned": _misaligned,
    "negative-strides": lambda a: a[::-1].copy()[::-1],
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "read-only": lambda a: np.broadcast_to(a, a.shape),
}


@pytest.mark.parametrize("odd", list(ODD.values()), ids=list(ODD))
def test_odd_arrays_give_bitwise_the_results_of_a_contiguous_copy(rng, odd):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    dy = rng.standard_normal((7, 3)).astype(np.float32)
    want_y, ctx = F.linear_forward(x, w, b, training=True)
    want = F.linear_backward(ctx, dy)
    y, ctx = F.linear_forward(odd(x), odd(w), odd(b), training=True)
    got = F.linear_backward(ctx, odd(dy))
    assert y.dtype == np.float32 and np.array_equal(y, want_y)
    for name in ("x", "w", "b"):
        assert got[name].dtype == np.float32 and np.array_equal(got[name], want[name]), name
