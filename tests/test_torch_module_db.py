"""PyTorch's own ModuleInfo samples for nn.RNN, nn.GRU and nn.LSTM
(``torch.testing._internal.common_modules.module_db``), replayed with rnnfast.torch's classes in
their place: outputs and gradients against torch.nn's, the samples' no-batch-dim references,
gradcheck, pickling, non-contiguous inputs, and the error samples (exception type and message).
LSTM samples with proj_size run on the projection kernels like every other sample. The
exception (second derivatives) is listed in docs/DECISIONS.md."""
import io

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # torch.testing._internal needs it ([test] extra)

import torch.utils._pytree as pytree  # noqa: E402
from torch.nn.utils.rnn import PackedSequence  # noqa: E402
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db  # noqa: E402

import rnnfast._torch_ops as torch_ops  # noqa: E402

# torch's own note that its oneDNN path has no projections (it falls back to its default one)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
import rnnfast.torch as rt  # noqa: E402

OURS = {torch.nn.RNN: rt.RNN, torch.nn.GRU: rt.GRU, torch.nn.LSTM: rt.LSTM}
INFOS = [info for info in module_db if info.module_cls in OURS]
DTYPES = {"f32": torch.float32, "f64": torch.float64}
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def samples_of(info, dtype, training):
    kwargs = {"with_packed_sequence": True} if info.module_cls is not torch.nn.LSTM else {}
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True,
                                   training=training, **kwargs)


def _cases():
    cases = []
    for info in INFOS:
        for dtype_name, dtype in DTYPES.items():
            for training in (True, False):
                for k, sample in enumerate(samples_of(info, dtype, training)):
                    proj = sample.constructor_input.kwargs.get("proj_size", 0)
                    cases.append(pytest.param(
                        info, dtype, training, k, proj,
                        id=f"{info.module_cls.__name__}-{dtype_name}-"
                           f"{'train' if training else 'eval'}-{k}"))
    return cases


CASES = _cases()
SUPPORTED = CASES  # proj_size samples included (c.values[4] is their proj_size)


def clone_input(value):
    """A fresh copy of a forward argument (tensors keep requires_grad; PackedSequence too)."""
    if isinstance(value, PackedSequence):
        data = value.data.detach().clone().requires_grad_(value.data.requires_grad)
        return PackedSequence(data, value.batch_sizes, value.sorted_indices,
                              value.unsorted_indices)
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (tuple, list)):
        return type(value)(clone_input(v) for v in value)
    return value


def input_leaves(args):
    leaves = pytree.tree_leaves(args, is_leaf=lambda v: isinstance(v, PackedSequence))
    tensors = [v.data if isinstance(v, PackedSequence) else v for v in leaves]
    return [t for t in tensors if isinstance(t, torch.Tensor) and t.requires_grad]


def output_leaves(out):
    leaves = pytree.tree_leaves(out, is_leaf=lambda v: isinstance(v, PackedSequence))
    return [v.data if isinstance(v, PackedSequence) else v for v in leaves]


def build_pair(info, dtype, training, sample):
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    torch.manual_seed(0)
    theirs = info.module_cls(*args, **kwargs, dtype=dtype).train(training)
    ours = OURS[info.module_cls](*args, **kwargs, dtype=dtype).train(training)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def forward_backward(module, sample, upstream_seed=1):
    args = clone_input(sample.forward_input.args)
    kwargs = clone_input(sample.forward_input.kwargs)
    out = module(*args, **kwargs)
    outs = output_leaves(out)
    generator = torch.Generator().manual_seed(upstream_seed)
    loss = sum((o * torch.randn(o.shape, generator=generator, dtype=o.dtype)).sum()
               for o in outs if o.is_floating_point())
    wrt = input_leaves((args, kwargs)) + list(module.parameters())
    return outs, torch.autograd.grad(loss, wrt, allow_unused=True)


@pytest.mark.parametrize("info,dtype,training,k,proj", SUPPORTED)
def test_sample_matches_torch_nn(info, dtype, training, k, proj):
    sample = samples_of(info, dtype, training)[k]
    ours, theirs = build_pair(info, dtype, training, sample)
    got_out, got_grads = forward_backward(ours, sample)
    want_out, want_grads = forward_backward(theirs, sample)
    assert len(got_out) == len(want_out) and len(got_grads) == len(want_grads)
    for got, want in zip(got_out + list(got_grads), want_out + list(want_grads)):
        assert got.dtype == want.dtype and got.shape == want.shape
        torch.testing.assert_close(got, want, **TOL[dtype])
    args = clone_input(sample.forward_input.args)
    # PyTorch's no-batch-dim reference, on ours (it takes unbatched tensors, not packed ones)
    if sample.reference_fn is not None and not isinstance(args[0], PackedSequence):
        with torch.no_grad():
            got = ours(*args)
            want = sample.reference_fn(ours, *args)  # (the stored one adds the parameters)
        for a, b in zip(output_leaves(got), output_leaves(want)):
            torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("info,dtype,training,k,proj",
                         [c for c in SUPPORTED if c.values[1] is torch.float64 and c.values[2]])
def test_sample_gradcheck_and_refused_gradgrad(info, dtype, training, k, proj):
    sample = samples_of(info, dtype, training)[k]
    ours, _ = build_pair(info, dtype, training, sample)
    args = clone_input(sample.forward_input.args)
    names = [n for n, _ in ours.named_parameters()]
    leaves = input_leaves(args)
    params = [p.detach().requires_grad_() for p in ours.parameters()]

    def f(*flat):
        inputs, weights = flat[:len(leaves)], flat[len(leaves):]
        replace = dict(zip(map(id, leaves), inputs))

        def swap(v):
            if isinstance(v, PackedSequence) and id(v.data) in replace:
                return PackedSequence(replace[id(v.data)], *v[1:])
            return replace.get(id(v), v)

        call_args = pytree.tree_map(swap, args,
                                    is_leaf=lambda v: isinstance(v, PackedSequence))
        out = torch.func.functional_call(ours, dict(zip(names, weights)), call_args)
        return tuple(o for o in output_leaves(out) if o.is_floating_point())

    assert torch.autograd.gradcheck(f, (*leaves, *params), fast_mode=True)
    # PyTorch's test_modules runs gradgradcheck here: ours raises instead (DECISIONS.md).
    flat = (*leaves, *params)
    grads = torch.autograd.grad(sum(o.sum() for o in f(*flat)), flat, create_graph=True)
    with pytest.raises(RuntimeError, match=torch_ops.SECOND_DERIVATIVE_ERROR[:40]):
        sum(g.pow(2).sum() for g in grads).backward()


@pytest.mark.parametrize("info,dtype,training,k,proj",
                         [c for c in SUPPORTED if c.values[2]])
def test_sample_pickles_and_takes_non_contiguous_input(info, dtype, training, k, proj):
    sample = samples_of(info, dtype, training)[k]
    ours, _ = build_pair(info, dtype, training, sample)
    args = clone_input(sample.forward_input.args)
    with torch.no_grad():
        want = output_leaves(ours(*args))
        buffer = io.BytesIO()
        torch.save(ours, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert type(loaded) is type(ours)
        for a, b in zip(output_leaves(loaded(*args)), want):
            assert torch.equal(a, b)

        def strided(t):  # the same values in memory with gaps between elements
            if not isinstance(t, torch.Tensor) or t.dim() == 0:
                return t
            wide = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype)
            wide[..., ::2] = t
            return wide[..., ::2]

        if not any(isinstance(a, PackedSequence) for a in args):
            odd = pytree.tree_map(strided, args)
            assert not odd[0].is_contiguous()
            for a, b in zip(output_leaves(ours(*odd)), want):
                assert torch.equal(a, b)


def test_projection_samples_are_replayed():
    """PyTorch's proj_size samples are among the replayed ones (none is skipped)."""
    assert sum(1 for c in SUPPORTED if c.values[4] != 0) >= 64


ERROR_CASES = [
    pytest.param(info, dtype, k, id=f"{info.module_cls.__name__}-{name}-{k}")
    for info in INFOS for name, dtype in DTYPES.items()
    for k in range(len(info.module_error_inputs_func(info, device="cpu", dtype=dtype,
                                                     requires_grad=False, training=True)))
]


@pytest.mark.parametrize("info,dtype,k", ERROR_CASES)
def test_error_sample_raises_as_torch_nn(info, dtype, k):
    error = info.module_error_inputs_func(info, device="cpu", dtype=dtype, requires_grad=False,
                                          training=True)[k]
    sample = error.module_error_input
    ours_cls = OURS[info.module_cls]
    with pytest.raises(error.error_type, match=error.error_regex):
        module = ours_cls(*sample.constructor_input.args, **sample.constructor_input.kwargs)
        assert error.error_on == ModuleErrorEnum.FORWARD_ERROR
        module(*sample.forward_input.args, **sample.forward_input.kwargs)
