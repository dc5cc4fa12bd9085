"""Zoneout and recurrent dropout (Keras' recurrent_dropout), the two per-step regularisers of the
fused kernels, each test parametrized over both where they share their shape.

Kernels (RNN, LSTM with and without peepholes and projection, GRU with reset after and before)
against the NumPy reference with the same masks, forward and backward: every layout option, odd
sizes, T=1, B=1, every instruction set, threads bitwise (training and inference), seeds
reproducible, rate 0 == the plain cell; float64 to 1e-10, float32 within the contract's tolerance
and as accurate as the reference run in float32. In inference zoneout uses the expectation and
recurrent dropout drops nothing (== the plain cell).

Layers (rnnfast.nn.RNN/LSTM/GRU(zoneout=p / recurrent_dropout=p)): stacked bidirectional layers
against the reference with the masks their rng draws (one seed per layer and direction), finite
differences with fixed masks, new masks per training call, evaluation deterministic, bad rates.
"""
import itertools

import numpy as np
import pytest

import rnnfast
from nn_cases import rel_err as nn_rel_err
from rnnfast import functional as F
from rnnfast import nn
from rnnfast import reference as R
from recurrent_cases import (TOL, as64, assert_as_accurate_as, assert_bitwise_equal,
                             assert_matches_reference, isa, make_inputs, rel_err, run, upstream,
                             with_threads)
from test_nn_recurrent import recurrent_fd_check

REGULARIZERS = ["zoneout", "recurrent_dropout"]
DTYPES = [np.float32, np.float64]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
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


def check(rng, option, cell, T, B, I, H, dtype, *, batch_first=False, lengths=True,
          reverse=False, rate=0.4, seed=7, bias=True, h0=True, zoneout=0.0, peer=True):
    """The kernels against the reference with option=rate (and zoneout, for recurrent dropout
    with both), training (forward and backward) and inference. With peer, float32 results are
    also as accurate as the float32 reference's own."""
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, T, B, I, H, dtype, bias=bias, h0=h0, batch_first=batch_first,
                      lengths=lengths)
    options = dict(lengths=lens, reverse=reverse, batch_first=batch_first, seed=seed,
                   **cell_options)
    options["zoneout"] = zoneout
    options[option] = rate
    P = state_size(cell, H)
    grads = upstream(rng, op, args["x"].shape[:2] + (P,), B, H, dtype)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(dtype)
    out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    if peer and dtype == np.float32:  # the error a float32 implementation makes
        peer_out, peer = run(R, op, args, dict(options, dtype=np.float32), grads)
        for name, value in out.items():
            assert_as_accurate_as(value, peer_out[name], ref_out[name], name)
        for name, value in got.items():
            if value is not None:
                assert_as_accurate_as(value, peer[name], want[name], name)
    # inference: zoneout's expectation; recurrent dropout drops nothing
    inf_out, _ = run(F, op, args, options)
    ref_inf, _ = run(R, op, as64(args), options)
    for name, value in inf_out.items():
        assert rel_err(value, ref_inf[name]) < TOL[dtype][0], name
    return out, got


# ---------------------------------------------------------------------------------------------
# Kernels, both regularisers

OPTIONS = list(itertools.product([False, True], repeat=3))  # batch_first, lengths, reverse


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first,lengths,reverse", OPTIONS,
                         ids=["bf%d-len%d-rev%d" % o for o in OPTIONS])
def test_options_grid(rng, option, cell, dtype, batch_first, lengths, reverse):
    check(rng, option, cell, 5, 4, 3, 6, dtype, batch_first=batch_first, lengths=lengths,
          reverse=reverse)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first,lengths,reverse", OPTIONS,
                         ids=["bf%d-len%d-rev%d" % o for o in OPTIONS])
def test_recurrent_dropout_weight_grads_by_sequence(rng, cell, dtype, batch_first, lengths,
                                                    reverse):
    """Sequences of 16 steps or more: the weight gradients as one product per sequence, the
    state columns masked as they are summed (B = 11 sequences of up to 19 steps). Against the
    float64 reference only: over 19 steps the float32 peer's own error varies too much between
    the gradients (also of x, which this path does not touch) for check()'s peer bound."""
    check(rng, "recurrent_dropout", cell, 19, 11, 5, 7, dtype, batch_first=batch_first,
          lengths=lengths, reverse=reverse, seed=3, peer=False)


SIZES = [(1, 1, 1, 1), (1, 3, 5, 7), (7, 1, 2, 17), (4, 9, 13, 33), (2, 3, 4, 100),
         (3, 20, 5, 70)]


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,I,H", SIZES, ids=["T%d-B%d-I%d-H%d" % s for s in SIZES])
def test_sizes(rng, option, cell, dtype, T, B, I, H):
    check(rng, option, cell, T, B, I, H, dtype, bias=H % 2 == 0, h0=T > 1)


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("rate", [0.05, 0.9])
def test_rates(rng, option, cell, rate):
    check(rng, option, cell, 6, 5, 4, 9, np.float64, rate=rate)


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_instruction_set(rng, option, cell, dtype, isa_name):
    with isa(isa_name):
        for T, B, I, H in [(6, 5, 13, 33), (3, 17, 16, 64)]:
            check(rng, option, cell, T, B, I, H, dtype)


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("cell", CELLS)
def test_seed_reproducible_and_zero_rate_is_plain(rng, option, cell):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, 4, 3, 2, 5, np.float32)
    P = state_size(cell, 5)
    grads = upstream(rng, op, (4, 3, P), 3, 5, np.float32)
    grads["dh_n"] = rng.standard_normal((3, P)).astype(np.float32)
    a = run(F, op, args, dict(cell_options, **{option: 0.3}, seed=11), grads)
    b = run(F, op, args, dict(cell_options, **{option: 0.3}, seed=11), grads)
    c = run(F, op, args, dict(cell_options, **{option: 0.3}, seed=12), grads)
    np.testing.assert_array_equal(a[0]["y"], b[0]["y"])
    for name in a[1]:
        if a[1][name] is not None:
            np.testing.assert_array_equal(a[1][name], b[1][name])
    assert not np.array_equal(a[0]["y"], c[0]["y"])
    for training in (True, False):
        zero = run(F, op, args, dict(cell_options, **{option: 0.0}, seed=11),
                   grads if training else None)
        plain = run(F, op, args, dict(cell_options), grads if training else None)
        for part in range(2 if training else 1):  # outputs (and gradients)
            for name in zero[part]:
                if zero[part][name] is not None:
                    np.testing.assert_array_equal(zero[part][name], plain[part][name])
    inference = run(F, op, args, dict(cell_options, **{option: 0.6}, seed=11))
    plain_inf = run(F, op, args, dict(cell_options))
    if option == "recurrent_dropout":  # drops nothing
        for name in inference[0]:
            np.testing.assert_array_equal(inference[0][name], plain_inf[0][name])
    else:  # the expectation weighs the previous state
        assert not np.allclose(inference[0]["y"], plain_inf[0]["y"])


# Threads split a step by blocks of units (H=200) or take disjoint sequences (B=20).
@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,H", [(12, 9, 40), (5, 9, 200), (6, 20, 64), (17, 10, 24)],
                         ids=["H40", "H200", "B20", "T17"])
def test_bitwise_reproducible_across_threads(rng, option, cell, T, B, H):
    op, _, cell_options = CELLS[cell]
    args, lens = make(rng, cell, T, B, 20, H, np.float32, lengths=True)
    P = state_size(cell, H)
    grads = upstream(rng, op, (T, B, P), B, H, np.float32)
    grads["dh_n"] = rng.standard_normal((B, P)).astype(np.float32)
    options = dict(cell_options, lengths=lens, seed=5, **{option: 0.25})
    counts = (1, 2, 3, 1)
    assert_bitwise_equal(with_threads(counts, lambda: run(F, op, args, options, grads)))
    assert_bitwise_equal(with_threads(counts, lambda: run(F, op, args, options)))  # inference


# ---------------------------------------------------------------------------------------------
# Kernels, one regulariser

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_dropout_with_zoneout(rng, cell, dtype):
    check(rng, "recurrent_dropout", cell, 6, 5, 4, 9, dtype, zoneout=0.3)
    check(rng, "recurrent_dropout", cell, 4, 3, 2, 40, dtype, rate=0.4, zoneout=0.2,
          reverse=True, batch_first=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zoneout_inference_windows(rng, dtype):
    try:
        rnnfast._C._set_projection_window_bytes(256 * 4 * 16 * np.dtype(dtype).itemsize)
        for cell in CELLS:
            check(rng, "zoneout", cell, 40, 5, 3, 16, dtype, lengths=False)
    finally:
        rnnfast._C._set_projection_window_bytes(0)


@pytest.mark.parametrize("cell", CELLS)
def test_given_zoneout_masks_are_the_ones_used(rng, cell):
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
def test_given_recurrent_dropout_masks_are_the_ones_used(rng, cell):
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


@pytest.mark.parametrize("precision_cell", ["lstm", "gru", "gru-reset-before", "rnn-tanh"])
def test_recurrent_dropout_bfloat16_products_stay_close(rng, precision_cell):
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


def test_bad_recurrent_dropout_masks_and_rates_give_clear_errors(rng):
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


# ---------------------------------------------------------------------------------------------
# Layers (rnnfast.nn), both regularisers

# id -> (layer class, constructor keywords, reference forward, reference keywords)
LAYERS = {"rnn": (nn.RNN, {}, R.rnn_forward, {}),
          "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}, R.rnn_forward,
                       {"nonlinearity": "relu"}),
          "lstm": (nn.LSTM, {}, R.lstm_forward, {}),
          "lstm-peephole": (nn.LSTM, {"peephole": True}, R.lstm_forward, {}),
          "lstm-proj": (nn.LSTM, {"proj_size": 2}, R.lstm_forward, {}),
          "gru": (nn.GRU, {}, R.gru_forward, {}),
          "gru-reset-before": (nn.GRU, {"reset_after": False}, R.gru_forward,
                               {"reset_after": False})}
KEYS = [("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"),
        ("w_peephole", "weight_peephole"), ("w_hr", "weight_hr")]


def reference_weights(layer, layer_index, k):
    """The reference's keyword arguments of layer layer_index, direction k."""
    suffix = f"_l{layer_index}" + ("_reverse" if k else "")
    return {key: getattr(layer, name + suffix).data for key, name in KEYS
            if hasattr(layer, name + suffix)}


@pytest.mark.parametrize("option,rate", [("zoneout", 0.3), ("recurrent_dropout", 0.35)])
@pytest.mark.parametrize("layer_id", LAYERS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_layer_matches_the_reference(rng, option, rate, layer_id, training, num_layers):
    cls, kwargs, ref_forward, ref_kwargs = LAYERS[layer_id]
    layer = cls(3, 5, num_layers=num_layers, bidirectional=True, dtype=np.float64, seed=0,
                **{option: rate}, **kwargs)
    layer.train(training)
    x = rng.standard_normal((6, 4, 3))
    lengths = np.array([6, 3, 5, 1])
    layer.rng = np.random.default_rng(21)
    y, final = layer(x, lengths=lengths)
    h_n = final[0] if isinstance(final, tuple) else final
    P = h_n.shape[-1]
    n = 2 * num_layers
    seeds = np.random.default_rng(21).integers(0, 2 ** 63 - 1, size=n) if training else [None] * n
    layer_input = x
    for layer_index in range(num_layers):
        outs = []
        for d in range(2):
            k = layer_index * 2 + d
            out = ref_forward(layer_input, **reference_weights(layer, layer_index, d),
                              lengths=lengths, reverse=d == 1, training=training,
                              seed=None if seeds[k] is None else int(seeds[k]),
                              **{option: rate}, **ref_kwargs)
            assert nn_rel_err(h_n[k], out[1]) < 1e-12
            outs.append(out[0])
        layer_input = np.concatenate(outs, axis=-1)
    assert nn_rel_err(y, layer_input) < 1e-12
    assert f"{option}={rate}" in repr(layer)


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("layer_id", LAYERS)
def test_layer_finite_differences_with_fixed_masks(rng, option, layer_id):
    cls, kwargs, _, _ = LAYERS[layer_id]
    rates = {option: 0.4}
    if option == "recurrent_dropout" and layer_id == "lstm":  # both at once
        rates["zoneout"] = 0.2
    layer = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64,
                seed=0, **rates, **kwargs)
    x = rng.standard_normal((3, 5, 3))
    h0 = rng.standard_normal((4, 3, kwargs.get("proj_size") or 4))
    state = (h0, rng.standard_normal((4, 3, 4))) if cls is nn.LSTM else h0
    recurrent_fd_check(layer, x, state, np.array([5, 2, 4]), rng, reseed=13)


@pytest.mark.parametrize("option", REGULARIZERS)
def test_layer_first_layer_equals_the_reference_in_one_direction(rng, option):
    layer = nn.GRU(3, 6, dtype=np.float64, seed=0, **{option: 0.5})
    x = rng.standard_normal((5, 2, 3))
    layer.rng = np.random.default_rng(3)
    y, _ = layer(x)
    seed = int(np.random.default_rng(3).integers(0, 2 ** 63 - 1, size=1)[0])
    want = R.gru_forward(x, **reference_weights(layer, 0, 0), training=True, seed=seed,
                         **{option: 0.5})[0]
    assert nn_rel_err(y, want) < 1e-12


@pytest.mark.parametrize("option", REGULARIZERS)
def test_layer_training_draws_new_masks_and_evaluation_is_deterministic(rng, option):
    lstm = nn.LSTM(3, 6, seed=0, **{option: 0.5})
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not np.array_equal(a, b)  # the rng moved on: new masks
    lstm.eval()
    c, _ = lstm(x)
    d, _ = lstm(x)
    np.testing.assert_array_equal(c, d)
    plain = nn.LSTM(3, 6, seed=0)
    plain.eval()
    if option == "recurrent_dropout":  # evaluation drops nothing
        np.testing.assert_array_equal(c, plain(x)[0])
    else:  # the expectation weighs the previous state
        assert not np.allclose(c, plain(x)[0])


@pytest.mark.parametrize("option", REGULARIZERS)
@pytest.mark.parametrize("value,err", [(1.0, ValueError), (-0.1, ValueError), ("0.1", TypeError),
                                       (True, TypeError)])
def test_layer_bad_rates(option, value, err):
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        with pytest.raises(err, match=f"{option}: expected a float in"):
            cls(3, 4, **{option: value})


@pytest.mark.parametrize("cls", [nn.LayerNormLSTM, nn.LayerNormGRU])
def test_layer_norm_cells_refuse_recurrent_dropout_by_name(cls):
    with pytest.raises(TypeError, match="recurrent_dropout: not an option of the layer_norm"):
        cls(3, 4, recurrent_dropout=0.2)
