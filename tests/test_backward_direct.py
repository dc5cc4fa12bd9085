"""The reverse loop's two ways of feeding a step's product: when every sequence spans every step
(no lengths) the RNN and LSTM read the previous step's gate gradients in place from the saved
gradients of every row; otherwise (lengths given, or GRU) from a staged copy with zeros for
inactive sequences. Both must give the reference's gradients, and the same bits: lengths equal
to T for every sequence take the staged way through the very same arithmetic, so any slip of
the in-place way (a row distance, a step off by one, batch-first or reversed order, the split of
the batch between threads) shows as a difference in the bits."""
import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (as64, assert_bitwise_equal, assert_matches_reference, make_inputs,
                             run, upstream, with_threads)

# (op, forward keywords, T, B, I, H, extra inputs): odd sizes not a multiple of the SIMD width,
# T = 1, B = 1, batches below and above the two-thread batch split (16), H past one panel.
SHAPES = [
    ("rnn", {"nonlinearity": "tanh"}, 7, 11, 5, 13, {}),
    ("rnn", {"nonlinearity": "relu"}, 6, 20, 3, 37, {}),
    ("lstm", {}, 9, 10, 7, 19, {}),
    ("lstm", {}, 5, 24, 6, 70, {}),
    ("lstm", {}, 1, 12, 4, 9, {}),
    ("lstm", {}, 8, 1, 3, 17, {}),
    ("lstm", {}, 6, 9, 5, 21, {"peephole": True}),
    # batches of 9..15 share each step between threads by blocks of hidden units, and the
    # step's input gradient (dx) by panels of its columns: several panels of I and of H
    ("lstm", {}, 3, 12, 100, 150, {}),
    ("rnn", {"nonlinearity": "tanh"}, 4, 9, 70, 300, {}),
    # batches of 16 or more (no peepholes) take the weight and bias gradients inside the loop
    # (both ways), over blocks of steps: two groups of 8 and 9 sequences, 14 steps (126 rows)
    # per block, the last block a single step
    ("lstm", {}, 29, 17, 6, 23, {}),
    # and multiply each block by slabs of the columns of [x | h_prev] (four GEMM panels: 64 or
    # 128 columns): I + H past one slab and not a multiple of it; blocks of one step of 260
    # sequences (a group past the 128 rows of a block)
    ("lstm", {}, 11, 17, 70, 75, {}),
    ("rnn", {"nonlinearity": "tanh"}, 7, 16, 90, 61, {}),
    ("lstm", {}, 3, 520, 5, 130, {}),
    # the IMDB example's LSTM: 4H = 220 (H = 55 ends in a vector of 7 units)
    ("lstm", {}, 24, 100, 64, 55, {}),
]
LAYOUTS = [(False, False), (True, False), (False, True), (True, True)]  # (batch_first, reverse)


def case(shape, dtype, batch_first, reverse, seed=0):
    op, kw, T, B, I, H, extra = shape
    rng = np.random.default_rng(seed)
    args, _ = make_inputs(rng, op, T, B, I, H, dtype, batch_first=batch_first, **extra)
    y_shape = (B, T, H) if batch_first else (T, B, H)
    grads = upstream(rng, op, y_shape, B, H, dtype)
    return op, dict(kw, batch_first=batch_first, reverse=reverse), args, grads


def full_lengths(options, args):
    x = args["x"]
    T, B = (x.shape[1], x.shape[0]) if options["batch_first"] else x.shape[:2]
    return dict(options, lengths=np.full(B, T))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first,reverse", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}-{s[2]}x{s[3]}x{s[5]}" for s in SHAPES])
def test_in_place_matches_the_reference_and_the_staged_bits(shape, dtype, batch_first, reverse):
    op, options, args, grads = case(shape, dtype, batch_first, reverse)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    direct = with_threads([1, 2, 3], lambda: run(F, op, args, options, grads))
    out, got = direct[0]
    assert_matches_reference(out, got, ref_out, want, dtype)
    assert_bitwise_equal(direct)
    staged = run(F, op, args, full_lengths(options, args), grads)
    assert_bitwise_equal([direct[0], staged])


@pytest.mark.parametrize("options", [dict(zoneout=0.3), dict(recurrent_dropout=0.4)],
                         ids=["zoneout", "recurrent_dropout"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_in_place_with_masks_gives_the_staged_bits(options, batch_first):
    op, base, args, grads = case(SHAPES[3], np.float32, batch_first, False, seed=3)
    base = dict(base, seed=5, **options)
    direct = with_threads([1, 2], lambda: run(F, op, args, base, grads))
    assert_bitwise_equal(direct)
    staged = run(F, op, args, full_lengths(base, args), grads)
    assert_bitwise_equal([direct[0], staged])


# More rows (T * B) than two depth blocks of the weight GEMM (256 rows on every instruction
# set): [x | 1 | h_prev] is built and multiplied one block of rows at a time, the weight and
# bias gradients summed over the blocks (a block skipped, repeated or misplaced shows against
# the reference); the same bits on 1, 2 and 3 threads. Batches above the two-thread batch split
# (16), below it, and with lengths. RNN and LSTM sum their bias gradients by the blocks' columns
# beside the product (its columns [x | h_prev]: I + H = 64 below, a multiple of every panel
# width), one sum for b_ih and b_hh.
DEEP = [
    ("lstm", {}, 40, 17, 5, 19, {}),
    ("lstm", {}, 30, 20, 16, 48, {}),
    ("rnn", {"nonlinearity": "relu"}, 30, 20, 3, 37, {}),
    ("gru", {}, 70, 9, 6, 11, {}),
    ("gru", {"reset_after": False}, 37, 16, 4, 13, {}),
    ("lstm", {}, 25, 24, 7, 9, {"peephole": True}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("shape", DEEP, ids=[f"{s[0]}-{s[2]}x{s[3]}x{s[5]}" for s in DEEP])
def test_weight_gradients_over_many_depth_blocks(shape, dtype, lengths):
    op, kw, T, B, I, H, extra = shape
    rng = np.random.default_rng(11)
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, lengths=lengths, **extra)
    options = dict(kw) if lens is None else dict(kw, lengths=lens)
    grads = upstream(rng, op, (T, B, H), B, H, dtype)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    results = with_threads([1, 2, 3], lambda: run(F, op, args, options, grads))
    out, got = results[0]
    assert_matches_reference(out, got, ref_out, want, dtype)
    assert_bitwise_equal(results)
    if op != "gru":
        np.testing.assert_array_equal(got["b_ih"], got["b_hh"])


# The backward only reads the forward's workspace (the saved gates and states): a context can be
# differentiated again (autograd with retain_graph, gradient checks), and another upstream
# gradient in between leaves no trace. Writing the gate gradients over the saved gates (no
# separate stream of written lines) was measured without a gain (bench/RESULTS.md, bwd session
# 11); it would break this. Every reverse loop: the in-place and the staged feeds, the batch split
# between threads (B >= 16) and the step shared by blocks of units, GRU with reset before, the
# projection, the masks, batches of 1..8.
AGAIN = [
    ("lstm", {}, 6, 20, 5, 21, {}),
    ("lstm", {}, 4, 9, 70, 150, {}),
    ("lstm", {}, 5, 4, 3, 33, {}),
    ("lstm", {"lengths": [3, 6, 1] * 6}, 6, 18, 5, 17, {}),
    ("lstm", {"zoneout": 0.3, "seed": 2}, 5, 17, 4, 19, {}),
    ("lstm", {"recurrent_dropout": 0.4, "seed": 2}, 5, 17, 4, 19, {}),
    ("lstm", {}, 5, 16, 4, 19, {"peephole": True}),
    ("lstm", {}, 5, 16, 4, 19, {"proj_size": 7}),
    ("rnn", {"nonlinearity": "tanh"}, 7, 16, 5, 13, {}),
    ("gru", {}, 7, 16, 5, 13, {}),
    ("gru", {"reset_after": False}, 7, 16, 5, 13, {}),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", AGAIN, ids=[f"{s[0]}-{i}" for i, s in enumerate(AGAIN)])
def test_a_context_differentiated_again_gives_the_same_bits(shape, threads):
    op, kw, T, B, I, H, extra = shape
    rng = np.random.default_rng(21)
    args, _ = make_inputs(rng, op, T, B, I, H, np.float32, **extra)
    options = {k: (np.asarray(v) if k == "lengths" else v) for k, v in kw.items()}
    P = extra.get("proj_size") or H
    first, other = (upstream(rng, op, (T, B, P), B, P, np.float32) for _ in range(2))
    if "proj_size" in extra:  # dc_n has H features
        first["dc_n"], other["dc_n"] = (rng.standard_normal((B, H)).astype(np.float32)
                                         for _ in range(2))

    def differentiate_three_times():
        out = getattr(F, op + "_forward")(**args, **options, training=True)
        backward = getattr(F, op + "_backward")
        return [backward(out[-1], **g) for g in (first, other, first)]

    a, b, again = with_threads([threads], differentiate_three_times)[0]
    assert any(not np.array_equal(a[k], b[k]) for k in a if a[k] is not None)
    for name in a:
        if a[name] is not None:
            np.testing.assert_array_equal(again[name], a[name], err_msg=name)


# The LSTM of more than 8 sequences that merges its input projection into the step product keeps
# its training workspace time-major whatever x's layout (RecurrentWorkspace::time_major): its
# backward reads the saved gates and states by the workspace's rows and x, dy and the gradients by
# x's. Batch-first ragged sequences, forward and reversed (steps at different times per
# sequence), with peepholes or zoneout, with and without h0 (whose gradient, not asked for, skips
# the loop's last product): the reference's values, the same bits at 1, 2 and 3 threads.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("extra", [{}, {"peephole": True}, {"zoneout": True}],
                         ids=["plain", "peephole", "zoneout"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no-h0"])
def test_time_major_workspace_of_batch_first_sequences(dtype, extra, h0):
    T, B, I, H = 7, 18, 6, 21
    rng = np.random.default_rng(5)
    for reverse, ragged in ((False, False), (False, True), (True, True)):
        args, lens = make_inputs(rng, "lstm", T, B, I, H, dtype, batch_first=True, h0=h0,
                                 lengths=ragged, peephole=extra.get("peephole", False))
        options = dict(batch_first=True, reverse=reverse)
        if ragged:
            options["lengths"] = lens
        if extra.get("zoneout"):
            options["zoneout"] = 0.3
            options["masks"] = {name: (rng.random((T, B, H)) < 0.4).astype(dtype)
                                for name in ("zoneout_h", "zoneout_c")}
        grads = upstream(rng, "lstm", (B, T, H), B, H, dtype)
        results = with_threads((1, 2, 3), lambda: run(F, "lstm", args, options, grads))
        assert_bitwise_equal(results)
        ref_out, want = run(R, "lstm", as64(args), options, grads)
        assert_matches_reference(*results[0], ref_out, want, dtype)
        if not h0:
            assert results[0][1]["h0"] is None
