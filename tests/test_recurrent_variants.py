"""The fused kernels of the LSTM variants (peepholes, projection) against the NumPy reference, forward and
backward: every option of the plain cells, odd sizes, T=1, B=1, every instruction set, threads."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (as64, assert_bitwise_equal, assert_matches_reference, isa,
                             make_inputs, options_grid, rel_err, run, upstream, with_threads)

DTYPES = [np.float32, np.float64]
# variant id -> make_inputs keywords
VARIANTS = {"peephole": {"peephole": True}, "proj": {"proj_size": 3},
            "proj-wide": {"proj_size": 11}, "proj-peephole": {"proj_size": 2, "peephole": True}}


def proj_of(variant, H):
    """P of a variant at hidden size H (3 and 2 stay below it, 11 may exceed it)."""
    return min(VARIANTS[variant].get("proj_size", H), H) if H < 3 else \
        VARIANTS[variant].get("proj_size", H)


def inputs(rng, variant, T, B, I, H, dtype, **kw):
    options = dict(VARIANTS[variant])
    if "proj_size" in options:
        options["proj_size"] = proj_of(variant, H)
    return make_inputs(rng, "lstm", T, B, I, H, dtype, **kw, **options)


def check_variant(rng, variant, T, B, I, H, dtype, *, batch_first=False, bias=True, h0=True,
                  lengths=True, reverse=False):
    args, lens = inputs(rng, variant, T, B, I, H, dtype, bias=bias, h0=h0,
                        batch_first=batch_first, lengths=lengths)
    options = dict(lengths=lens, reverse=reverse, batch_first=batch_first)
    P = proj_of(variant, H)
    grads = upstream(rng, "lstm", args["x"].shape[:2] + (P,), B, H, dtype)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(dtype)
    out, got = run(F, "lstm", args, options, grads)
    ref_out, want = run(R, "lstm", as64(args), options, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    # inference: the same outputs, bit for bit
    assert_bitwise_equal([(out, None), run(F, "lstm", args, options)])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
@options_grid
def test_options_grid(rng, variant, dtype, batch_first, bias, h0, lengths, reverse):
    check_variant(rng, variant, 5, 4, 3, 6, dtype, batch_first=batch_first, bias=bias, h0=h0,
                  lengths=lengths, reverse=reverse)


SIZES = [(1, 1, 1, 1), (1, 3, 5, 7), (7, 1, 2, 17), (4, 9, 13, 33), (3, 5, 8, 64),
         (2, 3, 4, 100)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("T,B,I,H", SIZES, ids=["T%d-B%d-I%d-H%d" % s for s in SIZES])
def test_sizes(rng, variant, dtype, T, B, I, H):
    check_variant(rng, variant, T, B, I, H, dtype)


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_instruction_set(rng, variant, dtype, isa_name):
    with isa(isa_name):
        for T, B, I, H in [(6, 5, 13, 33), (3, 17, 16, 64)]:
            check_variant(rng, variant, T, B, I, H, dtype)


# Threads split a step by blocks of units (H=200) or take disjoint sequences (B=20); inference
# projects windows of steps (60 x 5 rows over a 256-row budget): the results are the same.
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("T,B,H", [(12, 9, 40), (5, 9, 200), (1, 2, 300), (6, 20, 64)],
                         ids=["H40", "H200", "step-H300", "B20"])
def test_bitwise_reproducible_across_threads(rng, variant, T, B, H):
    args, lens = inputs(rng, variant, T, B, 20, H, np.float32, lengths=True)
    P = proj_of(variant, H)
    grads = upstream(rng, "lstm", args["x"].shape[:2] + (P,), B, H, np.float32)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(np.float32)
    assert_bitwise_equal(with_threads((1, 2, 3, 1),
                                      lambda: run(F, "lstm", args, {"lengths": lens}, grads)))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_inference_windows(rng, variant, dtype):
    try:
        rnnfast._C._set_projection_window_bytes(256 * 4 * 16 * np.dtype(dtype).itemsize)
        for T, B, lengths, reverse in [(60, 5, False, False), (40, 17, True, False),
                                       (60, 5, False, True)]:
            check_variant(rng, variant, T, B, 3, 16, dtype, lengths=lengths, reverse=reverse)
    finally:
        rnnfast._C._set_projection_window_bytes(0)


def test_peephole_zero_is_the_plain_lstm(rng):
    args, lens = make_inputs(rng, "lstm", 7, 5, 4, 9, np.float64, lengths=True)
    plain = F.lstm_forward(**args, lengths=lens)
    zero = F.lstm_forward(**args, w_peephole=np.zeros((3, 9)), lengths=lens)
    for a, b in zip(plain[:3], zero[:3]):
        np.testing.assert_array_equal(a, b)


def test_peephole_gradients_of_a_given_none_are_none(rng):
    args, _ = make_inputs(rng, "lstm", 3, 2, 4, 5, np.float64)
    ctx = F.lstm_forward(**args, training=True)[-1]
    assert F.lstm_backward(ctx, np.ones((3, 2, 5)))["w_peephole"] is None


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("lengths", [None, (4, 1, 2)])
@pytest.mark.parametrize("reverse", [False, True])
def test_peepholes_match_onnx_runtime(rng, dtype, lengths, reverse):
    """The kernels' inference against ONNX Runtime's LSTM with its P input (float32 values)."""
    from test_reference_cells import B, H, I, T, onnx_lstm_session
    args, _ = make_inputs(rng, "lstm", T, B, I, H, np.float32, scale=0.8, peephole=True)
    args["w_peephole"] *= 2
    session = onnx_lstm_session(args, "reverse" if reverse else "forward", lengths is not None)
    feeds = {"X": args["x"], "initial_h": args["h0"][None], "initial_c": args["c0"][None]}
    if lengths is not None:
        feeds["sequence_lens"] = np.array(lengths, np.int32)
    y_o, h_o, c_o = session.run(None, feeds)
    y, h_n, c_n, _ = F.lstm_forward(**{k: v.astype(dtype) for k, v in args.items()},
                                    reverse=reverse,
                                    lengths=None if lengths is None else np.array(lengths))
    for got, want in [(y, y_o[:, 0]), (h_n, h_o[0]), (c_n, c_o[0])]:
        assert rel_err(got, want) < 1e-5
    y_plain = F.lstm_forward(**{**args, "w_peephole": None}, reverse=reverse,
                             lengths=None if lengths is None else np.array(lengths))[0]
    assert np.abs(y_plain - y_o[:, 0]).max() > 1e-2  # the peepholes matter
