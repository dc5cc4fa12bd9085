"""The memory the LayerNorm LSTM/GRU kernels keep between calls (the training forward's workspace,
taken back from freed ctxs, and the backward's gradient buffers; rnnfast/scratch_cache.h): no
result depends on what ran before. Calls of both cells, different shapes, options and dtypes in
any order, a call after a larger one, ctxs kept alive and freed in any order, memory left full
of NaN by an earlier call, several Python threads and thread-count changes all give bitwise the
results of the same call made first, and those of a fresh process; and those match the
reference."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (as64, assert_bitwise_equal, assert_matches_reference,
                             calls_from_threads, upstream, with_threads)
from test_layer_norm_recurrent import make_args, run

# (op, T, B, I, H, options): large shapes first (MiB of workspace), then smaller and ragged ones,
# so that later calls find buffers sized and filled by earlier ones (fit keeps a buffer up to 4x
# larger than a call needs: the LSTM's T=8 B=6 H=24 call runs in the first call's memory).
SHAPES = [
    ("lstm", 40, 24, 48, 96, dict()),
    ("lstm", 30, 20, 40, 90, dict(lengths=True)),      # smaller, ragged
    ("gru", 40, 24, 48, 96, dict(lengths=True, reverse=True)),
    ("gru", 9, 6, 5, 13, dict(bias=False)),
    ("lstm", 7, 5, 3, 11, dict(lengths=True, batch_first=True)),
    ("lstm", 8, 6, 12, 24, dict(h0=False)),
    ("gru", 25, 12, 17, 40, dict(lengths=True, batch_first=True)),
    ("lstm", 1, 1, 1, 1, dict()),                      # T = B = I = H = 1
]


def make_case(seed, shape, dtype):
    """(op, forward options, arguments, upstream gradients) of one call."""
    op, T, B, I, H, opts = shape
    rng = np.random.default_rng(seed)
    opts = dict(opts)
    reverse = opts.pop("reverse", False)
    batch_first = opts.get("batch_first", False)
    args, lens = make_args(rng, op, T, B, I, H, dtype, **opts)
    grads = upstream(rng, op, (B, T, H) if batch_first else (T, B, H), B, H, dtype)
    return op, dict(lengths=lens, reverse=reverse, batch_first=batch_first), args, grads


CASES = [make_case(20 + i, shape, dtype)
         for i, shape in enumerate(SHAPES) for dtype in (np.float32, np.float64)]


def call(case):
    op, options, args, grads = case
    return run(F, op, args, options, grads)


@pytest.fixture(scope="module")
def first():
    """Every case's results, each call made once in the order of CASES."""
    return [call(case) for case in CASES]


def test_first_results_match_the_reference(first):
    for (op, options, args, grads), (out, got) in zip(CASES, first):
        ref_out, want = run(R, op, as64(args), options, as64(grads))
        assert_matches_reference(out, got, ref_out, want, args["x"].dtype.type)


FRESH = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_layer_norm_scratch import CASES, call
i = json.loads(sys.argv[1])
out, got = call(CASES[i])
np.savez(sys.argv[2], **{{"out_" + k: v for k, v in out.items()}},
         **{{"got_" + k: v for k, v in got.items() if v is not None}})
"""


@pytest.mark.parametrize("i", [2, 5, 12])  # ragged cases, each the first call of its process
def test_a_fresh_process_gives_the_same_results(first, tmp_path, i):
    tests = str(pathlib.Path(__file__).resolve().parent)
    path = tmp_path / "fresh.npz"
    subprocess.run([sys.executable, "-c", FRESH.format(tests=tests), json.dumps(i), str(path)],
                   check=True, timeout=300)
    fresh = np.load(path)
    out, got = first[i]
    for name, value in list(out.items()) + list(got.items()):
        key = ("out_" if name in out else "got_") + name
        if value is None:
            assert key not in fresh.files, name
        else:
            np.testing.assert_array_equal(fresh[key], value, err_msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_order_gives_the_first_results(first, seed):
    order = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(CASES)), 2))
    for i in order:
        assert_bitwise_equal([first[i], call(CASES[i])])


def test_after_a_larger_call_and_smaller_then_larger(first):
    """Each smaller case right after the largest one of its dtype (its memory reused, not
    reallocated), then the largest again (after the smaller one shrank nothing it needs)."""
    for big in (0, 1):  # the LSTM T=40 B=24 H=96 case, float32 and float64
        for i in range(2, len(CASES)):
            if CASES[i][2]["x"].dtype != CASES[big][2]["x"].dtype:
                continue
            assert_bitwise_equal([first[big], call(CASES[big])])
            assert_bitwise_equal([first[i], call(CASES[i])])
        assert_bitwise_equal([first[big], call(CASES[big])])


def poison(case):
    """A training forward and backward of case's op and sizes (no lengths) with x all NaN: its
    workspace and backward buffers come back to the cache full of NaN."""
    op, options, args, grads = case
    x = np.full_like(args["x"], np.nan)
    out, got = run(F, op, dict(args, x=x), dict(options, lengths=None), grads)
    assert np.isnan(out["y"]).all() and np.isnan(got["w_hh"]).all()


def test_memory_left_full_of_nan_changes_nothing(first):
    """Ragged calls after calls that leave NaN in every buffer they keep: the padded rows of the
    workspace (read by the dW_hh product) and of the gradient buffers (read by the dx and dW_ih
    products) are cleared, every other value is written before it is read."""
    for i, case in enumerate(CASES):
        poison(case)
        assert_bitwise_equal([first[i], call(case)])
        # the forward's workspace poisoned while a backward runs on a kept one
        op, options, args, grads = case
        out = getattr(F, "layer_norm_" + op + "_forward")(**args, **options, training=True)
        poison(case)
        got = getattr(F, "layer_norm_" + op + "_backward")(out[-1], **grads)
        names = ["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"]
        assert_bitwise_equal([first[i], (dict(zip(names, out[:-1])), got)])


def test_thread_counts_between_calls(first):
    order = np.random.default_rng(5).permutation(len(CASES))
    for threads, i in zip([1, 2, 3, 2, 1] * len(CASES), order):
        (result,) = with_threads([threads], lambda i=i: call(CASES[i]))
        assert_bitwise_equal([first[i], result])


def test_many_ctxs_alive_and_freed_in_any_order(first):
    """More live ctxs than the workspaces kept idle, backward in shuffled order, ctxs freed in
    another, new forwards in between: each backward gives the first results."""
    rng = np.random.default_rng(7)
    live = []
    for rep in range(3):
        for i in rng.permutation(len(CASES)):
            op, options, args, grads = CASES[i]
            out = getattr(F, "layer_norm_" + op + "_forward")(**args, **options, training=True)
            live.append((i, out))
        for k in rng.permutation(len(live)):
            i, out = live[k]
            op, options, args, grads = CASES[i]
            got = getattr(F, "layer_norm_" + op + "_backward")(out[-1], **grads)
            names = ["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"]
            assert_bitwise_equal([first[i], (dict(zip(names, out[:-1])), got)])
        drop = set(rng.permutation(len(live))[: len(live) // 2 + rep].tolist())
        live = [entry for k, entry in enumerate(live) if k not in drop]


def test_python_threads_at_once(first):
    """Several Python threads calling different shapes at once: each takes its own memory."""
    for (w, rep, i), result in calls_from_threads(call, CASES, reps=2).items():
        assert_bitwise_equal([first[i], result])
