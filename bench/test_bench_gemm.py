"""GEMM benchmarks: the package's SGEMM against NumPy (its BLAS) and PyTorch (if installed),
and the packed GEMM of the recurrent step, at 1 and 2 threads.

Run with ``pytest bench/test_bench_gemm.py`` (not part of ``pytest tests``). Every case checks
its result against a float64 product before it is timed (``check``); ``extra_info`` holds GFLOP/s
(from the fastest round) and, for the packed cases, the time of one product in microseconds.

- Large SGEMM: 2048 x 2048 x 2048 (A @ B) and the LSTM input projection X @ W_ih^T with
  X (3200, 512) (T * B rows) and W_ih (2048, 512) (4 * H rows, H = 512).
- Packed GEMM (h @ W_hh^T of one time step): W_hh^T packed once, then reused. One benchmark
  round runs `repeats` products in C++ (the packing, done once per round, is amortised to
  well under 1%); PyTorch's numbers are per Python call of ``h @ w_hh.T``.
"""
import numpy as np
import pytest

import rnnfast
from rnnfast import _C

try:
    import torch
except ImportError:
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

THREADS = [1, 2]
LARGE = {"square_2048": (2048, 2048, 2048, False), "lstm_input_3200x512x2048": (3200, 2048, 512, True)}
# name: (M, K, N, products per round)
PACKED = {
    "m64_k512_n2048": (64, 512, 2048, 100),
    "m32_k128_n512": (32, 128, 512, 2000),
    "m1_k256_n1024": (1, 256, 1024, 4000),
}


@pytest.fixture(params=THREADS, ids=lambda t: f"threads{t}")
def threads(request):
    saved = rnnfast.get_num_threads()
    rnnfast.set_num_threads(request.param)
    saved_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(request.param)
    yield request.param
    rnnfast.set_num_threads(saved)
    if torch is not None:
        torch.set_num_threads(saved_torch)


def check(got, a, b_op):
    """got against a @ b_op in float64: PyTorch's when installed, for NumPy's OpenBLAS leaves a
    thread spinning on a core for about 100 ms after each threaded call, during the first timed
    rounds (bench/gemm_vs_mkl.py)."""
    if torch is not None:
        a64, b64 = torch.from_numpy(a).double(), torch.from_numpy(b_op).double()
        want, scale = (a64 @ b64).numpy(), (a64.abs() @ b64.abs()).numpy()
    else:
        want = a.astype(np.float64) @ b_op.astype(np.float64)
        scale = np.abs(a.astype(np.float64)) @ np.abs(b_op.astype(np.float64))
    k = a.shape[1]
    assert np.all(np.abs(got - want) <= (k + 4) * np.finfo(np.float32).eps * scale)


def report(benchmark, flops, threads, products=1):
    best = benchmark.stats.stats.min
    benchmark.extra_info["threads"] = threads
    benchmark.extra_info["gflops"] = round(flops * products / best / 1e9, 1)
    if products > 1:
        benchmark.extra_info["us_per_product"] = round(best / products * 1e6, 2)


def large_operands(m, n, k, trans_b):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    return a, b, (b.T if trans_b else b)


@pytest.mark.parametrize("shape", list(LARGE), ids=list(LARGE))
def test_sgemm_rnnfast(benchmark, threads, shape):
    m, n, k, trans_b = LARGE[shape]
    a, b, b_op = large_operands(m, n, k, trans_b)
    check(_C.gemm(a, b, trans_b=trans_b), a, b_op)
    benchmark.pedantic(_C.gemm, args=(a, b), kwargs={"trans_b": trans_b}, rounds=5, warmup_rounds=1)
    report(benchmark, 2.0 * m * n * k, threads)


@pytest.mark.parametrize("shape", list(LARGE), ids=list(LARGE))
def test_sgemm_numpy(benchmark, threads, shape):
    if threadpool_limits is None:
        pytest.skip("threadpoolctl is needed to set NumPy's BLAS thread count")
    m, n, k, trans_b = LARGE[shape]
    a, b, b_op = large_operands(m, n, k, trans_b)
    with threadpool_limits(threads):
        check(a @ b_op, a, b_op)
        benchmark.pedantic(np.matmul, args=(a, b_op), rounds=5, warmup_rounds=1)
    report(benchmark, 2.0 * m * n * k, threads)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("shape", list(LARGE), ids=list(LARGE))
def test_sgemm_torch(benchmark, threads, shape):
    m, n, k, trans_b = LARGE[shape]
    a, b, b_op = large_operands(m, n, k, trans_b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tb_op = tb.T if trans_b else tb
    check(torch.matmul(ta, tb_op).numpy(), a, b_op)
    benchmark.pedantic(torch.matmul, args=(ta, tb_op), rounds=5, warmup_rounds=1)
    report(benchmark, 2.0 * m * n * k, threads)


def packed_operands(m, k, n):
    rng = np.random.default_rng(11)
    h = rng.standard_normal((m, k), dtype=np.float32)
    w_hh = rng.standard_normal((n, k), dtype=np.float32)  # (G*H, H): op(B) = w_hh^T
    return h, w_hh


@pytest.mark.parametrize("shape", list(PACKED), ids=list(PACKED))
def test_gemm_packed_rnnfast(benchmark, threads, shape):
    m, k, n, products = PACKED[shape]
    h, w_hh = packed_operands(m, k, n)
    check(_C.gemm_packed(h, w_hh, trans_b=True), h, w_hh.T)
    benchmark.pedantic(_C.gemm_packed, args=(h, w_hh),
                       kwargs={"trans_b": True, "repeats": products}, rounds=7, warmup_rounds=1)
    report(benchmark, 2.0 * m * n * k, threads, products)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("shape", list(PACKED), ids=list(PACKED))
def test_gemm_packed_torch(benchmark, threads, shape):
    m, k, n, _ = PACKED[shape]
    h, w_hh = packed_operands(m, k, n)
    th, tw = torch.from_numpy(h), torch.from_numpy(w_hh)
    check(torch.matmul(th, tw.T).numpy(), h, w_hh.T)
    benchmark(torch.matmul, th, tw.T)
    report(benchmark, 2.0 * m * n * k, threads)
    benchmark.extra_info["us_per_product"] = round(benchmark.stats.stats.min * 1e6, 2)
