"""The forward's state kept in the output: time-major sequences that are all active at every
step keep each step's state in y's rows of that time step (the next step's product reads it
back from there), while ragged or batch-first sequences keep it in two buffers of the loop.
Full lengths (every sequence as long as x) take the buffers with the same rows, so both ways
must give the same outputs, the same gradients (the backward reads the states the forward
saved), bit for bit: every cell, both dtypes, inference and training, reversed, with zoneout
and recurrent dropout, T=1, B=1 (the small-batch loop) and batches that the threads share by
blocks of units or take by sequences, at 1, 2 and 3 threads; and the reference agrees."""
import numpy as np
import pytest

from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import CELLS, as64, make_inputs, rel_err, run, upstream, with_threads

PLAIN = [(op, kw, name) for op, kw, name in CELLS] + [("lstm", {"peephole": True}, "peephole")]
I = 5
# (B, H): threads share each step by blocks of units (B < 16), take sequences (B >= 16 and small
# W_hh), share the steps with several blocks per thread (B < 16 and W_hh beyond L2), take
# sequences with every thread streaming all of W_hh (B >= 16, W_hh beyond L2); B = 1 runs the
# small-batch loop
SIZES = [(9, 37), (20, 24), (12, 300), (17, 300), (1, 19)]


def both_ways(op, args, options, grads, threads):
    """[(outputs, gradients) with lengths None, with full lengths] at each thread count."""
    T, B = args["x"].shape[:2]
    full = np.full(B, T, dtype=np.int64)

    def call():
        return [run(F, op, args, dict(options, lengths=lens), grads) for lens in (None, full)]
    return with_threads(threads, call)


def assert_equal(a, b):
    for part_a, part_b in zip(a, b):
        if part_a is None:
            assert part_b is None
            continue
        assert part_a.keys() == part_b.keys()
        for name in part_a:
            if part_a[name] is None:
                assert part_b[name] is None, name
            else:
                np.testing.assert_array_equal(part_a[name], part_b[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,name", PLAIN, ids=[c[2] for c in PLAIN])
@pytest.mark.parametrize("B,H", SIZES, ids=[f"B{b}-H{h}" for b, h in SIZES])
def test_state_in_y_equals_state_buffers(rng, op, kw, name, dtype, B, H):
    # training draws the zoneout and recurrent dropout masks from the seed
    for T, reverse, training, extra in [(7, False, False, {}), (7, True, True, {}),
                                        (1, False, True, {}), (6, False, False, {"zoneout": 0.3}),
                                        (6, True, True, {"zoneout": 0.2, "seed": 5}),
                                        (5, False, True, {"recurrent_dropout": 0.4, "seed": 3})]:
        args, _ = make_inputs(rng, op, T, B, I, H, dtype, peephole=kw.get("peephole", False))
        options = dict({k: v for k, v in kw.items() if k != "peephole"}, reverse=reverse,
                       **extra)
        grads = upstream(rng, op, (T, B, H), B, H, dtype) if training else None
        results = both_ways(op, args, options, grads, (1, 2, 3))
        for in_y, in_buffers in results:
            assert_equal(in_y, in_buffers)
        for other in results[1:]:
            assert_equal(other[0], results[0][0])
        ref_out, ref_grads = run(R, op, as64(args), options, as64(grads) if training else None)
        tol = 1e-4 if dtype == np.float32 else 1e-9
        got_out, got_grads = results[0][0]
        for key in ref_out:
            assert rel_err(got_out[key], ref_out[key]) < tol, key
        if training:
            for key, value in ref_grads.items():
                if value is not None:
                    assert rel_err(got_grads[key], value) < 10 * tol, key
