"""Non-finite values: a NaN in one batch entry never reaches another entry's outputs or input
gradients (every cell, conv, pools); values at padded positions never reach y, the states or
dx; gates driven to +-inf saturate (sigmoid 0/1, tanh +-1) and stay finite.

What inf does, for the record: a gate pre-activation of +-inf saturates its gate, so the outputs
and the input/state gradients stay finite; only where +inf and -inf meet in one sum (two inputs of
opposite sign) does the pre-activation become NaN. The weight gradients multiply the saturated
gates' zero (or tiny) derivative by the infinite input, so dw_ih is NaN or inf. A relu RNN is
unbounded: +inf goes through. NaN anywhere gives NaN downstream of it, and only there.
"""
import numpy as np
import pytest

from rnnfast import functional as F
from recurrent_cases import CELLS, make_inputs, upstream

T, B, I, H = 6, 4, 5, 7
VICTIM = 2  # the batch entry that gets the NaN


def recurrent_all(op, kw, args, grads, options):
    out = getattr(F, op + "_forward")(**args, **kw, **options, training=True)
    names = ["y", "h_n", "c_n"] if op == "lstm" else ["y", "h_n"]
    outputs = dict(zip(names, out[:-1]))
    return outputs, getattr(F, op + "_backward")(out[-1], **grads)


def batch_axis(name, batch_first):
    """Axis of the batch in an output or gradient called name."""
    return 0 if name in ("h_n", "c_n", "h0", "c0") or batch_first else 1


def others(a, axis):
    return np.delete(a, VICTIM, axis=axis)


OPTIONS = {
    "plain": dict(),
    "lengths": dict(lengths=True),
    "lengths-reverse-batch_first": dict(lengths=True, reverse=True, batch_first=True),
}


WHERE = [(op, kw, cell, where) for op, kw, cell in CELLS
         for where in ["x", "h0", "c0", "dy", "dh_n", "dc_n"]
         if op == "lstm" or where not in ("c0", "dc_n")]


@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell,where", WHERE, ids=["%s-%s" % (w[2], w[3]) for w in WHERE])
def test_recurrent_nan_stays_in_its_batch_entry(rng, op, kw, cell, where, dtype, opt):
    batch_first = OPTIONS[opt].get("batch_first", False)
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, batch_first=batch_first,
                             lengths=OPTIONS[opt].get("lengths", False))
    options = dict(lengths=lens, reverse=OPTIONS[opt].get("reverse", False), batch_first=batch_first)
    y_shape = (B, T, H) if batch_first else (T, B, H)
    grads = upstream(rng, op, y_shape, B, H, dtype)
    clean_out, clean_grads = recurrent_all(op, kw, args, grads, options)

    args, grads = dict(args), dict(grads)
    target = args if where in args else grads
    poisoned = target[where].copy()
    # A valid step of the victim (its last one, so that every step before it is valid too).
    last = (lens[VICTIM] if lens is not None else T) - 1
    if where in ("x", "dy"):
        index = (VICTIM, last) if batch_first else (last, VICTIM)
        poisoned[index] = np.nan
    else:
        poisoned[VICTIM] = np.nan
    target[where] = poisoned
    out, got = recurrent_all(op, kw, args, grads, options)

    for name, value in out.items():
        axis = batch_axis(name, batch_first)
        np.testing.assert_array_equal(others(value, axis), others(clean_out[name], axis), err_msg=name)
    for name in ("x", "h0", "c0"):
        if got.get(name) is None:
            continue
        axis = batch_axis(name, batch_first)
        np.testing.assert_array_equal(others(got[name], axis), others(clean_grads[name], axis),
                                      err_msg=name)
    # And it did reach the victim (the test is not vacuous).
    if where in ("x", "h0", "c0"):
        assert np.isnan(np.take(out["h_n"], VICTIM, axis=0)).any()
    else:
        assert np.isnan(np.take(got["x"], VICTIM, axis=0 if batch_first else 1)).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
def test_padded_positions_never_reach_outputs_states_or_dx(rng, op, kw, cell, dtype):
    """README: x at padded positions never reaches y, the states or dx (0 there); it does enter
    dw_ih multiplied by zero, which this test leaves alone."""
    args, lens = make_inputs(rng, op, T, B, I, H, dtype, lengths=True)
    grads = upstream(rng, op, (T, B, H), B, H, dtype)
    options = dict(lengths=lens)
    clean_out, clean_grads = recurrent_all(op, kw, args, grads, options)
    x = args["x"].copy()
    for b, n in enumerate(lens):
        x[n:, b] = np.nan
        grads["dy"][n:, b] = np.inf  # dy at padded positions is ignored too
    assert np.isnan(x).any()
    out, got = recurrent_all(op, kw, dict(args, x=x), grads, options)
    for name in out:
        np.testing.assert_array_equal(out[name], clean_out[name], err_msg=name)
    for name in ("x", "h0", "c0", "w_hh", "b_ih", "b_hh"):
        if got.get(name) is not None:
            np.testing.assert_array_equal(got[name], clean_grads[name], err_msg=name)
    for b, n in enumerate(lens):
        assert not got["x"][n:, b].any()


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op,kw,cell", [c for c in CELLS if c[2] != "rnn_relu"],
                         ids=[c[2] for c in CELLS if c[2] != "rnn_relu"])
def test_infinite_gate_inputs_saturate(rng, op, kw, cell, dtype, sign):
    """x = +-inf with one input feature: every gate pre-activation is +-inf (no inf - inf), so the
    gates saturate and outputs, dx and dh0 stay finite."""
    args, _ = make_inputs(rng, op, T, B, 1, H, dtype)
    x = np.where(rng.random((T, B, 1)) < 0.5, sign * np.inf, args["x"]).astype(dtype)
    x[0] = sign * np.inf
    grads = upstream(rng, op, (T, B, H), B, H, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        out, got = recurrent_all(op, kw, dict(args, x=x), grads, {})
    for name, value in out.items():
        assert np.isfinite(value).all(), name
    for name in ("x", "h0", "c0"):
        if got.get(name) is not None:
            assert np.isfinite(got[name]).all(), name
    if op == "rnn":
        # y[0] = tanh(w_ih * (+-inf) + finite) = sign(w_ih) * (+-1), exactly.
        want = np.sign(args["w_ih"][:, 0] * sign)
        np.testing.assert_array_equal(out["y"][0], np.broadcast_to(want, (B, H)).astype(dtype))
    if op == "lstm":
        assert np.abs(out["y"]).max() <= 1


def test_relu_rnn_passes_infinity_through(rng):
    args, _ = make_inputs(rng, "rnn", 1, B, 1, H, np.float64, h0=False)
    args["x"] = np.full((1, B, 1), np.inf)
    y = F.rnn_forward(**args, nonlinearity="relu")[0]
    pre = args["w_ih"][:, 0]
    np.testing.assert_array_equal(y[0], np.broadcast_to(np.where(pre > 0, np.inf, 0.0), (B, H)))


# ------------------------------------------------------------------ conv and pools


@pytest.mark.parametrize("where", ["x", "dy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv_nan_stays_in_its_batch_entry(rng, channels_last, groups, dtype, where):
    x = rng.standard_normal((B, 40, 4) if channels_last else (B, 4, 40)).astype(dtype)
    w = rng.standard_normal((8, 4 // groups, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    kw = dict(padding="same", stride=2, dilation=2, groups=groups, channels_last=channels_last,
              training=True)
    y, ctx = F.conv1d_forward(x, w, b, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    clean = F.conv1d_backward(ctx, dy)
    if where == "x":
        x = x.copy()
        x[VICTIM, 3, 1] = np.nan
    else:
        dy = dy.copy()
        dy[VICTIM, 3, 1] = np.nan
    y2, ctx2 = F.conv1d_forward(x, w, b, **kw)
    got = F.conv1d_backward(ctx2, dy)
    np.testing.assert_array_equal(others(y2, 0), others(y, 0))
    np.testing.assert_array_equal(others(got["x"], 0), others(clean["x"], 0))
    assert np.isnan(y2[VICTIM] if where == "x" else got["x"][VICTIM]).any()


POOLS = {
    "max_pool1d": dict(pool_size=3, stride=2, padding="same"),
    "global_max_pool1d": {},
    "global_avg_pool1d": {},
}


@pytest.mark.parametrize("where", ["x", "dy"])
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
@pytest.mark.parametrize("name", list(POOLS))
def test_pool_nan_stays_in_its_batch_entry(rng, name, channels_last, where):
    forward, backward = getattr(F, name + "_forward"), getattr(F, name + "_backward")
    x = rng.standard_normal((B, 20, 6) if channels_last else (B, 6, 20)).astype(np.float32)
    kw = dict(POOLS[name], channels_last=channels_last, training=True)
    y, ctx = forward(x, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    clean = backward(ctx, dy)["x"]
    if where == "x":
        x = x.copy()
        x[VICTIM, 3, 1] = np.nan
    else:
        dy = dy.copy()
        dy[VICTIM].flat[0] = np.nan
    y2, ctx2 = forward(x, **kw)
    dx = backward(ctx2, dy)["x"]
    np.testing.assert_array_equal(others(y2, 0), others(y, 0))
    np.testing.assert_array_equal(others(dx, 0), others(clean, 0))
    assert np.isnan(y2[VICTIM] if where == "x" else dx[VICTIM]).any()
