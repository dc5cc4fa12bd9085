"""The fused LayerNorm LSTM and GRU kernels (rnnfast.functional.layer_norm_*) against the NumPy
reference, forward and backward; determinism, instruction sets, bad input; and the layers
rnnfast.nn.LayerNormLSTM / LayerNormGRU against a PyTorch loop with nn.LayerNorm."""
import copy
import importlib.util
import pathlib

import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import nn
from rnnfast import reference as R
from rnnfast._masks import recurrent_masks
from rnnfast.functional.stack import RecurrentStack
from recurrent_cases import (GATES, as64, assert_bitwise_equal, assert_matches_reference, isa,
                             make_inputs, options_grid, rel_err, upstream, with_threads)
from recurrent_cases import run as run_op

DTYPES = [np.float32, np.float64]
OPS = ["lstm", "gru"]
LN_KEYS = {"lstm": ["ln_ih_weight", "ln_hh_weight", "ln_c_weight", "ln_c_bias"],
           "gru": ["ln_ih_weight", "ln_hh_weight"]}


def make_args(rng, op, T, B, I, H, dtype, *, ln=True, **kw):
    """make_inputs' keyword arguments of a forward and lengths (or None), with the op's
    layer-norm gains and biases (None without ln)."""
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, **kw)
    for key in LN_KEYS[op]:
        size = H if key.startswith("ln_c") else GATES[op] * H
        base = 0.0 if key == "ln_c_bias" else 1.0
        args[key] = (base + 0.3 * rng.standard_normal(size)).astype(dtype) if ln else None
    return args, lens


def run(module, op, args, options, grads=None):
    """recurrent_cases.run of the LayerNorm op of F or R."""
    return run_op(module, "layer_norm_" + op, args, options, grads)


def check(rng, op, T, B, I, H, dtype, *, eps=1e-5, batch_first=False, bias=True, h0=True,
          ln=True, lengths=False, reverse=False):
    args, lens = make_args(rng, op, T, B, I, H, dtype, bias=bias, h0=h0, ln=ln,
                           batch_first=batch_first, lengths=lengths)
    options = dict(lengths=lens, reverse=reverse, batch_first=batch_first, eps=eps)
    grads = upstream(rng, op, args["x"].shape[:2] + (H,), B, H, dtype)
    out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    # Inference gives the training outputs, bit for bit.
    assert_bitwise_equal([(out, None), run(F, op, args, options)])
    return out, got


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
@options_grid
def test_options_grid(rng, op, dtype, batch_first, bias, h0, lengths, reverse):
    check(rng, op, 5, 4, 3, 6, dtype, batch_first=batch_first, bias=bias, h0=h0,
          lengths=lengths, reverse=reverse)


# T=1, B=1, H=1 (a layer norm of one value in the LSTM's c: LN gives 0), sizes that are no
# multiple of any SIMD width, B=13 and 20 (threads take disjoint sequences), H=129; T=60 B=5
# H=64: the input projections come in windows of steps (256 KiB: 25 steps in float64, 51 in
# float32 for the LSTM), the last one partial.
SHAPES = [(1, 1, 1, 1), (1, 5, 7, 3), (9, 1, 4, 17), (4, 13, 20, 33), (3, 20, 16, 129),
          (2, 3, 1, 2), (60, 5, 8, 64)]


@pytest.mark.parametrize("T,B,I,H", SHAPES, ids=["T%dB%dI%dH%d" % s for s in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
def test_shapes(rng, op, dtype, T, B, I, H):
    for lengths, reverse in [(False, False), (True, True)]:
        check(rng, op, T, B, I, H, dtype, lengths=lengths, reverse=reverse)


# Time-major with every sequence of full length, the backward runs a chunk of steps at a time
# (at most 384 KiB of one product's gradient rows and one depth block of the weight-gradient
# GEMMs) and multiplies dx, dW_ih and dW_hh per chunk, the chunks summed from the last step
# back: T=61, B=5, H=130 (305 rows of 390 or 520 values) takes several chunks in both dtypes
# and cells, the first one partial; B=9: with 2+ threads the threads take disjoint sequences
# of each chunk.
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
def test_backward_by_chunks_of_steps(rng, op, dtype, reverse):
    check(rng, op, 61, 5, 10, 130, dtype, reverse=reverse)
    args, _ = make_args(rng, op, 47, 9, 12, 130, dtype)
    grads = upstream(rng, op, args["x"].shape[:2] + (130,), 9, 130, dtype)
    options = dict(reverse=reverse)
    assert_bitwise_equal(with_threads((1, 2, 3, 1), lambda: run(F, op, args, options, grads)))


@pytest.mark.parametrize("eps", [1e-8, 1e-3, 2.0])
@pytest.mark.parametrize("op", OPS)
def test_eps(rng, op, eps):
    check(rng, op, 4, 3, 5, 7, np.float64, eps=eps, lengths=True)


@pytest.mark.parametrize("op", OPS)
def test_missing_layer_norm_parameters_are_ones_and_zeros(rng, op):
    """None gains are ones (and the c bias zero): the same results as those arrays, and their
    gradients are None."""
    _, got = check(rng, op, 4, 3, 5, 6, np.float64, ln=False, lengths=True)
    for key in LN_KEYS[op]:
        assert got[key] is None
    args, lens = make_args(rng, op, 4, 3, 5, 6, np.float64, ln=False)
    full = dict(args)
    for key in LN_KEYS[op]:
        size = 6 if key.startswith("ln_c") else GATES[op] * 6
        full[key] = np.full(size, 0.0 if key == "ln_c_bias" else 1.0)
    a, _ = run(F, op, args, {})
    b, _ = run(F, op, full, {})
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
def test_every_instruction_set(rng, op, dtype, isa_name):
    with isa(isa_name):
        for T, B, I, H in [(6, 5, 13, 33), (3, 17, 16, 64), (2, 2, 3, 1)]:
            check(rng, op, T, B, I, H, dtype, lengths=True, reverse=T == 3)


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("op", OPS)
def test_product_moments_of_offset_and_constant_rows(rng, op, isa_name):
    """The step's moments of the two product rows (product_moments, shared by both cells): rows
    of x W_ih^T with a common offset ~1e4 times their spread (a one-pass variance,
    E[v^2] - E[v]^2, puts the normalised values ~4e-8 off in float64, typically; 1e-6 at
    worst) and constant rows of h W_hh^T (W_hh = 0: variance 0, the layer norm gives 0
    and 1/std = 1/sqrt(eps))."""
    T, B, I, H = 5, 4, 9, 7
    args, lens = make_args(rng, op, T, B, I, H, np.float64, lengths=True)
    offset = rng.standard_normal(I) * 1e4 / np.sqrt(I)
    args["w_ih"] = args["w_ih"] + offset  # every row: offset + its own small part
    args["w_hh"] = np.zeros_like(args["w_hh"])
    options = dict(lengths=lens, reverse=True)
    grads = upstream(rng, op, (T, B, H), B, H, np.float64)
    with isa(isa_name):
        out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, args, options, grads)
    # dx = dgx W_ih: the row's gradient sums to zero and meets the offset, a cancellation of
    # ~1e4 * 1e-16 * |dgx| that the reference suffers alike (kernel and reference differ by
    # 5e-8 to 2e-7 here); every other value is held to the contract's 1e-10.
    assert rel_err(got.pop("x"), want.pop("x")) < 1e-5
    assert_matches_reference(out, got, ref_out, want, np.float64)


# B=9 and 20: with 2+ threads the threads take disjoint sequences; B=3: they share each step's
# product by columns and the rows' epilogues by sequences. H=200: no multiple of a SIMD width.
# T=40 B=12: the input projection's windows hold 21 steps of 12 sequences (1 thread) or 42 of
# 6 (2 threads).
@pytest.mark.parametrize("T,B,H,reverse", [(12, 9, 40, False), (5, 3, 200, True),
                                           (1, 2, 30, False), (6, 20, 64, True),
                                           (40, 12, 64, False)],
                         ids=["B9", "B3-H200-rev", "T1", "B20-rev", "T40-windows"])
@pytest.mark.parametrize("op", OPS)
def test_bitwise_reproducible_across_runs_and_threads(rng, op, T, B, H, reverse):
    args, lens = make_args(rng, op, T, B, 20, H, np.float32, lengths=True)
    grads = upstream(rng, op, args["x"].shape[:2] + (H,), B, H, np.float32)
    options = dict(lengths=lens, reverse=reverse)
    assert_bitwise_equal(with_threads((1, 2, 3, 1), lambda: run(F, op, args, options, grads)))


@pytest.mark.parametrize("op", OPS)
def test_padding_equals_running_each_sequence_alone(rng, op):
    """A post-padded batch gives, for each sequence, what it gives alone and unpadded (both
    directions), and no gradient reaches x or h0 through the padding."""
    T, B, I, H = 6, 4, 3, 5
    args, lens = make_args(rng, op, T, B, I, H, np.float64, lengths=True)
    for reverse in (False, True):
        grads = upstream(rng, op, (T, B, H), B, H, np.float64)
        out, got = run(F, op, args, dict(lengths=lens, reverse=reverse), grads)
        for b in range(B):
            n = lens[b]
            alone = dict(args, x=args["x"][:n, b:b + 1], h0=args["h0"][b:b + 1])
            if op == "lstm":
                alone["c0"] = args["c0"][b:b + 1]
            g1 = {"dy": grads["dy"][:n, b:b + 1], "dh_n": grads["dh_n"][b:b + 1]}
            if op == "lstm":
                g1["dc_n"] = grads["dc_n"][b:b + 1]
            o1, d1 = run(F, op, alone, dict(reverse=reverse), g1)
            np.testing.assert_allclose(out["y"][:n, b], o1["y"][:, 0], atol=1e-12)
            assert not out["y"][n:, b].any()
            np.testing.assert_allclose(out["h_n"][b], o1["h_n"][0], atol=1e-12)
            np.testing.assert_allclose(got["x"][:n, b], d1["x"][:, 0], atol=1e-12)
            assert not got["x"][n:, b].any()
            np.testing.assert_allclose(got["h0"][b], d1["h0"][0], atol=1e-12)


@pytest.mark.parametrize("op", OPS)
def test_empty_batch(op):
    G = GATES[op]
    x = np.zeros((3, 0, 2), np.float32)
    w_ih, w_hh = np.ones((G * 4, 2), np.float32), np.ones((G * 4, 4), np.float32)
    ln = {"ln_ih_weight": np.ones(G * 4, np.float32)}
    out = getattr(F, f"layer_norm_{op}_forward")(x, w_ih, w_hh, **ln, training=True)
    assert out[0].shape == (3, 0, 4) and out[1].shape == (0, 4)
    got = getattr(F, f"layer_norm_{op}_backward")(out[-1], np.zeros((3, 0, 4), np.float32))
    assert got["x"].shape == (3, 0, 2)
    assert not got["w_ih"].any() and not got["ln_ih_weight"].any()
    assert got["ln_hh_weight"] is None


# ---------------------------------------------------------------------------- zoneout


def check_zoneout(rng, op, T, B, I, H, dtype, *, zoneout=0.3, seed=5, batch_first=False,
                  lengths=False, reverse=False):
    """Training (the masks drawn from seed) and inference (the expectation) with zoneout
    against the reference, which draws its masks from the same seed in NumPy."""
    args, lens = make_args(rng, op, T, B, I, H, dtype, batch_first=batch_first,
                           lengths=lengths)
    options = dict(lengths=lens, reverse=reverse, batch_first=batch_first, zoneout=zoneout,
                   seed=seed)
    grads = upstream(rng, op, args["x"].shape[:2] + (H,), B, H, dtype)
    out, got = run(F, op, args, options, grads)
    ref_out, want = run(R, op, as64(args), options, as64(grads))
    assert_matches_reference(out, got, ref_out, want, dtype)
    inference = dict(options, seed=None)
    out_inf, _ = run(F, op, args, inference)
    ref_inf, _ = run(R, op, as64(args), inference)
    assert_matches_reference(out_inf, {}, ref_inf, {}, dtype)
    return out, got


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
@options_grid
def test_zoneout_options_grid(rng, op, dtype, batch_first, bias, h0, lengths, reverse):
    check_zoneout(rng, op, 5, 4, 3, 6, dtype, batch_first=batch_first, lengths=lengths,
                  reverse=reverse)


@pytest.mark.parametrize("T,B,I,H", SHAPES, ids=["T%dB%dI%dH%d" % s for s in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
def test_zoneout_shapes(rng, op, dtype, T, B, I, H):
    for lengths, reverse, rate in [(False, False, 0.3), (True, True, 0.7)]:
        check_zoneout(rng, op, T, B, I, H, dtype, zoneout=rate, lengths=lengths,
                      reverse=reverse)


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
def test_zoneout_every_instruction_set(rng, op, dtype, isa_name):
    with isa(isa_name):
        for T, B, I, H in [(6, 5, 13, 33), (3, 17, 16, 64), (2, 2, 3, 1)]:
            check_zoneout(rng, op, T, B, I, H, dtype, lengths=True, reverse=T == 3)


@pytest.mark.parametrize("T,B,H,reverse", [(12, 9, 40, False), (5, 3, 200, True),
                                           (1, 2, 30, False), (6, 20, 64, True)],
                         ids=["B9", "B3-H200-rev", "T1", "B20-rev"])
@pytest.mark.parametrize("op", OPS)
def test_zoneout_bitwise_reproducible_across_threads(rng, op, T, B, H, reverse):
    """The same seed gives the same masks and results, bit for bit, at 1, 2 and 3 threads
    (training and inference)."""
    args, lens = make_args(rng, op, T, B, 20, H, np.float32, lengths=True)
    grads = upstream(rng, op, args["x"].shape[:2] + (H,), B, H, np.float32)
    options = dict(lengths=lens, reverse=reverse, zoneout=0.4, seed=2 ** 64 - 3)
    assert_bitwise_equal(with_threads((1, 2, 3, 1), lambda: run(F, op, args, options, grads)))
    inference = dict(lengths=lens, reverse=reverse, zoneout=0.4)
    assert_bitwise_equal(with_threads((1, 2, 3, 1), lambda: run(F, op, args, inference)))


@pytest.mark.parametrize("op", OPS)
def test_zoneout_masks_are_the_plain_cells_for_the_same_seed(rng, op):
    """The LayerNorm cell draws the plain cell's masks (recurrent_masks of "lstm" or "gru"):
    given them as masks=, it gives what seed= gives, bit for bit; another seed differs; and
    zoneout=0 is the cell without zoneout whatever the seed."""
    T, B, I, H = 7, 5, 4, 9
    args, _ = make_args(rng, op, T, B, I, H, np.float32)
    grads = upstream(rng, op, (T, B, H), B, H, np.float32)
    plain = recurrent_masks(op, T, B, H, zoneout=0.4, seed=21, dtype=np.float32)
    ln = R.recurrent_masks("layer_norm_" + op, T, B, H, zoneout=0.4, seed=21,
                           dtype=np.float32)
    assert set(plain) == set(ln) == ({"zoneout_h", "zoneout_c"} if op == "lstm"
                                     else {"zoneout_h"})
    for name in plain:
        np.testing.assert_array_equal(plain[name], ln[name])
    seeded = run(F, op, args, dict(zoneout=0.4, seed=21), grads)
    given = run(F, op, args, dict(zoneout=0.4, masks=plain), grads)
    assert_bitwise_equal([seeded, given])
    other = run(F, op, args, dict(zoneout=0.4, seed=22), grads)
    assert not np.array_equal(other[0]["y"], seeded[0]["y"])
    assert_bitwise_equal([run(F, op, args, {}, grads),
                          run(F, op, args, dict(zoneout=0.0, seed=3), grads)])
    # Where a mask is 1 the unit keeps its previous value (t = 0: h0).
    d = plain["zoneout_h"][0] == 1
    assert d.any() and (~d).any()
    np.testing.assert_array_equal(seeded[0]["y"][0][d], args["h0"][d])


@pytest.mark.parametrize("op", OPS)
def test_zoneout_layers_match_the_reference(rng, op):
    """nn.LayerNormLSTM/GRU(zoneout=p): training draws one seed per layer and direction from
    the layer's generator (as nn.LSTM does) and runs the kernel with it; evaluation uses
    the expectation; the gradients follow the training masks."""
    cls = nn.LayerNormLSTM if op == "lstm" else nn.LayerNormGRU
    layer = cls(3, 5, zoneout=0.25, seed=4, dtype=np.float64)
    assert layer.zoneout == 0.25 and "zoneout=0.25" in repr(layer)
    x = rng.standard_normal((6, 2, 3))
    weights = {key: getattr(layer, name).data for key, name in layer.stack._keys[0]}
    layer.train()
    seed = int(copy.deepcopy(layer.rng).integers(0, 2 ** 63 - 1, size=1)[0])  # the next draw
    y = layer(x)[0]
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)[0]
    want, *_, ctx = getattr(R, f"layer_norm_{op}_forward")(x, **weights, training=True,
                                                          zoneout=0.25, seed=seed)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    grads = getattr(R, f"layer_norm_{op}_backward")(ctx, dy)
    np.testing.assert_allclose(dx, grads["x"], rtol=1e-10, atol=1e-12)
    for key, name in layer.stack._keys[0]:
        np.testing.assert_allclose(getattr(layer, name).grad, grads[key], rtol=1e-10,
                                   atol=1e-12)
    layer.eval()
    want = getattr(R, f"layer_norm_{op}_forward")(x, **weights, zoneout=0.25)[0]
    np.testing.assert_allclose(layer(x)[0], want, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- bad input


def bad_cases(op):
    G, H = GATES[op], 3
    f = np.float32
    cases = [
        ({"ln_ih_weight": np.ones(G * H + 1, f)}, ValueError, "ln_ih_weight: expected shape"),
        ({"ln_hh_weight": np.ones((G, H), f)}, ValueError, "ln_hh_weight: expected shape"),
        ({"ln_ih_weight": np.ones(G * H, np.float64)}, TypeError, "ln_ih_weight: expected dtype"),
        ({"ln_hh_weight": np.ones(G * H, np.int64)}, TypeError, "ln_hh_weight: expected a float"),
        ({"ln_ih_weight": "ones"}, TypeError, "ln_ih_weight: expected a float"),
        ({"eps": 0.0}, ValueError, "eps: expected a finite float > 0, got 0.0"),
        ({"eps": -1e-5}, ValueError, "eps: expected a finite float > 0"),
        ({"eps": float("nan")}, ValueError, "eps: expected a finite float > 0"),
        ({"eps": float("inf")}, ValueError, "eps: expected a finite float > 0"),
        ({"eps": "1e-5"}, TypeError, "eps: expected a float > 0"),
        ({"eps": None}, TypeError, "eps: expected a float > 0"),
        ({"eps": True}, TypeError, "eps: expected a float > 0"),
        ({"w_hh": np.ones((G * H, H + 1), f)}, ValueError, "w_hh: expected shape"),
        ({"b_ih": np.ones(G * H - 1, f)}, ValueError, "b_ih: expected shape"),
        ({"lengths": np.array([0, 1])}, ValueError, "lengths: every entry must be in 1..T"),
    ]
    if op == "lstm":
        cases += [
            ({"ln_c_weight": np.ones(G * H, f)}, ValueError,
             "ln_c_weight: expected shape (hidden_size,) = (3,), got (12,)"),
            ({"ln_c_bias": np.ones(H + 1, f)}, ValueError, "ln_c_bias: expected shape"),
            ({"ln_c_bias": np.ones(H, np.float64)}, TypeError, "ln_c_bias: expected dtype"),
            ({"c0": np.ones((2, H + 1), f)}, ValueError, "c0: expected shape"),
        ]
    return cases


@pytest.mark.parametrize("op", OPS)
def test_bad_arguments_are_named(op):
    G, H = GATES[op], 3
    f = np.float32
    base = {"x": np.ones((4, 2, 5), f), "w_ih": np.ones((G * H, 5), f),
            "w_hh": np.ones((G * H, H), f), "b_ih": np.ones(G * H, f)}
    forward = getattr(F, f"layer_norm_{op}_forward")
    for change, error, message in bad_cases(op):
        with pytest.raises(error) as info:
            forward(**dict(base, **change))
        assert str(info.value).startswith(message), (change, str(info.value))
    if op == "gru":
        for key in ("ln_c_weight", "ln_c_bias"):
            with pytest.raises(ValueError, match=f"{key}: only the LayerNorm LSTM"):
                rnnfast._C.layer_norm_recurrent_forward(
                    "gru", base["x"], base["w_ih"], base["w_hh"], None, None, None, None, None,
                    None, np.ones(H, f) if key == "ln_c_weight" else None,
                    np.ones(H, f) if key == "ln_c_bias" else None, eps=1e-5, lengths=None,
                    reverse=False, batch_first=False, training=False, zoneout=0.0,
                    zoneout_h=None, zoneout_c=None)


@pytest.mark.parametrize("op", OPS)
def test_backward_refuses_other_ctxs_and_bad_gradients(rng, op):
    other = "gru" if op == "lstm" else "lstm"
    args, _ = make_args(rng, op, 3, 2, 4, 5, np.float32)
    ctx = getattr(F, f"layer_norm_{op}_forward")(**args, training=True)[-1]
    backward = getattr(F, f"layer_norm_{op}_backward")
    other_ctx = getattr(F, f"layer_norm_{other}_forward")(
        **make_args(rng, other, 3, 2, 4, 5, np.float32)[0], training=True)[-1]
    with pytest.raises(ValueError, match=f"ctx: expected the ctx of layer_norm_{op}_forward"):
        backward(other_ctx)
    plain = F.lstm_forward(args["x"], np.ones((20, 4), np.float32), np.ones((20, 5), np.float32),
                           training=True)[-1]
    with pytest.raises(TypeError, match="ctx: expected the ctx returned by"):
        backward(plain)
    with pytest.raises(TypeError, match="ctx: expected the ctx returned by"):
        F.lstm_backward(ctx)
    with pytest.raises(ValueError, match="ctx: got None"):
        backward(None)
    with pytest.raises(ValueError, match=r"dy: expected shape \(seq_len, batch, hidden_size\)"):
        backward(ctx, np.ones((3, 2, 6), np.float32))
    with pytest.raises(TypeError, match="dh_n: expected dtype float32"):
        backward(ctx, None, np.ones((2, 5), np.float64))
    with pytest.raises(TypeError, match="cannot pickle or copy"):
        copy.copy(ctx)
    assert ctx.op == f"layer_norm_{op}" and f"layer_norm_{op}_forward" in repr(ctx)
    # a refused call leaves the ctx usable
    assert backward(ctx)["x"].shape == args["x"].shape


# ---------------------------------------------------------------------------- nn layers


def _torch_loop_module():
    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "_layer_norm_torch.py"
    spec = importlib.util.spec_from_file_location("_layer_norm_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYER_CASES = [  # num_layers, bidirectional, batch_first, bias, state, lengths
    (1, False, False, True, False, False),
    (2, True, True, True, True, False),
    (2, False, False, False, True, True),
    (1, True, False, True, False, True),
]


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,state,lengths", LAYER_CASES)
@pytest.mark.parametrize("op", OPS)
def test_layers_match_a_torch_loop_with_layer_norm(rng, op, num_layers, bidirectional,
                                                   batch_first, bias, state, lengths):
    torch = pytest.importorskip("torch")
    T, B, I, H = 5, 3, 4, 6
    cls = nn.LayerNormLSTM if op == "lstm" else nn.LayerNormGRU
    ours = cls(I, H, num_layers, bias=bias, batch_first=batch_first,
               bidirectional=bidirectional, dtype=np.float64, eps=1e-4, seed=1)
    for p in ours.parameters():  # gains and biases away from their initial ones and zeros
        p.data[...] += 0.2 * rng.standard_normal(p.shape)
    theirs = _torch_loop_module().TorchLayerNormRNN(
        op, I, H, num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
        eps=1e-4, dtype=torch.float64)
    theirs.load(ours.state_dict())
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    LD = num_layers * (2 if bidirectional else 1)
    h0 = rng.standard_normal((LD, B, H)) if state else None
    c0 = rng.standard_normal((LD, B, H)) if state else None
    lens = np.array([5, 2, 4]) if lengths else None
    st = (h0, c0) if op == "lstm" else h0
    y, s_n = ours(x, st if state else None, lengths=lens)

    xt = torch.tensor(x, requires_grad=True)
    st_t = None
    if state:
        st_t = tuple(torch.tensor(a, requires_grad=True) for a in (h0, c0))
    yt, s_t = theirs(xt, st_t if op == "lstm" or not state else (st_t[0],), lengths=lens)
    finals = s_n if op == "lstm" else (s_n,)
    finals_t = s_t if op == "lstm" else (s_t,)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    for a, b in zip(finals, finals_t):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=1e-12)

    dy = rng.standard_normal(y.shape)
    d_finals = [rng.standard_normal(a.shape) for a in finals]
    total = (yt * torch.from_numpy(dy)).sum()
    for a, d in zip(finals_t, d_finals):
        total = total + (a * torch.from_numpy(d)).sum()
    total.backward()
    dx, dstate0 = ours.backward(dy, tuple(d_finals) if op == "lstm" else d_finals[0])
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-11)
    if state:
        d0 = dstate0 if op == "lstm" else (dstate0,)
        for a, leaf in zip(d0, st_t):
            np.testing.assert_allclose(a, leaf.grad.numpy(), rtol=0, atol=1e-11)
    want = theirs.grads()
    got = {name: p.grad for name, p in ours.named_parameters()}
    assert set(got) == set(want)
    for name in got:
        np.testing.assert_allclose(got[name], want[name].numpy(), rtol=0, atol=1e-11,
                                   err_msg=name)


@pytest.mark.parametrize("op", OPS)
def test_layer_parameters_names_and_initialisation(op):
    cls = nn.LayerNormLSTM if op == "lstm" else nn.LayerNormGRU
    G = GATES[op]
    layer = cls(3, 5, num_layers=2, bidirectional=True, seed=0)
    shapes = {name: p.shape for name, p in layer.named_parameters()}
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih_weight", "ln_hh_weight"]
    names += ["ln_c_weight", "ln_c_bias"] if op == "lstm" else []
    expect = {}
    for layer_index in range(2):
        for sfx in ("", "_reverse"):
            for n in names:
                expect[f"{n}_l{layer_index}{sfx}"] = {
                    "weight_ih": (G * 5, 3 if layer_index == 0 else 10),
                    "weight_hh": (G * 5, 5)}.get(n, (5,) if n.startswith("ln_c") else (G * 5,))
    assert shapes == expect
    assert list(shapes) == list(expect)  # PyTorch's order per layer and direction
    sd = layer.state_dict()
    for name, value in sd.items():
        if name.startswith("ln_c_bias"):
            assert not value.any()
        elif name.startswith("ln_"):
            assert (value == 1).all()
        else:
            assert np.abs(value).max() <= 1 / np.sqrt(5) and value.std() > 0
    no_bias = cls(3, 5, bias=False)
    assert not any(n.startswith("bias") for n, _ in no_bias.named_parameters())
    assert any(n.startswith("ln_ih_weight") for n, _ in no_bias.named_parameters())
    assert "eps=0.001" in repr(cls(3, 5, eps=1e-3))
    with pytest.raises(ValueError, match="eps: expected a finite float > 0"):
        cls(3, 5, eps=0)
    with pytest.warns(UserWarning, match="dropout"):
        cls(3, 5, dropout=0.5)
    with pytest.raises(TypeError, match="reset_after: not an option"):
        nn.LayerNormGRU(3, 5, reset_after=False)


@pytest.mark.parametrize("op", OPS)
def test_layer_dropout_unbatched_and_state_dict(rng, op):
    cls = nn.LayerNormLSTM if op == "lstm" else nn.LayerNormGRU
    layer = cls(4, 6, num_layers=2, dropout=0.5, seed=3, dtype=np.float64)
    x = rng.standard_normal((5, 4))
    layer.eval()
    y, _ = layer(x)
    assert y.shape == (5, 6)
    y_batched, _ = layer(x[:, None])
    np.testing.assert_array_equal(y, y_batched[:, 0])
    # an equal layer from the state dict gives the same outputs
    other = cls(4, 6, num_layers=2, seed=9, dtype=np.float64)
    other.load_state_dict(layer.state_dict())
    other.eval()
    np.testing.assert_array_equal(other(x)[0], y)
    # dropout only in training, and its masks reach the backward
    layer.train()
    y_train, _ = layer(x[:, None])
    assert not np.array_equal(y_train, y_batched)
    dx, _ = layer.backward(np.ones_like(y_train))
    assert dx.shape == (5, 1, 4) and np.isfinite(dx).all()


@pytest.mark.parametrize("op", OPS)
def test_stack_row_runs_the_layer_norm_kernel(rng, op):
    """RecurrentStack("layer_norm_*") is the functional kernel once per layer and direction,
    with the layer norm parameters and eps passed on."""
    stack = RecurrentStack(f"layer_norm_{op}", 3, 4, num_layers=2, bidirectional=True, eps=1e-3)
    weights = {name: rng.standard_normal(shape) for name, shape in stack.shapes.items()}
    x = rng.standard_normal((5, 2, 3))
    y, h_n, c_n, ctx = stack.forward(weights, x, training=True)
    forward = getattr(F, f"layer_norm_{op}_forward")

    def direction(k, inp):
        return forward(inp, **{key: weights[name] for key, name in stack._keys[k]},
                       reverse=k % 2 == 1, eps=1e-3)

    layer0 = np.concatenate([direction(0, x)[0], direction(1, x)[0]], axis=-1)
    outs = [direction(2, layer0), direction(3, layer0)]
    np.testing.assert_array_equal(y, np.concatenate([outs[0][0], outs[1][0]], axis=-1))
    np.testing.assert_array_equal(h_n[3], outs[1][1])
    assert (c_n is not None) == (op == "lstm")
    if op == "lstm":
        np.testing.assert_array_equal(c_n[2], outs[0][2])
    assert not np.array_equal(y, RecurrentStack(f"layer_norm_{op}", 3, 4, num_layers=2,
                                                bidirectional=True).forward(weights, x)[0])
    dx, _, _, grads = stack.backward(ctx, np.ones_like(y))
    assert set(grads) == set(stack.shapes) and dx.shape == x.shape


@pytest.mark.parametrize("op", OPS)
def test_stack_refuses_bfloat16_for_the_layer_norm_cells(rng, op):
    """The LayerNorm cells have no bfloat16 kernel: a stack asked for it says so by name,
    and the plain cells of the same stack code still take it."""
    stack = RecurrentStack(f"layer_norm_{op}", 3, 4, precision="bfloat16")
    weights = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in stack.shapes.items()}
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"precision: the layer_norm_\w+ cell computes in "
                                         r"float32 only, got 'bfloat16'"):
        stack.forward(weights, x)
    plain = RecurrentStack(op, 3, 4, precision="bfloat16")
    y = plain.forward({name: rng.standard_normal(shape).astype(np.float32)
                       for name, shape in plain.shapes.items()}, x)[0]
    assert y.shape == (5, 2, 4)


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU, nn.LayerNormLSTM, nn.LayerNormGRU])
@pytest.mark.parametrize("value,err,shown", [(1.0, ValueError, "1.0"), (-0.1, ValueError, "-0.1"),
                                             (float("nan"), ValueError, "nan"),
                                             ("x", TypeError, "str"), (True, TypeError, "bool"),
                                             (None, TypeError, "NoneType")])
def test_layers_refuse_bad_zoneout_with_one_message(cls, value, err, shown):
    """Every recurrent layer checks zoneout with one rule and one message: a float in [0, 1)
    (1.0 as much as -0.1 or a str)."""
    with pytest.raises(err) as info:
        cls(3, 4, zoneout=value)
    assert str(info.value) == f"zoneout: expected a float in [0, 1), got {shown}"


@pytest.mark.parametrize("value", ["yes", "", 1, 0, 1.0, None, np.array(True)])
def test_lstm_peephole_must_be_a_bool(value):
    """peephole is a bool: a str or a number is refused by name, not read as its truth value
    (nn.LSTM(peephole="yes") made peepholes; "" and 0 silently none)."""
    with pytest.raises(TypeError) as info:
        nn.LSTM(3, 4, peephole=value)
    assert str(info.value).startswith("peephole: expected a bool, got ")
    for flag in (True, False, np.bool_(True)):
        assert nn.LSTM(3, 4, peephole=flag).peephole == bool(flag)
    assert "weight_peephole_l0" in nn.LSTM(3, 4, peephole=np.bool_(True)).state_dict()


@pytest.mark.parametrize("value", ["no", "", 1, 0, None])
def test_gru_reset_after_must_be_a_bool(value):
    """reset_after is a bool, checked as peephole is (reset_after="no" made Cho's variant the
    other way round: any non-empty str read as True)."""
    with pytest.raises(TypeError) as info:
        nn.GRU(3, 4, reset_after=value)
    assert str(info.value).startswith("reset_after: expected a bool, got ")
    for flag in (True, False, np.bool_(False)):
        assert nn.GRU(3, 4, reset_after=flag).reset_after == bool(flag)
