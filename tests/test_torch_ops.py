"""rnnfast.torch as PyTorch operators: torch.library.opcheck on both operators, torch.compile
(fullgraph, dynamic T and B), torch.export, torch.jit.trace, second derivatives, torch.func,
and torch.nn's utilities (isinstance, weight norm, pruning) on the drop-ins."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.utils.prune  # noqa: E402
import torch.utils._python_dispatch  # noqa: E402

import rnnfast.torch as rt  # noqa: E402
from rnnfast import _torch_ops  # noqa: E402

# name: (rnnfast.torch class, torch.nn class, cell, nonlinearity, constructor keywords)
CELLS = {
    "rnn_tanh": (rt.RNN, torch.nn.RNN, "rnn", "tanh", {"nonlinearity": "tanh"}),
    "rnn_relu": (rt.RNN, torch.nn.RNN, "rnn", "relu", {"nonlinearity": "relu"}),
    "lstm": (rt.LSTM, torch.nn.LSTM, "lstm", "tanh", {}),
    "gru": (rt.GRU, torch.nn.GRU, "gru", "tanh", {}),
    "lstm_proj": (rt.LSTM, torch.nn.LSTM, "lstm", "tanh", {"proj_size": 2}),
}
# torch's own note that its oneDNN path has no projections (it falls back to its default one)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
T, B, I, H = 5, 3, 4, 6


def leaf(rng, *shape, dtype=torch.float64, grad=True):
    t = torch.from_numpy(rng.standard_normal(shape) * 0.5).to(dtype)
    return t.requires_grad_(grad)


def op_arguments(rng, cell, nonlinearity, variant, grad=True, proj=0):
    """Arguments of torch.ops.rnnfast.recurrent_stack for one configuration (proj: the
    LSTM's proj_size)."""
    layers, bidirectional, batch_first = (2, True, True) if variant == "deep" else (1, False, False)
    D = 2 if bidirectional else 1
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = leaf(rng, *((B, T, I) if batch_first else (T, B, I)), grad=grad)
    weights = []
    S = proj or H  # features of h
    for layer in range(layers):
        for _ in range(D):
            width = I if layer == 0 else D * S
            weights += [leaf(rng, G * H, width, grad=grad), leaf(rng, G * H, S, grad=grad)]
            weights += [leaf(rng, G * H, grad=grad), leaf(rng, G * H, grad=grad)]
            if proj:
                weights.append(leaf(rng, proj, H, grad=grad))
    if variant == "deep":  # no states, dropout masks, lengths
        h0 = c0 = None
        masks = [torch.from_numpy((rng.random(x.shape[:-1] + (D * S,)) > 0.3) / 0.7)]
        lengths = torch.tensor([T, 2, 4])
    else:
        h0 = leaf(rng, layers * D, B, S, grad=grad)
        c0 = leaf(rng, layers * D, B, H, grad=grad) if cell == "lstm" else None
        masks, lengths = [], None
    config = (cell, nonlinearity, H, proj, layers, True, bidirectional, variant == "reverse",
              batch_first)
    return (x, h0, c0, weights, masks, lengths) + config


@pytest.mark.parametrize("variant", ["plain", "reverse", "deep"])
@pytest.mark.parametrize("name", list(CELLS))
def test_opcheck_both_operators(rng, name, variant):
    _, _, cell, nonlinearity, _ = CELLS[name]
    proj = CELLS[name][4].get("proj_size", 0)
    args = op_arguments(rng, cell, nonlinearity, variant, proj=proj)
    for training in (True, False):
        torch.library.opcheck(torch.ops.rnnfast.recurrent_stack.default, args + (training,))
    y, h_n, c_n, saved = torch.ops.rnnfast.recurrent_stack(*args, True)
    detached = op_arguments(rng, cell, nonlinearity, variant, grad=False, proj=proj)
    dy, dh_n = torch.randn_like(y), torch.randn_like(h_n)
    dc_n = torch.randn_like(c_n) if cell == "lstm" else None
    y, h_n, c_n, saved = torch.ops.rnnfast.recurrent_stack(*detached, True)
    torch.library.opcheck(torch.ops.rnnfast.recurrent_stack_backward.default,
                          (saved, dy, dh_n, dc_n) + detached)


@pytest.mark.parametrize("name", list(CELLS))
def test_backward_of_a_copy_of_saved_runs_the_forward_again(rng, name):
    """``saved`` is the forward's own activations; a copy (or the empty ``saved`` of an
    inference forward) makes the backward recompute them: the same gradients, bitwise."""
    _, _, cell, nonlinearity, _ = CELLS[name]
    args = op_arguments(rng, cell, nonlinearity, "deep", grad=False,
                        proj=CELLS[name][4].get("proj_size", 0))
    y, h_n, c_n, saved = torch.ops.rnnfast.recurrent_stack(*args, True)
    upstream = (torch.randn_like(y), torch.randn_like(h_n),
                torch.randn_like(c_n) if cell == "lstm" else None)
    before = len(_torch_ops._LIVE)
    _, _, _, nothing = torch.ops.rnnfast.recurrent_stack(*args, False)
    assert nothing.numel() == 0 and len(_torch_ops._LIVE) == before
    results = [torch.ops.rnnfast.recurrent_stack_backward(s, *upstream, *args)
               for s in (saved, saved.clone(), nothing)]
    flat = [list(r[:3]) + list(r[3]) for r in results]
    assert len(flat[0]) == 3 + len(args[3])
    for other in flat[1:]:
        assert all(torch.equal(a, b) for a, b in zip(flat[0], other))


def test_operator_schemas_and_tags():
    """The operators' schemas (what exported programs record) and their pt2-compliant tag."""
    config = ("Tensor[] masks, Tensor? lengths, str cell, str nonlinearity, SymInt hidden_size, "
              "SymInt proj_size, SymInt num_layers, bool bias, bool bidirectional, "
              "bool reverse, bool batch_first")
    forward = torch.ops.rnnfast.recurrent_stack.default
    backward = torch.ops.rnnfast.recurrent_stack_backward.default
    assert str(forward._schema) == (
        "rnnfast::recurrent_stack(Tensor x, Tensor? h0, Tensor? c0, Tensor[] weights, "
        f"{config}, bool training) -> (Tensor, Tensor, Tensor, Tensor)")
    assert str(backward._schema) == (
        "rnnfast::recurrent_stack_backward(Tensor saved, Tensor? dy, Tensor? dh_n, "
        f"Tensor? dc_n, Tensor x, Tensor? h0, Tensor? c0, Tensor[] weights, {config}) "
        "-> (Tensor, Tensor, Tensor, Tensor[])")
    for op in (forward, backward):
        assert torch.Tag.pt2_compliant_tag in op.tags


class _PassThrough(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the operators it sees and runs them unchanged."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_proj"])
def test_autograd_kernel_direct_and_dispatched_paths_agree(rng, name):
    """Without a gradient to record, the operators' Autograd kernel runs the CPU computation
    itself for plain CPU tensors; under a dispatch mode (and for meta tensors) it hands the call
    to the next kernel instead. Both give the same results, bitwise."""
    _, _, cell, nonlinearity, _ = CELLS[name]
    args = op_arguments(rng, cell, nonlinearity, "deep", grad=False,
                        proj=CELLS[name][4].get("proj_size", 0))
    forward = torch.ops.rnnfast.recurrent_stack.default
    backward = torch.ops.rnnfast.recurrent_stack_backward.default
    direct = forward(*args, True)
    upstream = (torch.randn_like(direct[0]), torch.randn_like(direct[1]),
                torch.randn_like(direct[2]) if cell == "lstm" else None)
    direct_grads = backward(direct[3], *upstream, *args)
    with _PassThrough() as mode:
        dispatched = forward(*args, True)
        dispatched_grads = backward(dispatched[3], *upstream, *args)
    assert mode.ops == [forward, backward]
    assert all(torch.equal(a, b) for a, b in zip(direct[:3], dispatched[:3]))
    flat = [list(g[:3]) + list(g[3]) for g in (direct_grads, dispatched_grads)]
    assert all(torch.equal(a, b) for a, b in zip(*flat))
    meta = [t.to("meta") if isinstance(t, torch.Tensor) else
            [u.to("meta") for u in t] if isinstance(t, list) else t for t in args]
    shapes = [t.shape for t in forward(*meta, True)]
    assert shapes == [t.shape for t in direct] and len(direct[3]) == 1


@pytest.mark.parametrize("train", [True, False])
def test_compiled_forward_has_no_python_evaluated_guards(rng, train):
    """The compiled model's guards all run in C++: no guard that Dynamo evaluates in Python
    after the others (an aliasing guard between two modules' globals, as ``torch`` in
    rnnfast.torch and rnnfast._torch_ops once gave, costs tens of microseconds a call)."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    torch._dynamo.reset()
    m = model("lstm")
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    x = torch.from_numpy(rng.standard_normal((T, B, I)).astype(np.float32))
    with torch.set_grad_enabled(train):
        compiled(x)
    entries = _debug_get_cache_entry_list(Tagger.forward.__code__)
    assert entries
    for entry in entries:
        root = entry.guard_manager.root
        assert not root.get_epilogue_lambda_guards()
        assert not root.has_object_aliasing_guard()


@pytest.mark.parametrize("name", ["rnn_relu", "lstm", "gru"])
def test_compiled_forward_guards_bound_names_only(rng, name):
    """What the layers' forward reads of rnnfast.torch's globals is guarded one name each (every
    guard is checked on every compiled call, after the kernels left the caches cold): no chain
    through its ``torch`` module (``torch._C.f`` is three guards), no module-level table, and
    outside autocast nothing of the autocast helpers."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    torch._dynamo.reset()
    m = model(name)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    x = torch.from_numpy(rng.standard_normal((T, B, I)).astype(np.float32))
    with torch.no_grad():
        compiled(x)
    entries = _debug_get_cache_entry_list(Tagger.forward.__code__)
    assert entries
    for entry in entries:
        guards = str(entry.guard_manager)
        assert "['rnn'].hidden_size" in guards  # the tree holds the layer's guards
        module = "G['__import_rnnfast_dot_torch']"
        for source in (f"{module}.torch", f"{module}.autocast_arguments", f"{module}._CELLS",
                       f"{module}._FAST_DTYPES", "G['__import_rnnfast_dot__torch_ops']"):
            assert source not in guards, source
        assert f"{module}._is_autocast_enabled" in guards  # (the names are as expected)


# ---- models as a PyTorch user writes them

class Tagger(torch.nn.Module):
    def __init__(self, recurrent_cls, **kw):
        super().__init__()
        self.rnn = recurrent_cls(I, H, num_layers=2, bidirectional=True, **kw)
        self.head = torch.nn.Linear(2 * (kw.get("proj_size") or H), 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y).tanh()


def model(name, dtype=torch.float32):
    torch.manual_seed(0)
    return Tagger(CELLS[name][0], **CELLS[name][4]).to(dtype)


def outputs_and_grads(m, x):
    m.zero_grad()
    x = x.detach().requires_grad_()
    out = m(x)
    out.pow(2).sum().backward()
    return [out.detach(), x.grad] + [p.grad.clone() for p in m.parameters()]


def assert_all_close(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["rnn_relu", "lstm", "gru", "lstm_proj"])
def test_compile_fullgraph_dynamic_matches_eager(rng, name):
    torch._dynamo.reset()
    m = model(name)
    compiled = torch.compile(m, fullgraph=True, dynamic=True, backend="aot_eager")
    for shape in [(T, B, I), (7, 2, I), (3, 5, I)]:  # T and B vary: one graph for all
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        assert_all_close(outputs_and_grads(compiled, x), outputs_and_grads(m, x))
    explanation = torch._dynamo.explain(m)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_compile_inference_without_grad(rng):
    torch._dynamo.reset()
    m = model("lstm", torch.float64).eval()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    with torch.no_grad():
        assert torch.equal(compiled(x), m(x))


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "lstm_proj"])
def test_export_runs_and_matches_eager(rng, name):
    m = model(name, torch.float64)
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    dims = {"x": {0: torch.export.Dim("T", min=2), 1: torch.export.Dim("B", min=2)}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about (no attribute assigned)
        program = torch.export.export(m, (x,), dynamic_shapes=dims)
    assert "torch.ops.rnnfast.recurrent_stack.default" in program.graph_module.code
    exported = program.module()
    for shape in [(T, B, I), (8, 4, I)]:
        x = torch.from_numpy(rng.standard_normal(shape))
        with torch.no_grad():
            assert torch.equal(exported(x), m(x))
        # The exported forward keeps no activations; its backward runs the forward again.
        x = x.requires_grad_()
        (gx,) = torch.autograd.grad(exported(x).sum(), x)
        (want,) = torch.autograd.grad(m(x).sum(), x)
        assert torch.equal(gx, want)


def test_jit_trace_records_the_operator(rng):
    m = model("gru", torch.float64)
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    with warnings.catch_warnings():  # PyTorch deprecates torch.jit.trace itself
        warnings.filterwarnings("ignore", "`torch.jit.trace.*` is deprecated", DeprecationWarning)
        # the shape checks before the kernel call become constants of the trace, as in torch.nn
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(m, (x,))
    assert "rnnfast::recurrent_stack" in str(traced.inlined_graph)
    x = torch.from_numpy(rng.standard_normal((9, 2, I))).requires_grad_()
    assert torch.equal(traced(x), m(x))
    (gx,) = torch.autograd.grad(traced(x).sum(), x)
    (want,) = torch.autograd.grad(m(x).sum(), x)
    assert torch.equal(gx, want)


# ---- second derivatives and torch.func

@pytest.mark.parametrize("name", list(CELLS))
def test_gradgradcheck_raises_never_zero(rng, name):
    _, _, cell, nonlinearity, _ = CELLS[name]
    x, h0, c0, weights, *rest = op_arguments(rng, cell, nonlinearity, "plain",
                                             proj=CELLS[name][4].get("proj_size", 0))

    def f(x, *weights):
        return torch.ops.rnnfast.recurrent_stack(x, h0, c0, list(weights), *rest, True)[:2]

    assert torch.autograd.gradcheck(f, (x, *weights))
    with pytest.raises(RuntimeError, match=_torch_ops.SECOND_DERIVATIVE_ERROR[:40]):
        torch.autograd.gradgradcheck(f, (x, *weights))


def test_torch_func_runs_torch_nn_implementation(rng):
    """Under torch.func transforms the layers run PyTorch's implementation (warned once):
    what torch.nn's LSTM supports works, and what it does not fails as it fails there."""
    ours, theirs = rt.LSTM(I, H, dtype=torch.float64), torch.nn.LSTM(I, H, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    params = {k: v.detach() for k, v in ours.named_parameters()}

    def grads(m):
        return torch.func.grad(
            lambda p: torch.func.functional_call(m, p, (x,))[0].pow(2).sum())(params)

    rt._warned_fallbacks.discard("torch.func")
    with pytest.warns(RuntimeWarning, match="torch.func transform"):
        got = grads(ours)
    want = grads(theirs)
    assert all(torch.allclose(got[k], want[k], rtol=1e-12, atol=1e-12) for k in want)
    errors = []
    for m in (theirs, ours):
        with pytest.raises(RuntimeError) as info:
            torch.func.vmap(lambda xx: m(xx)[0])(x.unsqueeze(0).expand(2, T, B, I))
        errors.append(str(info.value))
    assert errors[0] == errors[1]


# ---- torch.nn's utilities on the drop-ins

def test_isinstance_and_flat_weights_are_torch_nn():
    m = rt.LSTM(I, H, num_layers=2, bidirectional=True)
    assert isinstance(m, torch.nn.RNNBase)
    # Not torch.nn.LSTM: Dynamo refuses to trace instances of torch.nn.RNN/GRU/LSTM
    # (docs/DECISIONS.md).
    assert not isinstance(m, torch.nn.LSTM)
    theirs = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    assert m._flat_weights_names == theirs._flat_weights_names
    assert all(isinstance(w, torch.nn.Parameter) for w in m._flat_weights)
    assert [[p is getattr(m, n) for p, n in zip(ps, ns)]
            for ps, ns in zip(m.all_weights, theirs._all_weights)] == \
        [[True] * 4] * 4
    m.flatten_parameters()  # torch.nn's: nothing to do on CPU


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru"])
def test_weight_norm_and_pruning_match_torch_nn(rng, name):
    ours_cls, torch_cls, _, _, kw = CELLS[name]
    pair = []
    for cls in (ours_cls, torch_cls):
        torch.manual_seed(1)
        m = cls(I, H, num_layers=2, dtype=torch.float64, **kw)
        torch.nn.utils.parametrizations.weight_norm(m, "weight_hh_l0")
        torch.nn.utils.prune.l1_unstructured(m, "weight_ih_l1", amount=0.4)
        pair.append(m)
    ours, theirs = pair
    assert set(dict(ours.named_parameters())) == set(dict(theirs.named_parameters()))
    x = torch.from_numpy(rng.standard_normal((T, B, I)))
    results = []
    for m in pair:
        y = m(x)[0]
        y.pow(2).sum().backward()
        results.append([y.detach()] + [p.grad for _, p in sorted(m.named_parameters())])
    assert_all_close(*results)
    # the pruned entries stay zero in what the kernels saw: the gradient of the mask is zero
    assert (ours.weight_ih_l1 == 0).sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_views_of_every_tensor_kind(rng, dtype):
    """The kernels' NumPy views: the tensor's own memory when it is contiguous, else a
    contiguous copy; negative-bit views are resolved, bfloat16 widened to float32; all with the
    tensor's values."""
    t = leaf(rng, 4, 5, dtype=dtype)
    view = _torch_ops.numpy_view(t)
    assert view.ctypes.data == t.data_ptr() and view.flags.c_contiguous
    cases = {"transposed": t.t(), "sliced": t[:, ::2], "expanded": t[:1].expand(3, 5),
             "negative bit": torch._neg_view(t.detach()), "bfloat16": t.to(torch.bfloat16)}
    for name, tensor in cases.items():
        array = _torch_ops.numpy_view(tensor)
        assert array.flags.c_contiguous, name
        assert array.dtype == (np.float32 if name == "bfloat16" else tensor.numpy(force=True).dtype)
        np.testing.assert_array_equal(array, tensor.detach().float().numpy()
                                      if name == "bfloat16" else tensor.resolve_neg().detach()
                                      .numpy(), err_msg=name)
    assert _torch_ops.numpy_view(None) is None


def test_kernels_read_negative_bit_views_as_their_values(rng):
    """A parameter that is a negative-bit view (torch._neg_view) gives the layer the weights'
    values, as torch.nn computes them."""
    torch.manual_seed(0)
    ours, theirs = rt.LSTM(I, H).double(), torch.nn.LSTM(I, H).double()
    theirs.load_state_dict(ours.state_dict())
    x = leaf(rng, T, B, I, grad=False)
    with torch.no_grad():
        negated = {name: torch._neg_view(-p) for name, p in ours.named_parameters()}
        y = torch.func.functional_call(ours, negated, (x,))[0]
    torch.testing.assert_close(y, theirs(x)[0])


def test_autograd_kernel_redispatches_under_a_mode_after_a_direct_call(rng):
    """The Autograd kernel's decision (compute directly, or redispatch) is cached per dispatch
    keyset: after a plain call has computed directly, a call under a TorchDispatchMode still
    reaches the mode (another keyset), and the plain path then still computes directly."""
    m = rt.LSTM(4, 3)
    x = torch.from_numpy(rng.standard_normal((2, 2, 4)).astype(np.float32))
    args = (x, None, None, list(m._flat_weights), [], None, "lstm", "tanh", 3, 0, 1, True,
            False, False, False, False)
    seen = []

    class Seen(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with torch.no_grad():
        plain = _torch_ops.recurrent_stack(*args)
        with Seen():
            moded = _torch_ops.recurrent_stack(*args)
        again = _torch_ops.recurrent_stack(*args)
    assert _torch_ops.recurrent_stack in seen
    assert torch.equal(plain[0], moded[0]) and torch.equal(plain[0], again[0])
    assert plain[2].shape == (1, 2, 3)
    assert plain[3].shape == (0,) and plain[3].dtype == torch.int64  # no activations kept
