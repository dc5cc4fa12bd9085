"""The NumPy reference of RNN/LSTM/GRU: gradients by finite differences, semantics of
lengths/reverse/batch_first, PyTorch agreement, extreme inputs and argument errors."""
from collections import namedtuple

import numpy as np
import pytest

from rnnfast import reference as ref

T, B, I, H = 4, 3, 2, 3
LENGTHS = [None, (4, 1, 2), (3, 1, 2)]

Spec = namedtuple("Spec", "forward backward gates kwargs states")
SPECS = {
    "rnn_tanh": Spec(ref.rnn_forward, ref.rnn_backward, 1, {"nonlinearity": "tanh"}, ("h0",)),
    "rnn_relu": Spec(ref.rnn_forward, ref.rnn_backward, 1, {"nonlinearity": "relu"}, ("h0",)),
    "lstm": Spec(ref.lstm_forward, ref.lstm_backward, 4, {}, ("h0", "c0")),
    "gru": Spec(ref.gru_forward, ref.gru_backward, 3, {"reset_after": True}, ("h0",)),
    "gru_reset_before": Spec(ref.gru_forward, ref.gru_backward, 3, {"reset_after": False},
                             ("h0",)),
}
PARAMS = ("w_ih", "w_hh", "b_ih", "b_hh")


def make_args(rng, spec, bias=True, init=True, batch_first=False, scale=0.5):
    """Random arguments of a forward, keyed by the forward's argument names."""
    G = spec.gates
    args = {
        "x": rng.standard_normal((B, T, I) if batch_first else (T, B, I)),
        "w_ih": scale * rng.standard_normal((G * H, I)),
        "w_hh": scale * rng.standard_normal((G * H, H)),
    }
    if bias:
        args["b_ih"] = scale * rng.standard_normal(G * H)
        args["b_hh"] = scale * rng.standard_normal(G * H)
    if init:
        for name in spec.states:
            args[name] = rng.standard_normal((B, H))
    return args


def run(spec, args, **kw):
    """Forward; returns (y, tuple of final states, ctx)."""
    y, *finals, ctx = spec.forward(**args, **spec.kwargs, **kw)
    return y, tuple(finals), ctx


def as_lengths(lengths):
    return None if lengths is None else np.array(lengths)


def time_major(a, batch_first):
    return a.transpose(1, 0, 2) if batch_first else a


def loss(spec, args, kw, gy, g_finals):
    y, finals, _ = run(spec, args, **kw)
    return np.sum(y * gy) + sum(np.sum(f * g) for f, g in zip(finals, g_finals))


def numerical_grad(spec, args, name, kw, gy, g_finals, eps=1e-6):
    """Central finite differences of ``loss`` with respect to ``args[name]``."""
    base = args[name]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        plus, minus = base.copy(), base.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = (loss(spec, {**args, name: plus}, kw, gy, g_finals)
                       - loss(spec, {**args, name: minus}, kw, gy, g_finals)) / (2 * eps)
    return grad


def relu_margin(args, lengths, reverse, batch_first):
    """Smallest |pre-activation| of a relu RNN over all valid steps, recomputed from y."""
    x = time_major(args["x"], batch_first)
    y, _, _ = run(SPECS["rnn_relu"], args, lengths=lengths, reverse=reverse,
                  batch_first=batch_first)
    y = time_major(y, batch_first)
    lens = np.full(B, T) if lengths is None else lengths
    b_sum = args.get("b_ih", 0.0) + args.get("b_hh", 0.0)
    margin = np.inf
    for b in range(B):
        for t in range(lens[b]):
            prev = t + 1 if reverse else t - 1
            h_prev = y[prev, b] if 0 <= prev < lens[b] else args.get("h0", np.zeros((B, H)))[b]
            a = args["w_ih"] @ x[t, b] + args["w_hh"] @ h_prev + b_sum
            margin = min(margin, np.abs(a).min())
    return margin


def check_gradients(rng, name, lengths, reverse, batch_first, bias=True, init=True):
    spec = SPECS[name]
    args = make_args(rng, spec, bias=bias, init=init, batch_first=batch_first)
    kw = {"lengths": as_lengths(lengths), "reverse": reverse, "batch_first": batch_first}
    if name == "rnn_relu":
        assert relu_margin(args, kw["lengths"], reverse, batch_first) > 1e-4
    y, finals, ctx = run(spec, args, training=True, **kw)
    gy = rng.standard_normal(y.shape)
    g_finals = tuple(rng.standard_normal(f.shape) for f in finals)
    grads = spec.backward(ctx, gy, *g_finals)
    expected_keys = {"x", *spec.states, *PARAMS}
    extra = {"w_hr", "w_peephole"} if spec.forward is ref.lstm_forward else set()
    assert set(grads) == expected_keys | extra
    assert all(grads[name] is None for name in extra)
    for arg in expected_keys:
        if arg not in args:
            assert grads[arg] is None, arg
            continue
        num = numerical_grad(spec, args, arg, kw, gy, g_finals)
        assert grads[arg].shape == args[arg].shape
        scale = np.abs(grads[arg]).max()
        assert scale > 0, arg
        assert np.abs(grads[arg] - num).max() / scale < 1e-6, arg


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (4, 1, 2)])
@pytest.mark.parametrize("name", list(SPECS))
def test_gradients_match_finite_differences(rng, name, lengths, reverse, batch_first):
    check_gradients(rng, name, lengths, reverse, batch_first)


@pytest.mark.parametrize("name", list(SPECS))
def test_gradients_without_bias_and_initial_state(rng, name):
    check_gradients(rng, name, (3, 1, 2), reverse=False, batch_first=False, bias=False,
                    init=False)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", list(SPECS))
def test_padded_outputs_are_zero_and_gradients_ignore_them(rng, name, reverse):
    spec = SPECS[name]
    args = make_args(rng, spec)
    lengths = np.array([3, 1, 2])
    y, finals, ctx = run(spec, args, lengths=lengths, reverse=reverse, training=True)
    padded = np.arange(T)[:, None] >= lengths[None, :]
    assert np.all(y[padded] == 0.0)
    if name != "rnn_relu":
        assert np.all(y[~padded] != 0.0)
    gy = rng.standard_normal(y.shape)
    g_finals = [rng.standard_normal(f.shape) for f in finals]
    grads = spec.backward(ctx, gy, *g_finals)
    assert np.all(grads["x"][padded] == 0.0)
    masked = spec.backward(ctx, np.where(padded[:, :, None], 0.0, gy), *g_finals)
    for key, grad in grads.items():
        np.testing.assert_array_equal(grad, masked[key], err_msg=key)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", list(SPECS))
def test_final_state_equals_running_each_sequence_alone(rng, name, reverse):
    spec = SPECS[name]
    args = make_args(rng, spec)
    lengths = np.array([4, 1, 2])
    y, finals, _ = run(spec, args, lengths=lengths, reverse=reverse)
    for b, length in enumerate(lengths):
        alone = {**args, "x": args["x"][:length, b:b + 1]}
        for state in spec.states:
            alone[state] = args[state][b:b + 1]
        y_b, finals_b, _ = run(spec, alone, reverse=reverse)
        np.testing.assert_allclose(y[:length, b], y_b[:, 0], rtol=1e-13, atol=1e-14)
        for f, f_b in zip(finals, finals_b):
            np.testing.assert_allclose(f[b], f_b[0], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", list(SPECS))
def test_reverse_equals_forward_on_flipped_input(rng, name):
    spec = SPECS[name]
    args = make_args(rng, spec)
    y, finals, _ = run(spec, args, reverse=True)
    y_flip, finals_flip, _ = run(spec, {**args, "x": args["x"][::-1]})
    np.testing.assert_allclose(y, y_flip[::-1], rtol=1e-13, atol=1e-14)
    for f, f_flip in zip(finals, finals_flip):
        np.testing.assert_allclose(f, f_flip, rtol=1e-13, atol=1e-14)
    assert np.array_equal(y[0], finals[0])


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("name", list(SPECS))
def test_batch_first_is_the_transpose(rng, name, lengths):
    spec = SPECS[name]
    args = make_args(rng, spec)
    kw = {"lengths": as_lengths(lengths), "training": True}
    y, finals, ctx = run(spec, args, **kw)
    args_bf = {**args, "x": args["x"].transpose(1, 0, 2)}
    y_bf, finals_bf, ctx_bf = run(spec, args_bf, batch_first=True, **kw)
    np.testing.assert_allclose(y_bf, y.transpose(1, 0, 2), rtol=1e-14, atol=1e-15)
    for f, f_bf in zip(finals, finals_bf):
        np.testing.assert_allclose(f_bf, f, rtol=1e-14, atol=1e-15)
    gy = rng.standard_normal(y.shape)
    g_finals = [rng.standard_normal(f.shape) for f in finals]
    grads = spec.backward(ctx, gy, *g_finals)
    grads_bf = spec.backward(ctx_bf, gy.transpose(1, 0, 2), *g_finals)
    np.testing.assert_allclose(grads_bf["x"], grads["x"].transpose(1, 0, 2), rtol=1e-14,
                               atol=1e-15)
    for key in (*spec.states, *PARAMS):
        np.testing.assert_allclose(grads_bf[key], grads[key], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", list(SPECS))
def test_last_output_is_final_state(rng, name):
    spec = SPECS[name]
    y, finals, ctx = run(spec, make_args(rng, spec))
    assert ctx is None
    assert y.shape == (T, B, H) and y.dtype == np.float64
    assert all(f.shape == (B, H) for f in finals)
    assert np.array_equal(y[-1], finals[0])


def test_gru_reset_before_step_formula(rng):
    args = make_args(rng, SPECS["gru_reset_before"])
    x = args["x"][:1]
    _, h_n, _ = ref.gru_forward(x, args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"],
                                args["h0"], reset_after=False)
    h = args["h0"]
    w_ir, w_iz, w_in = np.split(args["w_ih"], 3)
    w_hr, w_hz, w_hn = np.split(args["w_hh"], 3)
    b_ir, b_iz, b_in = np.split(args["b_ih"], 3)
    b_hr, b_hz, b_hn = np.split(args["b_hh"], 3)
    r = 1.0 / (1.0 + np.exp(-(x[0] @ w_ir.T + b_ir + h @ w_hr.T + b_hr)))
    z = 1.0 / (1.0 + np.exp(-(x[0] @ w_iz.T + b_iz + h @ w_hz.T + b_hz)))
    n = np.tanh(x[0] @ w_in.T + b_in + (r * h) @ w_hn.T + b_hn)
    np.testing.assert_allclose(h_n, (1 - z) * n + z * h, rtol=1e-14, atol=1e-15)
    _, (h_after,), _ = run(SPECS["gru"], {**args, "x": x})
    assert np.abs(h_after - h_n).max() > 1e-3


def test_none_output_gradients_mean_zeros(rng):
    spec = SPECS["lstm"]
    y, (h_n, c_n), ctx = run(spec, make_args(rng, spec), training=True)
    gh = rng.standard_normal(h_n.shape)
    given = ref.lstm_backward(ctx, dh_n=gh)
    zeros = ref.lstm_backward(ctx, np.zeros_like(y), gh, np.zeros_like(c_n))
    for key in given:
        np.testing.assert_array_equal(given[key], zeros[key], err_msg=key)
    assert np.abs(given["w_hh"]).max() > 0


@pytest.mark.parametrize("name", list(SPECS))
def test_inputs_are_not_modified_and_converted_to_float64(rng, name):
    spec = SPECS[name]
    args = {k: v.astype(np.float32) for k, v in make_args(rng, spec).items()}
    for v in args.values():
        v.flags.writeable = False
    copies = {k: v.copy() for k, v in args.items()}
    y, finals, ctx = run(spec, args, lengths=np.array([4, 1, 2]), training=True)
    grads = spec.backward(ctx, np.ones_like(y), *[np.ones_like(f) for f in finals])
    assert y.dtype == np.float64 and all(f.dtype == np.float64 for f in finals)
    assert all(g.dtype == np.float64 for g in grads.values() if g is not None)
    for k in args:
        np.testing.assert_array_equal(args[k], copies[k])
    args64 = {k: v.astype(np.float64) for k, v in args.items()}
    y64, _, _ = run(spec, args64, lengths=np.array([4, 1, 2]))
    np.testing.assert_array_equal(y, y64)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "gru_reset_before"])
def test_huge_inputs_give_finite_results(rng, name):
    spec = SPECS[name]
    args = make_args(rng, spec)
    args["x"] = 1e30 * np.sign(rng.standard_normal(args["x"].shape))
    args["h0"] = 1e30 * np.sign(rng.standard_normal((B, H)))
    y, finals, ctx = run(spec, args, training=True)
    assert np.all(np.isfinite(y)) and all(np.all(np.isfinite(f)) for f in finals)
    grads = spec.backward(ctx, rng.standard_normal(y.shape))
    assert all(np.all(np.isfinite(g)) for g in grads.values() if g is not None)


def test_backward_rejects_wrong_ctx(rng):
    args = make_args(rng, SPECS["gru"])
    _, _, gru_ctx = run(SPECS["gru"], args, training=True)
    with pytest.raises(ValueError, match="ctx: got None"):
        ref.rnn_backward(None)
    with pytest.raises(ValueError, match="ctx: comes from gru_forward, not lstm_forward"):
        ref.lstm_backward(gru_ctx)
    with pytest.raises(ValueError, match="ctx: expected the ctx"):
        ref.gru_backward({"steps": []})
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 3, 3\)"):
        ref.gru_backward(gru_ctx, np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match=r"dh_n: expected shape \(3, 3\), got \(3,\)"):
        ref.gru_backward(gru_ctx, dh_n=np.zeros(3))


def test_forward_rejects_bad_arguments(rng):
    args = make_args(rng, SPECS["rnn_tanh"])
    with pytest.raises(ValueError, match="nonlinearity: expected 'tanh' or 'relu', got 'gelu'"):
        ref.rnn_forward(**args, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"w_ih: expected shape \(9, 2\), got \(3, 2\)"):
        ref.gru_forward(**args)
    with pytest.raises(ValueError, match=r"h0: expected shape \(3, 3\), got \(2, 3\)"):
        ref.rnn_forward(**{**args, "h0": args["h0"][:2]})
    with pytest.raises(ValueError, match="x: expected a 3-D array"):
        ref.rnn_forward(**{**args, "x": args["x"][0]})
    with pytest.raises(ValueError, match=r"lengths: expected values in 1\.\.4"):
        ref.rnn_forward(**args, lengths=np.array([4, 0, 2]))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(3,\)"):
        ref.rnn_forward(**args, lengths=np.array([4, 2]))
    with pytest.raises(TypeError, match="lengths: expected an integer array"):
        ref.rnn_forward(**args, lengths=np.array([4.0, 1.0, 2.0]))


TORCH_MODULES = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("name", list(TORCH_MODULES))
def test_bidirectional_matches_torch(rng, name, lengths):
    """Forward and reverse=True halves against a bidirectional torch layer, packed when
    lengths are given; outputs and every gradient."""
    torch = pytest.importorskip("torch")
    spec = SPECS[name]
    halves = [make_args(rng, spec), make_args(rng, spec)]
    extra = {"nonlinearity": spec.kwargs["nonlinearity"]} if "nonlinearity" in spec.kwargs else {}
    module = getattr(torch.nn, TORCH_MODULES[name])(I, H, bidirectional=True, **extra).double()
    with torch.no_grad():
        for suffix, half in zip(("", "_reverse"), halves):
            for p, torch_name in zip(PARAMS, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                getattr(module, f"{torch_name}_l0{suffix}").copy_(torch.from_numpy(half[p]))
    x = rng.standard_normal((T, B, I))
    x_t = torch.tensor(x, requires_grad=True)
    states_t = [torch.tensor(np.stack([h[s] for h in halves]), requires_grad=True)
                for s in spec.states]
    init = tuple(states_t) if name == "lstm" else states_t[0]
    if lengths is None:
        y_t, finals_t = module(x_t, init)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x_t, torch.tensor(lengths),
                                                         enforce_sorted=False)
        out, finals_t = module(packed, init)
        y_t = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0]
    finals_t = finals_t if name == "lstm" else (finals_t,)

    kw = {"lengths": as_lengths(lengths), "training": True}
    results = [run(spec, {**half, "x": x}, reverse=rev, **kw)
               for half, rev in zip(halves, (False, True))]
    y = np.concatenate([results[0][0], results[1][0]], axis=2)
    finals = [np.stack([results[0][1][k], results[1][1][k]]) for k in range(len(spec.states))]

    def close(got, want):
        want = want.detach().numpy()
        assert np.abs(got - want).max() / max(1.0, np.abs(want).max()) < 1e-10

    close(y, y_t)
    for f, f_t in zip(finals, finals_t):
        close(f, f_t)

    gy = rng.standard_normal(y.shape)
    g_finals = [rng.standard_normal(f.shape) for f in finals]
    total = (y_t * torch.from_numpy(gy)).sum()
    total = total + sum((f * torch.from_numpy(g)).sum() for f, g in zip(finals_t, g_finals))
    total.backward()
    grads = [spec.backward(results[d][2], gy[:, :, d * H:(d + 1) * H], *[g[d] for g in g_finals])
             for d in range(2)]
    close(grads[0]["x"] + grads[1]["x"], x_t.grad)
    for s, state_t in zip(spec.states, states_t):
        close(np.stack([grads[0][s], grads[1][s]]), state_t.grad)
    for d, suffix in enumerate(("", "_reverse")):
        for p, torch_name in zip(PARAMS, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
            close(grads[d][p], getattr(module, f"{torch_name}_l0{suffix}").grad)
