"""rnnfast.nn.RNN/LSTM/GRU against torch.nn with the same (loaded) state_dicts: outputs, final
states and every gradient, over cells x layers x directions x layouts x lengths x states."""
import itertools

import numpy as np
import pytest

from nn_cases import TOL, rel_err
from rnnfast import nn

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

# torch's own note that its oneDNN path has no projections (it falls back to its default one)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

CELLS = {  # id: (rnnfast class, torch class, constructor keywords)
    "rnn_tanh": (nn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, torch.nn.LSTM, {}),
    "gru": (nn.GRU, torch.nn.GRU, {}),
    "lstm_proj": (nn.LSTM, torch.nn.LSTM, {"proj_size": 2}),
}
OPTIONS = list(itertools.product([1, 2], [False, True], [False, True], [False, True],
                                 [False, True]))
T, B, I, H = 5, 4, 3, 5


def state_sizes(cell):
    """Features of h (and c) of a cell: proj_size for h with a projection."""
    kw = CELLS[cell][2]
    if CELLS[cell][1] is not torch.nn.LSTM:
        return [H]
    return [kw.get("proj_size") or H, H]


@pytest.fixture(autouse=True, scope="module")
def torch_single_thread():
    """Tiny shapes: torch's thread pool only adds overhead (and contention on small machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def f32_values(a):
    """float64 values that float32 holds exactly, so both dtypes see the same numbers."""
    return np.asarray(a).astype(np.float32).astype(np.float64)


def torch_pair(rng, cell, dtype, **kw):
    ours_cls, torch_cls, cell_kw = CELLS[cell]
    ref = torch_cls(I, H, **cell_kw, **kw, dtype=torch.float64)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.from_numpy(f32_values(rng.uniform(-0.6, 0.6, tuple(p.shape)))))
    ours = ours_cls(I, H, **cell_kw, **kw, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def run_torch(ref, x, state, lens, dy, dstate, batch_first):
    """Forward and backward of the torch module (float64): outputs and gradients as NumPy."""
    xt = torch.tensor(x, requires_grad=True)
    state_t = None
    if state is not None:
        state_t = tuple(torch.tensor(s, requires_grad=True) for s in state)
    inp = xt
    if lens is not None:
        inp = pack_padded_sequence(xt, torch.tensor(lens), batch_first=batch_first,
                                   enforce_sorted=False)
    out, final = ref(inp, None if state_t is None else
                     (state_t if len(state_t) == 2 else state_t[0]))
    if lens is not None:
        steps = x.shape[1 if batch_first else 0]
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=steps)
    final = final if isinstance(final, tuple) else (final,)
    loss = (out * torch.from_numpy(dy)).sum()
    for f, d in zip(final, dstate):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()
    grads = {"x": xt.grad.numpy()}
    if state_t is not None:
        grads["state"] = [s.grad.numpy() for s in state_t]
    grads.update({name: p.grad.numpy() for name, p in ref.named_parameters()})
    return out.detach().numpy(), [f.detach().numpy() for f in final], grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,lengths,state", OPTIONS,
                         ids=["L%d-bi%d-bf%d-len%d-h0%d" % o for o in OPTIONS])
def test_matches_torch(rng, cell, dtype, num_layers, bidirectional, batch_first, lengths, state):
    ours, ref = torch_pair(rng, cell, dtype, num_layers=num_layers, bidirectional=bidirectional,
                           batch_first=batch_first)
    D = 2 if bidirectional else 1
    sizes = state_sizes(cell)
    n_states = len(sizes)
    x = f32_values(rng.standard_normal((B, T, I) if batch_first else (T, B, I)))
    h0 = None
    if state:
        h0 = [f32_values(rng.standard_normal((num_layers * D, B, n))) for n in sizes]
    lens = None
    if lengths:
        lens = rng.integers(1, T + 1, size=B)
        lens[0], lens[-1] = T - 1, 1  # no sequence spans all T steps: padding at the end
    y_shape = x.shape[:2] + (D * sizes[0],)
    dy = f32_values(rng.standard_normal(y_shape))
    dstate = [f32_values(rng.standard_normal((num_layers * D, B, n))) for n in sizes]
    want_y, want_final, want = run_torch(ref, x, h0, lens, dy, dstate, batch_first)

    ours_state = None if h0 is None else (tuple(s.astype(dtype) for s in h0) if n_states == 2
                                          else h0[0].astype(dtype))
    y, final = ours(x.astype(dtype), ours_state, lengths=lens)
    final = list(final) if n_states == 2 else [final]
    dx, dstate0 = ours.backward(dy.astype(dtype),
                                tuple(dstate) if n_states == 2 else dstate[0])

    out_tol, grad_tol = TOL[dtype]
    assert y.dtype == dtype and y.shape == want_y.shape
    assert rel_err(y, want_y) < out_tol
    for got, exp in zip(final, want_final):
        assert got.dtype == dtype and rel_err(got, exp) < out_tol
    assert dx.dtype == dtype and rel_err(dx, want["x"]) < grad_tol
    if h0 is None:
        assert dstate0 is None
    else:
        got = list(dstate0) if n_states == 2 else [dstate0]
        for g, exp in zip(got, want["state"]):
            assert g.dtype == dtype and rel_err(g, exp) < grad_tol
    names = [name for name, _ in ours.named_parameters()]
    assert names == [name for name, _ in ref.named_parameters()]
    for name, p in ours.named_parameters():
        assert p.grad.dtype == dtype
        assert rel_err(p.grad, want[name]) < grad_tol, name


@pytest.mark.parametrize("cell", list(CELLS))
def test_torch_float32_module_loads_one_to_one(rng, cell):
    """A default (float32, torch-initialised) torch module: same outputs and gradients."""
    ours_cls, torch_cls, kw = CELLS[cell]
    torch.manual_seed(0)
    ref = torch_cls(I, H, num_layers=2, bidirectional=True, batch_first=True, **kw)
    ours = ours_cls(I, H, num_layers=2, bidirectional=True, batch_first=True, **kw)
    ours.load_state_dict(ref.state_dict())
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    out, final = ref(xt)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    (out * torch.from_numpy(dy)).sum().backward()
    y, _ = ours(x)
    dx, dstate0 = ours.backward(dy)
    assert dstate0 is None
    assert rel_err(y, out.detach().numpy()) < 1e-5
    assert rel_err(dx, xt.grad.numpy()) < 1e-5
    for name, p in ref.named_parameters():
        assert rel_err(ours.state_dict()[name], p.detach().numpy()) == 0
        assert rel_err(getattr(ours, name).grad, p.grad.numpy()) < 1e-5, name


def test_state_dict_loads_back_into_torch(rng):
    ours = nn.LSTM(I, H, num_layers=2, bidirectional=True, seed=3)
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    y, (h, c) = ours(x)
    out, (ht, ct) = ref(torch.from_numpy(x))
    assert rel_err(y, out.detach().numpy()) < 1e-5
    assert rel_err(c, ct.detach().numpy()) < 1e-5


@pytest.mark.parametrize("cell", list(CELLS))
def test_unbatched_input_matches_torch(rng, cell):
    ours, ref = torch_pair(rng, cell, np.float64, num_layers=2, bidirectional=True)
    sizes = state_sizes(cell)
    n_states = len(sizes)
    x = rng.standard_normal((T, I))
    h0 = [rng.standard_normal((4, n)) for n in sizes]
    xt = torch.tensor(x, requires_grad=True)
    h0t = [torch.tensor(h, requires_grad=True) for h in h0]
    out, final = ref(xt, tuple(h0t) if n_states == 2 else h0t[0])
    dy = rng.standard_normal(out.shape)
    (out * torch.from_numpy(dy)).sum().backward()
    y, final_ours = ours(x, tuple(h0) if n_states == 2 else h0[0])
    dx, dstate0 = ours.backward(dy)
    assert y.shape == (T, 2 * sizes[0])
    assert rel_err(y, out.detach().numpy()) < 1e-10
    first = final_ours[0] if n_states == 2 else final_ours
    assert first.shape == (4, sizes[0])
    assert rel_err(first, (final[0] if n_states == 2 else final).detach().numpy()) < 1e-10
    assert rel_err(dx, xt.grad.numpy()) < 1e-10
    got = dstate0 if n_states == 2 else (dstate0,)
    for g, h, n in zip(got, h0t, sizes):
        assert g.shape == (4, n) and rel_err(g, h.grad.numpy()) < 1e-10


def test_dropout_is_off_in_eval_mode_like_torch(rng):
    ours, ref = torch_pair(rng, "gru", np.float64, num_layers=3, dropout=0.5)
    ours.eval()
    ref.eval()
    x = rng.standard_normal((T, B, I))
    y, h = ours(x)
    out, ht = ref(torch.from_numpy(x))
    assert rel_err(y, out.detach().numpy()) < 1e-10
    assert rel_err(h, ht.detach().numpy()) < 1e-10
