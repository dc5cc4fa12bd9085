"""Conv1D kernels against PyTorch: pytest bench/test_bench_conv.py --benchmark-only

Shapes: an IMDB text CNN (B=32, L=100, C_in=100, C_out=64, K=5, "valid") and a WaveNet-like
stack (B=32, L=1000, C=64, K=3, causal, dilation 1, 2, 4); float32; modes "forward" (inference)
and "train" (forward + backward: dx, dw, db). rnnfast runs in both layouts (channels_last is
what an Embedding gives), PyTorch in its own (B, C, L) with the same thread count
(``$RNNFAST_BENCH_THREADS``, default 2). Every result is checked against the NumPy float64
reference with DESIGN.md's tolerances before it is timed; ``extra_info`` carries the FLOP count
and GFLOP/s (2 * B * L_out * C_out * C_in * K per pass; a training step counts 3 passes).
"""
import functools
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R

TARGET_SECONDS = 1.0
MIN_ROUNDS = 5
MAX_ROUNDS = 200
OUT_TOL, GRAD_TOL = 1e-4, 1e-3  # float32 vs the float64 reference

pytestmark = pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")


@dataclass(frozen=True)
class ConvShape:
    B: int
    L: int
    c_in: int
    c_out: int
    K: int
    dilation: int
    padding: str

    def l_out(self):
        span = self.dilation * (self.K - 1) + 1
        return self.L - span + 1 if self.padding == "valid" else self.L

    def flops(self, mode):
        one = 2 * self.B * self.l_out() * self.c_out * self.c_in * self.K
        return one if mode == "forward" else 3 * one


SHAPES = {
    "imdb": ConvShape(32, 100, 100, 64, 5, 1, "valid"),
    "wavenet-d1": ConvShape(32, 1000, 64, 64, 3, 1, "causal"),
    "wavenet-d2": ConvShape(32, 1000, 64, 64, 3, 2, "causal"),
    "wavenet-d4": ConvShape(32, 1000, 64, 64, 3, 4, "causal"),
}
MODES = ("forward", "train")
PEERS = ("rnnfast-cl", "rnnfast-cf", "torch")


@pytest.fixture(scope="module")
def threads(request):
    """The suite's ``bench_threads`` when its conftest is present, else $RNNFAST_BENCH_THREADS or 2."""
    try:
        yield request.getfixturevalue("bench_threads")
        return
    except pytest.FixtureLookupError:
        pass
    n = int(os.environ.get("RNNFAST_BENCH_THREADS", "2"))
    before = rnnfast.get_num_threads()
    rnnfast.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    yield n
    rnnfast.set_num_threads(before)


@functools.lru_cache(maxsize=1)
def case(name):
    """Seeded float32 inputs (B, C, L) and the float64 reference's outputs and gradients."""
    s = SHAPES[name]
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((s.B, s.c_in, s.L)).astype(np.float32)
    w = (rng.standard_normal((s.c_out, s.c_in, s.K)) / np.sqrt(s.c_in * s.K)).astype(np.float32)
    b = rng.standard_normal(s.c_out).astype(np.float32)
    dy = rng.standard_normal((s.B, s.c_out, s.l_out())).astype(np.float32)
    y, ctx = R.conv1d_forward(x, w, b, padding=s.padding, dilation=s.dilation,
                              channels_last=False, training=True)
    grads = R.conv1d_backward(ctx, dy)
    oracle = {"y": y, "dx": grads["x"], "dw": grads["w"], "db": grads["b"]}
    return s, {"x": x, "w": w, "b": b, "dy": dy}, oracle


def rnnfast_run(s, a, mode, channels_last):
    """A callable for the timer and a function turning its result into (B, C, L) arrays."""
    to_layout = (lambda t: np.ascontiguousarray(t.transpose(0, 2, 1))) if channels_last else (lambda t: t)
    x, dy = to_layout(a["x"]), to_layout(a["dy"])
    kw = dict(padding=s.padding, dilation=s.dilation, channels_last=channels_last)
    if mode == "forward":
        def call():
            return {"y": F.conv1d_forward(x, a["w"], a["b"], **kw)[0]}
    else:
        def call():
            y, ctx = F.conv1d_forward(x, a["w"], a["b"], training=True, **kw)
            g = F.conv1d_backward(ctx, dy)
            return {"y": y, "dx": g["x"], "dw": g["w"], "db": g["b"]}

    def extract(out):
        return {k: (to_layout(v) if k in ("y", "dx") else v) for k, v in out.items()}

    return call, extract


def torch_run(s, a, mode):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    left = s.dilation * (s.K - 1) if s.padding == "causal" else 0
    x, w, b, dy = (torch.from_numpy(a[k]) for k in ("x", "w", "b", "dy"))

    def conv(xt, wt, bt):
        return tf.conv1d(tf.pad(xt, (left, 0)) if left else xt, wt, bt, dilation=s.dilation)

    if mode == "forward":
        def call():
            with torch.inference_mode():
                return {"y": conv(x, w, b)}
    else:
        def call():
            xt, wt, bt = (t.detach().requires_grad_(True) for t in (x, w, b))
            y = conv(xt, wt, bt)
            y.backward(dy)
            return {"y": y.detach(), "dx": xt.grad, "dw": wt.grad, "db": bt.grad}

    return call, lambda out: {k: v.numpy() for k, v in out.items()}


def max_rel_errors(got, oracle):
    return {k: float(np.abs(got[k].astype(np.float64) - oracle[k]).max() / max(1.0, np.abs(oracle[k]).max()))
            for k in got}


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_conv1d(benchmark, threads, shape_name, mode, peer):
    s, arrays, oracle = case(shape_name)
    if peer == "torch":
        call, extract = torch_run(s, arrays, mode)
    else:
        call, extract = rnnfast_run(s, arrays, mode, channels_last=peer == "rnnfast-cl")

    start = time.perf_counter()
    errors = max_rel_errors(extract(call()), oracle)
    first_call = time.perf_counter() - start
    for key, err in errors.items():
        assert err < (OUT_TOL if key == "y" else GRAD_TOL), (key, err)

    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(TARGET_SECONDS / max(first_call, 1e-6))))
    count = s.flops(mode)
    benchmark.group = f"conv1d {shape_name} {mode}"
    benchmark.extra_info.update(shape=shape_name, mode=mode, peer=peer, dtype="float32",
                                threads=threads, flop=count, max_rel_error=errors,
                                B=s.B, L=s.L, C_in=s.c_in, C_out=s.c_out, K=s.K,
                                dilation=s.dilation, padding=s.padding)
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=1)
    if benchmark.stats:
        benchmark.extra_info["gflops"] = count / benchmark.stats.stats.median / 1e9
