"""Zoneout in the fused kernels (RNN, LSTM with and without peepholes and projection, GRU with
reset after and before) against the NumPy
reference with the same masks, forward and backward, training (masks) and inference (the
expectation): every layout option, odd sizes, T=1, B=1, every instruction set, threads."""
import itertools

import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import (TOL, as64, assert_bitwise_equal, assert_matches_reference, isa,
                             make_inputs, rel_err, run, upstream, with_threads)

DTYPES = [np.float32, np.float64]
# cell id -> (op, make_inputs keywords, forward options)
CELLS = {"rnn-tanh": ("rnn", {}, {"nonlinearity": "tanh"}),
         "rnn-relu": ("rnn", {}, {"nonlinearity": "relu"}),
         "lstm": ("lstm", {}, {}),
         "lstm-peephole": ("lstm", {"peephole": True}, {}),
         "lstm-proj": ("lstm", {"proj_size": 3}, {}),
         "lstm-proj-peephole": ("lstm", {"proj_size": 2, "peephole": True}, {}),
         "gru": ("gru", {}, {}),
         "gru-reset-before": ("gru", {}, {"reset_after": False})}


def state_size(cell, H):
    """P of a cell at hidden size H (the projection's, at most H), or H."""
    return min(CELLS[cell][1].get("proj_size", H), H)


def make(rng, cell, T, B, I, H, dtype, **kw):
    op, make_kw, _ = CELLS[cell]
    make_kw = dict(make_kw)
    if "proj_size" in make_kw:
        make_kw["proj_size"] = state_size(cell, H)
    return make_inputs(rng, op, T, B, I, H, dtype, **kw, **make_kw)


OPTIONS = list(itertools.product([False, True], repeat=3))  # batch_first, lengths, reverse


def check_zoneout(rng, cell, T, B, I, H, dtype, *, batch_first=False, lengths=True,
                  reverse=False, zoneout=0.4, seed=7, bias=True, h0=True):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, T, B, I, H, dtype, bias=bias, h0=h0, batch_first=batch_first,
                      lengths=lengths)
    options = dict(lengths=lens, reverse=reverse, batch_first=batch_first, zoneout=zoneout,
                   seed=seed, **cell_options)
    P = state_size(cell, H)
    grads = upstream(rng, op, args["x"].shape[:2] + (P,), B, H, dtype)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(dtype)
    out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    # inference: d is the rate (the expectation)
    inf_out, _ = run(F, op, args, options)
    ref_inf, _ = run(R, op, as64(args), options)
    for name, value in inf_out.items():
        assert rel_err(value, ref_inf[name]) < TOL[dtype][0], name
    return out, got


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first,lengths,reverse", OPTIONS,
                         ids=["bf%d-len%d-rev%d" % o for o in OPTIONS])
def test_options_grid(rng, cell, dtype, batch_first, lengths, reverse):
    check_zoneout(rng, cell, 5, 4, 3, 6, dtype, batch_first=batch_first, lengths=lengths,
                  reverse=reverse)


SIZES = [(1, 1, 1, 1), (1, 3, 5, 7), (7, 1, 2, 17), (4, 9, 13, 33), (2, 3, 4, 100)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,I,H", SIZES, ids=["T%d-B%d-I%d-H%d" % s for s in SIZES])
def test_sizes(rng, cell, dtype, T, B, I, H):
    check_zoneout(rng, cell, T, B, I, H, dtype, bias=H % 2 == 0, h0=T > 1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("zoneout", [0.05, 0.9])
def test_rates(rng, cell, zoneout):
    check_zoneout(rng, cell, 6, 5, 4, 9, np.float64, zoneout=zoneout)


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_instruction_set(rng, cell, dtype, isa_name):
    with isa(isa_name):
        for T, B, I, H in [(6, 5, 13, 33), (3, 17, 16, 64)]:
            check_zoneout(rng, cell, T, B, I, H, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_given_masks_are_the_ones_used(rng, cell):
    """masks= replaces the seeded draw: the reference's own masks give its results, and
    all-zero masks give the plain cell's."""
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, 5, 3, 4, 6, np.float64, lengths=True)
    options = dict(lengths=lens, **cell_options)
    P = state_size(cell, 6)
    grads = upstream(rng, op, (5, 3, P), 3, 6, np.float64)
    grads["dh_n"] = rng.standard_normal((3, P))
    shapes = {"zoneout_h": (5, 3, P), "zoneout_c": (5, 3, 6)}
    names = ("zoneout_h", "zoneout_c") if op == "lstm" else ("zoneout_h",)
    masks = {name: (rng.random(shapes[name]) < 0.5).astype(np.float64) for name in names}
    out, got = run(F, op, args, dict(options, zoneout=0.5, masks=masks), grads)
    ref_out, want = run(R, op, args, dict(options, zoneout=0.5, masks=masks), grads)
    for name in out:
        assert rel_err(out[name], ref_out[name]) < 1e-10, name
    for name in got:
        if want[name] is not None:
            assert rel_err(got[name], want[name]) < 1e-10, name
    zeros = {name: np.zeros(shapes[name]) for name in names}
    zero_out, zero_got = run(F, op, args, dict(options, zoneout=0.5, masks=zeros), grads)
    plain_out, plain_got = run(F, op, args, options, grads)
    for name in zero_out:
        np.testing.assert_array_equal(zero_out[name], plain_out[name])
    for name in zero_got:
        if plain_got[name] is not None:
            np.testing.assert_array_equal(zero_got[name], plain_got[name])
    # masks of ones: every unit keeps h0 (and c0); y repeats it at every step
    ones = {name: np.ones(shapes[name]) for name in names}
    ones_out, _ = run(F, op, args, dict(options, zoneout=0.5, masks=ones), grads)
    np.testing.assert_array_equal(ones_out["h_n"], args["h0"])


@pytest.mark.parametrize("cell", CELLS)
def test_seed_reproducible_and_zero_is_plain(rng, cell):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, 4, 3, 2, 5, np.float32)
    P = state_size(cell, 5)
    grads = upstream(rng, op, (4, 3, P), 3, 5, np.float32)
    grads["dh_n"] = rng.standard_normal((3, P)).astype(np.float32)
    a = run(F, op, args, dict(cell_options, zoneout=0.3, seed=11), grads)
    b = run(F, op, args, dict(cell_options, zoneout=0.3, seed=11), grads)
    c = run(F, op, args, dict(cell_options, zoneout=0.3, seed=12), grads)
    np.testing.assert_array_equal(a[0]["y"], b[0]["y"])
    assert not np.array_equal(a[0]["y"], c[0]["y"])
    for training in (True, False):
        zero = run(F, op, args, dict(cell_options, zoneout=0.0, seed=11),
                   grads if training else None)
        plain = run(F, op, args, dict(cell_options), grads if training else None)
        for name in zero[0]:
            np.testing.assert_array_equal(zero[0][name], plain[0][name])


# Threads split a step by blocks of units (H=200) or take disjoint sequences (B=20).
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,H", [(12, 9, 40), (5, 9, 200), (6, 20, 64)],
                         ids=["H40", "H200", "B20"])
def test_bitwise_reproducible_across_threads(rng, cell, T, B, H):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, T, B, 20, H, np.float32, lengths=True)
    P = state_size(cell, H)
    grads = upstream(rng, op, (T, B, P), B, H, np.float32)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(np.float32)
    options = dict(cell_options, lengths=lens, zoneout=0.25, seed=5)
    counts = (1, 2, 1)
    assert_bitwise_equal(with_threads(counts, lambda: run(F, op, args, options, grads)))
    assert_bitwise_equal(with_threads(counts, lambda: run(F, op, args, options)))  # inference


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_inference_windows(rng, dtype):
    try:
        rnnfast._C._set_projection_window_bytes(256 * 4 * 16 * np.dtype(dtype).itemsize)
        for cell in CELLS:
            check_zoneout(rng, cell, 40, 5, 3, 16, dtype, lengths=False)
    finally:
        rnnfast._C._set_projection_window_bytes(0)
