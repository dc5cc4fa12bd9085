"""The NumPy reference's cell variants: LSTM projection (w_hr) and peepholes (w_peephole),
LayerNorm LSTM/GRU, zoneout and recurrent dropout. Every new argument against central finite
differences; projections against torch.nn.LSTM(proj_size=...), peepholes against ONNX
Runtime's LSTM with its P input, the LayerNorm cells (with zoneout and recurrent dropout)
against a plain PyTorch loop; the masks' semantics, expectation and reproducibility."""
import importlib.util
import pathlib
from collections import namedtuple

import numpy as np
import pytest

from rnnfast import reference as ref

T, B, I, H, P = 4, 3, 2, 3, 2
LENGTHS = [None, (4, 1, 2), (3, 1, 2)]

Variant = namedtuple("Variant", "forward backward gates states kwargs extras proj")


def _lstm_extras(proj, peephole):
    extras = {}
    if proj:
        extras["w_hr"] = lambda rng: 0.5 * rng.standard_normal((P, H))
    if peephole:
        extras["w_peephole"] = lambda rng: 0.5 * rng.standard_normal((3, H))
    return extras


def _gains(size):
    return lambda rng: 1.0 + 0.3 * rng.standard_normal(size)


VARIANTS = {
    "rnn_tanh": Variant(ref.rnn_forward, ref.rnn_backward, 1, ("h0",),
                        {"nonlinearity": "tanh"}, {}, False),
    "lstm": Variant(ref.lstm_forward, ref.lstm_backward, 4, ("h0", "c0"), {}, {}, False),
    "gru": Variant(ref.gru_forward, ref.gru_backward, 3, ("h0",), {"reset_after": True}, {},
                   False),
    "gru_reset_before": Variant(ref.gru_forward, ref.gru_backward, 3, ("h0",),
                                {"reset_after": False}, {}, False),
    "lstm_proj": Variant(ref.lstm_forward, ref.lstm_backward, 4, ("h0", "c0"), {},
                         _lstm_extras(True, False), True),
    "lstm_peephole": Variant(ref.lstm_forward, ref.lstm_backward, 4, ("h0", "c0"), {},
                             _lstm_extras(False, True), False),
    "lstm_proj_peephole": Variant(ref.lstm_forward, ref.lstm_backward, 4, ("h0", "c0"), {},
                                  _lstm_extras(True, True), True),
    "layer_norm_lstm": Variant(
        ref.layer_norm_lstm_forward, ref.layer_norm_lstm_backward, 4, ("h0", "c0"), {},
        {"ln_ih_weight": _gains(4 * H), "ln_hh_weight": _gains(4 * H),
         "ln_c_weight": _gains(H), "ln_c_bias": lambda rng: 0.3 * rng.standard_normal(H)},
        False),
    "layer_norm_gru": Variant(ref.layer_norm_gru_forward, ref.layer_norm_gru_backward, 3,
                              ("h0",), {},
                              {"ln_ih_weight": _gains(3 * H), "ln_hh_weight": _gains(3 * H)},
                              False),
}
PLAIN = ("w_ih", "w_hh", "b_ih", "b_hh")
GRAD_KEYS = {
    "lstm": {"w_hr", "w_peephole"},
    "layer_norm_lstm": {"ln_ih_weight", "ln_hh_weight", "ln_c_weight", "ln_c_bias"},
    "layer_norm_gru": {"ln_ih_weight", "ln_hh_weight"},
}
NEW_VARIANTS = ["lstm_proj", "lstm_peephole", "lstm_proj_peephole", "layer_norm_lstm",
                "layer_norm_gru"]


def out_size(v):
    return P if v.proj else H


def make_args(rng, v, *, bias=True, init=True, extras=True, batch_first=False, scale=0.5):
    G, Ho = v.gates, out_size(v)
    args = {
        "x": rng.standard_normal((B, T, I) if batch_first else (T, B, I)),
        "w_ih": scale * rng.standard_normal((G * H, I)),
        "w_hh": scale * rng.standard_normal((G * H, Ho)),
    }
    if bias:
        args["b_ih"] = scale * rng.standard_normal(G * H)
        args["b_hh"] = scale * rng.standard_normal(G * H)
    if init:
        args["h0"] = rng.standard_normal((B, Ho))
        if "c0" in v.states:
            args["c0"] = rng.standard_normal((B, H))
    for name, draw in v.extras.items():
        if extras or name == "w_hr":
            args[name] = draw(rng)
    return args


def run(v, args, **kw):
    y, *finals, ctx = v.forward(**args, **v.kwargs, **kw)
    return y, tuple(finals), ctx


def grad_keys(v):
    op = v.forward.__name__[:-len("_forward")]
    return {"x", *v.states, *PLAIN, *GRAD_KEYS.get(op, ())}


def numerical_grad(v, args, name, kw, gy, g_finals, eps=1e-6):
    def loss(a):
        y, finals, _ = run(v, a, training=True, **kw)  # training: the masks of seed
        return np.sum(y * gy) + sum(np.sum(f * g) for f, g in zip(finals, g_finals))

    base = args[name]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        plus, minus = base.copy(), base.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = (loss({**args, name: plus}) - loss({**args, name: minus})) / (2 * eps)
    return grad


def check_gradients(rng, name, kw, **make):
    v = VARIANTS[name]
    args = make_args(rng, v, batch_first=kw.get("batch_first", False), **make)
    y, finals, ctx = run(v, args, training=True, **kw)
    gy = rng.standard_normal(y.shape)
    g_finals = tuple(rng.standard_normal(f.shape) for f in finals)
    grads = v.backward(ctx, gy, *g_finals)
    assert set(grads) == grad_keys(v)
    for arg, grad in grads.items():
        if arg not in args:
            assert grad is None, arg
            continue
        num = numerical_grad(v, args, arg, kw, gy, g_finals)
        assert grad.shape == args[arg].shape, arg
        scale = np.abs(grad).max()
        assert scale > 0, arg
        assert np.abs(grad - num).max() / scale < 1e-6, arg


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (4, 1, 2)])
@pytest.mark.parametrize("name", NEW_VARIANTS)
def test_new_parameters_match_finite_differences(rng, name, lengths, reverse, batch_first):
    kw = {"lengths": None if lengths is None else np.array(lengths), "reverse": reverse,
          "batch_first": batch_first}
    check_gradients(rng, name, kw)


@pytest.mark.parametrize("name", NEW_VARIANTS)
def test_gradients_without_bias_initial_state_or_optional_parameters(rng, name):
    check_gradients(rng, name, {"lengths": np.array([3, 1, 2])}, bias=False, init=False,
                    extras=False)


REGULARIZED = ["rnn_tanh", "lstm", "gru", "gru_reset_before", "lstm_proj_peephole",
               "layer_norm_lstm", "layer_norm_gru"]
RATES = [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zoneout,recurrent_dropout", RATES)
@pytest.mark.parametrize("name", REGULARIZED)
def test_zoneout_and_recurrent_dropout_gradients_match_finite_differences(
        rng, name, zoneout, recurrent_dropout, reverse):
    """Training with seeded masks is a differentiable function of every argument."""
    kw = {"lengths": np.array([4, 1, 3]), "reverse": reverse, "zoneout": zoneout,
          "recurrent_dropout": recurrent_dropout, "seed": 7}
    check_gradients(rng, name, kw)


# ----------------------------------------------------------------------------------------
# Projections against torch.nn.LSTM(proj_size=...)

TORCH_NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh",
               "w_hr": "weight_hr"}


def close(got, want, tol=1e-10):
    want = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape
    assert np.abs(got - want).max() / max(1.0, np.abs(want).max()) < tol


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("proj", [1, 2])
@pytest.mark.parametrize("lengths", LENGTHS)
def test_projection_matches_torch(rng, lengths, proj, batch_first):
    """Both directions of a bidirectional torch.nn.LSTM(proj_size) (packed when lengths are
    given) against the reference's forward and reverse=True runs: outputs and every
    gradient, weight_hr included."""
    torch = pytest.importorskip("torch")
    v = VARIANTS["lstm_proj"]
    halves = []
    for _ in range(2):
        half = make_args(rng, v)
        half["w_hh"] = 0.5 * rng.standard_normal((4 * H, proj))
        half["w_hr"] = 0.5 * rng.standard_normal((proj, H))
        half["h0"] = rng.standard_normal((B, proj))
        halves.append(half)
    module = torch.nn.LSTM(I, H, proj_size=proj, bidirectional=True,
                           batch_first=batch_first).double()
    with torch.no_grad():
        for suffix, half in zip(("", "_reverse"), halves):
            for key, torch_name in TORCH_NAMES.items():
                getattr(module, f"{torch_name}_l0{suffix}").copy_(torch.from_numpy(half[key]))
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = torch.tensor(np.stack([h["h0"] for h in halves]), requires_grad=True)
    c0_t = torch.tensor(np.stack([h["c0"] for h in halves]), requires_grad=True)
    if lengths is None:
        y_t, (h_n_t, c_n_t) = module(x_t, (h0_t, c0_t))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x_t, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out, (h_n_t, c_n_t) = module(packed, (h0_t, c0_t))
        y_t = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first,
                                                     total_length=T)[0]
    kw = {"lengths": None if lengths is None else np.array(lengths), "training": True,
          "batch_first": batch_first}
    results = [run(v, {**half, "x": x}, reverse=rev, **kw)
               for half, rev in zip(halves, (False, True))]
    y = np.concatenate([results[0][0], results[1][0]], axis=2)
    close(y, y_t)
    close(np.stack([r[1][0] for r in results]), h_n_t)
    close(np.stack([r[1][1] for r in results]), c_n_t)

    gy = rng.standard_normal(y.shape)
    gh, gc = rng.standard_normal(h_n_t.shape), rng.standard_normal(c_n_t.shape)
    total = ((y_t * torch.from_numpy(gy)).sum() + (h_n_t * torch.from_numpy(gh)).sum()
             + (c_n_t * torch.from_numpy(gc)).sum())
    total.backward()
    grads = [v.backward(results[d][2], gy[..., d * proj:(d + 1) * proj], gh[d], gc[d])
             for d in range(2)]
    close(grads[0]["x"] + grads[1]["x"], x_t.grad)
    close(np.stack([g["h0"] for g in grads]), h0_t.grad)
    close(np.stack([g["c0"] for g in grads]), c0_t.grad)
    for d, suffix in enumerate(("", "_reverse")):
        for key, torch_name in TORCH_NAMES.items():
            close(grads[d][key], getattr(module, f"{torch_name}_l0{suffix}").grad)
        assert grads[d]["w_peephole"] is None


# ----------------------------------------------------------------------------------------
# Peepholes against ONNX Runtime's LSTM with its P input

def _load_bench_onnx():
    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "_onnx.py"
    spec = importlib.util.spec_from_file_location("_bench_onnx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def onnx_lstm_session(args, direction, with_lengths):
    """An ONNX Runtime session of one LSTM node with the P input (ONNX's rows i, o, f)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper, numpy_helper

    bench_onnx = _load_bench_onnx()
    f32 = {k: np.asarray(a, np.float32) for k, a in args.items()}
    weights = bench_onnx.onnx_weights("lstm", f32["w_ih"], f32["w_hh"], f32["b_ih"],
                                      f32["b_hh"])
    p_i, p_f, p_o = f32["w_peephole"]
    weights["P"] = np.concatenate([p_i, p_o, p_f])[None]
    elem = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", elem, [T, B, I]),
              helper.make_tensor_value_info("initial_h", elem, [1, B, H]),
              helper.make_tensor_value_info("initial_c", elem, [1, B, H])]
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", onnx.TensorProto.INT32,
                                                    [B]))
    outputs = [helper.make_tensor_value_info("Y", elem, [T, 1, B, H]),
               helper.make_tensor_value_info("Y_h", elem, [1, B, H]),
               helper.make_tensor_value_info("Y_c", elem, [1, B, H])]
    node = helper.make_node(
        "LSTM", ["X", "W", "R", "B", "sequence_lens" if with_lengths else "", "initial_h",
                 "initial_c", "P"], ["Y", "Y_h", "Y_c"], hidden_size=H, direction=direction)
    graph = helper.make_graph([node], "peephole_lstm", inputs, outputs,
                              [numpy_helper.from_array(weights[n], name=n) for n in "WRBP"])
    opset = [helper.make_opsetid("", bench_onnx.OPSET)]
    model = helper.make_model(graph, opset_imports=opset,
                              ir_version=helper.find_min_ir_version_for(opset))
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("reverse", [False, True])
def test_peepholes_match_onnx_runtime(rng, lengths, reverse):
    """Inference against ONNX Runtime (float32 only): the reference in float64 on the same
    float32 values; y (padded steps zero), Y_h, Y_c."""
    v = VARIANTS["lstm_peephole"]
    args = {k: np.asarray(a, np.float32).astype(np.float64)
            for k, a in make_args(rng, v, scale=0.8).items()}
    args["w_peephole"] = np.asarray(2.0 * args["w_peephole"], np.float32).astype(np.float64)
    session = onnx_lstm_session(args, "reverse" if reverse else "forward",
                                lengths is not None)
    feeds = {"X": args["x"].astype(np.float32), "initial_h": args["h0"][None].astype(np.float32),
             "initial_c": args["c0"][None].astype(np.float32)}
    if lengths is not None:
        feeds["sequence_lens"] = np.array(lengths, np.int32)
    y_o, h_o, c_o = session.run(None, feeds)
    y, (h_n, c_n), _ = run(v, args, reverse=reverse,
                           lengths=None if lengths is None else np.array(lengths))
    close(y, y_o[:, 0], 1e-5)
    close(h_n, h_o[0], 1e-5)
    close(c_n, c_o[0], 1e-5)
    # The peepholes matter: without them the results differ by far more.
    y_plain, _, _ = run(v, {**args, "w_peephole": None}, reverse=reverse,
                        lengths=None if lengths is None else np.array(lengths))
    assert np.abs(y_plain - y_o[:, 0]).max() > 1e-2


# ----------------------------------------------------------------------------------------
# LayerNorm cells (and zoneout, recurrent dropout) against a plain PyTorch loop

def torch_loop(torch, cell, x, w, h0, c0, lengths, reverse, eps, zoneout=0.0, masks=None):
    """An nn.LSTMCell/GRUCell-style loop with torch.nn.functional.layer_norm, written from
    Haste's definitions: time-major x, zoneout and recurrent dropout masks as the
    reference's ``ctx.masks`` (None: inference)."""
    import torch.nn.functional as Fn

    Tn, Bn, _ = x.shape
    G = 4 if cell == "lstm" else 3
    Hn = w["w_hh"].shape[1]
    lengths = torch.full((Bn,), Tn) if lengths is None else torch.as_tensor(lengths)
    h, c = h0, c0
    ys = [None] * Tn
    masks = masks or {}
    for t in (reversed(range(Tn)) if reverse else range(Tn)):
        active = (t < lengths)[:, None]
        if "recurrent" in masks:
            rh = torch.cat([(h * masks["recurrent"][k]) @ w_k.T
                            for k, w_k in enumerate(w["w_hh"].chunk(G))], dim=1)
        else:
            rh = h @ w["w_hh"].T
        gi = Fn.layer_norm(x[t] @ w["w_ih"].T, (G * Hn,), weight=w["ln_ih_weight"], eps=eps)
        gh = Fn.layer_norm(rh, (G * Hn,), weight=w["ln_hh_weight"], eps=eps)
        gi, gh = gi + w["b_ih"], gh + w["b_hh"]
        if cell == "lstm":
            a_i, a_f, a_g, a_o = (gi + gh).chunk(4, dim=1)
            c_new = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
            c_norm = Fn.layer_norm(c_new, (Hn,), weight=w["ln_c_weight"], bias=w["ln_c_bias"],
                                   eps=eps)
            h_new = torch.sigmoid(a_o) * torch.tanh(c_norm)
        else:
            i_r, i_z, i_n = gi.chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h_new = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
        if "zoneout_h" in masks:
            h_new = masks["zoneout_h"][t] * h + (1 - masks["zoneout_h"][t]) * h_new
            if cell == "lstm":
                c_new = masks["zoneout_c"][t] * c + (1 - masks["zoneout_c"][t]) * c_new
        elif zoneout:
            h_new = zoneout * h + (1 - zoneout) * h_new
            if cell == "lstm":
                c_new = zoneout * c + (1 - zoneout) * c_new
        h = torch.where(active, h_new, h)
        if cell == "lstm":
            c = torch.where(active, c_new, c)
        ys[t] = torch.where(active, h, torch.zeros_like(h))
    return torch.stack(ys), h, c


@pytest.mark.parametrize("zoneout,recurrent_dropout", [(0.0, 0.0)] + RATES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, (4, 1, 2)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_layer_norm_cells_match_a_torch_loop(rng, cell, lengths, reverse, zoneout,
                                             recurrent_dropout):
    torch = pytest.importorskip("torch")
    v = VARIANTS["layer_norm_" + cell]
    args = make_args(rng, v)
    lens = None if lengths is None else np.array(lengths)
    kw = {"lengths": lens, "reverse": reverse, "zoneout": zoneout,
          "recurrent_dropout": recurrent_dropout, "seed": 3, "eps": 1e-3}
    y, finals, ctx = run(v, args, training=True, **kw)
    gy = rng.standard_normal(y.shape)
    g_finals = [rng.standard_normal(f.shape) for f in finals]
    grads = v.backward(ctx, gy, *g_finals)

    leaves = {k: torch.tensor(a, requires_grad=True) for k, a in args.items()}
    masks = {k: torch.from_numpy(m) for k, m in ctx.masks.items()}
    assert set(masks) == ({"zoneout_h", "zoneout_c"} if zoneout and cell == "lstm" else
                          {"zoneout_h"} if zoneout else set()) | (
                              {"recurrent"} if recurrent_dropout else set())
    y_t, h_t, c_t = torch_loop(torch, cell, leaves["x"], leaves, leaves["h0"],
                               leaves.get("c0"), lens, reverse, 1e-3, masks=masks)
    close(y, y_t)
    close(finals[0], h_t)
    total = (y_t * torch.from_numpy(gy)).sum() + (h_t * torch.from_numpy(g_finals[0])).sum()
    if cell == "lstm":
        close(finals[1], c_t)
        total = total + (c_t * torch.from_numpy(g_finals[1])).sum()
    total.backward()
    for key, leaf in leaves.items():
        close(grads[key], leaf.grad)

    # Inference: the zoneout expectation, no recurrent dropout.
    y_inf, finals_inf, _ = run(v, args, **kw)
    with torch.no_grad():
        y_t, h_t, _ = torch_loop(torch, cell, leaves["x"], leaves, leaves["h0"],
                                 leaves.get("c0"), lens, reverse, 1e-3, zoneout=zoneout)
    close(y_inf, y_t)
    close(finals_inf[0], h_t)


def test_layer_norm_definition_one_step(rng):
    """One step of each LayerNorm cell written out: one layer norm over the whole G*H
    vector of each product (gains only), the biases after, and for the LSTM the layer norm
    of c (gain and bias) before the output tanh; the default eps is 1e-5."""
    def ln(v, eps=1e-5):
        return (v - v.mean(1, keepdims=True)) / np.sqrt(v.var(1, keepdims=True) + eps)

    def sig(a):
        return 1 / (1 + np.exp(-a))

    v = VARIANTS["layer_norm_lstm"]
    a = make_args(rng, v)
    _, (h1, c1), _ = run(v, {**a, "x": a["x"][:1]})
    pre = (ln(a["x"][0] @ a["w_ih"].T) * a["ln_ih_weight"] + ln(a["h0"] @ a["w_hh"].T)
           * a["ln_hh_weight"] + a["b_ih"] + a["b_hh"])
    i, f, g, o = np.split(pre, 4, axis=1)
    c = sig(f) * a["c0"] + sig(i) * np.tanh(g)
    np.testing.assert_allclose(c1, c, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(
        h1, sig(o) * np.tanh(ln(c) * a["ln_c_weight"] + a["ln_c_bias"]), rtol=1e-13,
        atol=1e-14)

    v = VARIANTS["layer_norm_gru"]
    a = make_args(rng, v)
    _, (h1,), _ = run(v, {**a, "x": a["x"][:1]})
    gi = ln(a["x"][0] @ a["w_ih"].T) * a["ln_ih_weight"] + a["b_ih"]
    gh = ln(a["h0"] @ a["w_hh"].T) * a["ln_hh_weight"] + a["b_hh"]
    (i_r, i_z, i_n), (h_r, h_z, h_n) = np.split(gi, 3, axis=1), np.split(gh, 3, axis=1)
    r, z = sig(i_r + h_r), sig(i_z + h_z)
    np.testing.assert_allclose(h1, (1 - z) * np.tanh(i_n + r * h_n) + z * a["h0"], rtol=1e-13,
                               atol=1e-14)


# ----------------------------------------------------------------------------------------
# Zoneout and recurrent dropout: semantics, expectation, reproducibility

def plain_step(v, args, x_t, h, c, **kw):
    """One step without zoneout from the state (h, c)."""
    state = {"h0": h, **({"c0": c} if "c0" in v.states else {})}
    _, finals, _ = run(v, {**args, "x": x_t[None], **state}, **kw)
    return finals


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "lstm_proj", "layer_norm_lstm",
                                  "layer_norm_gru"])
def test_zoneout_keeps_previous_units_where_the_mask_is_one(rng, name):
    v = VARIANTS[name]
    args = make_args(rng, v)
    y, finals, ctx = run(v, args, training=True, zoneout=0.4, seed=11)
    masks = ctx.masks
    assert set(masks) == ({"zoneout_h", "zoneout_c"} if "c0" in v.states else {"zoneout_h"})
    h, c = args["h0"], args.get("c0")
    for t in range(T):
        new = plain_step(v, args, args["x"][t], h, c)
        d = masks["zoneout_h"][t]
        assert set(np.unique(d)) == {0.0, 1.0}
        np.testing.assert_array_equal(y[t], np.where(d == 1.0, h, new[0]))
        h = y[t]
        if c is not None:
            c = np.where(masks["zoneout_c"][t] == 1.0, c, new[1])
    np.testing.assert_array_equal(finals[0], h)
    if c is not None:
        np.testing.assert_array_equal(finals[1], c)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "lstm_proj_peephole",
                                  "layer_norm_lstm", "layer_norm_gru"])
def test_zoneout_at_inference_is_the_expectation(rng, name):
    v = VARIANTS[name]
    args = make_args(rng, v)
    z = 0.3
    y, finals, ctx = run(v, args, zoneout=z, recurrent_dropout=0.5)
    assert ctx is None
    h, c = args["h0"], args.get("c0")
    for t in range(T):
        new = plain_step(v, args, args["x"][t], h, c)
        np.testing.assert_allclose(y[t], z * h + (1 - z) * new[0], rtol=1e-13, atol=1e-14)
        h = y[t]
        if c is not None:
            c = z * c + (1 - z) * new[1]
    np.testing.assert_allclose(finals[-1], c if c is not None else h, rtol=1e-13, atol=1e-14)
    # Averaged over many training masks, the first step approaches the expectation.
    runs = [run(v, {**args, "x": args["x"][:1]}, training=True, zoneout=z, seed=s)[0][0]
            for s in range(400)]
    assert np.abs(np.mean(runs, axis=0) - y[0]).max() < 0.1 * np.abs(y[0] - args["h0"]).max()


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "gru_reset_before", "lstm_proj",
                                  "layer_norm_lstm", "layer_norm_gru"])
def test_recurrent_dropout_scales_the_recurrent_weights_of_each_sequence(rng, name):
    """With masks m (G, B, P), sequence b gives what the cell without dropout gives with
    w_hh's gate-k columns scaled by m[k, b], at every step (one mask per call); the
    inference result has no dropout."""
    v = VARIANTS[name]
    args = make_args(rng, v)
    y, finals, ctx = run(v, args, training=True, recurrent_dropout=0.5, seed=5)
    m = ctx.masks["recurrent"]
    assert m.shape == (v.gates, B, out_size(v))
    assert set(np.unique(m)) == {0.0, 2.0}
    for b in range(B):
        w_hh = np.concatenate([w_k * m[k, b] for k, w_k in
                               enumerate(np.split(args["w_hh"], v.gates))])
        alone = {**args, "x": args["x"][:, b:b + 1], "w_hh": w_hh,
                 **{s: args[s][b:b + 1] for s in v.states}}
        y_b, finals_b, _ = run(v, alone)
        np.testing.assert_allclose(y[:, b], y_b[:, 0], rtol=1e-13, atol=1e-14)
        for f, f_b in zip(finals, finals_b):
            np.testing.assert_allclose(f[b], f_b[0], rtol=1e-13, atol=1e-14)
    y_inf, _, _ = run(v, args, recurrent_dropout=0.5)
    np.testing.assert_array_equal(y_inf, run(v, args)[0])


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_proj", "layer_norm_lstm"])
def test_masks_are_reproducible_by_seed_and_can_be_given(rng, name):
    v = VARIANTS[name]
    args = make_args(rng, v)
    kw = {"training": True, "zoneout": 0.3, "recurrent_dropout": 0.2}
    y1, f1, ctx1 = run(v, args, seed=42, **kw)
    y2, f2, ctx2 = run(v, args, seed=42, **kw)
    y3, _, ctx3 = run(v, args, seed=43, **kw)
    np.testing.assert_array_equal(y1, y2)
    for key in ctx1.masks:
        np.testing.assert_array_equal(ctx1.masks[key], ctx2.masks[key])
    assert not np.array_equal(y1, y3)
    op = v.forward.__name__[:-len("_forward")]
    drawn = ref.recurrent_masks(op, T, B, H, proj_size=out_size(v) if v.proj else None,
                                zoneout=0.3, recurrent_dropout=0.2, seed=42)
    assert set(drawn) == set(ctx1.masks)
    for key in drawn:
        np.testing.assert_array_equal(drawn[key], ctx1.masks[key])
    y4, f4, ctx4 = run(v, args, masks=drawn, **kw)
    np.testing.assert_array_equal(y4, y1)
    g1 = v.backward(ctx1, np.ones_like(y1))
    g4 = v.backward(ctx4, np.ones_like(y1))
    for key in g1:
        if g1[key] is not None:
            np.testing.assert_array_equal(g1[key], g4[key])
    # Fresh entropy without a seed.
    y5, _, _ = run(v, args, **kw)
    y6, _, _ = run(v, args, **kw)
    assert not np.array_equal(y5, y6)


def test_mask_probabilities_and_layouts():
    masks = ref.recurrent_masks("lstm", 40, 25, 30, proj_size=10, zoneout=0.3,
                                recurrent_dropout=0.25, seed=0)
    assert masks["zoneout_h"].shape == (40, 25, 10)
    assert masks["zoneout_c"].shape == (40, 25, 30)
    assert masks["recurrent"].shape == (4, 25, 10)
    assert abs(masks["zoneout_h"].mean() - 0.3) < 0.02
    assert abs(masks["zoneout_c"].mean() - 0.3) < 0.015
    assert set(np.unique(masks["recurrent"])) == {0.0, 1.0 / 0.75}
    assert abs((masks["recurrent"] == 0).mean() - 0.25) < 0.03
    assert abs(masks["recurrent"].mean() - 1.0) < 0.05  # inverted dropout keeps the mean
    # Independent per gate, per sequence, per step.
    assert not np.array_equal(masks["recurrent"][0], masks["recurrent"][1])
    assert not np.array_equal(masks["zoneout_h"][0], masks["zoneout_h"][1])
    gru = ref.recurrent_masks("gru", 2, 3, 4, zoneout=0.5, seed=0)
    assert set(gru) == {"zoneout_h"} and gru["zoneout_h"].shape == (2, 3, 4)
    assert ref.recurrent_masks("rnn", 2, 3, 4) == {}
    assert ref.recurrent_masks("layer_norm_gru", 2, 3, 4, recurrent_dropout=0.1,
                               seed=0)["recurrent"].shape == (3, 3, 4)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", ["lstm_proj_peephole", "layer_norm_lstm", "layer_norm_gru"])
def test_padding_with_masks_equals_running_each_sequence_alone(rng, name, reverse):
    v = VARIANTS[name]
    args = make_args(rng, v)
    lengths = np.array([4, 1, 2])
    y, finals, ctx = run(v, args, lengths=lengths, reverse=reverse, training=True,
                         zoneout=0.3, recurrent_dropout=0.3, seed=1)
    padded = np.arange(T)[:, None] >= lengths[None, :]
    assert np.all(y[padded] == 0.0)
    for b, length in enumerate(lengths):
        masks = {k: (m[:length, b:b + 1] if k != "recurrent" else m[:, b:b + 1])
                 for k, m in ctx.masks.items()}
        alone = {**args, "x": args["x"][:length, b:b + 1],
                 **{s: args[s][b:b + 1] for s in v.states}}
        y_b, finals_b, _ = run(v, alone, reverse=reverse, training=True, zoneout=0.3,
                               recurrent_dropout=0.3, masks=masks)
        np.testing.assert_allclose(y[:length, b], y_b[:, 0], rtol=1e-13, atol=1e-14)
        for f, f_b in zip(finals, finals_b):
            np.testing.assert_allclose(f[b], f_b[0], rtol=1e-13, atol=1e-14)


def test_zero_parameters_give_the_plain_cells(rng):
    """w_peephole zeros is the plain LSTM; an identity w_hr too; unit gains and zero
    biases are the defaults of the LayerNorm cells."""
    v = VARIANTS["lstm"]
    args = make_args(rng, v)
    y = run(v, args)[0]
    np.testing.assert_array_equal(run(v, {**args, "w_peephole": np.zeros((3, H))})[0], y)
    np.testing.assert_allclose(run(v, {**args, "w_hr": np.eye(H)})[0], y, rtol=1e-14,
                               atol=1e-15)
    for name in ("layer_norm_lstm", "layer_norm_gru"):
        v = VARIANTS[name]
        args = make_args(rng, v, extras=False)
        defaults = {k: (np.zeros(H) if k == "ln_c_bias" else np.ones(v.gates * H if "c" not in
                    k.split("_")[1] else H)) for k in v.extras}
        np.testing.assert_array_equal(run(v, args)[0], run(v, {**args, **defaults})[0])


def test_bad_arguments_are_named(rng):
    v = VARIANTS["lstm_proj_peephole"]
    args = make_args(rng, v)
    with pytest.raises(ValueError, match=r"w_hr: expected a 2-D array"):
        ref.lstm_forward(**{**args, "w_hr": np.zeros(3)})
    with pytest.raises(ValueError, match=r"w_hh: expected shape \(12, 2\), got \(12, 3\)"):
        ref.lstm_forward(**{**args, "w_hh": np.zeros((12, 3))})
    with pytest.raises(ValueError, match=r"h0: expected shape \(3, 2\), got \(3, 3\)"):
        ref.lstm_forward(**{**args, "h0": np.zeros((3, 3))})
    with pytest.raises(ValueError, match=r"w_peephole: expected shape \(3, 3\), got \(4, 3\)"):
        ref.lstm_forward(**{**args, "w_peephole": np.zeros((4, 3))})
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"zoneout: expected a float in \[0, 1\)"):
            ref.lstm_forward(**args, zoneout=bad)
        with pytest.raises(ValueError, match=r"recurrent_dropout: expected a float in \[0, 1\)"):
            ref.gru_forward(**make_args(rng, VARIANTS["gru"]), recurrent_dropout=bad)
    with pytest.raises(TypeError, match="zoneout: expected a float"):
        ref.lstm_forward(**args, zoneout="0.1")
    with pytest.raises(ValueError, match="masks: only for training=True"):
        ref.lstm_forward(**args, zoneout=0.1, masks={})
    with pytest.raises(ValueError, match=r"masks: expected a dict with the keys "
                                         r"\['zoneout_c', 'zoneout_h'\]"):
        ref.lstm_forward(**args, zoneout=0.1, training=True, masks={"zoneout_h": None})
    good = ref.recurrent_masks("lstm", T, B, H, proj_size=P, zoneout=0.1, seed=0)
    with pytest.raises(ValueError, match=r"masks\['zoneout_h'\]: expected shape \(4, 3, 2\)"):
        ref.lstm_forward(**args, zoneout=0.1, training=True,
                         masks={**good, "zoneout_h": np.zeros((4, 3, 3))})
    with pytest.raises(ValueError, match="op: expected one of"):
        ref.recurrent_masks("lstmp", T, B, H)
    ln = make_args(rng, VARIANTS["layer_norm_lstm"])
    with pytest.raises(ValueError, match=r"ln_ih_weight: expected shape \(12,\), got \(3,\)"):
        ref.layer_norm_lstm_forward(**{**ln, "ln_ih_weight": np.ones(3)})
    with pytest.raises(ValueError, match=r"ln_c_bias: expected shape \(3,\), got \(12,\)"):
        ref.layer_norm_lstm_forward(**{**ln, "ln_c_bias": np.ones(12)})
    for eps in (0.0, -1e-5, "1e-5"):
        with pytest.raises(ValueError, match="eps: expected a float > 0"):
            ref.layer_norm_gru_forward(**make_args(rng, VARIANTS["layer_norm_gru"]), eps=eps)
    with pytest.raises(TypeError, match="ln_c_weight"):
        ref.layer_norm_gru_forward(**make_args(rng, VARIANTS["layer_norm_gru"]),
                                   ln_c_weight=np.ones(H))
    _, _, ctx = ref.layer_norm_gru_forward(**make_args(rng, VARIANTS["layer_norm_gru"]),
                                           training=True)
    with pytest.raises(ValueError, match="ctx: comes from layer_norm_gru_forward, not "
                                         "gru_forward"):
        ref.gru_backward(ctx)
    _, _, _, ctx = ref.lstm_forward(**args, training=True)
    with pytest.raises(ValueError, match=r"dh_n: expected shape \(3, 2\), got \(3, 3\)"):
        ref.lstm_backward(ctx, dh_n=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 3, 2\)"):
        ref.lstm_backward(ctx, np.zeros((4, 3, 3)))
