"""rnnfast.torch with bfloat16: ``torch.autocast("cpu", dtype=torch.bfloat16)`` regions and
bfloat16 modules run on the bfloat16 kernels (no fallback to torch.nn), with autocast's dtypes
(float32 parameters and gradients, bfloat16 outputs where torch.nn gives them), and an error
against float64 at most twice torch's own on the same weights and inputs; the forward
operator's autocast rule; compile, opcheck."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnfast  # noqa: E402
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


def _run_autocast(module, x, states, dy, lengths, seed):
    torch.manual_seed(seed)  # the same dropout masks in every run
    return forward_backward(module, x, states, dy, True, lengths)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("packed, kw", [
    (False, {}), (True, {}), (False, {"batch_first": True}),
    (False, {"num_layers": 2, "bidirectional": True, "dropout": 0.3}),
    (True, {"num_layers": 2, "bidirectional": True, "dropout": 0.3})])
def test_eager_autocast_on_float32_input_equals_the_cast_input(cell, packed, kw, no_fallback):
    # eager code hands a float32 x to the kernels uncast (they round it as autocast's cast
    # does): outputs and every gradient are bit for bit those of an x cast to bfloat16 first
    ours, _, _ = trio(cell, 10, **kw)
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1) * D
    g = torch.Generator().manual_seed(10)
    x = torch.randn((B, T, I) if kw.get("batch_first") else (T, B, I), generator=g)
    x[0, 0, :3] = torch.tensor([1e-40, -3e-39, 1 + 2 ** -9])  # subnormals, a rounding tie
    states = tuple(0.5 * torch.randn(L, B, H, generator=g)
                   for _ in range(2 if cell == "lstm" else 1))
    lengths = torch.tensor(LENGTHS) if packed else None
    y_shape = (sum(LENGTHS), D * H) if packed else tuple(x.shape[:-1]) + (D * H,)
    dy = [torch.randn(y_shape, generator=g, dtype=torch.float64)] + \
        [torch.randn(L, B, H, generator=g, dtype=torch.float64) for _ in states]
    for with_states in (None, states):
        got, got_g = _run_autocast(ours, x, with_states, dy, lengths, 11)
        want, want_g = _run_autocast(ours, x.to(torch.bfloat16), with_states, dy, lengths, 11)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and torch.equal(a, b)
        assert got_g["x"].dtype == torch.float32
        for name, b in want_g.items():
            assert torch.equal(got_g[name], b.float()), name
        # inference (no autograd: the forward computation is called directly)
        hx = with_states if with_states is None or len(with_states) == 2 else with_states[0]
        runs = []
        for inp in (x, x.to(torch.bfloat16)):
            if packed:
                inp = pack_padded_sequence(inp, lengths, enforce_sorted=False)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                torch.manual_seed(12)
                y, state = ours(inp, hx)
            runs.append([y.data if packed else y] +
                        (list(state) if isinstance(state, tuple) else [state]))
        for a, b in zip(*runs):
            assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("grad", [False, True])
def test_eager_autocast_hands_the_callers_float32_input_to_the_kernels(grad, monkeypatch,
                                                                       no_fallback):
    # no bfloat16 copy of x and no float32 copy back: the kernels read the caller's memory
    from rnnfast.functional.stack import RecurrentStack
    seen = []
    forward = RecurrentStack.forward

    def spy(self, weights, x, *args, **kwargs):
        seen.append((x, self.precision))
        return forward(self, weights, x, *args, **kwargs)
    monkeypatch.setattr(RecurrentStack, "forward", spy)
    ours, _, _ = trio("lstm", 12)
    x = torch.randn(T, B, I, requires_grad=grad)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        y = ours(x)[0]
    assert y.dtype == torch.bfloat16
    (array, precision), = seen
    assert precision == "bfloat16" and array.dtype == np.float32
    assert np.shares_memory(array, x.detach().numpy())
    if grad:  # the kernels' saved context reads x: changing it in place is refused
        with torch.no_grad():
            x.add_(1)
        with pytest.raises(RuntimeError, match="inplace"):
            y.float().sum().backward()


def test_eager_autocast_create_graph_on_float32_input(no_fallback):
    # create_graph=True runs the backward operator (on the bfloat16 x autocast's cast gives):
    # the same gradient, and differentiating it again raises
    ours, _, _ = trio("lstm", 13)
    x = torch.randn(T, B, I, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y2 = ours(x)[0], ours(x2.to(torch.bfloat16))[0]
    g, = torch.autograd.grad(y.float().sum(), x, create_graph=True)
    g2, = torch.autograd.grad(y2.float().sum(), x2, create_graph=True)
    assert g.dtype == torch.float32 and torch.equal(g, g2)
    with pytest.raises(RuntimeError, match="second derivatives"):
        g.sum().backward()


# --- bfloat16 inference keeps the weights' packings (rnnfast._torch_ops.weights_token) ---

BF16_ISAS = rnnfast.supported_bf16_isas()


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    """Each bfloat16 path (the hardware ones keep packings; on the portable one a stale
    token could change nothing, so the outputs' checks below fail only on those)."""
    before = rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(request.param)
    yield request.param
    rnnfast.set_bf16_isa(before)


@pytest.fixture
def keep_packings():
    before = rt.keep_bf16_packings(True)
    yield
    rt.keep_bf16_packings(before)


@pytest.fixture
def tokens(monkeypatch, keep_packings):
    """The weights_token of every recurrent kernel call, in order (with keep_bf16_packings on;
    ``tokens_by_default``: the same spy with the setting as it is)."""
    return _token_spy(monkeypatch)


@pytest.fixture
def tokens_by_default(monkeypatch):
    return _token_spy(monkeypatch)


def _token_spy(monkeypatch):
    import rnnfast.functional as F
    seen = []
    for name in ("rnn_forward", "lstm_forward", "gru_forward"):
        kernel = getattr(F, name)

        def spy(*args, kernel=kernel, **kwargs):
            seen.append(kwargs.get("weights_token"))
            return kernel(*args, **kwargs)
        monkeypatch.setattr(F, name, spy)
    return seen


def _copy_through_data(module, x):
    # an in-place write torch's version counter does not see (p.data shares the memory, not
    # the counter)
    module.weight_hh_l0.data.copy_(torch.randn(4 * H, H))


def test_packings_are_not_kept_by_default_so_writes_through_data_are_seen(bf16_isa,
                                                                          tokens_by_default,
                                                                          no_fallback):
    assert rt.keep_bf16_packings(False) is False  # the default
    ours, _, _ = trio("lstm", 22)
    x = torch.randn(T, B, I)
    for _ in range(3):
        _infer(ours, x)
    assert tokens_by_default == [None] * 3
    for _ in range(2):
        _copy_through_data(ours, x)
        _assert_equal(_infer(ours, x), _fresh(ours, x))
    assert set(tokens_by_default) == {None}


def test_kept_packings_do_not_see_writes_through_data(bf16_isa, tokens, no_fallback):
    """The documented limit of keep_bf16_packings(True) (rnnfast.torch's docstring): on a
    hardware path the write is not seen until the parameters change in a way torch counts."""
    ours, _, _ = trio("lstm", 23)
    x = torch.randn(T, B, I)
    for _ in range(3):
        before = _infer(ours, x)
    _copy_through_data(ours, x)
    got, want = _infer(ours, x), _fresh(ours, x)
    if bf16_isa == "portable":  # nothing packed to keep: the write is seen
        _assert_equal(got, want)
    else:
        _assert_equal(got, before)
        assert not torch.equal(got[0], want[0])
    with torch.no_grad():
        ours.weight_hh_l0.add_(0)  # counted: repacked
    _assert_equal(_infer(ours, x), want)


def test_keep_bf16_packings_takes_a_bool_and_returns_the_previous_setting():
    before = rt.keep_bf16_packings(True)
    try:
        assert rt.keep_bf16_packings(False) is True
        assert rt.keep_bf16_packings(False) is False
        with pytest.raises(TypeError, match="keep_bf16_packings: expected True or False"):
            rt.keep_bf16_packings(1)
    finally:
        rt.keep_bf16_packings(before)


def _infer(module, x):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = module(x)
    return [y] + (list(state) if isinstance(state, tuple) else [state])


def _fresh(module, x):
    """The outputs of a new module holding the same values (new memory, never seen)."""
    other = type(module)(I, H, num_layers=module.num_layers,
                         bidirectional=module.bidirectional)
    other.load_state_dict(module.state_dict())
    return _infer(other, x)


def _assert_equal(got, want):
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_inference_reuses_packings_while_the_parameters_are_unchanged(cell, bf16_isa, tokens,
                                                                        no_fallback):
    ours, _, _ = trio(cell, 20, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I)
    want = _fresh(ours, x)
    del tokens[:]
    runs = [_infer(ours, x) for _ in range(4)]
    # 4 kernel calls (2 layers x 2 directions) per forward: none at the first sighting of
    # the parameters, then one token, the same for every call and layer
    assert tokens[:4] == [None] * 4
    token = tokens[4]
    assert token is not None and tokens[4:] == [token] * 12
    for got in runs:
        _assert_equal(got, want)
    # training calls, float32 calls and bfloat16 calls with a gradient get no token
    del tokens[:]
    ours(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours(x)[0].float().sum().backward()
    assert tokens == [None] * 8


def _sgd_step(module, x):
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        module(x)[0].float().sum().backward()
    opt.step()
    module.zero_grad()


def _load_state_dict(module, x):
    module.load_state_dict({k: v + 0.25 for k, v in module.state_dict().items()})


def _add_in_place(module, x):
    with torch.no_grad():
        module.weight_hh_l0.add_(0.25)


def _add_to_a_view(module, x):
    with torch.no_grad():
        module.weight_ih_l0[:H].mul_(-1)


def _assign_data(module, x):
    module.weight_hh_l0.data = module.weight_hh_l0.detach() * -1


def _assign_data_twice(module, x):
    # the second tensor may be allocated where the first parameter's memory was freed, with
    # the same _version: the storage's identity tells them apart
    module.weight_ih_l0.data = module.weight_ih_l0.detach() + 0.25
    module.weight_ih_l0.data = torch.randn(4 * H, I)


def _new_parameter(module, x):
    module.weight_ih_l0 = torch.nn.Parameter(torch.randn(4 * H, I))


def _other_modules_parameters(module, x):
    # another module's parameters (of the same _version numbers, in other memory)
    other = rt.LSTM(I, H)
    module.weight_ih_l0, module.weight_hh_l0 = other.weight_ih_l0, other.weight_hh_l0


CHANGES = [_sgd_step, _load_state_dict, _add_in_place, _add_to_a_view, _assign_data,
           _assign_data_twice, _new_parameter, _other_modules_parameters]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__[1:] for c in CHANGES])
def test_a_changed_parameter_never_reuses_a_stale_packing(change, bf16_isa, tokens,
                                                           no_fallback):
    ours, _, _ = trio("lstm", 21)
    x = torch.randn(T, B, I)
    for _ in range(3):
        _infer(ours, x)  # the packings are kept (token from the second call)
    assert tokens[-1] is not None
    before = _infer(ours, x)
    old_token = tokens[-1]
    for round in range(3):
        change(ours, x)
        want = _fresh(ours, x)
        del tokens[:]
        got = [_infer(ours, x) for _ in range(3)]
        assert tokens[0] is None and old_token not in tokens  # packed anew
        for outputs in got:
            _assert_equal(outputs, want)
        assert not torch.equal(got[0][0], before[0])
        before, old_token = got[0], tokens[-1]


def test_weights_token_only_for_float32_weights_read_in_place():
    from rnnfast._torch_ops import weights_token
    w = [torch.randn(4 * H, I), torch.randn(4 * H, H)]
    assert weights_token(w) is None and weights_token(w) is not None  # second sighting
    assert weights_token(w) == weights_token(w)
    for other in ([w[0].to(torch.bfloat16), w[1]], [w[0], torch.randn(H, 4 * H).t()],
                  [w[0].double(), w[1]]):
        assert weights_token(other) is None and weights_token(other) is None
    with torch.inference_mode():  # inference tensors have no _version
        inf = [torch.randn(4 * H, I), torch.randn(4 * H, H)]
    assert weights_token(inf) is None and weights_token(inf) is None


def test_weights_token_holds_no_memory():
    import gc
    import weakref
    from rnnfast._torch_ops import _SIGHTINGS, weights_token
    w = [torch.randn(4 * H, I), torch.randn(4 * H, H)]
    weights_token(w)
    weights_token(w)
    key = id(w[0])
    assert key in _SIGHTINGS
    # a parameter given other memory: its old storage is freed (not held for the token)
    p = torch.nn.Parameter(torch.randn(4 * H, I))
    weights = [p, w[1]]
    weights_token(weights)
    old = weakref.ref(p.untyped_storage())
    p.data = torch.randn(4 * H, I)
    gc.collect()
    assert old() is None and weights_token(weights) is None
    del w, weights
    gc.collect()
    assert key not in _SIGHTINGS


def test_compiled_inference_repacks_after_a_change(tokens, no_fallback):
    # compiled programs call the operator, whose CPU kernel derives the token the same way
    ours, _, _ = trio("lstm", 22)
    x = torch.randn(T, B, I)
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    for _ in range(3):
        got = _infer(compiled, x)
    assert tokens[0] is None and tokens[-1] is not None
    _assert_equal(got, _fresh(ours, x))
    _add_in_place(ours, x)
    del tokens[:]
    got = _infer(compiled, x)
    assert tokens == [None]
    _assert_equal(got, _fresh(ours, x))
