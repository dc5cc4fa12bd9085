"""Recurrent dropout (Keras' recurrent_dropout) in the fused kernels (RNN, LSTM with and without
peepholes and projection, GRU with reset after and before) against the NumPy reference with the
same masks, forward and backward: every layout option, odd sizes, T=1, B=1, together with
zoneout, every instruction set, threads bitwise; float64 to 1e-10, float32 within the
contract's tolerance and as accurate as the reference run in float32."""
import itertools

import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from recurrent_cases import TOL, as64, assert_as_accurate_as, rel_err, run, upstream
from test_recurrent_zoneout import CELLS, make, state_size

DTYPES = [np.float32, np.float64]
OPTIONS = list(itertools.product([False, True], repeat=3))  # batch_first, lengths, reverse
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def check_dropout(rng, cell, T, B, I, H, dtype, *, batch_first=False, lengths=True,
                  reverse=False, rate=0.4, seed=7, bias=True, h0=True, zoneout=0.0):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, T, B, I, H, dtype, bias=bias, h0=h0, batch_first=batch_first,
                      lengths=lengths)
    options = dict(lengths=lens, reverse=reverse, batch_first=batch_first,
                   recurrent_dropout=rate, seed=seed, zoneout=zoneout, **cell_options)
    P = state_size(cell, H)
    grads = upstream(rng, op, args["x"].shape[:2] + (P,), B, H, dtype)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(dtype)
    out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    if dtype == np.float32:  # the error a float32 implementation makes
        peer_out, peer = run(R, op, args, dict(options, dtype=np.float32), grads)
    out_tol, grad_tol = TOL[dtype]
    for name, value in out.items():
        assert value.dtype == dtype and value.shape == ref_out[name].shape, name
        assert rel_err(value, ref_out[name]) < out_tol, name
        if dtype == np.float32:
            assert_as_accurate_as(value, peer_out[name], ref_out[name], name)
    assert set(got) == set(want)
    for name, value in got.items():
        if want[name] is None:
            assert value is None, name
            continue
        assert value.dtype == dtype and value.shape == want[name].shape, name
        assert rel_err(value, want[name]) < grad_tol, name
        if dtype == np.float32:
            assert_as_accurate_as(value, peer[name], want[name], name)
    return out, got


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first,lengths,reverse", OPTIONS,
                         ids=["bf%d-len%d-rev%d" % o for o in OPTIONS])
def test_options_grid(rng, cell, dtype, batch_first, lengths, reverse):
    check_dropout(rng, cell, 5, 4, 3, 6, dtype, batch_first=batch_first, lengths=lengths,
                  reverse=reverse)


SIZES = [(1, 1, 1, 1), (1, 3, 5, 7), (7, 1, 2, 17), (4, 9, 13, 33), (2, 3, 4, 100),
         (3, 20, 5, 70)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,I,H", SIZES, ids=["T%d-B%d-I%d-H%d" % s for s in SIZES])
def test_sizes(rng, cell, dtype, T, B, I, H):
    check_dropout(rng, cell, T, B, I, H, dtype, bias=H % 2 == 0, h0=T > 1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("rate", [0.05, 0.9])
def test_rates(rng, cell, rate):
    check_dropout(rng, cell, 6, 5, 4, 9, np.float64, rate=rate)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_with_zoneout(rng, cell, dtype):
    check_dropout(rng, cell, 6, 5, 4, 9, dtype, zoneout=0.3)
    check_dropout(rng, cell, 4, 3, 2, 40, dtype, zoneout=0.2, reverse=True, batch_first=True)


@pytest.mark.parametrize("isa", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_instruction_set(rng, cell, dtype, isa):
    before = rnnfast.active_isa()
    try:
        rnnfast.set_isa(isa)
        for T, B, I, H in [(6, 5, 13, 33), (3, 17, 16, 64)]:
            check_dropout(rng, cell, T, B, I, H, dtype)
    finally:
        rnnfast.set_isa(before)


@pytest.mark.parametrize("cell", CELLS)
def test_given_masks_are_the_ones_used(rng, cell):
    """masks= replaces the seeded draw: the reference's results with any masks; masks of ones
    give the plain cell; masks of zeros give the cell without recurrent weights (whose own
    gradient is then zero)."""
    op, _, cell_options = CELLS[cell]
    T, B, H = 5, 3, 6
    args, lens = make(rng, cell, T, B, 4, H, np.float64, lengths=True)
    options = dict(lengths=lens, **cell_options)
    P = state_size(cell, H)
    grads = upstream(rng, op, (T, B, P), B, H, np.float64)
    grads["dh_n"] = rng.standard_normal((B, P))
    shape = (GATES[op], B, P)
    masks = {"recurrent": rng.random(shape) * 3}  # any values, not only 0 and 1/(1-p)
    with_masks = dict(options, recurrent_dropout=0.5, masks=masks)
    out, got = run(F, op, args, with_masks, grads)
    ref_out, want = run(R, op, args, with_masks, grads)
    for name in out:
        assert rel_err(out[name], ref_out[name]) < 1e-10, name
    for name in got:
        if want[name] is not None:
            assert rel_err(got[name], want[name]) < 1e-10, name
    ones = dict(options, recurrent_dropout=0.5, masks={"recurrent": np.ones(shape)})
    one_out, one_got = run(F, op, args, ones, grads)
    plain_out, plain_got = run(F, op, args, options, grads)
    for name in one_out:
        assert rel_err(one_out[name], plain_out[name]) < 1e-12, name
    for name in one_got:
        if plain_got[name] is not None:
            assert rel_err(one_got[name], plain_got[name]) < 1e-12, name
    zeros = dict(options, recurrent_dropout=0.5, masks={"recurrent": np.zeros(shape)})
    zero_out, zero_got = run(F, op, args, zeros, grads)
    no_hh = dict(args, w_hh=np.zeros_like(args["w_hh"]))
    cut_out, cut_got = run(F, op, no_hh, options, grads)
    for name in zero_out:
        assert rel_err(zero_out[name], cut_out[name]) < 1e-12, name
    assert not np.any(zero_got["w_hh"])
    for name in zero_got:
        if cut_got[name] is not None and name != "w_hh":
            assert rel_err(zero_got[name], cut_got[name]) < 1e-12, name


@pytest.mark.parametrize("cell", CELLS)
def test_seed_reproducible_zero_rate_and_inference_are_plain(rng, cell):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, 4, 3, 2, 5, np.float32)
    P = state_size(cell, 5)
    grads = upstream(rng, op, (4, 3, P), 3, 5, np.float32)
    grads["dh_n"] = rng.standard_normal((3, P)).astype(np.float32)
    a = run(F, op, args, dict(cell_options, recurrent_dropout=0.3, seed=11), grads)
    b = run(F, op, args, dict(cell_options, recurrent_dropout=0.3, seed=11), grads)
    c = run(F, op, args, dict(cell_options, recurrent_dropout=0.3, seed=12), grads)
    np.testing.assert_array_equal(a[0]["y"], b[0]["y"])
    for name in a[1]:
        if a[1][name] is not None:
            np.testing.assert_array_equal(a[1][name], b[1][name])
    assert not np.array_equal(a[0]["y"], c[0]["y"])
    plain = run(F, op, args, dict(cell_options), grads)
    zero = run(F, op, args, dict(cell_options, recurrent_dropout=0.0, seed=11), grads)
    for name in zero[0]:
        np.testing.assert_array_equal(zero[0][name], plain[0][name])
    for name in zero[1]:
        if zero[1][name] is not None:
            np.testing.assert_array_equal(zero[1][name], plain[1][name])
    inference = run(F, op, args, dict(cell_options, recurrent_dropout=0.6, seed=11))
    plain_inf = run(F, op, args, dict(cell_options))
    for name in inference[0]:
        np.testing.assert_array_equal(inference[0][name], plain_inf[0][name])


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
    options = dict(cell_options, lengths=lens, recurrent_dropout=0.25, seed=5)
    threads = rnnfast.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 1):
            rnnfast.set_num_threads(n)
            results.append(run(F, op, args, options, grads))
    finally:
        rnnfast.set_num_threads(threads)
    out0, got0 = results[0]
    for out, got in results[1:]:
        for name in out:
            np.testing.assert_array_equal(out[name], out0[name])
        for name in got:
            if got[name] is not None:
                np.testing.assert_array_equal(got[name], got0[name])


@pytest.mark.parametrize("precision_cell", ["lstm", "gru", "gru-reset-before", "rnn-tanh"])
def test_bfloat16_products_stay_close(rng, precision_cell):
    """precision="bfloat16" with recurrent dropout: the products from bfloat16 operands, the
    result within bfloat16's error of the float32 kernel."""
    op, _, cell_options = CELLS[precision_cell]
    args, lens = make(rng, precision_cell, 6, 5, 8, 16, np.float32, lengths=True)
    grads = upstream(rng, op, (6, 5, 16), 5, 16, np.float32)
    options = dict(cell_options, lengths=lens, recurrent_dropout=0.3, seed=2)
    out, got = run(F, op, args, options, grads)
    out16, got16 = run(F, op, args, dict(options, precision="bfloat16"), grads)
    for name in out:
        assert rel_err(out16[name], out[name]) < 0.05, name
    for name in got:
        if got[name] is not None:
            assert rel_err(got16[name], got[name]) < 0.1, name


def test_bad_masks_and_rates_give_clear_errors(rng):
    args, _ = make(rng, "lstm", 4, 3, 2, 5, np.float32)
    with pytest.raises(ValueError, match=r"recurrent_dropout: expected a float in \[0, 1\), "
                                         "got 1.0"):
        F.lstm_forward(**args, recurrent_dropout=1.0, training=True)
    with pytest.raises(TypeError, match="recurrent_dropout: expected a float"):
        F.lstm_forward(**args, recurrent_dropout="0.1", training=True)
    good = np.ones((4, 3, 5), np.float32)
    with pytest.raises(ValueError, match=r"recurrent_mask: expected shape \(gates, batch, "
                                         r"hidden_size\) = \(4, 3, 5\), got \(3, 3, 5\)"):
        F.lstm_forward(**args, recurrent_dropout=0.2, masks={"recurrent": good[:3]},
                       training=True)
    with pytest.raises(ValueError, match="masks: 'recurrent' is given exactly when"):
        F.lstm_forward(**args, masks={"recurrent": good}, training=True)
    with pytest.raises(ValueError, match="masks: only for training=True"):
        F.lstm_forward(**args, recurrent_dropout=0.2, masks={"recurrent": good})
    # the binding itself: dtype, shape, inference
    x = args["x"]
    common = (x, args["w_ih"], args["w_hh"], None, None, None, None)
    kw = dict(nonlinearity="tanh", reset_after=True, lengths=None, reverse=False,
              batch_first=False)
    with pytest.raises(TypeError, match="recurrent_mask: expected .*float32"):
        rnnfast._C.recurrent_forward("lstm", *common, **kw, training=True,
                                     recurrent_mask=good.astype(np.float64))
    with pytest.raises(ValueError, match="recurrent_mask: only for training=True"):
        rnnfast._C.recurrent_forward("lstm", *common, **kw, training=False,
                                     recurrent_mask=good)
    with pytest.raises(ValueError, match=r"recurrent_mask: expected shape .* batch is 3 from x "
                                         "but 2 from recurrent_mask"):
        rnnfast._C.recurrent_forward("lstm", *common, **kw, training=True,
                                     recurrent_mask=good[:, :2])
