"""rnnfast.torch with bfloat16: ``torch.autocast("cpu", dtype=torch.bfloat16)`` regions and
bfloat16 modules run on the bfloat16 kernels (no fallback to torch.nn), with autocast's dtypes
(float32 parameters and gradients, bfloat16 outputs where torch.nn gives them), and an error
against float64 at most twice torch's own on the same weights and inputs; the forward
operator's autocast rule; compile, opcheck."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnfast.torch as rt  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

CLASSES = {"rnn": (rt.RNN, torch.nn.RNN), "lstm": (rt.LSTM, torch.nn.LSTM),
           "gru": (rt.GRU, torch.nn.GRU)}
T, B, I, H = 9, 6, 20, 24
LENGTHS = [9, 4, 7, 1, 9, 5]


def rms_err(got, want):
    d = got.detach().double() - want.detach().double()
    return float(d.pow(2).mean().sqrt())


def trio(cell, seed, **kw):
    """(ours, torch.nn float32, torch.nn float64) with the same weights."""
    ours_cls, torch_cls = CLASSES[cell]
    torch.manual_seed(seed)
    ours = ours_cls(I, H, **kw)
    t32, t64 = torch_cls(I, H, **kw), torch_cls(I, H, **kw, dtype=torch.float64)
    t32.load_state_dict(ours.state_dict())
    t64.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    return ours, t32, t64


@pytest.fixture
def no_fallback(monkeypatch):
    """torch.nn's forward must not run; no fallback warning either."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.nn's forward ran")
    for ours_cls, _ in CLASSES.values():
        monkeypatch.setattr(ours_cls, "_torch_forward", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def forward_backward(module, x, states, dy, autocast, lengths=None):
    """Outputs and gradients (input, states, parameters) of a forward under autocast or not."""
    x = x.clone().requires_grad_()
    states = None if states is None else tuple(s.clone().requires_grad_() for s in states)
    hx = None if states is None else (states if len(states) == 2 else states[0])
    inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y, state = module(inp, hx)
    if lengths is not None:
        y = y.data
    outs = [y] + (list(state) if isinstance(state, tuple) else [state])
    loss = sum((o.to(dy[i].dtype) * dy[i]).sum() for i, o in enumerate(outs))
    module.zero_grad()
    loss.backward()
    grads = {"x": x.grad, **{f"state{i}": s.grad for i, s in enumerate(states or ())},
             **{n: p.grad for n, p in module.named_parameters()}}
    return outs, grads


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("packed", [False, True])
def test_autocast_runs_the_bf16_kernels_within_twice_torch_error(cell, seed, packed, no_fallback):
    ours, t32, t64 = trio(cell, seed, num_layers=2, bidirectional=True)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=g)
    states = tuple(0.5 * torch.randn(4, B, H, generator=g) for _ in range(2 if cell == "lstm"
                                                                              else 1))
    lengths = torch.tensor(LENGTHS) if packed else None
    y_shape = (sum(LENGTHS), 2 * H) if packed else (T, B, 2 * H)
    dy = [torch.randn(y_shape, generator=g, dtype=torch.float64)] + \
        [torch.randn(4, B, H, generator=g, dtype=torch.float64) for _ in states]
    got, got_g = forward_backward(ours, x, states, dy, True, lengths)
    want, want_g = forward_backward(t32, x, states, dy, True, lengths)
    ref, ref_g = forward_backward(t64, x.double(), tuple(s.double() for s in states), dy, False,
                                  lengths)
    for a, b, r in zip(got, want, ref):
        assert a.dtype == b.dtype
        assert rms_err(a, r) <= 2 * rms_err(b, r)
    # torch's autocast: bfloat16 for the RNN and the LSTM on a tensor, else float32 outputs
    float32 = cell == "gru" or cell == "lstm" and packed
    assert got[0].dtype == (torch.float32 if float32 else torch.bfloat16)
    for name, r in ref_g.items():
        assert got_g[name].dtype == torch.float32, name  # float32 parameters and inputs
        assert rms_err(got_g[name], r) <= 2 * rms_err(want_g[name], r), name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bfloat16_modules_run_the_bf16_kernels(cell, no_fallback):
    ours, t32, t64 = trio(cell, 3, batch_first=True)
    ours.to(torch.bfloat16)
    t32.to(torch.bfloat16)  # torch.nn in bfloat16: the yardstick
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, T, I, generator=g).to(torch.bfloat16)
    dy = [torch.randn(B, T, H, generator=g, dtype=torch.float64)] + \
        [torch.randn(1, B, H, generator=g, dtype=torch.float64)
         for _ in range(2 if cell == "lstm" else 1)]
    got, got_g = forward_backward(ours, x, None, dy, False)
    want, want_g = forward_backward(t32, x, None, dy, False)
    ref, ref_g = forward_backward(t64, x.double(), None, dy, False)
    for a, b, r in zip(got, want, ref):
        assert a.dtype == torch.bfloat16
        assert rms_err(a, r) <= 2 * rms_err(b, r)
    for name, r in ref_g.items():
        assert got_g[name].dtype == torch.bfloat16, name
        assert rms_err(got_g[name], r) <= 2 * rms_err(want_g[name], r), name


def test_autocast_bfloat16_parameters_and_unbatched_input(no_fallback):
    ours, _, _ = trio("lstm", 4)
    ours.to(torch.bfloat16)
    x = torch.randn(T, I)  # float32 input, bfloat16 parameters: autocast casts the input
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, (h, c) = ours(x)
    assert y.shape == (T, H) and y.dtype == h.dtype == c.dtype == torch.bfloat16
    expected = ours(x.to(torch.bfloat16))[0]
    assert torch.equal(y, expected)


def test_autocast_equals_the_bf16_kernels_on_rounded_inputs(no_fallback):
    # autocast = cast x and the states to bfloat16, products from bfloat16 weights; the biases
    # stay float32 (made bfloat16 numbers here, so that the bfloat16 module holds them exactly)
    ours, _, _ = trio("lstm", 5)
    x = torch.randn(T, B, I)
    with torch.no_grad():
        for name in ("bias_ih_l0", "bias_hh_l0"):
            getattr(ours, name).copy_(getattr(ours, name).to(torch.bfloat16))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, (h, c) = ours(x)
        bf = rt.LSTM(I, H)
        bf.load_state_dict(ours.state_dict())
        y2, (h2, c2) = bf.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert torch.equal(y, y2) and torch.equal(h, h2) and torch.equal(c, c2)


def test_recurrent_function_under_autocast():
    torch.manual_seed(6)
    w_ih, w_hh = torch.randn(3 * H, I) * 0.2, torch.randn(3 * H, H) * 0.2
    b_ih, b_hh = torch.randn(3 * H) * 0.1, torch.randn(3 * H) * 0.1
    x = torch.randn(T, B, I)
    y32, h32 = rt.RecurrentFunction.apply("gru", "tanh", None, False, False, x, None, None,
                                          w_ih, w_hh, b_ih, b_hh)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = rt.RecurrentFunction.apply("gru", "tanh", None, False, False, x, None, None,
                                          w_ih, w_hh, b_ih, b_hh)
    assert y.dtype == torch.float32 and not torch.equal(y, y32)
    assert float((y - y32).abs().max()) < 0.05


def test_forward_operator_autocast_rule():
    ours, _, _ = trio("lstm", 7)
    weights = [getattr(ours, n) for n in ours._flat_weights_names]
    x = torch.randn(T, B, I, requires_grad=True)
    config = ("lstm", "tanh", H, 0, 1, True, False, False, False, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h_n, c_n, saved = torch.ops.rnnfast.recurrent_stack(x, None, None, weights, [], None,
                                                               *config)
    assert y.dtype == h_n.dtype == c_n.dtype == torch.bfloat16
    want = torch.ops.rnnfast.recurrent_stack(x.to(torch.bfloat16), None, None, weights, [],
                                             None, *config)
    assert torch.equal(y, want[0]) and torch.equal(c_n, want[2])
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and weights[0].grad.dtype == torch.float32
    # float16 autocast: the operator runs unchanged (float32)
    with torch.autocast("cpu", dtype=torch.float16):
        y16 = torch.ops.rnnfast.recurrent_stack(x, None, None, weights, [], None, *config)[0]
    assert y16.dtype == torch.float32


def test_compiled_autocast_equals_eager(no_fallback):
    ours, _, _ = trio("gru", 8, num_layers=2)
    x = torch.randn(T, B, I)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager = ours(x)
        compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")(x)
    for a, b in zip(eager, compiled):
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("weights_dtype", [torch.float32, torch.bfloat16])
def test_opcheck_with_bfloat16_inputs(weights_dtype):
    ours, _, _ = trio("lstm", 9)
    weights = [getattr(ours, n).detach().to(weights_dtype).requires_grad_()
               for n in ours._flat_weights_names]
    x = torch.randn(4, 3, I, dtype=torch.bfloat16, requires_grad=True)
    h0 = torch.randn(1, 3, H, dtype=torch.bfloat16, requires_grad=True)
    result = torch.library.opcheck(
        torch.ops.rnnfast.recurrent_stack.default,
        (x, h0, None, weights, [], None, "lstm", "tanh", H, 0, 1, True, False, False, False,
         True))
    assert set(result.values()) == {"SUCCESS"}, result
