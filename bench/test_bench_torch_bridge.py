"""rnnfast.torch against torch.nn: one training step (forward + backward) per benchmark.

    python -m pytest bench/test_bench_torch_bridge.py --benchmark-only
    python -m pytest bench/test_bench_torch_bridge.py --benchmark-only --benchmark-json=out.json

One benchmark per cell (LSTM, GRU, tanh RNN) x shape x peer (``rnnfast`` = rnnfast.torch,
``torch`` = torch.nn), float32, time-major input, grouped so that both peers of one problem
sit side by side. A step is the module's forward from ``(x, hx)`` and ``torch.autograd.grad``
of the output with a random upstream gradient for the input, the initial states and every
parameter. Before timing, each peer's results are checked against torch.nn in float64 with
the same values (outputs within 1e-4, gradients within 1e-3, relative to max(1, max |ref|)).
Threads: the suite's ``bench_threads`` (``--bench-threads N``) when its conftest is present,
else ``$RNNFAST_BENCH_THREADS``, else 2; applied to rnnfast and PyTorch alike.
"""
import functools
import math
import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnfast  # noqa: E402
import rnnfast.torch as rt  # noqa: E402

SHAPES = {"medium": (100, 32, 128, 128), "large": (50, 64, 512, 512)}  # T, B, I, H
CELLS = {
    "lstm": (rt.LSTM, torch.nn.LSTM, {}),
    "gru": (rt.GRU, torch.nn.GRU, {}),
    "rnn": (rt.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
}
PEERS = ("rnnfast", "torch")
TOL = (1e-4, 1e-3)  # outputs, gradients (float32 against the float64 oracle)
TARGET_SECONDS, MIN_ROUNDS, MAX_ROUNDS = 2.0, 3, 30

# A failed check ends a test before timing; pytest-benchmark's "fixture was not used" warning
# would only repeat that failure.
pytestmark = pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")


@pytest.fixture(scope="module")
def threads(request):
    """The suite's ``bench_threads`` when its conftest is present, else $RNNFAST_BENCH_THREADS
    or 2, for rnnfast and PyTorch alike (restored afterwards)."""
    try:
        yield request.getfixturevalue("bench_threads")
        return
    except pytest.FixtureLookupError:
        pass
    n = int(os.environ.get("RNNFAST_BENCH_THREADS", "2"))
    before = rnnfast.get_num_threads(), torch.get_num_threads()
    rnnfast.set_num_threads(n)
    torch.set_num_threads(n)
    yield n
    rnnfast.set_num_threads(before[0])
    torch.set_num_threads(before[1])


@functools.lru_cache(maxsize=2)
def problem(cell, shape):
    """Weights (a torch.nn float32 state_dict), inputs and upstream gradients of one case."""
    T, B, I, H = SHAPES[shape]
    rng = np.random.default_rng(2024)
    _, torch_cls, extra = CELLS[cell]
    torch.manual_seed(2024)
    weights = torch_cls(I, H, **extra).state_dict()
    f32 = lambda *s: torch.from_numpy(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    x, dy = f32(T, B, I), f32(T, B, H)
    states = (f32(1, B, H) * 0.5, f32(1, B, H) * 0.5)[: 2 if cell == "lstm" else 1]
    return weights, x, states, dy


def make_step(module, x, states, dy):
    """The timed call: forward and the gradients of input, states and parameters."""
    dtype = next(module.parameters()).dtype
    x = x.to(dtype).requires_grad_()
    states = [s.to(dtype).requires_grad_() for s in states]
    dy = dy.to(dtype)
    params = list(module.parameters())

    def step():
        out, _ = module(x, tuple(states) if len(states) == 2 else states[0])
        return (out,) + torch.autograd.grad(out, [x, *states, *params], dy)

    return step


def build(peer, cell, shape, dtype=torch.float32):
    weights, x, states, dy = problem(cell, shape)
    T, B, I, H = SHAPES[shape]
    ours_cls, torch_cls, extra = CELLS[cell]
    module = (ours_cls if peer == "rnnfast" else torch_cls)(I, H, **extra, dtype=dtype)
    module.load_state_dict({k: v.to(dtype) for k, v in weights.items()})
    return make_step(module, x, states, dy)


@functools.lru_cache(maxsize=2)
def oracle(cell, shape):
    return [r.detach() for r in build("torch", cell, shape, torch.float64)()]


def check(results, want):
    errors = []
    for i, (got, ref) in enumerate(zip(results, want)):
        err = (got.double() - ref).abs().max().item() / max(1.0, ref.abs().max().item())
        assert err < TOL[0 if i == 0 else 1], f"result {i}: relative error {err:.2e}"
        errors.append(err)
    return max(errors)


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("cell", list(CELLS))
def test_training_step(benchmark, threads, cell, shape, peer):
    step = build(peer, cell, shape)
    start = time.perf_counter()
    results = step()
    first = time.perf_counter() - start
    max_error = check(results, oracle(cell, shape))
    del results
    T, B, I, H = SHAPES[shape]
    benchmark.group = f"{cell} T={T} B={B} I={I} H={H} training step"
    benchmark.extra_info.update(cell=cell, shape=shape, T=T, B=B, I=I, H=H, peer=peer,
                                threads=threads, max_rel_error=max_error)
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(TARGET_SECONDS / max(first, 1e-6))))
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=1, iterations=1)
