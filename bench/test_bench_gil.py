"""The kernels release the GIL: two Python threads, each running a kernel call with the package
set to one thread, finish two calls faster than one thread running them one after the other.

Run with ``pytest bench/test_bench_gil.py`` (not part of ``pytest tests``). Each case first
checks that both threads' results equal the serial ones bitwise, then times (median of several
rounds) the two calls run serially and on two Python threads. ``extra_info`` holds both times
and the speed-up; on two free cores it approaches 2, while holding the GIL would give about 1.
A busy machine gives less, so the speed-up is reported, not asserted: that the GIL is released
is asserted by tests/test_reliability_threads.py, independently of the load.
"""
import os
import statistics
import threading
import time

import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F

ROUNDS = 7

pytestmark = pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")


def lstm_case(rng):
    T, B, I, H = 50, 32, 128, 128
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = (rng.standard_normal((4 * H, I)) * 0.1).astype(np.float32)
    w_hh = (rng.standard_normal((4 * H, H)) * 0.1).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)

    def call():
        y, h_n, c_n, ctx = F.lstm_forward(x, w_ih, w_hh, training=True)
        return [y] + [v for v in F.lstm_backward(ctx, dy).values() if v is not None]

    return call


def conv_case(rng):
    x = rng.standard_normal((32, 1000, 64)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3)) * 0.1).astype(np.float32)
    dy = rng.standard_normal((32, 1000, 64)).astype(np.float32)

    def call():
        y, ctx = F.conv1d_forward(x, w, padding="causal", training=True)
        g = F.conv1d_backward(ctx, dy)
        return [y, g["x"], g["w"]]

    return call


def gemm_case(rng):
    a = rng.standard_normal((768, 768)).astype(np.float32)

    def call():
        return [_C.gemm(a, a, trans_b=True)]

    return call


CASES = {"lstm_T50_B32_H128": lstm_case, "conv1d_B32_L1000_C64": conv_case, "sgemm_768": gemm_case}


def serial(call):
    start = time.perf_counter()
    results = [call(), call()]
    return time.perf_counter() - start, results


def threaded(call):
    results = [None, None]
    barrier = threading.Barrier(3)

    def work(i):
        barrier.wait()
        results[i] = call()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in workers:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    return time.perf_counter() - start, results


@pytest.fixture
def one_kernel_thread():
    saved = rnnfast.get_num_threads()
    rnnfast.set_num_threads(1)
    yield
    rnnfast.set_num_threads(saved)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
@pytest.mark.parametrize("name", list(CASES))
def test_two_threads_beat_serial(benchmark, one_kernel_thread, name):
    call = CASES[name](np.random.default_rng(0))
    want = call()
    _, got = threaded(call)
    for result in got:
        for a, b in zip(result, want):
            assert np.array_equal(a, b)
    serial_times, threaded_times = [], []
    for _ in range(ROUNDS):
        serial_times.append(serial(call)[0])
        threaded_times.append(threaded(call)[0])
    t_serial, t_threaded = statistics.median(serial_times), statistics.median(threaded_times)
    speedup = t_serial / t_threaded
    benchmark.group = "GIL release: two calls, serial vs two Python threads"
    benchmark.extra_info.update(serial_s=t_serial, threaded_s=t_threaded, speedup=speedup)
    benchmark.pedantic(lambda: threaded(call), rounds=3, iterations=1)
    print(f"{name}: serial {t_serial * 1e3:.1f} ms, two threads {t_threaded * 1e3:.1f} ms, "
          f"speed-up {speedup:.2f}")
