"""Odd but valid inputs to every op: non-contiguous, negative-stride, zero-stride (broadcast),
read-only, Fortran-order, big-endian and misaligned arrays, lists; empty batches where the
contract allows them. Each gives bitwise the results of a C-contiguous copy of the same values
and is never modified. Also: what a ctx allows (no copies, survives its inputs, any ISA or
thread count between forward and backward)."""
import copy
import gc
import pickle
import subprocess
import sys

import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import CELLS, GATES, TOL, as64, make_inputs, rel_err, upstream
from subprocess_env import PACKAGE_PARENT, python_env


def misaligned(a):
    """A copy of a whose data pointer is not a multiple of its item size."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned or a.dtype.itemsize == 1
    return out


def strided(a):
    """A view of a copy of a with every axis stepping over one unused element."""
    a = np.asarray(a)
    big = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def reversed_view(a):
    """A view with negative strides holding a's values."""
    a = np.asarray(a)
    axes = tuple(range(a.ndim))
    return np.flip(np.flip(a, axes).copy(), axes)


def broadcast(a):
    """Zero strides: a's first entry along axis 0 repeated (different values than a)."""
    a = np.asarray(a)
    return np.broadcast_to(a[:1], a.shape)


def read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def big_endian(a):
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder(">"))


TRANSFORMS = {
    "fortran": np.asfortranarray,
    "strided": strided,
    "reversed": reversed_view,
    "broadcast": broadcast,
    "read_only": read_only,
    "big_endian": big_endian,
    "misaligned": misaligned,
    "list": lambda a: np.asarray(a).tolist(),
}


def transformed(args, transform):
    """(odd arguments, the C-contiguous native arrays with the same values)."""
    odd, plain = {}, {}
    for name, value in args.items():
        if value is None:
            odd[name] = plain[name] = None
            continue
        odd[name] = transform(value)
        as_array = np.asarray(odd[name])
        plain[name] = np.ascontiguousarray(as_array.astype(as_array.dtype.newbyteorder("=")))
    return odd, plain


def snapshot(args):
    return {k: None if v is None else np.array(v, copy=True) for k, v in args.items()}


def assert_unchanged(args, saved):
    for name, value in args.items():
        if value is not None:
            np.testing.assert_array_equal(np.asarray(value), saved[name], err_msg=name)


def assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ recurrent


def recurrent_run(op, kw, args, grads):
    """Every output and gradient of a training forward + backward, in a fixed order."""
    forward_args = {k: v for k, v in args.items() if k != "lengths"}
    out = getattr(F, op + "_forward")(**forward_args, lengths=args["lengths"], **kw, training=True)
    got = getattr(F, op + "_backward")(out[-1], **grads)
    return list(out[:-1]) + [got[name] for name in sorted(got)]


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
def test_recurrent_odd_layouts(rng, op, kw, cell, dtype, transform):
    T, B, I, H = 6, 4, 5, 7
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, lengths=True)
    args["lengths"] = lens.astype(np.int32)
    grads = upstream(rng, op, (T, B, H), B, H, dtype)
    fn = TRANSFORMS[transform]
    odd_args, plain_args = transformed(args, fn)
    odd_grads, plain_grads = transformed(grads, fn)
    saved = snapshot(odd_args), snapshot(odd_grads)
    got = recurrent_run(op, kw, odd_args, odd_grads)
    assert_unchanged(odd_args, saved[0])
    assert_unchanged(odd_grads, saved[1])
    assert_same(got, recurrent_run(op, kw, plain_args, plain_grads))


# ------------------------------------------------------------------ conv and pools

CONV_KW = dict(stride=2, padding="same", dilation=2, groups=2)


def conv_run(channels_last, args):
    y, ctx = F.conv1d_forward(args["x"], args["w"], args["b"], channels_last=channels_last,
                              training=True, **CONV_KW)
    g = F.conv1d_backward(ctx, args["dy"])
    return [y, g["x"], g["w"], g["b"]]


POOLS = {
    "max_pool1d": dict(pool_size=3, stride=2, padding="same"),
    "global_max_pool1d": {},
    "global_avg_pool1d": {},
}


def pool_run(name, channels_last, args):
    y, ctx = getattr(F, name + "_forward")(args["x"], channels_last=channels_last, training=True,
                                           **POOLS[name])
    return [y, getattr(F, name + "_backward")(ctx, args["dy"])["x"]]


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv_odd_layouts(rng, channels_last, dtype, transform):
    B, L, c_in, c_out = 3, 11, 4, 6
    x = rng.standard_normal((B, L, c_in) if channels_last else (B, c_in, L)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // 2, 3)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    y = F.conv1d_forward(x, w, b, channels_last=channels_last, **CONV_KW)[0]
    args = {"x": x, "w": w, "b": b, "dy": rng.standard_normal(y.shape).astype(dtype)}
    odd, plain = transformed(args, TRANSFORMS[transform])
    saved = snapshot(odd)
    got = conv_run(channels_last, odd)
    assert_unchanged(odd, saved)
    assert_same(got, conv_run(channels_last, plain))


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize("name", list(POOLS))
def test_pool_odd_layouts(rng, name, channels_last, transform):
    x = rng.standard_normal((3, 10, 5) if channels_last else (3, 5, 10)).astype(np.float32)
    y = getattr(F, name + "_forward")(x, channels_last=channels_last, **POOLS[name])[0]
    args = {"x": x, "dy": rng.standard_normal(y.shape).astype(np.float32)}
    odd, plain = transformed(args, TRANSFORMS[transform])
    saved = snapshot(odd)
    got = pool_run(name, channels_last, odd)
    assert_unchanged(odd, saved)
    assert_same(got, pool_run(name, channels_last, plain))


def test_gemm_odd_layouts(rng):
    a = rng.standard_normal((13, 9)).astype(np.float32)
    b = rng.standard_normal((9, 7)).astype(np.float32)
    want = _C.gemm(a, b)
    for transform in ("fortran", "strided", "reversed", "read_only", "big_endian", "misaligned"):
        fn = TRANSFORMS[transform]
        np.testing.assert_array_equal(_C.gemm(fn(a), fn(b)), want, err_msg=transform)


# ------------------------------------------------------------------ empty dimensions


@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_empty_batch_is_accepted_by_conv_and_pools(rng, channels_last):
    """README/DESIGN: conv and the pools accept B = 0 (an empty batch) and give empty results
    and zero weight gradients; L and C must be >= 1."""
    shape = (0, 8, 4) if channels_last else (0, 4, 8)
    x = np.zeros(shape, np.float32)
    w = rng.standard_normal((6, 2, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y, ctx = F.conv1d_forward(x, w, b, channels_last=channels_last, training=True, **CONV_KW)
    assert y.shape == ((0, 4, 6) if channels_last else (0, 6, 4))
    g = F.conv1d_backward(ctx, y)
    assert g["x"].shape == shape and not g["w"].any() and not g["b"].any()
    for name, kw in POOLS.items():
        y, ctx = getattr(F, name + "_forward")(x, channels_last=channels_last, training=True, **kw)
        assert y.shape[0] == 0
        assert getattr(F, name + "_backward")(ctx, y)["x"].shape == shape


@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
@pytest.mark.parametrize("shape", [(0, 2, 3), (4, 2, 0)], ids=["T0", "I0"])
def test_empty_sequence_or_features_are_refused(op, kw, cell, shape):
    """T and I of the recurrent ops must be >= 1 (only the batch may be empty)."""
    G, H = GATES[op], 5
    x = np.zeros(shape, np.float32)
    w_ih = np.zeros((G * H, shape[2]), np.float32)
    w_hh = np.zeros((G * H, H), np.float32)
    with pytest.raises(ValueError, match=r"x: expected seq_len >= 1 and input_size >= 1 in "
                                         r"\(seq_len, batch, input_size\), got shape"):
        getattr(F, op + "_forward")(x, w_ih, w_hh, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
def test_empty_batch_is_accepted_by_recurrent_ops(rng, op, kw, cell, batch_first, dtype):
    """As PyTorch: B = 0 gives empty outputs, states and input gradients, and zero weight and
    bias gradients (sums over no sequence), with or without states and lengths."""
    T, I, H = 4, 3, 5
    args, _ = make_inputs(rng, op, T, 0, I, H, dtype, batch_first=batch_first)
    out, grads = run_op(op, args, dict(kw, batch_first=batch_first,
                                       lengths=np.zeros(0, np.int64)), upstream_of=rng)
    y_shape = (0, T, H) if batch_first else (T, 0, H)
    assert out[0].shape == y_shape and out[0].dtype == dtype
    assert all(state.shape == (0, H) for state in out[1:-1])
    assert grads["x"].shape == args["x"].shape
    for name in ("h0", "c0"):
        if name in grads:
            assert grads[name].shape == (0, H)
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        assert grads[name].shape == args[name].shape and grads[name].dtype == dtype
        assert not grads[name].any(), name
    # No states, no lengths, no upstream gradients: the same.
    out, grads = run_op(op, dict(args, h0=None, **({"c0": None} if op == "lstm" else {})),
                        dict(kw, batch_first=batch_first), upstream_of=None)
    assert out[0].shape == y_shape and grads["h0"] is None and not grads["w_hh"].any()


def run_op(op, args, options, upstream_of):
    """A training forward and its backward (random upstream gradients from the rng
    upstream_of, or none)."""
    out = getattr(F, op + "_forward")(**args, **options, training=True)
    grads = {}
    if upstream_of is not None:
        grads = upstream(upstream_of, op, out[0].shape, 0, out[1].shape[1], out[0].dtype)
    return out, getattr(F, op + "_backward")(out[-1], **grads)


@pytest.mark.parametrize("layer", ["RNN", "LSTM", "GRU"])
def test_empty_batch_is_accepted_by_nn_layers(rng, layer):
    """rnnfast.nn's recurrent layers (two layers, both directions) follow the same rule."""
    from rnnfast import nn

    module = getattr(nn, layer)(3, 4, num_layers=2, bidirectional=True)
    x = np.zeros((6, 0, 3), np.float32)
    y, state = module(x)
    assert y.shape == (6, 0, 8)
    for s in (state if isinstance(state, tuple) else (state,)):
        assert s.shape == (4, 0, 4)
    dx, _ = module.backward(np.zeros_like(y))
    assert dx.shape == x.shape
    for p in module.parameters():
        assert p.grad is None or not p.grad.any()


# ------------------------------------------------------------------ what a ctx allows


def make_ctx(make, x):
    if make == "rnn":
        return F.rnn_forward(x, np.ones((2, 4)), np.ones((2, 2)), training=True)[-1]
    if make == "conv":
        return F.conv1d_forward(x, np.ones((3, 4, 1)), training=True)[-1]
    return F.max_pool1d_forward(x, pool_size=2, training=True)[-1]


CTX_CLASSES = {"rnn": "RecurrentCtx", "conv": "Conv1dCtx", "pool": "Pool1dCtx"}
COPIES = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    **{f"pickle-{p}": (lambda c, p=p: pickle.dumps(c, protocol=p))
       for p in range(2, pickle.HIGHEST_PROTOCOL + 1)},
}


@pytest.mark.parametrize("make", list(CTX_CLASSES))
@pytest.mark.parametrize("how", list(COPIES))
def test_ctx_cannot_be_copied(rng, make, how):
    ctx = make_ctx(make, rng.standard_normal((3, 2, 4)))
    with pytest.raises(TypeError) as info:
        COPIES[how](ctx)
    assert str(info.value).startswith(
        f"cannot pickle or copy <class 'rnnfast._C.{CTX_CLASSES[make]}'>: a ctx belongs to the "
        "process that ran its forward")
    backward = {"rnn": F.rnn_backward, "conv": F.conv1d_backward, "pool": F.max_pool1d_backward}
    assert backward[make](ctx, None)["x"].shape == (3, 2, 4)  # the refusal left it usable


OLD_PICKLES = """
import pickle
import numpy as np
from rnnfast import functional as F
x = np.ones((3, 2, 4))
ctxs = {"rnn": F.rnn_forward(x, np.ones((2, 4)), np.ones((2, 2)), training=True)[-1],
        "conv": F.conv1d_forward(x, np.ones((3, 4, 1)), training=True)[-1],
        "pool": F.max_pool1d_forward(x, pool_size=2, training=True)[-1]}
for make, ctx in ctxs.items():
    for how in ("pickle.dumps(ctx, protocol=0)", "pickle.dumps(ctx, protocol=1)",
                "ctx.__reduce__()", "ctx.__reduce_ex__(0)", "ctx.__reduce_ex__(1)",
                "ctx.__getstate__()"):
        try:
            eval(how)
        except TypeError as e:
            print(make, how, "TypeError", str(e).split(":")[0])
        else:
            print(make, how, "accepted")
"""


def test_ctx_old_pickle_protocols_raise_instead_of_aborting():
    """Protocols 0 and 1 go through copyreg, which calls pybind11's base type: without the ctx's
    own __reduce_ex__ that ends the process (std::terminate). Run apart, so that it cannot end
    this one."""
    done = subprocess.run([sys.executable, "-c", OLD_PICKLES],
                          env=python_env(), cwd=str(PACKAGE_PARENT), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 * 6
    for line in lines:
        make = line.split()[0]
        assert line.endswith(f"TypeError cannot pickle or copy <class 'rnnfast._C.{CTX_CLASSES[make]}'>"), line


@pytest.mark.parametrize("cls", [_C.RecurrentCtx, _C.Conv1dCtx, _C.Pool1dCtx])
def test_ctx_classes_cannot_be_made_from_python(cls):
    with pytest.raises(TypeError, match="No constructor defined"):
        cls()
    bare = cls.__new__(cls)  # never constructed in C++: refused, never read
    assert repr(bare) == "<rnnfast ctx, uninitialised>"
    if hasattr(cls, "op"):
        with pytest.raises(TypeError, match="got an uninitialised"):
            bare.op


@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
def test_ctx_outlives_its_inputs(rng, op, kw, cell):
    args, lens = make_inputs(rng, op, 5, 3, 4, 6, np.float64, lengths=True)
    grads = upstream(rng, op, (5, 3, 6), 3, 6, np.float64)
    want = recurrent_run(op, kw, dict(args, lengths=lens), grads)
    out = getattr(F, op + "_forward")(**{k: v.copy() if v is not None else None for k, v in args.items()},
                                      lengths=lens.copy(), **kw, training=True)
    ctx = out[-1]
    del out
    gc.collect()
    got = getattr(F, op + "_backward")(ctx, **grads)
    assert_same([got[name] for name in sorted(got)], want[len(want) - len(got):])


@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
def test_backward_under_another_isa_and_thread_count(rng, op, kw, cell):
    """A ctx does not depend on the instruction set or thread count its forward ran with."""
    args, lens = make_inputs(rng, op, 6, 5, 13, 33, np.float32, lengths=True)
    grads = upstream(rng, op, (6, 5, 33), 5, 33, np.float32)
    options = dict(kw, lengths=lens)
    _, want = R_run(op, args, options, grads)
    isas, threads = rnnfast.supported_isas(), rnnfast.get_num_threads()
    before = rnnfast.active_isa()
    try:
        for i, isa in enumerate(isas):
            rnnfast.set_isa(isa)
            rnnfast.set_num_threads(1 + i % 3)
            ctx = getattr(F, op + "_forward")(**args, **options, training=True)[-1]
            rnnfast.set_isa(isas[(i + 1) % len(isas)])
            rnnfast.set_num_threads(1 + (i + 1) % 3)
            got = getattr(F, op + "_backward")(ctx, **grads)
            for name, value in want.items():
                if value is not None:
                    assert rel_err(got[name], value) < TOL[np.float32][1], (isa, name)
    finally:
        rnnfast.set_isa(before)
        rnnfast.set_num_threads(threads)


def R_run(op, args, options, grads):
    out = getattr(R, op + "_forward")(**as64(args), **options, training=True)
    return out[:-1], getattr(R, op + "_backward")(out[-1], **as64(grads))


# ------------------------------------------------------------------ integers near the limits


@pytest.mark.parametrize("stride", [7, 8, 2**31, 2**62, 2**63 - 1])
@pytest.mark.parametrize("padding", ["valid", "same", "causal", (3, 2)])
def test_strides_up_to_int64_max_give_the_reference_results(rng, stride, padding):
    """A stride past the (padded) input gives one output, whatever its size, up to 2**63 - 1:
    the same as the reference, forward and backward (the fuzzer found int64 overflow there)."""
    x = rng.standard_normal((2, 4, 7))
    w = rng.standard_normal((4, 2, 3))
    kw = dict(stride=stride, dilation=2, groups=2, padding=padding, channels_last=False,
              training=True)
    y, ctx = F.conv1d_forward(x, w, **kw)
    y_ref, ctx_ref = R.conv1d_forward(x, w, **kw)
    assert y.shape == y_ref.shape and rel_err(y, y_ref) < 1e-12
    dy = rng.standard_normal(y.shape)
    got, want = F.conv1d_backward(ctx, dy), R.conv1d_backward(ctx_ref, dy)
    for name in ("x", "w"):
        assert rel_err(got[name], want[name]) < 1e-12, name
    if isinstance(padding, str) and padding != "causal":
        pool = dict(pool_size=3, stride=stride, padding=padding, channels_last=False, training=True)
        y, ctx = F.max_pool1d_forward(x, **pool)
        y_ref, ctx_ref = R.max_pool1d_forward(x, **pool)
        np.testing.assert_array_equal(y, y_ref)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(F.max_pool1d_backward(ctx, dy)["x"],
                                      R.max_pool1d_backward(ctx_ref, dy)["x"])
