"""rnnfast.torch: the torch.nn drop-ins against torch.nn itself, outputs and gradients."""
import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnfast.functional  # noqa: E402
import rnnfast.torch as rt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402
from subprocess_env import PACKAGE_PARENT, python_env  # noqa: E402


# cell id: (rnnfast.torch class, torch.nn class, constructor keywords)
CELLS = {
    "rnn_tanh": (rt.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rt.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rt.LSTM, torch.nn.LSTM, {}),
    "gru": (rt.GRU, torch.nn.GRU, {}),
    "lstm_proj": (rt.LSTM, torch.nn.LSTM, {"proj_size": 3}),
}
# DESIGN.md, numerical contract, against a float64 oracle: (outputs, gradients).
TOL = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-10, 1e-10)}
T, B, I, H = 5, 4, 3, 4
LENGTHS = [3, 5, 1, 4]  # unsorted: the packed batch gets sorting indices
# torch's own note that its oneDNN path has no projections (it falls back to its default one)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")


def is_lstm(cell):
    return CELLS[cell][1] is torch.nn.LSTM


def state_sizes(cell):
    """Features of h (and c): proj_size for h with a projection."""
    if not is_lstm(cell):
        return (H,)
    return (CELLS[cell][2].get("proj_size") or H, H)


def rel_err(got, want):
    got, want = got.detach().double(), want.detach().double()
    return (got - want).abs().max().item() / max(1.0, want.abs().max().item())


def random_state_dict(rng, module):
    return {k: torch.from_numpy(rng.uniform(-0.6, 0.6, size=tuple(v.shape)))
            for k, v in module.state_dict().items()}


def make_pair(rng, cell, dtype, **kw):
    """(ours in dtype, torch.nn float64 oracle) holding the same weight values."""
    ours_cls, torch_cls, extra = CELLS[cell]
    ours = ours_cls(I, H, **extra, **kw, dtype=dtype)
    oracle = torch_cls(I, H, **extra, **kw, dtype=torch.float64)
    weights = {k: v.to(dtype) for k, v in random_state_dict(rng, oracle).items()}
    ours.load_state_dict(weights)
    oracle.load_state_dict({k: v.double() for k, v in weights.items()})
    return ours, oracle


def make_data(rng, cell, dtype, *, num_layers, bidirectional, batch_first, with_state):
    x = torch.from_numpy(rng.standard_normal((B, T, I) if batch_first else (T, B, I))).to(dtype)
    LD = num_layers * (2 if bidirectional else 1)
    states = tuple(torch.from_numpy(rng.standard_normal((LD, B, n)) * 0.5).to(dtype)
                   for n in state_sizes(cell)) if with_state else None
    return x, states


def run(module, x, states, lengths, upstream, rng):
    """Forward and backward of a module; packed input when lengths are given.

    Returns (outputs, gradients), each a dict of tensors; upstream gradients are drawn from
    rng on first use and kept in ``upstream`` for the next module."""
    dtype = next(module.parameters()).dtype
    x = x.detach().to(dtype).requires_grad_()
    leaves = [x]
    hx = None
    if states is not None:
        states = [s.detach().to(dtype).requires_grad_() for s in states]
        leaves += states
        hx = tuple(states) if len(states) == 2 else states[0]
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, torch.tensor(lengths), batch_first=module.batch_first,
                                   enforce_sorted=False)
    out, new = module(inp, hx)
    new = new if isinstance(new, tuple) else (new,)
    outputs = {"out": out.data if lengths is not None else out}
    outputs.update({f"state{i}": s for i, s in enumerate(new)})
    if lengths is not None:
        for name in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            outputs[name] = getattr(out, name)
    loss = 0
    for name in ["out"] + [f"state{i}" for i in range(len(new))]:
        value = outputs[name]
        if name not in upstream:
            upstream[name] = torch.from_numpy(rng.standard_normal(tuple(value.shape)))
        loss = loss + (value * upstream[name].to(dtype)).sum()
    names = ["x"] + [f"hx{i}" for i in range(len(leaves) - 1)]
    params = list(module.named_parameters())
    grads = torch.autograd.grad(loss, leaves + [p for _, p in params])
    return outputs, dict(zip(names + [n for n, _ in params], grads))


def compare(rng, cell, dtype, *, num_layers=1, bidirectional=False, batch_first=False,
            packed=False, with_state=True, **kw):
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, **kw)
    ours, oracle = make_pair(rng, cell, dtype, **kw)
    x, states = make_data(rng, cell, dtype, num_layers=num_layers, bidirectional=bidirectional,
                          batch_first=batch_first, with_state=with_state)
    lengths = LENGTHS if packed else None
    upstream = {}
    want_out, want_grads = run(oracle, x, states, lengths, upstream, rng)
    got_out, got_grads = run(ours, x, states, lengths, upstream, rng)
    out_tol, grad_tol = TOL[dtype]
    assert got_out.keys() == want_out.keys()
    for name, want in want_out.items():
        got = got_out[name]
        if want is None or not want.is_floating_point():
            assert (got is None) == (want is None), name
            if want is not None:
                assert torch.equal(got, want), name
            continue
        assert got.dtype == dtype and got.shape == want.shape, name
        assert rel_err(got, want) < out_tol, name
    assert got_grads.keys() == want_grads.keys()
    for name, want in want_grads.items():
        got = got_grads[name]
        assert got.dtype == dtype and got.shape == want.shape, name
        assert rel_err(got, want) < grad_tol, name


GRID = list(itertools.product([1, 2], [False, True], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,packed,with_state", GRID,
                         ids=["L%d-bi%d-bf%d-packed%d-hx%d" % g for g in GRID])
def test_matches_torch_nn(rng, cell, dtype, num_layers, bidirectional, batch_first, packed,
                         with_state):
    compare(rng, cell, dtype, num_layers=num_layers, bidirectional=bidirectional,
            batch_first=batch_first, packed=packed, with_state=with_state)


@pytest.mark.parametrize("cell", list(CELLS))
def test_without_bias_matches_torch_nn(rng, cell):
    compare(rng, cell, torch.float64, num_layers=2, bidirectional=True, bias=False)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_unbatched_input_matches_torch_nn(rng, cell, batch_first, with_state):
    ours, oracle = make_pair(rng, cell, torch.float64, num_layers=2, bidirectional=True,
                             batch_first=batch_first)
    x = torch.from_numpy(rng.standard_normal((T, I))).requires_grad_()
    hx = None
    if with_state:
        states = [torch.from_numpy(rng.standard_normal((4, n))) for n in state_sizes(cell)]
        hx = tuple(states) if is_lstm(cell) else states[0]
    got, got_state = ours(x, hx)
    want, want_state = oracle(x, hx)
    out_size = state_sizes(cell)[0]
    assert got.shape == want.shape == (T, 2 * out_size)
    assert rel_err(got, want) < 1e-10
    got_state = got_state if is_lstm(cell) else (got_state,)
    want_state = want_state if is_lstm(cell) else (want_state,)
    for g, w, n in zip(got_state, want_state, state_sizes(cell)):
        assert g.shape == w.shape == (4, n) and rel_err(g, w) < 1e-10
    dy = torch.from_numpy(rng.standard_normal((T, 2 * out_size)))
    (gx,) = torch.autograd.grad(got, x, dy)
    (wx,) = torch.autograd.grad(want, x, dy)
    assert rel_err(gx, wx) < 1e-10


def test_import_rnnfast_does_not_import_torch():
    code = ("import sys, rnnfast, rnnfast.functional, rnnfast.reference; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE_PARENT, env=python_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


# ---- construction, parameters, state_dict

@pytest.mark.parametrize("cell", list(CELLS))
def test_same_seed_gives_torch_nn_initial_weights(cell):
    ours_cls, torch_cls, extra = CELLS[cell]
    torch.manual_seed(7)
    ours = ours_cls(I, H, num_layers=2, **extra, bidirectional=True)
    torch.manual_seed(7)
    theirs = torch_cls(I, H, num_layers=2, **extra, bidirectional=True)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for name, value in theirs_sd.items():
        assert torch.equal(ours_sd[name], value), name
    bound = 1 / np.sqrt(H)
    values = torch.cat([p.flatten() for p in ours.parameters()])
    assert values.abs().max() <= bound and values.std() > bound / 3


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_loads_both_ways(rng, cell, bias):
    ours_cls, torch_cls, extra = CELLS[cell]
    ours = ours_cls(I, H, num_layers=2, **extra, bias=bias, bidirectional=True)
    theirs = torch_cls(I, H, num_layers=2, **extra, bias=bias, bidirectional=True)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    theirs.load_state_dict(random_state_dict(rng, theirs))
    ours.load_state_dict(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value)
    ours.load_state_dict({k: v.float() for k, v in random_state_dict(rng, ours).items()})
    theirs.load_state_dict(ours.state_dict())
    for name, value in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[name], value)
    assert "weight_hh_l1_reverse" in ours.state_dict()
    assert ("bias_ih_l0" in ours.state_dict()) == bias
    assert [[p.shape for p in ps] for ps in ours.all_weights] == \
        [[p.shape for p in ps] for ps in theirs.all_weights]


def test_factory_keywords_and_repr():
    m = rt.GRU(3, 5, num_layers=2, batch_first=True, dropout=0.25, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert repr(m) == repr(torch.nn.GRU(3, 5, num_layers=2, batch_first=True, dropout=0.25))
    assert repr(rt.RNN(2, 3, 1, "relu")) == repr(torch.nn.RNN(2, 3, 1, "relu"))
    assert rt.RNN(2, 3, 1, "relu").nonlinearity == "relu"
    meta = rt.LSTM(3, 4, device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert isinstance(m, torch.nn.Module)


def test_constructor_errors():
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        rt.LSTM(3, 4, proj_size=4)  # torch.nn's check and message
    with pytest.raises(ValueError, match="nonlinearity"):
        rt.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        rt.GRU(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(TypeError, match="hidden_size"):
        rt.LSTM(3, 4.0)
    with pytest.raises(ValueError, match="input_size"):
        rt.LSTM(0, 4)
    with pytest.raises(TypeError, match="batch_first"):
        rt.LSTM(3, 4, batch_first=1)
    with pytest.raises(UserWarning, match="dropout"):
        rt.LSTM(3, 4, dropout=0.5)


# ---- forward arguments

BAD_FORWARD_CALLS = {
    "4-D input": ("lstm", lambda x: (torch.zeros(1, 5, 2, 3),)),
    "input features": ("lstm", lambda x: (torch.zeros(5, 2, 4),)),
    "hx not a tuple": ("lstm", lambda x: (x, torch.zeros(2, 2, 4))),
    "c_0 shape": ("lstm", lambda x: (x, (torch.zeros(2, 2, 4), torch.zeros(2, 3, 4)))),
    "h_0 2-D for batched": ("lstm", lambda x: (x, (torch.zeros(2, 4), torch.zeros(2, 4)))),
    "input dtype": ("lstm", lambda x: (x.double(),)),
    "c_0 dtype": ("lstm", lambda x: (x, (torch.zeros(2, 2, 4),
                                         torch.zeros(2, 2, 4, dtype=torch.float64)))),
    "hx dtype": ("gru", lambda x: (x, torch.zeros(2, 2, 4, dtype=torch.float64))),
    "hx 3-D for unbatched": ("gru", lambda x: (torch.zeros(5, 3), torch.zeros(2, 1, 4))),
    "hx shape unbatched": ("gru", lambda x: (torch.zeros(5, 3), torch.zeros(3, 4))),
    "hx batch": ("rnn_tanh", lambda x: (x, torch.zeros(2, 3, 4))),
    "zero steps": ("gru", lambda x: (torch.zeros(0, 2, 3),)),
    "input not a tensor": ("rnn_relu", lambda x: (x.numpy(),)),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD_CALLS))
def test_bad_forward_arguments_raise_torch_nn_errors(case):
    """The drop-in contract: torch.nn's exception type and message for every bad call."""
    cell, make_args = BAD_FORWARD_CALLS[case]
    ours_cls, torch_cls, extra = CELLS[cell]
    args = make_args(torch.zeros(5, 2, 3))
    errors = []
    for cls in (torch_cls, ours_cls):
        torch.manual_seed(0)
        with pytest.raises(Exception) as info:
            cls(3, 4, num_layers=2, **extra)(*args)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("cell", list(CELLS))
def test_empty_batch_gives_empty_results(cell):
    ours_cls, torch_cls, extra = CELLS[cell]
    got = ours_cls(I, H, num_layers=2, **extra)(torch.zeros(T, 0, I))
    want = torch_cls(I, H, num_layers=2, **extra)(torch.zeros(T, 0, I))
    sizes = state_sizes(cell)
    assert got[0].shape == want[0].shape == (T, 0, sizes[0])
    got_states = got[1] if is_lstm(cell) else (got[1],)
    assert all(s.shape == (2, 0, n) for s, n in zip(got_states, sizes))


def test_non_contiguous_input(rng):
    ours, oracle = make_pair(rng, "lstm", torch.float64, batch_first=True)
    x = torch.from_numpy(rng.standard_normal((T, B, I))).transpose(0, 1)
    assert not x.is_contiguous()
    assert rel_err(ours(x)[0], oracle(x)[0]) < 1e-10


def test_kernels_see_the_tensors_memory(rng, monkeypatch):
    calls = []
    original = rnnfast.functional.lstm_forward

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(rnnfast.functional, "lstm_forward", spy)
    m = rt.LSTM(I, H)
    x = torch.from_numpy(rng.standard_normal((T, B, I)).astype(np.float32)).requires_grad_()
    h0, c0 = torch.zeros(1, B, H), torch.ones(1, B, H)
    y, (h_n, c_n) = m(x, (h0, c0))
    (args, kwargs, result), = calls
    assert kwargs["training"] is True
    ptr = lambda a: a.__array_interface__["data"][0]  # noqa: E731
    assert ptr(args[0]) == x.data_ptr()
    assert ptr(args[1]) == m.weight_ih_l0.data_ptr() and ptr(args[2]) == m.weight_hh_l0.data_ptr()
    assert ptr(args[3]) == m.bias_ih_l0.data_ptr() and ptr(args[4]) == m.bias_hh_l0.data_ptr()
    assert ptr(args[5]) == h0.data_ptr() and ptr(args[6]) == c0.data_ptr()
    assert y.data_ptr() == ptr(result[0])  # the states are stacked over layers: copies
    assert np.array_equal(h_n[0].detach().numpy(), result[1])
    assert np.array_equal(c_n[0].detach().numpy(), result[2])
    with torch.no_grad():
        m(x)
    assert calls[-1][1]["training"] is False and calls[-1][2][-1] is None


def test_gradients_come_from_the_kernel_without_copies(rng, monkeypatch):
    seen = []
    original = rnnfast.functional.gru_backward

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(rnnfast.functional, "gru_backward", spy)
    m = rt.GRU(I, H)
    x = torch.from_numpy(rng.standard_normal((T, B, I)).astype(np.float32)).requires_grad_()
    y, _ = m(x)
    gx, gw = torch.autograd.grad(y, [x, m.weight_hh_l0], torch.from_numpy(
        rng.standard_normal((T, B, H)).astype(np.float32)))
    (grads,) = seen
    assert np.shares_memory(gx.numpy(), grads["x"])
    assert np.shares_memory(gw.numpy(), grads["w_hh"])


def test_no_gradient_asked_for_none_returned(rng):
    apply = rt.RecurrentFunction.apply
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    w_ih = torch.from_numpy(rng.standard_normal((4 * H, I))).requires_grad_()
    w_hh = torch.from_numpy(rng.standard_normal((4 * H, H)))
    h0 = torch.from_numpy(rng.standard_normal((B, H))).requires_grad_()
    y, h_n, c_n = apply("lstm", "tanh", None, False, False, x, h0, None, w_ih, w_hh, None, None)
    y.backward(torch.ones_like(y))
    assert x.grad is None and w_hh.grad is None
    assert h0.grad.shape == (B, H) and w_ih.grad.shape == (4 * H, I)
    with pytest.raises(ValueError, match="b_ih, b_hh: expected both"):
        apply("lstm", "tanh", None, False, False, x, h0, None, w_ih, w_hh, w_ih[:, 0], None)


def test_in_place_change_before_backward_is_refused(rng):
    m = rt.LSTM(I, H)
    x = torch.from_numpy(rng.standard_normal((T, B, I)).astype(np.float32))
    y, _ = m(x)
    with torch.no_grad():
        m.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_backward_frees_the_saved_activations_unless_the_graph_is_retained(rng):
    from rnnfast import _torch_ops

    m = rt.LSTM(I, H, dtype=torch.float64)
    x = torch.from_numpy(rng.standard_normal((T, B, I))).requires_grad_()
    dy = torch.from_numpy(rng.standard_normal((T, B, H)))
    before = len(_torch_ops._LIVE)
    y, _ = m(x)
    assert len(_torch_ops._LIVE) == before + 1  # the forward's activations, kept
    (first,) = torch.autograd.grad(y, x, dy, retain_graph=True)
    assert len(_torch_ops._LIVE) == before + 1
    (second,) = torch.autograd.grad(y, x, dy)
    assert torch.equal(first, second)
    assert len(_torch_ops._LIVE) == before  # freed with the graph's saved tensors
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(y, x, dy)
    y, states = m(x)
    assert len(_torch_ops._LIVE) == before + 1
    del y, states
    assert len(_torch_ops._LIVE) == before  # freed with the graph


SECOND_DERIVATIVE = "second derivatives are not supported"


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_double_backward_is_refused(rng, cell, num_layers, bidirectional):
    ours_cls, _, extra = CELLS[cell]
    m = ours_cls(I, H, num_layers=num_layers, bidirectional=bidirectional,
                 dtype=torch.float64, **extra)
    x = torch.from_numpy(rng.standard_normal((T, B, I))).requires_grad_()
    y, _ = m(x)
    # The upstream gradient depends on y (it requires grad itself) ...
    (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=SECOND_DERIVATIVE):
        gx.sum().backward()
    # ... or not (y.sum()): torch's once_differentiable would give a gradient that does not
    # require grad, so a gradient penalty would silently count as a constant.
    y, _ = m(x)
    gx, gw = torch.autograd.grad(y.sum(), [x, m.weight_hh_l0], create_graph=True)
    assert gx.requires_grad and gw.requires_grad
    with pytest.raises(RuntimeError, match=SECOND_DERIVATIVE):
        (y.sum() + gx.pow(2).sum()).backward()
    with pytest.raises(RuntimeError, match=SECOND_DERIVATIVE):
        torch.autograd.grad(gw.sum(), m.weight_hh_l0)


def test_create_graph_gives_the_same_first_derivatives(rng):
    m = rt.LSTM(I, H, num_layers=2, dtype=torch.float64)
    x = torch.from_numpy(rng.standard_normal((T, B, I))).requires_grad_()
    dy = torch.from_numpy(rng.standard_normal((T, B, H)))
    params = [x] + list(m.parameters())
    plain = torch.autograd.grad(m(x)[0], params, dy)
    graphed = torch.autograd.grad(m(x)[0], params, dy, create_graph=True)
    assert all(torch.equal(a, b.detach()) for a, b in zip(plain, graphed))


def test_recurrent_function_refuses_double_backward(rng):
    x = torch.from_numpy(rng.standard_normal((T, B, I))).requires_grad_()
    w_ih = torch.from_numpy(rng.standard_normal((3 * H, I))).requires_grad_()
    w_hh = torch.from_numpy(rng.standard_normal((3 * H, H))).requires_grad_()
    y, _ = rt.RecurrentFunction.apply("gru", "tanh", None, False, False, x, None, None, w_ih,
                                      w_hh, None, None)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=SECOND_DERIVATIVE):
        gx.sum().backward()


def test_torch_module_tools(rng):
    import copy
    import io

    m = rt.GRU(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    y, h_n = m(x)
    with torch.inference_mode():
        y_inf, h_inf = m(x)
    assert torch.equal(y_inf, y) and torch.equal(h_inf, h_n) and y_inf.grad_fn is None
    doubled = {k: 2 * v.detach() for k, v in m.named_parameters()}
    y_call, _ = torch.func.functional_call(m, doubled, (x,))
    twin = copy.deepcopy(m)
    twin.load_state_dict(doubled)
    assert torch.equal(y_call, twin(x)[0]) and not torch.equal(y_call, y)
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x)[0], y)


# ---- the autograd.Function against finite differences

GRADCHECK = [
    ("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"),
]


@pytest.mark.parametrize("cell,nonlinearity", GRADCHECK, ids=["rnn_tanh", "rnn_relu", "lstm",
                                                              "gru"])
@pytest.mark.parametrize("variant", ["plain", "lengths-reverse-batch_first", "no-state-no-bias"])
def test_gradcheck(rng, cell, nonlinearity, variant):
    t, b, i, h = 3, 3, 2, 3
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    lengths = np.array([3, 1, 2]) if variant.startswith("lengths") else None
    reverse = batch_first = variant.startswith("lengths")

    def leaf(*shape, scale=0.5):
        return torch.from_numpy(rng.standard_normal(shape) * scale).requires_grad_()

    x = leaf(*((b, t, i) if batch_first else (t, b, i)), scale=1.0)
    full = variant != "no-state-no-bias"
    h0 = leaf(b, h) if full else None
    c0 = leaf(b, h) if full and cell == "lstm" else None
    w_ih, w_hh = leaf(gates * h, i), leaf(gates * h, h)
    b_ih, b_hh = (leaf(gates * h), leaf(gates * h)) if full else (None, None)

    def fn(*tensors):
        return rt.RecurrentFunction.apply(cell, nonlinearity, lengths, reverse, batch_first,
                                          *tensors)

    inputs = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


# ---- dropout between layers

def test_dropout_in_eval_mode_is_identity(rng):
    ours, oracle = make_pair(rng, "lstm", torch.float64, num_layers=3, dropout=0.5)
    ours.eval(), oracle.eval()
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    assert rel_err(ours(x)[0], oracle(x)[0]) < 1e-10


def test_dropout_one_zeroes_every_layer_input_but_the_first(rng):
    ours, oracle = make_pair(rng, "gru", torch.float64, num_layers=2, bidirectional=True,
                             dropout=1.0)
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    got, want = ours(x), oracle(x)
    assert rel_err(got[0], want[0]) < 1e-10 and rel_err(got[1], want[1]) < 1e-10


def test_dropout_masks_the_outputs_of_every_layer_but_the_last(rng):
    p = 0.4
    ours, _ = make_pair(rng, "rnn_tanh", torch.float64, num_layers=3, dropout=p)
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    torch.manual_seed(11)
    got, h_n = ours(x)
    # The same computation by hand: one layer at a time, masks drawn in the same order.
    layers = []
    for layer in range(3):
        single = rt.RNN(I if layer == 0 else H, H, dtype=torch.float64)
        single.load_state_dict({k[:-1] + "0": v for k, v in ours.state_dict().items()
                                if k.endswith(f"_l{layer}")})
        layers.append(single)
    torch.manual_seed(11)
    y, states = x, []
    for layer, single in enumerate(layers):
        y, h = single(y)
        states.append(h[0])
        if layer < 2:
            mask = torch.nn.functional.dropout(torch.ones_like(y), p, True)
            assert 0 < (mask == 0).float().mean() < 1
            y = y * mask
    assert torch.equal(got, y) and torch.equal(h_n, torch.stack(states))
    torch.manual_seed(12)
    assert not torch.equal(ours(x)[0], got)


# ---- fallback to torch's implementation

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("packed", [False, True])
def test_fallback_for_other_dtypes_warns_once_and_equals_torch(rng, monkeypatch, dtype, packed):
    monkeypatch.setattr(rt, "_warned_fallbacks", set())
    ours, oracle = make_pair(rng, "lstm", torch.float32, num_layers=2, bidirectional=True)
    ours.to(dtype), oracle.to(dtype)
    x = torch.from_numpy(rng.standard_normal((T, B, I))).to(dtype)
    hx = tuple(torch.from_numpy(rng.standard_normal((4, B, H))).to(dtype) for _ in range(2))
    inp = pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False) if packed else x
    with pytest.warns(RuntimeWarning, match=f"{dtype} on cpu.*PyTorch's own implementation"):
        got, (h_n, c_n) = ours(inp, hx)
    want, (wh, wc) = oracle(inp, hx)
    if packed:
        got, want = got.data, want.data
    assert got.dtype == dtype
    assert torch.equal(got, want) and torch.equal(h_n, wh) and torch.equal(c_n, wc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(inp)


def test_fallback_for_other_devices(monkeypatch):
    monkeypatch.setattr(rt, "_warned_fallbacks", set())
    m = rt.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, device="meta")
    with pytest.warns(RuntimeWarning, match="on meta"):
        y, h_n = m(torch.empty(2, 5, 3, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 5, 8) and h_n.shape == (4, 2, 4)


def test_fallback_under_autocast(rng, monkeypatch):
    monkeypatch.setattr(rt, "_warned_fallbacks", set())
    ours, oracle = make_pair(rng, "lstm", torch.float32)
    oracle.float()
    x = torch.from_numpy(rng.standard_normal((T, B, I))).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.warns(RuntimeWarning, match="autocast"):
            got = ours(x)[0]
        want = oracle(x)[0]
    assert got.dtype == want.dtype and torch.equal(got, want)


# ---- training

def train(cls, dtype, values_of=torch.float64, steps=8):
    """A tiny sequence regressor, LSTM (2 layers) + Linear on the last step, trained by Adam
    in dtype from one seeded start whose values are representable in values_of."""
    data = np.random.default_rng(5)
    x = torch.from_numpy(data.standard_normal((8, 7, 3))).to(values_of).to(dtype)
    target = torch.from_numpy(data.standard_normal((8, 1))).to(values_of).to(dtype)
    torch.manual_seed(3)
    lstm = cls(3, 6, num_layers=2, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(6, 1, dtype=torch.float64)
    lstm.to(values_of).to(dtype), head.to(values_of).to(dtype)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=0.05)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out, _ = lstm(x)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), [p.detach().clone() for p in params]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_training_follows_torch_nn(dtype):
    got_losses, got_params = train(rt.LSTM, dtype, values_of=dtype)
    want_losses, want_params = train(torch.nn.LSTM, torch.float64, values_of=dtype)
    out_tol, grad_tol = TOL[dtype]
    assert want_losses[-1] < 0.5 * want_losses[0]  # the model learns
    assert np.abs(got_losses - want_losses).max() / max(1, np.abs(want_losses).max()) < out_tol
    for got, want in zip(got_params, want_params):
        assert rel_err(got, want) < grad_tol
