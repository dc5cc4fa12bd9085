"""The small-batch recurrent loops (csrc/kernels/recurrent_small.cc, batches of 1..8): against
the NumPy reference, and bit for bit against the general loops they stand in for
(``_C._set_small_batch_enabled(False)``), on every instruction set and thread count."""
import contextlib
import itertools

import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (CELLS, OPTIONS, as64, assert_bitwise_equal,
                             assert_matches_reference, isa, make_inputs, run, upstream,
                             with_threads)
from test_functional_recurrent import assert_within_float32_reference_error

DTYPES = [np.float32, np.float64]
# The cells the small loops take (GRU with reset before runs the general loop), and the LSTM
# with peepholes.
SMALL_CELLS = [c for c in CELLS if c[2] != "gru_reset_before"] + [("lstm", {}, "lstm_peephole")]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the small loops take every batch of 1..8 (with more threads, the steps large
    enough to share go to the general loops)."""
    threads = rnnfast.get_num_threads()
    rnnfast.set_num_threads(1)
    yield
    rnnfast.set_num_threads(threads)


@contextlib.contextmanager
def small_batch(enabled):
    _C._set_small_batch_enabled(enabled)
    try:
        yield
    finally:
        _C._set_small_batch_enabled(True)


def case(rng, op, kw, cell, T, B, I, H, dtype, options):
    """Inputs, forward options and output gradients of one case; options: (batch_first, bias,
    h0, lengths, reverse)."""
    batch_first, bias, h0, lengths, reverse = options
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, bias=bias, h0=h0,
                             batch_first=batch_first, lengths=lengths,
                             peephole=cell == "lstm_peephole")
    fwd = dict(kw, lengths=lens, reverse=reverse, batch_first=batch_first)
    grads = upstream(rng, op, args["x"].shape[:2] + (H,), B, H, dtype)
    return args, fwd, grads


def both_paths(op, args, fwd, grads):
    """(small loops, general loops) results of a training call and of an inference call."""
    results = []
    for enabled in (True, False):
        with small_batch(enabled):
            results.append((run(F, op, args, fwd, grads), run(F, op, args, fwd)))
    return results


def assert_same(small, general, inference_is_training=True):
    assert_bitwise_equal([small[0], general[0]])  # training: outputs and gradients
    assert_bitwise_equal([small[1], general[1]])  # inference
    if inference_is_training:  # no training-only option: the same outputs
        assert_bitwise_equal([small[1], (small[0][0], None)])


# Each (B, H) pair takes one combination of the layout options, so that all of them appear.
SHAPES = list(itertools.product([1, 2, 3, 5, 8], [1, 3, 17, 63, 65]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", SMALL_CELLS, ids=[c[2] for c in SMALL_CELLS])
@pytest.mark.parametrize("B,H", SHAPES, ids=["B%d-H%d" % s for s in SHAPES])
def test_small_batches_against_reference(rng, op, kw, cell, dtype, B, H):
    options = OPTIONS[(B * 7 + H) % len(OPTIONS)]
    args, fwd, grads = case(rng, op, kw, cell, 7, B, 4, H, dtype, options)
    small, general = both_paths(op, args, fwd, grads)
    (out, got), _ = small
    ref_out, want = run(R, op, as64(args), fwd, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    if dtype == np.float32:
        assert_within_float32_reference_error(op, args, fwd, grads, out, got, ref_out, want)
    assert_same(small, general)


# One time step of a batch of 5..8 (more than 4 rows: the small loops take it), and two steps
# of 3 sequences, some of length 1.
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", SMALL_CELLS, ids=[c[2] for c in SMALL_CELLS])
@pytest.mark.parametrize("T,B,lengths", [(1, 5, False), (1, 8, False), (2, 3, True)])
def test_few_steps(rng, op, kw, cell, dtype, T, B, lengths):
    args, fwd, grads = case(rng, op, kw, cell, T, B, 3, 9, dtype, (False, True, True, lengths, True))
    small, general = both_paths(op, args, fwd, grads)
    (out, got), _ = small
    ref_out, want = run(R, op, as64(args), fwd, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    assert_same(small, general)


# Depths past the GEMM's block of 256 (two depth blocks, each added to the sum before it): the
# forward's K = H (RNN H = 300) and the backward's K = G*H (LSTM H = 65, GRU H = 130).
DEEP = [("rnn", {"nonlinearity": "tanh"}, "rnn_tanh", 300), ("lstm", {}, "lstm", 65),
        ("gru", {"reset_after": True}, "gru", 130)]


@pytest.mark.parametrize("name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell,H", DEEP, ids=[d[2] for d in DEEP])
def test_every_isa_equals_general_loops(rng, name, op, kw, cell, H, dtype):
    with isa(name):
        args, fwd, grads = case(rng, op, kw, cell, 4, 3, 5, H, dtype,
                                (True, True, True, True, False))
        small, general = both_paths(op, args, fwd, grads)
        assert_same(small, general)
        (out, got), _ = small
        ref_out, want = run(R, op, as64(args), fwd, as64(grads))
        assert_matches_reference(out, got, ref_out, want, dtype)


# The input projection x W_ih^T: the small loops compute it on the calling thread with the small
# product when W_ih^T (padded to whole panels) is at most 16 KiB, else with the GEMM, and either
# way give the GEMM's values. LSTM H=8 and H=64: rows of whole panels, written in place; H=3:
# through a padded buffer; RNN H=1 at I=300: two depth blocks on the portable kernels (each added
# to the sum before it), the GEMM on AVX2/AVX-512; LSTM H=17 at I=64: the GEMM.
PROJECTIONS = [("lstm", {}, "lstm", 8, 8), ("lstm", {}, "lstm", 64, 8), ("lstm", {}, "lstm", 3, 30),
               ("rnn", {"nonlinearity": "tanh"}, "rnn_tanh", 1, 300),
               ("gru", {"reset_after": True}, "gru", 5, 40), ("lstm", {}, "lstm", 17, 64)]


@pytest.mark.parametrize("name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell,H,I", PROJECTIONS,
                         ids=["%s-H%d-I%d" % (p[2], p[3], p[4]) for p in PROJECTIONS])
@pytest.mark.parametrize("B", [1, 3])
def test_input_projection_equals_general_loops(rng, name, op, kw, cell, H, I, dtype, B):
    with isa(name):
        args, fwd, grads = case(rng, op, kw, cell, 9, B, I, H, dtype,
                                (B == 3, True, True, False, B == 3))
        small, general = both_paths(op, args, fwd, grads)
        assert_same(small, general)
        (out, got), _ = small
        ref_out, want = run(R, op, as64(args), fwd, as64(grads))
        assert_matches_reference(out, got, ref_out, want, dtype)


# At 2 threads a step of B * G * H * H >= 2^17 multiply-adds goes to the general loops (shared
# by blocks of units), at 1 thread to the small ones: the results are the same.
@pytest.mark.parametrize("op,kw,cell,B,H", [("lstm", {}, "lstm", 8, 64),
                                            ("lstm", {}, "lstm", 1, 64),
                                            ("gru", {"reset_after": True}, "gru", 6, 90)])
def test_thread_counts(rng, op, kw, cell, B, H):
    args, fwd, grads = case(rng, op, kw, cell, 6, B, 8, H, np.float32,
                            (False, True, True, True, True))
    results = with_threads([1, 2, 3], lambda: run(F, op, args, fwd, grads))
    assert_bitwise_equal(results)
    with small_batch(False):
        assert_bitwise_equal([results[0], run(F, op, args, fwd, grads)])


# The options the small loops leave to the general ones still give the general loops' values
# at small batches (zoneout, recurrent dropout, a projection, bfloat16 products).
@pytest.mark.parametrize("extra", ["zoneout", "recurrent_dropout", "w_hr", "bfloat16"])
def test_options_left_to_general_loops(rng, extra):
    args, fwd, grads = case(rng, "lstm", {}, "lstm", 6, 2, 4, 8, np.float32,
                            (False, True, True, False, False))
    if extra == "w_hr":
        args, _ = make_inputs(rng, "lstm", 6, 2, 4, 8, np.float32, proj_size=5)
        grads = upstream(rng, "lstm", (6, 2, 5), 2, 5, np.float32)
        grads["dc_n"] = rng.standard_normal((2, 8)).astype(np.float32)
    elif extra == "bfloat16":
        fwd["precision"] = "bfloat16"
    else:
        fwd[extra] = 0.3
        fwd["seed"] = 7
    small, general = both_paths("lstm", args, fwd, grads)
    assert_same(small, general, inference_is_training=extra not in ("zoneout", "recurrent_dropout"))


def test_switch_refuses_non_bool():
    with pytest.raises(TypeError):
        _C._set_small_batch_enabled(1)
    _C._set_small_batch_enabled(True)


@pytest.fixture
def split_steps():
    """The small-batch forward's steps shared by two threads (off by default)."""
    _C._set_small_batch_split(True)
    try:
        yield
    finally:
        _C._set_small_batch_split(False)


def test_split_switch_refuses_non_bool():
    with pytest.raises(TypeError):
        _C._set_small_batch_split(1)
    _C._set_small_batch_split(False)


# Switched on, with two or more threads the forward's steps are shared by two threads, each with half of the
# hidden units (whole panels: 32 float32 / 16 float64 units with AVX-512, 16 / 8 with AVX2, 8 / 4
# portable), when the step is below the general loops' two-thread threshold
# (B * G * H * H < 2^17). Their values must be the general loops' and the one-thread loop's.
SPLIT_SHAPES = [(1, 33), (1, 64), (2, 65), (3, 40), (5, 48), (8, 36), (1, 97), (2, 130)]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", SMALL_CELLS, ids=[c[2] for c in SMALL_CELLS])
@pytest.mark.parametrize("B,H", SPLIT_SHAPES, ids=["B%d-H%d" % s for s in SPLIT_SHAPES])
def test_split_steps_equal_one_thread_and_general_loops(rng, split_steps, threads, op, kw, cell,
                                                        dtype, B, H):
    options = OPTIONS[(B * 5 + H) % len(OPTIONS)]
    args, fwd, grads = case(rng, op, kw, cell, 5, B, 6, H, dtype, options)
    one = both_paths(op, args, fwd, grads)[0]
    rnnfast.set_num_threads(threads)
    small, general = both_paths(op, args, fwd, grads)
    assert_same(small, general)
    assert_same(small, one)
    (out, got), _ = small
    ref_out, want = run(R, op, as64(args), fwd, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)


# One step (a batch of 5..8), reversed ragged sequences, on every instruction set.
@pytest.mark.parametrize("name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", SMALL_CELLS, ids=[c[2] for c in SMALL_CELLS])
@pytest.mark.parametrize("T,B,H,lengths", [(1, 5, 40, False), (1, 8, 33, False),
                                           (4, 3, 65, True), (7, 1, 71, False)])
def test_split_steps_on_every_isa(rng, split_steps, name, op, kw, cell, dtype, T, B, H, lengths):
    with isa(name):
        args, fwd, grads = case(rng, op, kw, cell, T, B, 3, H, dtype,
                                (False, True, True, lengths, True))
        one = both_paths(op, args, fwd, grads)[0]
        rnnfast.set_num_threads(2)
        small, general = both_paths(op, args, fwd, grads)
        assert_same(small, general)
        assert_same(small, one)


def test_split_steps_from_concurrent_callers(rng, split_steps):
    """Callers on several Python threads at once: one owns the executor, the others run both
    halves' chunks one after the other on their own thread (the first does every step, the second
    finds nothing left), which must neither hang nor change a value."""
    import threading

    args, fwd, grads = case(rng, "lstm", {}, "lstm", 30, 2, 5, 64, np.float32,
                            (False, True, True, True, False))
    want = run(F, "lstm", args, fwd, grads)
    rnnfast.set_num_threads(2)
    results, errors = [], []

    def worker():
        try:
            for _ in range(20):
                results.append(run(F, "lstm", args, fwd, grads))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a split call hung"
    assert not errors, errors
    assert len(results) == 80
    for got in results:
        assert_bitwise_equal([got, want])
