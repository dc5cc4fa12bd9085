"""The winners-only Conv1D backward (conv1d_backward(ctx, dpy, pool=pool_ctx)) whatever the
memory layout of x: the dw gathers read the patches of x in place, or from a copy of each
sequence with rows padded to whole 32-byte units (when x's patches do not start on 32 bytes and
the padding adds little). The gradients must not depend on which: the same bits for x on any
address, against the reference, for every instruction set and thread count; a non-finite x on
the copying path takes the dense route as in place."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from test_conv import _runs_per_isa

TOL = {np.float64: 1e-10, np.float32: 1e-3}


def rel_err(got, want):
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def placed(a, offset_values):
    """A C-contiguous copy of a whose first value is offset_values values past a 64-byte line."""
    n = a.size + 64
    buf = np.empty(n, a.dtype)
    start = (-buf.ctypes.data % 64) // a.itemsize + offset_values
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == offset_values * a.itemsize
    return out


def chain(x, w, b, conv_kw, pool_size, module=F):
    y, ctx = module.conv1d_forward(x, w, b, training=True, activation="relu", **conv_kw)
    py, pctx = module.max_pool1d_forward(y, pool_size=pool_size, training=True)
    return ctx, py, pctx


CASES = [
    # B, L, c_in, c_out, K, conv kw, pool_size
    (6, 30, 100, 64, 5, {}, 4),           # the IMDB shape's channels (100 -> 104 values a row)
    (5, 23, 60, 9, 3, {"stride": 2}, 3),  # 60 -> 64, a conv stride
    (4, 19, 31, 7, 4, {}, 2),             # 31 -> 32
    (3, 17, 64, 5, 2, {}, 3),             # whole 32-byte rows: copied only when x is not aligned
    (3, 15, 20, 6, 3, {}, 2),             # 20 -> 24 would add 20%: in place
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_pool_backward_same_bits_for_any_address_of_x(dtype, case):
    B, L, c_in, c_out, K, conv_kw, pool_size = case
    rng = np.random.default_rng(c_in * 7 + K)
    x = rng.standard_normal((B, L, c_in)).astype(dtype)
    w = (rng.standard_normal((c_out, c_in, K)) / np.sqrt(c_in * K)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    ctx_ref, py_ref, pctx_ref = chain(x, w, b, conv_kw, pool_size, module=R)
    dpy = rng.standard_normal(py_ref.shape).astype(dtype)
    dpy[rng.random(dpy.shape) < 0.2] = 0.0
    want = R.conv1d_backward(ctx_ref, R.max_pool1d_backward(pctx_ref, dpy)["x"])

    def backward(offset):
        xs = placed(x, offset)
        ctx, _, pctx = chain(xs, w, b, conv_kw, pool_size)
        return F.conv1d_backward(ctx, dpy, pool=pctx)

    for isa, runs in _runs_per_isa(lambda: [backward(o) for o in (0, 1, 3)]):
        first = runs[0][0]
        for name in ("x", "w", "b"):
            assert rel_err(first[name], want[name]) < TOL[dtype], (isa, name)
            for per_thread in runs:
                for got in per_thread:
                    np.testing.assert_array_equal(got[name], first[name], err_msg=f"{isa} {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_in", [60, 64, 6])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("offset", [0, 1])
def test_pool_backward_non_finite_x_dense_route_on_every_path(dtype, c_in, bad, offset):
    """x with one non-finite value (in the first, a middle and the last sequence, at the end of
    a row, where a padded copy has its zeros next to it): the values of the dense backward
    (pool's gradient scattered, then the plain backward), bitwise, copied or in place, in every
    instruction set (each checks x in its own copying kernel)."""
    rng = np.random.default_rng(c_in)
    B, L, c_out, K = 5, 21, 7, 3
    w = (rng.standard_normal((c_out, c_in, K)) / np.sqrt(c_in * K)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    cases = []
    for where in [(0, 0, 0), (2, 10, c_in - 1), (B - 1, L - 1, c_in - 1)]:
        x = rng.standard_normal((B, L, c_in)).astype(dtype)
        x[where] = bad
        cases.append((where, x, rng.standard_normal((B, (L - K + 1) // 2, c_out)).astype(dtype)))

    def backwards():
        out = []
        for where, x, dpy in cases:
            ctx, _, pctx = chain(placed(x, offset), w, b, {}, 2)
            out.append((F.conv1d_backward(ctx, dpy, pool=pctx),
                        F.conv1d_backward(ctx, F.max_pool1d_backward(pctx, dpy)["x"])))
        return out

    for isa, runs in _runs_per_isa(backwards):
        for (where, _, _), (got, want) in zip(cases, runs[0]):
            for name in ("x", "w", "b"):
                np.testing.assert_array_equal(got[name], want[name],
                                              err_msg=f"{isa} {where} {name}")
            assert np.isnan(got["w"]).any()
