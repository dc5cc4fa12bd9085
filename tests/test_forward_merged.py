"""The LSTM forward with the input projection merged into each step's product: batches of more
than 8 sequences whose W_ih and W_hh fit in a core's L2 together run one product per step,
[x_t, h] times [W_ih, W_hh]^T, instead of projecting the inputs apart. Its values differ from
the projection apart in the last bits, so every way of running such a shape must merge: the
inference and training forwards give the same outputs, bit for bit, at 1, 2 and 3 threads
(one block per step, sequences taken by threads, steps shared by blocks of units whose last
block is partial), with peepholes and zoneout, ragged, reversed and batch-first sequences,
T=1, both dtypes; and the outputs and gradients match the float64 reference."""
import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (as64, assert_bitwise_equal, assert_matches_reference, make_inputs,
                             run, upstream, with_threads)

# (T, B, I, H): one block per step at every thread count (B * 4 * H * H small); sequences
# taken by the threads (B >= 16); steps shared by blocks of 16 units at 2 and 3 threads (B < 16,
# H = 100: the last block has 4 units); T = 1; I and H not multiples of the SIMD width
SHAPES = [(7, 9, 5, 37), (6, 20, 24, 40), (5, 12, 33, 100), (1, 17, 9, 33)]
LAYOUTS = [dict(), dict(reverse=True), dict(batch_first=True), dict(lengths=True),
           dict(lengths=True, batch_first=True)]


def case(rng, T, B, I, H, dtype, peephole, layout):
    batch_first = layout.get("batch_first", False)
    args, lens = make_inputs(rng, "lstm", T, B, I, H, dtype, batch_first=batch_first,
                             lengths=layout.get("lengths", False), peephole=peephole)
    options = dict(lengths=lens, reverse=layout.get("reverse", False), batch_first=batch_first)
    return args, options


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize("T,B,I,H", SHAPES, ids=[f"T{t}-B{b}-I{i}-H{h}" for t, b, i, h in SHAPES])
def test_inference_equals_training_at_every_thread_count(rng, T, B, I, H, peephole, dtype):
    for layout in LAYOUTS:
        args, options = case(rng, T, B, I, H, dtype, peephole, layout)
        y_shape = (B, T, H) if options["batch_first"] else (T, B, H)
        grads = upstream(rng, "lstm", y_shape, B, H, dtype)

        def both():
            return run(F, "lstm", args, options), run(F, "lstm", args, options, grads)
        results = with_threads((1, 2, 3), both)
        inference = [r[0] for r in results]
        training = [r[1] for r in results]
        assert_bitwise_equal(inference)
        assert_bitwise_equal(training)
        assert_bitwise_equal([inference[0], (training[0][0], None)])
        ref_out, want = run(R, "lstm", as64(args), options, grads)
        assert_matches_reference(*training[0], ref_out, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize("T,B,I,H", SHAPES, ids=[f"T{t}-B{b}-I{i}-H{h}" for t, b, i, h in SHAPES])
def test_zoneout(rng, T, B, I, H, peephole, dtype):
    """Inference (the rate) and training (given masks): the reference's values, the same at every
    thread count; masks of zeros give the plain cell, bit for bit."""
    for layout in (dict(), dict(lengths=True, reverse=False), dict(batch_first=True)):
        args, options = case(rng, T, B, I, H, dtype, peephole, layout)
        y_shape = (B, T, H) if options["batch_first"] else (T, B, H)
        grads = upstream(rng, "lstm", y_shape, B, H, dtype)
        masks = {name: (rng.random((T, B, H)) < 0.4).astype(dtype)
                 for name in ("zoneout_h", "zoneout_c")}
        inference = dict(options, zoneout=0.3)
        training = dict(options, zoneout=0.3, masks=masks)

        def both():
            return run(F, "lstm", args, inference), run(F, "lstm", args, training, grads)
        results = with_threads((1, 2, 3), both)
        assert_bitwise_equal([r[0] for r in results])
        assert_bitwise_equal([r[1] for r in results])
        ref_inf = run(R, "lstm", as64(args), inference)[0]
        ref_out, want = run(R, "lstm", as64(args), training, grads)
        assert_matches_reference(results[0][0][0], {}, ref_inf, {}, dtype)
        assert_matches_reference(*results[0][1], ref_out, want, dtype)
        zeros = {name: np.zeros_like(m) for name, m in masks.items()}
        zero = run(F, "lstm", args, dict(options, zoneout=0.3, masks=zeros), grads)
        assert_bitwise_equal([run(F, "lstm", args, options, grads), zero])
