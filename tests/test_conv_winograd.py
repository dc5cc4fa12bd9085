"""Conv1D's Winograd forward (algorithm="winograd", and what "auto" picks): against the float64
reference within the numerical contract, every instruction set and thread count, NaN per
sequence, the direct path's bits, the backward from its ctx, and bad arguments."""
import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import REF_FACTOR, REF_FLOOR_ULPS, assert_as_accurate_as
from test_conv import _runs_per_isa

F32_OUT_TOL, F32_GRAD_TOL = 1e-4, 1e-3  # DESIGN.md "Numerical contract", float32


def rel_err(got, want):
    return np.abs(np.asarray(got, np.float64) - want).max() / max(1.0, np.abs(want).max())


def make(rng, B, L, c_in, c_out, K, bias=True):
    x = rng.standard_normal((B, L, c_in)).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in, K)) / np.sqrt(K * c_in)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) if bias else None
    return x, w, b


def f64(a):
    return None if a is None else a.astype(np.float64)


def check_forward(x, w, b, add=None, **kw):
    """algorithm="winograd" within 4 x the float32 reference's error + 4 units of the float64
    reference (and the contract's fixed 1e-4); returns y."""
    y = F.conv1d_forward(x, w, b, add=add, algorithm="winograd", **kw)[0]
    act = kw.pop("activation", None)
    want = R.conv1d_forward(f64(x), f64(w), f64(b), **kw)[0]
    peer = R.conv1d_forward(x, w, b, dtype=np.float32, **kw)[0]
    if add is not None:
        want, peer = want + add, peer + add
    if act == "relu":  # the references' ReLU after the add
        want, peer = np.maximum(want, 0), np.maximum(peer, 0)
    assert y.dtype == np.float32 and y.shape == want.shape
    assert rel_err(y, want) < F32_OUT_TOL
    assert_as_accurate_as(y, peer, want, "y", factor=REF_FACTOR, floor_ulps=REF_FLOOR_ULPS)
    return y


SHAPES = [
    # B, L, c_in, c_out: odd channel counts (not multiples of 16), B = 1, short and long
    (3, 41, 17, 19),
    (1, 64, 33, 5),
    (2, 100, 100, 64),   # the IMDB layer's channels
    (4, 23, 7, 48),
    (2, 130, 50, 31),
]


@pytest.mark.parametrize("K", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_winograd_matches_reference_over_seeds(K, shape):
    """Eight seeds each: the error of every kernel size's tiles stays within the contract."""
    B, L, c_in, c_out = shape
    for seed in range(8):
        rng = np.random.default_rng(1000 * K + seed)
        x, w, b = make(rng, B, L, c_in, c_out, K, bias=seed % 2 == 0)
        check_forward(x, w, b)


@pytest.mark.parametrize("K", [3, 5, 7])
@pytest.mark.parametrize("padding", ["valid", "same", "causal", 3, (0, 4), (5, 1)], ids=str)
@pytest.mark.parametrize("L", [1, 2, 5, 6, 7, 11, 40])
def test_winograd_paddings_ragged_and_short_outputs(rng, K, padding, L):
    """Tiles reading zeros outside [0, L) (any padding), outputs not a multiple of the tile's m
    (a ragged last tile) and fewer outputs than one tile; no output at all is refused."""
    pads = {"valid": (0, 0), "same": (K - 1, 0), "causal": (K - 1, 0)}
    left, right = pads[padding] if isinstance(padding, str) else (
        (padding, padding) if isinstance(padding, int) else padding)
    x, w, b = make(rng, 2, L, 21, 18, K)
    if L + left + right < K:  # no output: refused before any kernel runs
        with pytest.raises(ValueError, match="the output would be empty"):
            F.conv1d_forward(x, w, b, padding=padding, algorithm="winograd")
        return
    check_forward(x, w, b, padding=padding)


@pytest.mark.parametrize("K", [3, 5])
def test_winograd_bias_add_relu(rng, K):
    x, w, b = make(rng, 3, 37, 29, 40, K)
    add = rng.standard_normal((3, 37 - K + 1, 40)).astype(np.float32)
    for bias in (b, None):
        for act in (None, "relu"):
            y = check_forward(x, w, bias, add=add, activation=act)
            # the epilogue is the direct path's: the Winograd values plus add, then the ReLU
            plain = F.conv1d_forward(x, w, bias, algorithm="winograd")[0]
            expect = plain + add
            np.testing.assert_array_equal(y, np.maximum(expect, 0) if act else expect)


@pytest.mark.parametrize("K", [3, 5, 7])
@pytest.mark.parametrize("B", [1, 7, 40])
def test_winograd_every_isa_and_thread_count(rng, K, B):
    """Bitwise the same at 1, 2 and 3 threads on each instruction set (sequences split between
    items by the shape only), each within the contract."""
    x, w, b = make(rng, B, 50, 37, 45, K)
    seen = set()
    for isa, runs in _runs_per_isa(
            lambda: F.conv1d_forward(x, w, b, padding="same", activation="relu",
                                     algorithm="winograd")[0]):
        for y in runs[1:]:
            np.testing.assert_array_equal(y, runs[0], err_msg=isa)
        check_forward(x, w, b, padding="same", activation="relu")  # the active one, again
        want = np.maximum(R.conv1d_forward(f64(x), f64(w), f64(b), padding="same")[0], 0)
        peer = np.maximum(R.conv1d_forward(x, w, b, padding="same", dtype=np.float32)[0], 0)
        assert_as_accurate_as(runs[0], peer, want, isa, factor=REF_FACTOR,
                              floor_ulps=REF_FLOOR_ULPS)
        seen.add(isa)
    assert "generic" in seen


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_winograd_non_finite_x_stays_in_its_sequence(rng, bad, padding):
    """A NaN or infinity in one sequence reaches that sequence's outputs only (the contract's
    per-batch-entry rule): every other sequence gets the bits it gets without it."""
    B = 9  # several sequences per work item: their tiles share each product
    x, w, b = make(rng, B, 60, 50, 64, 5)
    clean = F.conv1d_forward(x, w, b, padding=padding, algorithm="winograd")[0]
    x_bad = x.copy()
    x_bad[4, 0, 3] = bad    # the first step of a sequence
    x_bad[6, 59, 7] = bad   # the last step of the next but one
    y = F.conv1d_forward(x_bad, w, b, padding=padding, algorithm="winograd")[0]
    for s in range(B):
        if s in (4, 6):
            assert not np.isfinite(y[s]).all()
        else:
            np.testing.assert_array_equal(y[s], clean[s], err_msg=str(s))


def test_direct_gives_the_gemm_bits_and_auto_picks_by_shape(rng):
    """algorithm="direct" is the GEMM over the patches (bitwise _C.gemm of the im2col matrix,
    whose values do not depend on the rows per call); "auto" is "winograd" on the IMDB layer's
    shape and "direct" on a small one."""
    for (B, L, c_in, c_out, K) in [(6, 100, 100, 64, 5), (3, 20, 8, 16, 3)]:
        x, w, b = make(rng, B, L, c_in, c_out, K)
        l_out = L - K + 1
        P = np.stack([x[:, t:t + K, :].reshape(B, -1) for t in range(l_out)], 1)
        W2 = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(K * c_in, c_out))
        gemm = _C.gemm(np.ascontiguousarray(P.reshape(B * l_out, -1)), W2).reshape(B, l_out, -1)
        direct = F.conv1d_forward(x, w, b, activation="relu", algorithm="direct")[0]
        np.testing.assert_array_equal(direct, np.maximum(gemm + b, 0))
        auto = F.conv1d_forward(x, w, b, activation="relu")[0]
        wino = F.conv1d_forward(x, w, b, activation="relu", algorithm="winograd")[0]
        np.testing.assert_array_equal(auto, wino if c_in >= 48 else direct)
        assert not np.array_equal(wino, direct)  # two different computations
    # float64, channels first, strides and groups: "auto" is "direct"
    x, w, b = make(rng, 4, 60, 64, 64, 5)
    for kw in (dict(), dict(stride=2), dict(groups=2)):
        wk = w[:, :64 // kw.get("groups", 1)]
        xd, wd, bd = f64(x), f64(wk), f64(b)
        np.testing.assert_array_equal(F.conv1d_forward(xd, wd, bd, **kw)[0],
                                      F.conv1d_forward(xd, wd, bd, algorithm="direct", **kw)[0])


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
def test_backward_from_the_winograd_forward(rng, relu):
    """The backward (dense, and through a max pool) of a Winograd forward's ctx matches the
    reference's backward of the same dy (the pool's winners and the ReLU's mask are the
    forward's own)."""
    x, w, b = make(rng, 5, 100, 100, 64, 5)
    act = "relu" if relu else None
    y, ctx = F.conv1d_forward(x, w, b, training=True, activation=act)  # "auto": Winograd
    np.testing.assert_array_equal(
        y, F.conv1d_forward(x, w, b, activation=act, algorithm="winograd")[0])
    _, ctx_ref = R.conv1d_forward(f64(x), f64(w), f64(b), training=True)
    _, ctx32 = R.conv1d_forward(x, w, b, training=True, dtype=np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    py, pctx = F.max_pool1d_forward(y, pool_size=4, training=True)
    dpy = rng.standard_normal(py.shape).astype(np.float32)
    dense_pool = F.max_pool1d_backward(pctx, dpy)["x"]
    mask = (y > 0) if relu else np.ones(y.shape, bool)
    rows = np.sqrt(y.shape[0] * y.shape[1])
    for got, d in ((F.conv1d_backward(ctx, dy), dy),
                   (F.conv1d_backward(ctx, dpy, pool=pctx), dense_pool)):
        d_masked = d * mask
        want = R.conv1d_backward(ctx_ref, f64(d_masked))
        want32 = R.conv1d_backward(ctx32, d_masked)
        for name in ("x", "w", "b"):
            assert rel_err(got[name], want[name]) < F32_GRAD_TOL, name
            assert_as_accurate_as(got[name], want32[name], want[name], "d" + name,
                                  factor=REF_FACTOR,
                                  floor_ulps=REF_FLOOR_ULPS * (1 if name == "x" else rows))


def test_bad_algorithm_arguments(rng):
    x, w, b = make(rng, 2, 20, 8, 8, 3)
    with pytest.raises(ValueError, match="algorithm: expected 'auto', 'direct' or 'winograd', "
                                         "got 'fast'"):
        F.conv1d_forward(x, w, b, algorithm="fast")
    with pytest.raises(TypeError, match="algorithm: expected"):
        F.conv1d_forward(x, w, b, algorithm=3)
    refused = [
        (dict(x=f64(x), w=f64(w)), "float32 arrays, got float64 arrays"),
        (dict(stride=2), "stride=1, got .*stride=2"),
        (dict(dilation=2), "dilation=1, got .*dilation=2"),
        (dict(precision="bfloat16"), "precision 'float32', got .*precision 'bfloat16'"),
        (dict(x=np.ascontiguousarray(x.transpose(0, 2, 1)), channels_last=False),
         "channels_last=True, got .*channels_last=False"),
        (dict(w=w[:, :4], groups=2), "groups=1, got .*groups=2"),
        (dict(w=np.zeros((8, 8, 9), np.float32)), "a kernel of 3 to 7 taps, got .*kernel_size=9"),
        (dict(w=np.zeros((8, 8, 2), np.float32)), "a kernel of 3 to 7 taps, got .*kernel_size=2"),
    ]
    for kw, message in refused:
        args = dict(x=x, w=w, b=None)
        args.update({k: kw.pop(k) for k in ("x", "w") if k in kw})
        with pytest.raises(ValueError, match="algorithm: 'winograd' needs " + message):
            F.conv1d_forward(args["x"], args["w"], args["b"], algorithm="winograd", **kw)
        # the same call without the algorithm runs (the direct path)
        F.conv1d_forward(args["x"], args["w"], args["b"], **kw)
