"""The memory the recurrent kernels keep between calls (the backward's temporaries, the training
forward's workspaces of freed ctxs): no result depends on what ran before. Calls of different
cells, shapes, options and dtypes in any order, ctxs kept alive in numbers and freed in any
order, several Python threads at once and thread-count changes all give bitwise the results of
the same call made first, and those match the reference."""

import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (CELLS, as64, assert_matches_reference, calls_from_threads,
                             make_inputs, run, upstream, with_threads)

# (cell index in CELLS, T, B, I, H, options): a large shape (several MiB of temporaries), then
# smaller and ragged ones, so that later calls find buffers sized and filled by earlier ones.
SHAPES = [
    (2, 40, 24, 48, 96, dict(bias=True)),                     # LSTM, large
    (2, 7, 5, 3, 11, dict(bias=True, lengths=True)),          # LSTM, ragged, small
    (2, 9, 6, 5, 13, dict(bias=False, lengths=True)),         # LSTM without biases
    (2, 6, 4, 5, 9, dict(bias=True, batch_first=True)),       # LSTM, batch-first
    (0, 30, 16, 20, 64, dict(bias=True, lengths=True)),       # RNN tanh, ragged
    (3, 25, 12, 17, 40, dict(bias=True, lengths=True)),       # GRU (reset after)
    (4, 20, 10, 9, 33, dict(bias=True)),                      # GRU (reset before)
    (2, 1, 1, 1, 1, dict(bias=True)),                         # T = B = I = H = 1
]


def make_case(seed, shape, dtype, reverse=False):
    """(op, forward options, arguments, upstream gradients) of one call."""
    cell, T, B, I, H, opts = shape
    op, kw, _ = CELLS[cell]
    rng = np.random.default_rng(seed)
    opts = dict(opts)
    lengths = opts.pop("lengths", False)
    batch_first = opts.get("batch_first", False)
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, lengths=lengths, **opts)
    y_shape = (B, T, H) if batch_first else (T, B, H)
    grads = upstream(rng, op, y_shape, B, H, dtype)
    options = dict(kw, lengths=lens, reverse=reverse, batch_first=batch_first)
    return op, options, args, grads


CASES = [make_case(10 + i, shape, dtype, reverse=i % 3 == 1)
         for i, shape in enumerate(SHAPES) for dtype in (np.float32, np.float64)]


def call(case):
    op, options, args, grads = case
    return run(F, op, args, options, grads)


def assert_same(a, b):
    for part_a, part_b in zip(a, b):
        assert part_a.keys() == part_b.keys()
        for name, value in part_a.items():
            if value is None:
                assert part_b[name] is None, name
            else:
                np.testing.assert_array_equal(part_b[name], value, err_msg=name)


@pytest.fixture(scope="module")
def first():
    """Every case's results, each call made once in the order of CASES."""
    return [call(case) for case in CASES]


def test_first_results_match_the_reference(first):
    for case, (out, got) in zip(CASES, first):
        op, options, args, grads = case
        ref_out, want = run(R, op, as64(args), options, as64(grads))
        assert_matches_reference(out, got, ref_out, want, args["x"].dtype.type)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_order_gives_the_first_results(first, seed):
    order = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(CASES)), 2))
    for i in order:
        assert_same(first[i], call(CASES[i]))


def test_thread_counts_between_calls(first):
    order = np.random.default_rng(5).permutation(len(CASES))
    for threads, i in zip([1, 2, 3, 2, 1] * len(CASES), order):
        (result,) = with_threads([threads], lambda i=i: call(CASES[i]))
        assert_same(first[i], result)


def test_many_ctxs_alive_and_freed_in_any_order(first):
    """More live ctxs than the workspaces kept idle, backward in shuffled order, ctxs freed in
    another, new forwards in between: each backward gives the first results."""
    rng = np.random.default_rng(7)
    live = []
    for rep in range(3):
        for i in rng.permutation(len(CASES)):
            op, options, args, grads = CASES[i]
            out = getattr(F, op + "_forward")(**args, **options, training=True)
            live.append((i, out))
        for k in rng.permutation(len(live)):
            i, out = live[k]
            op, options, args, grads = CASES[i]
            got = getattr(F, op + "_backward")(out[-1], **grads)
            names = ["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"]
            assert_same(first[i], (dict(zip(names, out[:-1])), got))
        drop = set(rng.permutation(len(live))[: len(live) // 2 + rep].tolist())
        live = [entry for k, entry in enumerate(live) if k not in drop]


def test_backward_twice_on_one_ctx_after_other_calls(first):
    """A ctx keeps its workspace while other calls take and give back theirs."""
    op, options, args, grads = CASES[0]
    out = getattr(F, op + "_forward")(**args, **options, training=True)
    for i in range(1, len(CASES)):
        call(CASES[i])
        got = getattr(F, op + "_backward")(out[-1], **grads)
        assert_same(first[0][1:], (got,))


def test_python_threads_at_once(first):
    """Several Python threads calling different shapes at once: each takes its own memory."""
    for (w, rep, i), result in calls_from_threads(call, CASES, reps=3).items():
        assert_same(first[i], result)
