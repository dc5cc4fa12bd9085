"""Inference projecting the inputs in windows of time steps, by blocks of hidden units (the
forward driver's BlockedWindows): when the threads share each step, each thread projects its
blocks' columns of a window at the window's first step. The windows are made small here (the
projection budget of _set_projection_window_bytes) so that they split the sequence: T larger
than a window and not a multiple of it, lengths that end inside a window, reversed and
batch-first sequences. The outputs must be those of the projection of every row at once (the
default budget, which holds every row at these sizes), bit for bit, in float32, float64 and
bfloat16, on every instruction set and bfloat16 path, at 1, 2 and 3 threads; and the training
forward (which projects every row into its workspace) gives the same outputs too."""
import contextlib

import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (CELLS, as64, isa, make_inputs, rel_err, run, upstream,
                             with_threads)

# B=9 sequences (fewer than 2 x 8: threads share the steps rather than taking sequences), I=7
# inputs, and per cell H units enough that W_ih and W_hh do not fit in a core's L2 together
# (1.5 MiB in float32; below it, inference keeps the windows of every unit it had before) and
# not a multiple of the blocks (at 2 threads, blocks of 80 or 96 units, the last one partial).
B, I = 9, 7
H_OF = {"rnn": 650, "lstm": 330, "gru": 380}
ISAS = rnnfast.supported_isas()
BF16_ISAS = rnnfast.supported_bf16_isas()


@contextlib.contextmanager
def window_bytes(n):
    try:
        rnnfast._C._set_projection_window_bytes(n)
        yield
    finally:
        rnnfast._C._set_projection_window_bytes(0)


def outputs(op, args, options, window=None):
    """Inference outputs with a projection budget of `window` steps of every unit (None: the
    default), as run returns them."""
    if window is None:
        return run(F, op, args, options)
    itemsize = np.dtype(args["x"].dtype).itemsize
    # 1 byte: one step per window; else `window` steps of G*H values (the blocks' padding
    # makes a step a little wider: windows of window - 1 or window steps)
    with window_bytes(1 if window == 1 else window * B * GATES_OF[op] * H_OF[op] * itemsize):
        return run(F, op, args, options)


GATES_OF = {"rnn": 1, "lstm": 4, "gru": 3}


def case(rng, op, T, dtype, *, lengths, batch_first=False, peephole=False):
    args, lens = make_inputs(rng, op, T, B, I, H_OF[op], dtype, batch_first=batch_first,
                             lengths=False, peephole=peephole)
    if lengths:  # ends inside and at the edges of windows of 1, 2 or 3 steps; one step alone
        lens = np.clip([T, 1, 2, 3, 4, 5, T - 1, 7, T // 2], 1, T)
    return args, lens


def training_outputs(op, args, options):
    """The outputs of the training forward (which projects every row into its workspace)."""
    out = getattr(F, op + "_forward")(**args, **options, training=True)
    return dict(zip(["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"], out[:-1]))


def assert_same(a, b):
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name], err_msg=name)


PLAIN = [(op, kw, name) for op, kw, name in CELLS] + [("lstm", {"peephole": True}, "peephole")]


def options_of(kw, lens, reverse=False, batch_first=False, **extra):
    options = {k: v for k, v in kw.items() if k != "peephole"}
    return dict(options, lengths=lens, reverse=reverse, batch_first=batch_first, **extra)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,name", PLAIN, ids=[c[2] for c in PLAIN])
@pytest.mark.parametrize("T", [10, 1], ids=["T10", "T1"])
def test_windows_equal_every_row_at_once(rng, op, kw, name, dtype, T):
    for lengths, reverse, batch_first in [(False, False, False), (True, False, False),
                                          (False, True, False), (True, False, True),
                                          (False, True, True)]:
        args, lens = case(rng, op, T, dtype, lengths=lengths, batch_first=batch_first,
                          peephole=kw.get("peephole", False))
        options = options_of(kw, lens, reverse, batch_first)

        def every_window():
            whole = outputs(op, args, options)
            for window in (1, 2, 3):
                assert_same(outputs(op, args, options, window), whole)
            return whole

        results = with_threads((1, 2, 3), every_window)
        for other in results[1:]:
            assert_same(other, results[0])
        training = training_outputs(op, args, options)
        for key in training:
            np.testing.assert_array_equal(results[0][0][key], training[key], err_msg=key)
        ref = run(R, op, as64(args), options)[0]
        tol = 1e-4 if dtype == np.float32 else 1e-10
        for key in ref:
            assert rel_err(results[0][0][key], ref[key]) < tol, key


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("op,kw,name", PLAIN, ids=[c[2] for c in PLAIN])
def test_windows_on_every_instruction_set(rng, op, kw, name, isa_name):
    with isa(isa_name):
        for dtype in (np.float32, np.float64):
            args, lens = case(rng, op, 11, dtype, lengths=True,
                              peephole=kw.get("peephole", False))
            options = options_of(kw, lens)
            whole = with_threads((2,), lambda: outputs(op, args, options))[0]
            for window in (1, 3):
                assert_same(with_threads((2,), lambda: outputs(op, args, options, window))[0],
                            whole)


@pytest.mark.parametrize("bf16_isa", BF16_ISAS)
@pytest.mark.parametrize("op,kw,name", PLAIN, ids=[c[2] for c in PLAIN])
def test_bf16_windows_equal_every_row_at_once(rng, op, kw, name, bf16_isa):
    before = rnnfast.active_bf16_isa()
    try:
        rnnfast.set_bf16_isa(bf16_isa)
        for lengths, reverse in [(True, False), (False, True)]:
            args, lens = case(rng, op, 10, np.float32, lengths=lengths,
                              peephole=kw.get("peephole", False))
            options = options_of(kw, lens, reverse, precision="bfloat16")

            def every_window():
                whole = outputs(op, args, options)
                for window in (1, 3):
                    assert_same(outputs(op, args, options, window), whole)
                return whole

            results = with_threads((1, 2, 3), every_window)
            for other in results[1:]:
                assert_same(other, results[0])
            training = training_outputs(op, args, options)
            for key in training:
                np.testing.assert_array_equal(results[0][0][key], training[key], err_msg=key)
            ref = run(R, op, as64(args), {k: v for k, v in options.items()
                                           if k != "precision"})[0]
            for key in ref:
                assert rel_err(results[0][0][key], ref[key]) < 0.05, key
    finally:
        rnnfast.set_bf16_isa(before if before in BF16_ISAS else "portable")


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_zoneout_inference_windows(rng, op):
    """Inference with zoneout (the constant rate) through windows: the same values as without."""
    args, lens = case(rng, op, 10, np.float32, lengths=True)
    options = dict(lengths=lens, zoneout=0.3)
    whole = with_threads((2,), lambda: outputs(op, args, options))[0]
    for window in (1, 3):
        assert_same(with_threads((2,), lambda: outputs(op, args, options, window))[0], whole)
    plain = outputs(op, args, dict(lengths=lens))
    assert not np.array_equal(plain[0]["y"], whole[0]["y"])  # the option did something


@pytest.mark.parametrize("op,T,I,H", [("lstm", 6, 512, 512), ("gru", 6, 512, 512),
                                       ("rnn", 9, 1024, 1024), ("rnn", 20, 512, 512)])
def test_default_selection_equals_forced_windows(rng, op, T, I, H):
    """At shapes where the windows by blocks once applied on two threads (a batch of 64: the
    threads now take sequences in inference), the default outputs are those of the windows
    forced by a 2 MiB budget (T longer than such a window), of every row at once, and of one
    thread (which shares the steps by blocks), bit for bit."""
    B, G = 64, GATES_OF[op]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w = [(rng.standard_normal(shape) * 0.05).astype(np.float32)
         for shape in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
    forward = getattr(F, op + "_forward")

    def with_budget(n):
        with window_bytes(n):
            return forward(x, *w)[:-1]

    default, forced, every_row = with_threads(
        (2,), lambda: [with_budget(0), with_budget(2 << 20), with_budget(1 << 60)])[0]
    one_thread = with_threads((1,), lambda: with_budget(0))[0]
    for other in (forced, every_row, one_thread):
        for a, b in zip(default, other):
            np.testing.assert_array_equal(a, b)
    ref = getattr(R, op + "_forward")(x.astype(np.float64), *[v.astype(np.float64) for v in w])
    assert rel_err(default[0], ref[0]) < 1e-4



# Batches of >= 16 sequences (each thread takes its own) whose W_ih^T and W_hh^T are each at most
# 2^16 elements (LSTM at I = H = 128 is exactly that): at two or more threads the loop packs the
# two at once, one per thread. Windows of a few steps (forced in inference, the default in
# training, whose weights fit in L2), ragged and reversed batches: the values must be those of one
# thread and of every row projected at once, bit for bit, and match the float64 reference. (The
# LSTM at these sizes merges its projection into the steps' products instead, whatever the
# window budget: tests/test_forward_merged.py.)
@pytest.mark.parametrize("op,kw,name", PLAIN, ids=[c[2] for c in PLAIN])
@pytest.mark.parametrize("T,B,I,H", [(7, 32, 24, 40), (5, 17, 128, 128), (4, 20, 9, 33)])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_weights_packed_at_once_equal_one_thread(rng, op, kw, name, T, B, I, H, reverse):
    args, lens = make_inputs(rng, op, T, B, I, H, np.float32, lengths=not reverse,
                             peephole=kw.get("peephole", False))
    options = options_of(kw, lens, reverse=reverse)
    grads = upstream(rng, op, (T, B, H), B, H, np.float32)

    def every_way():
        window = B * GATES_OF[op] * H * 4 * 2  # windows of about two steps
        with window_bytes(window):
            windows = run(F, op, args, options)[0]
        with window_bytes(1 << 60):
            whole = run(F, op, args, options)[0]
        return windows, whole, run(F, op, args, options, grads)

    results = with_threads((1, 2, 3), every_way)
    one = results[0]
    for got in results:
        assert_same((got[0],), (one[0],))
        assert_same((got[1],), (one[0],))
        assert_same(got[2], one[2])
        for k in one[2][1]:
            np.testing.assert_array_equal(got[2][1][k], one[2][1][k], err_msg=k)
    ref = run(R, op, as64(args), options)[0]
    for k in ref:
        assert rel_err(one[0][k], ref[k]) < 1e-4, k

def test_bench_script_runs():
    """bench/forward_windows.py (with and without windows, checked equal before timing)."""
    import pathlib
    import subprocess
    import sys
    from subprocess_env import python_env
    script = pathlib.Path(__file__).resolve().parents[1] / "bench" / "forward_windows.py"
    done = subprocess.run([sys.executable, str(script), "--threads", "1", "--rounds", "1",
                           "--no-torch", "--cases", "rnn:medium:float32"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=python_env())
    assert done.returncode == 0, done.stderr
    assert "rnn medium float32 threads=1: without" in done.stdout
    assert "without/with" in done.stdout
    forced = subprocess.run([sys.executable, str(script), "--threads", "2", "--rounds", "1",
                             "--no-torch", "--cases", "rnn:medium:float32", "--with-bytes",
                             str(2 << 20)], capture_output=True, text=True, timeout=300,
                            check=False, env=python_env())
    assert forced.returncode == 0, forced.stderr
    assert "rnn medium float32 threads=2: without" in forced.stdout
