"""precision="bfloat16" on the functional ops (recurrent cells and Conv1D, forward and backward).

The yardstick is PyTorch under ``torch.autocast("cpu", dtype=torch.bfloat16)`` on the same
inputs and weights: against the float64 reference, the error (root mean square over the
elements) of every output and gradient of ours must be at most twice torch's (measured here, in
the test). PyTorch has no GRU with the reset gate before the recurrent product
(reset_after=False): its yardstick is the error of torch's GRU (against the reference of that
cell) on the same inputs and weights. Every bfloat16 path this machine has is tested; the paths must
agree with each other within bfloat16 rounding.
"""
import numpy as np
import pytest

import rnnfast
import rnnfast.functional as F
import rnnfast.reference as R
from recurrent_cases import (CELLS, as64, assert_bitwise_equal, make_inputs, run, upstream,
                             with_threads)

try:
    import torch
except ImportError:  # the comparisons with torch are skipped, the rest still runs
    torch = None

BF16_ISAS = rnnfast.supported_bf16_isas()
BF16 = 2.0 ** -8  # bfloat16's unit roundoff


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    before = rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(request.param)
    # under an instruction set other than avx512 every path runs the portable kernels
    expected = request.param if rnnfast.active_isa() == "avx512" else "portable"
    assert rnnfast.active_bf16_isa() == expected
    yield request.param
    rnnfast.set_bf16_isa(before if before in BF16_ISAS else "portable")


def torch_or_skip():
    if torch is None:
        pytest.skip("torch is not installed: no autocast yardstick")
    return torch


def max_err(got, want):
    return float(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).max())


def rms_err(got, want):
    d = np.asarray(got, np.float64) - np.asarray(want, np.float64)
    return float(np.sqrt(np.mean(d * d)))


# ------------------------------------------------------------------ recurrent


def torch_recurrent(op, opts, args, grads):
    """Outputs and gradients of torch's cell under autocast bfloat16 (float32 parameters)."""
    t = torch_or_skip()
    x = args["x"]
    T, B, I = x.shape
    H = args["w_hh"].shape[1]
    if op == "lstm":
        m = t.nn.LSTM(I, H)
    elif op == "gru":
        m = t.nn.GRU(I, H)
    else:
        m = t.nn.RNN(I, H, nonlinearity=opts["nonlinearity"])
    with t.no_grad():
        m.weight_ih_l0.copy_(t.from_numpy(args["w_ih"]))
        m.weight_hh_l0.copy_(t.from_numpy(args["w_hh"]))
        m.bias_ih_l0.copy_(t.from_numpy(args["b_ih"]))
        m.bias_hh_l0.copy_(t.from_numpy(args["b_hh"]))
    xt = t.from_numpy(x.copy()).requires_grad_()
    h0 = t.from_numpy(args["h0"][None].copy()).requires_grad_()
    c0 = t.from_numpy(args["c0"][None].copy()).requires_grad_() if op == "lstm" else None
    with t.autocast("cpu", dtype=t.bfloat16):
        y, state = m(xt, (h0, c0) if op == "lstm" else h0)
    h_n = state[0] if op == "lstm" else state
    loss = (y.float() * t.from_numpy(grads["dy"])).sum()
    loss = loss + (h_n.float()[0] * t.from_numpy(grads["dh_n"])).sum()
    outputs = {"y": y.float().detach().numpy(), "h_n": h_n.float()[0].detach().numpy()}
    if op == "lstm":
        loss = loss + (state[1].float()[0] * t.from_numpy(grads["dc_n"])).sum()
        outputs["c_n"] = state[1].float()[0].detach().numpy()
    loss.backward()
    g = {"x": xt.grad.numpy(), "h0": h0.grad[0].numpy(), "w_ih": m.weight_ih_l0.grad.numpy(),
         "w_hh": m.weight_hh_l0.grad.numpy(), "b_ih": m.bias_ih_l0.grad.numpy(),
         "b_hh": m.bias_hh_l0.grad.numpy()}
    if op == "lstm":
        g["c0"] = c0.grad[0].numpy()
    return outputs, g


# (T, B, I, H): T = 1 and B = 1 with enough features for a meaningful mean error, odd sizes,
# and one where the hardware paths use several panels and row tiles.
SHAPES = [(1, 1, 24, 40), (7, 3, 5, 9), (12, 17, 33, 40), (9, 32, 48, 130)]


@pytest.mark.parametrize("op,opts,cell", CELLS, ids=[c[2] for c in CELLS])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("seed", [0, 1])
def test_recurrent_bf16_error_at_most_twice_torch_autocast(op, opts, cell, shape, seed, bf16_isa):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    args, _ = make_inputs(rng, op, T, B, I, H, np.float32)
    grads = upstream(rng, op, (T, B, H), B, H, np.float32)
    ref_out, ref_grads = run(R, op, as64(args), opts, as64(grads))
    out, got = run(F, op, args, {**opts, "precision": "bfloat16"}, grads)
    t_out, t_grads = torch_recurrent(op, opts, args, grads)
    t_ref_out, t_ref_grads = ref_out, ref_grads
    if cell == "gru_reset_before":  # torch's cell is reset_after: its own reference
        t_ref_out, t_ref_grads = run(R, op, as64(args), {"reset_after": True}, as64(grads))
    for name in out:
        assert out[name].dtype == np.float32
        ours, theirs = rms_err(out[name], ref_out[name]), rms_err(t_out[name], t_ref_out[name])
        assert ours <= 2 * theirs, (name, ours, theirs)
    for name, g in got.items():
        if g is None:  # an optional argument not given (the LSTM's w_hr, w_peephole)
            assert ref_grads[name] is None, name
            continue
        assert g.dtype == np.float32
        ours = rms_err(g, ref_grads[name])
        theirs = rms_err(t_grads[name], t_ref_grads[name])
        assert ours <= 2 * theirs, ("d" + name, ours, theirs)


@pytest.mark.parametrize("op,opts,cell", CELLS, ids=[c[2] for c in CELLS])
def test_recurrent_bf16_paths_agree_within_bfloat16_rounding(op, opts, cell):
    """Every path multiplies the same rounded operands; only float32 summation order (and the
    instructions' flushing of subnormals) differs, and a state that lands on the other side
    of a bfloat16 rounding boundary: within a few units of bfloat16 rounding."""
    rng = np.random.default_rng(7)
    T, B, I, H = 10, 20, 37, 70
    args, _ = make_inputs(rng, op, T, B, I, H, np.float32)
    grads = upstream(rng, op, (T, B, H), B, H, np.float32)
    before = rnnfast.active_bf16_isa()
    results = {}
    try:
        for isa in BF16_ISAS:
            rnnfast.set_bf16_isa(isa)
            results[isa] = run(F, op, args, {**opts, "precision": "bfloat16"}, grads)
    finally:
        rnnfast.set_bf16_isa(before)
    base_out, base_grads = results["portable"]
    ref_out, ref_grads = run(R, op, as64(args), opts, as64(grads))
    for isa, (out, got) in results.items():
        for name in out:
            scale = np.abs(ref_out[name]).max()
            assert max_err(out[name], base_out[name]) <= 8 * BF16 * max(1.0, scale), (isa, name)
        for name in got:
            if got[name] is None:
                continue
            scale = np.abs(ref_grads[name]).max()
            assert max_err(got[name], base_grads[name]) <= 8 * BF16 * max(1.0, scale), (isa, name)


@pytest.mark.parametrize("op,opts,cell", CELLS, ids=[c[2] for c in CELLS])
@pytest.mark.parametrize("variant", ["lengths", "reverse_lengths", "batch_first", "no_bias_h0"])
def test_recurrent_bf16_options(op, opts, cell, variant, bf16_isa):
    """Ragged batches, reversed runs, batch-first layouts and missing biases/states take the
    bfloat16 products too. Yardstick: the float64 reference on the inputs, weights and initial
    states rounded to bfloat16 (a ReLU whose input rounding flips a sign changes a gradient
    entirely, in any bfloat16 computation); what remains is the rounding of the recurrent h
    and the float32 sums (root mean square error relative to the reference's). float32 is far
    closer to the unrounded reference (the option is honoured); padded steps are zeros."""
    rng = np.random.default_rng(3)
    T, B, I, H = 8, 6, 11, 35
    bf = variant == "batch_first"
    args, lens = make_inputs(rng, op, T, B, I, H, np.float32, batch_first=bf,
                             lengths=variant.endswith("lengths"),
                             bias=variant != "no_bias_h0", h0=variant != "no_bias_h0")
    o = dict(opts, batch_first=bf, lengths=lens, reverse=variant.startswith("reverse"))
    y_shape = (B, T, H) if bf else (T, B, H)
    grads = upstream(rng, op, y_shape, B, H, np.float32)
    rounded = {k: (v if v is None or k in ("b_ih", "b_hh") else rnnfast._C.round_bf16(v))
               for k, v in args.items()}
    ref_out, ref_grads = run(R, op, as64(rounded), o, as64(grads))
    exact_out, exact_grads = run(R, op, as64(args), o, as64(grads))
    out16, g16 = run(F, op, args, {**o, "precision": "bfloat16"}, grads)
    out32, g32 = run(F, op, args, o, grads)

    def rel(got, want):
        return rms_err(got, want) / max(1e-30, float(np.sqrt(np.mean(np.square(want)))))

    for name in out16:
        assert rel(out16[name], ref_out[name]) <= 2 * BF16, name
        err16 = rel(out16[name], exact_out[name])
        assert rel(out32[name], exact_out[name]) < err16 / 16, name
    for name, g in g16.items():
        if g is None:
            assert ref_grads[name] is None
            continue
        assert rel(g, ref_grads[name]) <= 4 * BF16, "d" + name
        err16 = rel(g, exact_grads[name])
        assert rel(g32[name], exact_grads[name]) < err16 / 16, "d" + name
    if lens is not None:
        y = out16["y"]
        for b, n in enumerate(lens):
            pad = y[b, n:] if bf else y[n:, b]
            assert not pad.any()


@pytest.mark.parametrize("op,opts,cell", CELLS, ids=[c[2] for c in CELLS])
@pytest.mark.parametrize("shape", [(1, 1, 5, 9), (7, 3, 5, 9), (9, 32, 48, 130)],
                         ids=["1x1x5x9", "7x3x5x9", "9x32x48x130"])
def test_recurrent_bf16_bias_gradients_are_float32_sums(op, opts, cell, shape, bf16_isa):
    """The bias gradients are float32 sums of the unrounded gate gradients (the hardware paths
    take them in the pass that rounds the gate gradients for the weight products). With
    W_hh = 0 and inputs, W_ih and biases of few bits, every product and sum of the forward is
    exact: both precisions compute the same gates and gate gradients, so the bias gradients
    differ only by the order of float32 sums (rounding the gate gradients to bfloat16 would
    show 100x more), and the weight gradients by the rounding of the gate gradients and of h
    in their products (the columns of x and h_prev each meet the right gate gradients)."""
    T, B, I, H = shape
    rng = np.random.default_rng(T + B + I + H)
    args, _ = make_inputs(rng, op, T, B, I, H, np.float32)
    G = args["w_ih"].shape[0] // H
    args["x"] = (rng.integers(-2, 3, size=args["x"].shape) / 2).astype(np.float32)
    args["w_ih"] = (rng.integers(-4, 5, size=(G * H, I)) / 16).astype(np.float32)
    args["w_hh"] = np.zeros((G * H, H), np.float32)
    for k in ("b_ih", "b_hh"):
        args[k] = (rng.integers(-4, 5, size=G * H) / 16).astype(np.float32)
    grads = upstream(rng, op, (T, B, H), B, H, np.float32)
    _, g16 = run(F, op, args, {**opts, "precision": "bfloat16"}, grads)
    _, g32 = run(F, op, args, opts, grads)
    rows = T * B
    for name in ("b_ih", "b_hh"):
        scale = max(1.0, float(np.abs(g32[name]).max()))
        assert max_err(g16[name], g32[name]) <= rows * 2.0 ** -23 * scale, "d" + name
    for name in ("w_ih", "w_hh", "x"):
        rms = float(np.sqrt(np.mean(np.square(g32[name].astype(np.float64)))))
        assert rms_err(g16[name], g32[name]) <= 2.0 ** -5 * rms, "d" + name


# Batches of 16 or more RNN/LSTM sequences that all span every step take the weight and bias
# gradients inside the reverse loop, by two fixed groups of sequences and blocks of ~128 rows,
# and dx step by step (test_backward_direct.py has the float32 cases): several blocks and a
# last block of one step, [x | h_prev] past one GEMM panel, a group past the 128 rows of a
# block.
LOOP_WEIGHTS = [("lstm", {}, 29, 17, 6, 23), ("lstm", {}, 11, 17, 70, 75),
                ("rnn", {"nonlinearity": "tanh"}, 7, 16, 90, 61), ("lstm", {}, 3, 520, 5, 130)]


@pytest.mark.parametrize("batch_first,reverse", [(False, False), (True, False), (False, True),
                                                 (True, True)])
@pytest.mark.parametrize("case", LOOP_WEIGHTS,
                         ids=["{}-{}x{}x{}x{}".format(c[0], *c[2:]) for c in LOOP_WEIGHTS])
def test_recurrent_bf16_weight_gradients_inside_the_loop(case, batch_first, reverse, bf16_isa):
    """The yardstick of test_recurrent_bf16_options (the float64 reference on the rounded
    inputs and weights), and the same bits at 1, 2 and 3 threads (the groups are fixed by the
    shape)."""
    op, opts, T, B, I, H = case
    rng = np.random.default_rng(T + B)
    args, _ = make_inputs(rng, op, T, B, I, H, np.float32, batch_first=batch_first)
    o = dict(opts, batch_first=batch_first, reverse=reverse)
    grads = upstream(rng, op, (B, T, H) if batch_first else (T, B, H), B, H, np.float32)
    rounded = {k: (v if v is None or k in ("b_ih", "b_hh") else rnnfast._C.round_bf16(v))
               for k, v in args.items()}
    ref_out, ref_grads = run(R, op, as64(rounded), o, as64(grads))
    results = with_threads([1, 2, 3],
                           lambda: run(F, op, args, {**o, "precision": "bfloat16"}, grads))
    assert_bitwise_equal(results)
    out16, g16 = results[0]

    def rel(got, want):
        return rms_err(got, want) / max(1e-30, float(np.sqrt(np.mean(np.square(want)))))

    for name in out16:
        assert rel(out16[name], ref_out[name]) <= 2 * BF16, name
    for name, g in g16.items():
        if g is not None:
            assert rel(g, ref_grads[name]) <= 4 * BF16, "d" + name


def test_recurrent_bf16_inference_equals_training_forward(bf16_isa):
    """Inference projects the inputs in windows of steps through packed weights, training all
    rows at once: the same values either way."""
    rng = np.random.default_rng(5)
    args, _ = make_inputs(rng, "lstm", 16, 5, 24, 40, np.float32)
    try:
        rnnfast._C._set_projection_window_bytes(4 * 160 * 5 * 3)  # windows of 3 steps
        y_inf = F.lstm_forward(**args, precision="bfloat16")[0]
    finally:
        rnnfast._C._set_projection_window_bytes(0)
    y_train = F.lstm_forward(**args, precision="bfloat16", training=True)[0]
    np.testing.assert_array_equal(y_inf, y_train)


def test_recurrent_bf16_results_do_not_depend_on_thread_count(bf16_isa):
    rng = np.random.default_rng(11)
    args, _ = make_inputs(rng, "gru", 6, 48, 64, 96, np.float32)
    grads = upstream(rng, "gru", (6, 48, 96), 48, 96, np.float32)
    before = rnnfast.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            results.append(run(F, "gru", args, {"precision": "bfloat16"}, grads))
    finally:
        rnnfast.set_num_threads(before)
    for out, got in results[1:]:
        for name in out:
            np.testing.assert_array_equal(out[name], results[0][0][name])
        for name in got:
            if got[name] is not None:
                np.testing.assert_array_equal(got[name], results[0][1][name])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_bf16_gate_blocked_inference_does_not_depend_on_thread_count(cell, bf16_isa):
    """Inference sharing each step between threads packs W_hh^T and W_ih^T in blocks of hidden
    units (straight from the weights on the hardware paths); one thread packs them as they
    are. H not a multiple of the panel width; weights past L2, so the inputs are projected in
    windows by blocks (one thread) or, on the hardware paths, in windows of each thread's
    sequences (two and three). Every thread count gives the training forward's values."""
    rng = np.random.default_rng(12)
    args, _ = make_inputs(rng, cell, 9, 64, 300, 300, np.float32)
    forward = getattr(F, cell + "_forward")
    before = rnnfast.get_num_threads()
    try:
        rnnfast.set_num_threads(1)
        want = forward(**args, precision="bfloat16", training=True)[0]
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            np.testing.assert_array_equal(forward(**args, precision="bfloat16")[0], want)
    finally:
        rnnfast.set_num_threads(before)


def assert_inference_gives_the_training_values(args, opts, window_bytes, train_threads=1):
    """The LSTM's inference (y, h_n, c_n) at 1, 2 and 3 threads, with the default windows and
    with windows of window_bytes of projection, equals the training forward's (run at
    train_threads) bit for bit."""
    before = rnnfast.get_num_threads()
    try:
        rnnfast.set_num_threads(train_threads)
        want = F.lstm_forward(**args, **opts, training=True)[:3]
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            for budget in (0, window_bytes):
                rnnfast._C._set_projection_window_bytes(budget)
                try:
                    got = F.lstm_forward(**args, **opts)[:3]
                finally:
                    rnnfast._C._set_projection_window_bytes(0)
                for g, w in zip(got, want):
                    np.testing.assert_array_equal(g, w)
    finally:
        rnnfast.set_num_threads(before)


@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_bf16_windows_by_blocks_with_a_short_last_window(batch_first, bf16_isa):
    """On the hardware paths the inputs of each window are rounded once for every thread, and
    the state each step by the threads that computed its blocks: windows of 3 steps over 11
    (the last one short, its rows fewer than the buffer's), 37 sequences (not a multiple of a
    tile's 16 rows), lengths, batch_first, H not a multiple of the panel width. Inference
    gives the training forward's values on every thread count."""
    rng = np.random.default_rng(21)
    T, B, H = 11, 37, 300
    args, lens = make_inputs(rng, "lstm", T, B, H, H, np.float32, batch_first=batch_first,
                             lengths=True)
    opts = {"precision": "bfloat16", "lengths": lens, "batch_first": batch_first}
    assert_inference_gives_the_training_values(args, opts, 3 * B * 4 * 320 * 4)  # ~3 steps


@pytest.mark.parametrize("batch_first,reverse", [(False, False), (True, False), (False, True)])
def test_recurrent_bf16_large_weights_shared_by_blocks(batch_first, reverse, bf16_isa):
    """With AMX, inference whose W_hh^T is large (at least 4 MiB in bfloat16, and 128 KiB per
    row of each thread's sequences: H = 730, B = 16) shares each step between the threads by
    blocks of units and projects the inputs by blocks (BlockedWindows), where other shapes of
    16 or more sequences take disjoint sequences: windows of about 2 steps over 7 and the
    default ones, batch_first, reversed. Every thread count gives the training forward's
    values (which takes sequences at two threads)."""
    rng = np.random.default_rng(33)
    T, B, I, H = 7, 16, 40, 730
    args, _ = make_inputs(rng, "lstm", T, B, I, H, np.float32, batch_first=batch_first)
    opts = {"precision": "bfloat16", "batch_first": batch_first, "reverse": reverse}
    assert_inference_gives_the_training_values(args, opts, 2 * B * 4 * 736 * 4, 2)  # ~2 steps


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_bf16_reversed_windows_of_each_threads_sequences(cell, batch_first, bf16_isa):
    """Reversed sequences (no lengths) projected in windows of the sequences each thread takes
    (on the hardware paths their inputs rounded straight from x's rows, by time steps from the
    last): windows of about 2 steps over 7 (the last one short), 35 sequences. The training
    forward's values on every thread count."""
    rng = np.random.default_rng(23)
    T, B, H = 7, 35, 300
    args, _ = make_inputs(rng, cell, T, B, H, H, np.float32, batch_first=batch_first)
    forward = getattr(F, cell + "_forward")
    opts = {"precision": "bfloat16", "reverse": True, "batch_first": batch_first}
    G = 4 if cell == "lstm" else 3
    before = rnnfast.get_num_threads()
    try:
        rnnfast.set_num_threads(1)
        want = forward(**args, **opts, training=True)[0]
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            for budget in (0, 2 * B * G * H * 4):
                rnnfast._C._set_projection_window_bytes(budget)
                try:
                    np.testing.assert_array_equal(forward(**args, **opts)[0], want)
                finally:
                    rnnfast._C._set_projection_window_bytes(0)
    finally:
        rnnfast.set_num_threads(before)


@pytest.mark.parametrize("B, H, batch_first", [(37, 48, False), (12, 100, True)])
def test_recurrent_bf16_merged_lstm_does_not_depend_on_thread_count(B, H, batch_first,
                                                                    bf16_isa):
    """The LSTM whose weights fit in L2 multiplies [x_t, h] by [W_ih, W_hh]^T at each step (on
    the hardware paths x and h rounded into one left operand: x by the thread of the first
    block, h by each block's thread). I not a multiple of a tile's 32 columns, lengths; 37
    sequences by sequences per thread, 12 sharing each step by blocks of 32 units (H = 100).
    Inference gives the one-thread training forward's values on every thread count, and the
    training forward and backward do not depend on it."""
    rng = np.random.default_rng(31)
    args, lens = make_inputs(rng, "lstm", 13, B, 40, H, np.float32, batch_first=batch_first,
                             lengths=True)
    opts = {"precision": "bfloat16", "lengths": lens, "batch_first": batch_first}
    shape = (B, 13, H) if batch_first else (13, B, H)
    grads = upstream(rng, "lstm", shape, B, H, np.float32)
    before = rnnfast.get_num_threads()
    try:
        rnnfast.set_num_threads(1)
        want = F.lstm_forward(**args, **opts, training=True)[:3]
        trained = run(F, "lstm", args, opts, grads)
        for n in (1, 2, 3):
            rnnfast.set_num_threads(n)
            for g, w in zip(F.lstm_forward(**args, **opts)[:3], want):
                np.testing.assert_array_equal(g, w)
            out, got = run(F, "lstm", args, opts, grads)
            for name in out:
                np.testing.assert_array_equal(out[name], trained[0][name])
            for name in got:
                if got[name] is not None:
                    np.testing.assert_array_equal(got[name], trained[1][name])
    finally:
        rnnfast.set_num_threads(before)


def test_recurrent_bf16_rounds_the_products_only():
    """bfloat16 operands give the same result in either precision (their products are exact
    in float32), up to float32 summation order; float32 operands do not."""
    rng = np.random.default_rng(2)
    args, _ = make_inputs(rng, "lstm", 5, 4, 16, 32, np.float32, h0=False)
    rounded = dict(args)
    for k in ("x", "w_ih", "w_hh"):
        rounded[k] = rnnfast._C.round_bf16(args[k])
    y_exact = F.lstm_forward(**args)[0]
    y16 = F.lstm_forward(**args, precision="bfloat16")[0]
    assert max_err(y16, y_exact) > 1e-4  # the rounding shows
    # the recurrent h is rounded only where it enters a product: with pre-rounded inputs and
    # weights the difference to float32 comes from h alone and stays at bfloat16 level
    y_pre = F.lstm_forward(**rounded)[0]
    y_pre16 = F.lstm_forward(**rounded, precision="bfloat16")[0]
    assert max_err(y_pre16, y_pre) <= 4 * BF16
    # the first step's recurrent product reads h0 = 0: no rounding of h at all there
    np.testing.assert_allclose(y_pre16[0], y_pre[0], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ conv1d


def torch_conv(x, w, b, dy, stride, padding, dilation, groups):
    t = torch_or_skip()
    xt = t.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).requires_grad_()
    wt = t.from_numpy(w.copy()).requires_grad_()
    bt = t.from_numpy(b.copy()).requires_grad_()
    with t.autocast("cpu", dtype=t.bfloat16):
        y = t.nn.functional.conv1d(xt, wt, bt, stride=stride, padding=padding,
                                   dilation=dilation, groups=groups)
    (y.float() * t.from_numpy(np.ascontiguousarray(dy.transpose(0, 2, 1)))).sum().backward()
    return (y.float().detach().numpy().transpose(0, 2, 1),
            {"x": xt.grad.numpy().transpose(0, 2, 1), "w": wt.grad.numpy(), "b": bt.grad.numpy()})


CONV_CASES = [  # (B, L, C_in, C_out, K, stride, padding, dilation, groups)
    (1, 5, 3, 4, 3, 1, 0, 1, 1),
    (3, 40, 16, 24, 5, 1, 2, 1, 1),
    (2, 33, 12, 18, 3, 2, 1, 2, 3),
    (4, 64, 8, 8, 7, 1, 3, 1, 8),  # depthwise
    (2, 50, 64, 96, 3, 1, 1, 1, 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=["-".join(map(str, c)) for c in CONV_CASES])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("channels_last", [True, False])
def test_conv1d_bf16_error_at_most_twice_torch_autocast(case, seed, channels_last, bf16_isa):
    B, L, C, O, K, stride, pad, dil, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, L, C)).astype(np.float32)
    w = (rng.standard_normal((O, C // groups, K)) / np.sqrt(C // groups * K)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y_ref, ctx_ref = R.conv1d_forward(x.astype(np.float64), w.astype(np.float64),
                                      b.astype(np.float64), training=True, **kw)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    g_ref = R.conv1d_backward(ctx_ref, dy.astype(np.float64))

    def to_layout(a):
        return a if channels_last else np.ascontiguousarray(a.transpose(0, 2, 1))

    y, ctx = F.conv1d_forward(to_layout(x), w, b, channels_last=channels_last, training=True,
                              precision="bfloat16", **kw)
    g = F.conv1d_backward(ctx, to_layout(dy))
    y = to_layout(y)  # back to (B, L, C)
    g["x"] = to_layout(g["x"])
    y_t, g_t = torch_conv(x, w, b, dy, stride, pad, dil, groups)
    ours, theirs = rms_err(y, y_ref), rms_err(y_t, y_ref)
    assert ours <= 2 * theirs, ("y", ours, theirs)
    for name in ("x", "w", "b"):
        ours, theirs = rms_err(g[name], g_ref[name]), rms_err(g_t[name], g_ref[name])
        assert ours <= 2 * theirs, ("d" + name, ours, theirs)


def test_conv1d_bf16_equals_float32_on_rounded_operands():
    """The definition: x, w and dy rounded to bfloat16, products summed in float32."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 30, 10)).astype(np.float32)
    w = rng.standard_normal((14, 10, 3)).astype(np.float32)
    b = rng.standard_normal(14).astype(np.float32)
    y16, ctx16 = F.conv1d_forward(x, w, b, training=True, precision="bfloat16")
    xr, wr = rnnfast._C.round_bf16(x), rnnfast._C.round_bf16(w)
    y32, ctx32 = F.conv1d_forward(xr, wr, b, training=True)
    np.testing.assert_array_equal(y16, y32)
    dy = rng.standard_normal(y16.shape).astype(np.float32)
    g16 = F.conv1d_backward(ctx16, dy)
    g32 = F.conv1d_backward(ctx32, rnnfast._C.round_bf16(dy))
    np.testing.assert_array_equal(g16["x"], g32["x"])
    np.testing.assert_array_equal(g16["w"], g32["w"])
    # the bias gradient sums dy itself (no product)
    np.testing.assert_allclose(g16["b"], dy.sum(axis=(0, 1)), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ arguments and dtypes


def test_precision_argument_is_checked():
    rng = np.random.default_rng(0)
    args, _ = make_inputs(rng, "lstm", 3, 2, 4, 5, np.float32)
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16', got 'float16'"):
        F.lstm_forward(**args, precision="float16")
    with pytest.raises(TypeError, match="precision: expected 'float32' or 'bfloat16', got None"):
        F.gru_forward(args["x"], np.zeros((15, 4), np.float32), np.zeros((15, 5), np.float32),
                      precision=None)
    args64 = {k: v.astype(np.float64) for k, v in args.items()}
    with pytest.raises(TypeError, match="precision 'bfloat16': expected float32 arrays, got x of "
                                        "dtype float64"):
        F.lstm_forward(**args64, precision="bfloat16")
    x = np.zeros((1, 5, 3))
    with pytest.raises(TypeError, match="precision 'bfloat16'"):
        F.conv1d_forward(x, np.zeros((2, 3, 1)), precision="bfloat16")
    with pytest.raises(ValueError, match="precision"):
        F.conv1d_forward(x, np.zeros((2, 3, 1)), precision="bf16")


def test_ctx_records_the_precision():
    rng = np.random.default_rng(0)
    args, _ = make_inputs(rng, "rnn", 3, 2, 4, 5, np.float32)
    ctx = F.rnn_forward(**args, precision="bfloat16", training=True)[2]
    assert "precision bfloat16" in repr(ctx)
    assert "precision" not in repr(F.rnn_forward(**args, training=True)[2])


def test_ml_dtypes_bfloat16_arrays_are_accepted():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(1)
    args, _ = make_inputs(rng, "gru", 4, 3, 6, 7, np.float32)
    bf = {k: v.astype(ml_dtypes.bfloat16) for k, v in args.items()}
    widened = {k: v.astype(np.float32) for k, v in bf.items()}
    for precision in ("float32", "bfloat16"):
        y, h, ctx = F.gru_forward(**bf, precision=precision, training=True)
        y_w, h_w, ctx_w = F.gru_forward(**widened, precision=precision, training=True)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, y_w)
        np.testing.assert_array_equal(h, h_w)
        dy = rng.standard_normal(y.shape).astype(ml_dtypes.bfloat16)
        g = F.gru_backward(ctx, dy)
        g_w = F.gru_backward(ctx_w, dy.astype(np.float32))
        for name in g:
            np.testing.assert_array_equal(g[name], g_w[name])
    x = rng.standard_normal((2, 9, 4)).astype(ml_dtypes.bfloat16)
    w = rng.standard_normal((3, 4, 2)).astype(np.float32)
    y, ctx = F.conv1d_forward(x, w, precision="bfloat16", training=True)
    np.testing.assert_array_equal(y, F.conv1d_forward(x.astype(np.float32), w,
                                                      precision="bfloat16")[0])
    assert F.conv1d_backward(ctx, y.astype(ml_dtypes.bfloat16))["w"].dtype == np.float32
