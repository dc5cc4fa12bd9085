"""Property tests: random shapes and options, kernels vs rnnfast.reference (forward and backward)
within DESIGN.md's tolerances. Derandomized (the same examples on every run) and bounded in size,
so the file is reproducible in CI and runs in well under a minute."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import CELLS, TOL, as64, make_inputs, rel_err, run, upstream

PROFILE = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)


def assert_close(got, want, tol, what):
    if want is None:
        assert got is None, what
        return
    assert got.shape == want.shape, what
    assert rel_err(got, want) < tol, what


@PROFILE
@given(cell=st.sampled_from(CELLS), T=st.integers(1, 7), B=st.integers(1, 5),
       I=st.integers(1, 9), H=st.integers(1, 12), dtype=DTYPES, bias=st.booleans(),
       h0=st.booleans(), lengths=st.booleans(), reverse=st.booleans(),
       batch_first=st.booleans(), seed=SEEDS)
def test_recurrent_matches_reference(cell, T, B, I, H, dtype, bias, h0, lengths, reverse,
                                     batch_first, seed):
    op, kw, _ = cell
    rng = np.random.default_rng(seed)
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, bias=bias, h0=h0,
                             batch_first=batch_first, lengths=lengths)
    options = dict(kw, lengths=lens, reverse=reverse, batch_first=batch_first)
    y_shape = (B, T, H) if batch_first else (T, B, H)
    grads = upstream(rng, op, y_shape, B, H, dtype)
    out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    out_tol, grad_tol = TOL[dtype]
    for name in ref_out:
        assert out[name].dtype == dtype
        assert_close(out[name], ref_out[name], out_tol, name)
    assert set(got) == set(want)
    for name in want:
        assert_close(got[name], want[name], grad_tol, name)


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    K = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 3))
    span = dilation * (K - 1) + 1
    padding = draw(st.one_of(st.sampled_from(["valid", "same", "causal"]), st.integers(0, 4),
                             st.tuples(st.integers(0, 4), st.integers(0, 4))))
    if padding == "valid":
        left = right = 0
    elif isinstance(padding, int):
        left = right = padding
    elif isinstance(padding, tuple):
        left, right = padding
    else:
        left = right = span  # "same" and "causal" work for any length
    L = draw(st.integers(max(1, span - left - right), 24))
    return dict(B=draw(st.integers(0, 3)), L=L, c_in=c_in, c_out=c_out, K=K,
                kw=dict(stride=stride, dilation=dilation, groups=groups, padding=padding,
                        channels_last=draw(st.booleans())),
                bias=draw(st.booleans()))


@PROFILE
@given(case=conv_cases(), dtype=DTYPES, seed=SEEDS)
def test_conv1d_matches_reference(case, dtype, seed):
    rng = np.random.default_rng(seed)
    B, L, c_in, c_out, K, kw = (case[k] for k in ("B", "L", "c_in", "c_out", "K", "kw"))
    x = rng.standard_normal((B, L, c_in) if kw["channels_last"] else (B, c_in, L)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // kw["groups"], K)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if case["bias"] else None
    y_ref, ctx_ref = R.conv1d_forward(x, w, b, training=True, **kw)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    want = R.conv1d_backward(ctx_ref, dy)
    y, ctx = F.conv1d_forward(x, w, b, training=True, **kw)
    got = F.conv1d_backward(ctx, dy)
    out_tol, grad_tol = TOL[dtype]
    assert y.dtype == dtype
    if y_ref.size:
        assert_close(y, y_ref, out_tol, "y")
    assert y.shape == y_ref.shape
    for name in ("x", "w", "b"):
        if want[name] is not None and want[name].size:
            assert_close(got[name], want[name], grad_tol, name)
        elif want[name] is not None:
            assert got[name].shape == want[name].shape
        else:
            assert got[name] is None


@st.composite
def pool_cases(draw):
    L = draw(st.integers(1, 20))
    padding = draw(st.sampled_from(["valid", "same"]))
    pool_size = draw(st.integers(1, L if padding == "valid" else L + 3))
    stride = draw(st.one_of(st.none(), st.integers(1, 5)))
    return dict(B=draw(st.integers(0, 3)), L=L, C=draw(st.integers(1, 5)),
                channels_last=draw(st.booleans()),
                kw=dict(pool_size=pool_size, stride=stride, padding=padding))


def check_pool(name, x, kw, rng):
    y_ref, ctx_ref = getattr(R, name + "_forward")(x, training=True, **kw)
    dy = rng.standard_normal(y_ref.shape).astype(x.dtype)
    dx_ref = getattr(R, name + "_backward")(ctx_ref, dy)["x"]
    y, ctx = getattr(F, name + "_forward")(x, training=True, **kw)
    dx = getattr(F, name + "_backward")(ctx, dy)["x"]
    tol = TOL[x.dtype.type][0]
    assert y.shape == y_ref.shape and dx.shape == x.shape
    if y.size:
        assert rel_err(y, y_ref) < tol and rel_err(dx, dx_ref) < tol


@PROFILE
@given(case=pool_cases(), dtype=DTYPES, seed=SEEDS)
def test_max_pool1d_matches_reference(case, dtype, seed):
    rng = np.random.default_rng(seed)
    B, L, C = case["B"], case["L"], case["C"]
    x = rng.permutation(B * L * C).reshape((B, L, C) if case["channels_last"] else (B, C, L))
    check_pool("max_pool1d", x.astype(dtype), dict(case["kw"], channels_last=case["channels_last"]),
               rng)


@PROFILE
@given(name=st.sampled_from(["global_max_pool1d", "global_avg_pool1d"]),
       shape=st.tuples(st.integers(0, 3), st.integers(1, 30), st.integers(1, 6)),
       channels_last=st.booleans(), dtype=DTYPES, seed=SEEDS)
def test_global_pools_match_reference(name, shape, channels_last, dtype, seed):
    rng = np.random.default_rng(seed)
    B, L, C = shape
    x = rng.permutation(B * L * C).reshape((B, L, C) if channels_last else (B, C, L))
    check_pool(name, x.astype(dtype), dict(channels_last=channels_last), rng)


# ------------------------------------------------------------------ fuzzing: never a crash, and
# every call built only of valid arguments accepted (tests/fuzz_bindings.py fuzzes the bindings
# themselves, with the expected error of each invalid argument)

ALLOWED = (TypeError, ValueError, MemoryError)
ODD_DTYPES = [np.float32, np.float64, np.float16, np.int64, np.bool_, np.complex64,
              np.dtype(">f4"), np.dtype(">f8")]


@st.composite
def near(draw, shape, dtype, valid):
    """Usually an array of the given shape and dtype (or a valid view of one: Fortran order,
    zero or negative strides); sometimes a perturbed shape, another dtype, None, or a
    non-array. Appends to `valid` whether the draw is one of the valid kinds."""
    kind = draw(st.sampled_from(["valid"] * 6 + ["view", "shape", "dtype", "none", "junk"]))
    valid.append(kind in ("valid", "view"))
    if kind == "none":
        return None
    if kind == "junk":
        return draw(st.sampled_from([0, 1.5, "x", [1, 2], [[1.0]], object(), (), {}]))
    if kind == "shape":
        shape = list(shape)
        op = draw(st.sampled_from(["grow", "shrink", "zero", "add", "drop"]))
        i = draw(st.integers(0, max(len(shape) - 1, 0)))
        if op == "add" or not shape:
            shape.insert(i, draw(st.integers(0, 3)))
        elif op == "drop":
            shape.pop(i)
        else:
            shape[i] = {"grow": shape[i] + 1, "shrink": max(shape[i] - 1, 0), "zero": 0}[op]
    if kind == "dtype":
        dtype = draw(st.sampled_from(ODD_DTYPES))
    a = (np.arange(int(np.prod(shape))) % 7 - 3).reshape(shape) * 0.25
    a = a.astype(dtype)
    if kind == "view" and a.ndim:
        a = draw(st.sampled_from([np.asfortranarray(a), np.broadcast_to(a[:1], a.shape),
                                  np.flip(a, 0)]))
    return a


def judged(call, valid):
    """call() must succeed when every argument was drawn valid; otherwise it may raise one of
    the allowed errors. Returns its result, or None when it raised."""
    if all(valid):
        return call()
    try:
        return call()
    except ALLOWED:
        return None


@st.composite
def recurrent_calls(draw):
    op, kw, _ = draw(st.sampled_from(CELLS))
    G = {"rnn": 1, "lstm": 4, "gru": 3}[op]
    T, B, I, H = (draw(st.integers(1, 3)) for _ in range(4))
    dtype = draw(DTYPES)
    valid, grads_valid = [], []
    args = {"x": draw(near((T, B, I), dtype, valid)), "w_ih": draw(near((G * H, I), dtype, valid)),
            "w_hh": draw(near((G * H, H), dtype, valid)),
            "b_ih": draw(near((G * H,), dtype, valid)), "b_hh": draw(near((G * H,), dtype, valid)),
            "h0": draw(near((B, H), dtype, valid))}
    if op == "lstm":
        args["c0"] = draw(near((B, H), dtype, valid))
    lengths = draw(st.one_of(st.none(), st.lists(st.integers(-1, T + 1), min_size=B, max_size=B),
                             near((B,), np.int64, [])))
    valid.append(lengths is None or (isinstance(lengths, list) and all(1 <= n <= T for n in lengths)))
    batch_first = draw(st.booleans())
    if batch_first and isinstance(args["x"], np.ndarray) and args["x"].shape == (T, B, I):
        args["x"] = np.ascontiguousarray(np.swapaxes(args["x"], 0, 1))
    options = dict(kw, lengths=lengths, reverse=draw(st.booleans()), batch_first=batch_first)
    y_shape = (B, T, H) if batch_first else (T, B, H)
    grads = {"dy": draw(near(y_shape, dtype, grads_valid)),
             "dh_n": draw(near((B, H), dtype, grads_valid))}
    if op == "lstm":
        grads["dc_n"] = draw(near((B, H), dtype, grads_valid))
    return op, args, options, grads, valid, grads_valid


@PROFILE
@given(call=recurrent_calls())
def test_fuzz_recurrent_never_crashes_and_accepts_valid_calls(call):
    op, args, options, grads, valid, grads_valid = call
    out = judged(lambda: getattr(F, op + "_forward")(**args, **options, training=True), valid)
    if out is not None:
        judged(lambda: getattr(F, op + "_backward")(out[-1], **grads), grads_valid)


@st.composite
def conv_and_pool_calls(draw):
    B, L, C, c_out, K = (draw(st.integers(0, 4)) for _ in range(5))
    dtype = draw(DTYPES)
    channels_last = draw(st.booleans())
    valid = [L >= 1 and C >= 1]
    x = draw(near((B, L, C) if channels_last else (B, C, L), dtype, valid))
    small = st.integers(1, 3)
    ints = st.one_of(st.integers(-1, 5), st.sampled_from([None, 2**62, -(2**63), 1.0, True]))
    which = draw(st.sampled_from(["conv1d", "max_pool1d", "global_max_pool1d",
                                  "global_avg_pool1d"]))
    if which == "conv1d":
        if draw(st.booleans()):  # options that are valid for every shape
            kw = dict(stride=draw(small), dilation=1, groups=1,
                      padding=draw(st.sampled_from(["same", "causal"])))
            valid.append(c_out >= 1 and K >= 1)
        else:
            kw = dict(stride=draw(ints), dilation=draw(ints), groups=draw(ints),
                      padding=draw(st.one_of(ints, st.sampled_from(["valid", "same", "causal", "x"]),
                                             st.tuples(ints, ints))))
            valid.append(False)
        args = (x, draw(near((c_out, C, K), dtype, valid)), draw(near((c_out,), dtype, valid)))
    elif which == "max_pool1d":
        if draw(st.booleans()):
            kw = dict(pool_size=draw(small), stride=draw(st.one_of(st.none(), small)),
                      padding="same")
        else:
            kw = dict(pool_size=draw(ints), stride=draw(ints),
                      padding=draw(st.sampled_from(["valid", "same", "causal", 1])))
            valid.append(False)
        args = (x,)
    else:
        kw, args = {}, (x,)
    return which, args, dict(kw, channels_last=channels_last), valid


@PROFILE
@given(call=conv_and_pool_calls())
def test_fuzz_conv_and_pools_never_crash_and_accept_valid_calls(call):
    which, args, kw, valid = call
    out = judged(lambda: getattr(F, which + "_forward")(*args, **kw, training=True), valid)
    if out is not None:
        y, ctx = out
        backward = getattr(F, which + "_backward")
        assert backward(ctx, np.zeros_like(y))["x"].shape == np.shape(args[0])
        with pytest.raises(ALLOWED):
            backward(ctx, np.zeros(y.shape + (1,), y.dtype))
