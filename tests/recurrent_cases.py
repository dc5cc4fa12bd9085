"""Shared builders for the recurrent-op tests: random inputs, a runner for either module, the
options grid, and the checks against the reference and across thread counts."""
import contextlib
import itertools
import threading

import numpy as np
import pytest

import rnnfast

# (op, forward keyword arguments, id)
CELLS = [
    ("rnn", {"nonlinearity": "tanh"}, "rnn_tanh"),
    ("rnn", {"nonlinearity": "relu"}, "rnn_relu"),
    ("lstm", {}, "lstm"),
    ("gru", {"reset_after": True}, "gru"),
    ("gru", {"reset_after": False}, "gru_reset_before"),
]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# DESIGN.md, numerical contract: max abs error / max(1, max |ref|).
TOL = {np.float64: (1e-10, 1e-10), np.float32: (1e-4, 1e-3)}  # (outputs, gradients)
# The float32 kernels' tests also hold them to the error of the reference run in float32
# (dtype=np.float32), as flash-attention's tests do: error(kernel) <= REF_FACTOR *
# error(reference in float32) + REF_FLOOR_ULPS float32 units (errors against the float64
# reference, relative to max(1, max |ref|)); see assert_as_accurate_as.
REF_FACTOR, REF_FLOOR_ULPS = 4.0, 4

# Every combination of the layout options: a test taking batch_first, bias, h0, lengths and
# reverse runs once per combination under @options_grid.
OPTIONS = list(itertools.product([False, True], repeat=5))
options_grid = pytest.mark.parametrize(
    "batch_first,bias,h0,lengths,reverse", OPTIONS,
    ids=["bf%d-bias%d-h0%d-len%d-rev%d" % o for o in OPTIONS])


def make_inputs(rng, op, T, B, I, H, dtype, *, bias=True, h0=True, batch_first=False,
                lengths=False, scale=0.5, peephole=False, proj_size=None):
    """Keyword arguments of a forward call (arrays of dtype), and lengths (or None).
    LSTM: peephole adds a w_peephole argument, proj_size P a projection w_hr (P, H)."""
    G = GATES[op]
    P = H if proj_size is None else proj_size
    x_shape = (B, T, I) if batch_first else (T, B, I)
    args = {
        "x": rng.standard_normal(x_shape),
        "w_ih": rng.standard_normal((G * H, I)) * scale / np.sqrt(max(I, 1)),
        "w_hh": rng.standard_normal((G * H, P)) * scale / np.sqrt(max(P, 1)) * 2,
        "b_ih": rng.standard_normal(G * H) * scale if bias else None,
        "b_hh": rng.standard_normal(G * H) * scale if bias else None,
        "h0": rng.standard_normal((B, P)) * scale if h0 else None,
    }
    if op == "lstm":
        args["c0"] = rng.standard_normal((B, H)) * scale if h0 else None
        if peephole:
            args["w_peephole"] = rng.standard_normal((3, H)) * scale
        if proj_size is not None:
            args["w_hr"] = rng.standard_normal((P, H)) / np.sqrt(H)
    args = {k: (None if v is None else v.astype(dtype)) for k, v in args.items()}
    lens = None
    if lengths:
        lens = rng.integers(1, T + 1, size=B)
        lens[0] = T  # the longest sequence always spans the whole batch
        if B > 1:
            lens[-1] = 1
    return args, lens


def upstream(rng, op, y_shape, B, H, dtype):
    """Random (not all-ones) output gradients, keyed as the backward's arguments."""
    g = {"dy": rng.standard_normal(y_shape).astype(dtype),
         "dh_n": rng.standard_normal((B, H)).astype(dtype)}
    if op == "lstm":
        g["dc_n"] = rng.standard_normal((B, H)).astype(dtype)
    return g


def run(module, op, args, options, grads=None):
    """Forward (training when grads is given) and backward of one op of a module (op as in
    the names of its functions: "lstm", "layer_norm_gru", ...).

    Returns (outputs dict, gradients dict or None)."""
    forward = getattr(module, op + "_forward")
    out = forward(**args, **options, training=grads is not None)
    names = ["y", "h_n", "c_n"] if op.endswith("lstm") else ["y", "h_n"]
    outputs = dict(zip(names, out[:-1]))
    if grads is None:
        assert out[-1] is None
        return outputs, None
    return outputs, getattr(module, op + "_backward")(out[-1], **grads)


def as64(args):
    return {k: (None if v is None else np.asarray(v, dtype=np.float64)) for k, v in args.items()}


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    return np.abs(np.asarray(got, dtype=np.float64) - want).max() / max(1.0, np.abs(want).max())


def assert_as_accurate_as(got, peer, ref, what, factor=2.0, floor_ulps=8):
    """got's error against the float64 reference ref is at most factor times the error of a peer
    implementation of the same precision (PyTorch), plus a few units in the last place: a
    tolerance that follows the reference's own error (as flash-attention's tests do) instead of
    a fixed number."""
    got, peer = np.asarray(got), np.asarray(peer)
    eps = np.finfo(got.dtype).eps
    mine, theirs = rel_err(got, ref), rel_err(peer, ref)
    assert mine <= factor * theirs + floor_ulps * eps, \
        f"{what}: error {mine:.3g} against the reference, the peer's {theirs:.3g}"


def assert_matches_reference(out, got, ref_out, want, dtype):
    """A kernel's outputs and gradients (dicts of run) have the reference's names, shapes and
    the kernel's dtype, and lie within DESIGN's bounds (TOL) of the reference's."""
    out_tol, grad_tol = TOL[dtype]
    for name, value in out.items():
        assert value.dtype == dtype and value.shape == ref_out[name].shape, name
        assert rel_err(value, ref_out[name]) < out_tol, name
    assert set(got) == set(want)
    for name, value in got.items():
        if want[name] is None:
            assert value is None, name
            continue
        assert value.dtype == dtype and value.shape == want[name].shape, name
        assert rel_err(value, want[name]) < grad_tol, name


def with_threads(counts, call):
    """[call() with each thread count of counts], rnnfast's thread count restored after."""
    threads = rnnfast.get_num_threads()
    try:
        results = []
        for n in counts:
            rnnfast.set_num_threads(n)
            results.append(call())
        return results
    finally:
        rnnfast.set_num_threads(threads)


def assert_bitwise_equal(results):
    """Every (outputs, gradients or None) of results, as run returns them, equals the first
    bit for bit."""
    out0, got0 = results[0]
    for out, got in results[1:]:
        for name in out0:
            np.testing.assert_array_equal(out[name], out0[name], err_msg=name)
        for name in got0 or {}:
            if got0[name] is not None:
                np.testing.assert_array_equal(got[name], got0[name], err_msg=name)


@contextlib.contextmanager
def isa(name):
    """Runs the block with rnnfast's instruction set name, the previous one restored after."""
    before = rnnfast.active_isa()
    try:
        rnnfast.set_isa(name)
        yield
    finally:
        rnnfast.set_isa(before)


def calls_from_threads(call, cases, reps, workers=6):
    """``call(cases[i])`` from ``workers`` Python threads at once, worker w taking the cases
    w % 3, w % 3 + 3, ... ``reps`` times: {(w, rep, i): result}; raises the first error a worker
    met, and checks that every call returned."""
    results, errors = {}, []

    def worker(w):
        try:
            for rep in range(reps):
                for i in range(w % 3, len(cases), 3):
                    results[(w, rep, i)] = call(cases[i])
        except Exception as e:  # reported by the calling thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == sum(reps * len(range(w % 3, len(cases), 3)) for w in range(workers))
    return results
