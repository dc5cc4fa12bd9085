"""No leaks: 10,000 rounds of forward + backward of every cell, conv and the pools (and of
refused calls, whose exceptions unwind through the bindings) keep the resident set flat."""
import gc
import os

import numpy as np
import pytest

from rnnfast import functional as F
from recurrent_cases import CELLS, make_inputs, upstream

ROUNDS = 10_000
WARMUP = 1_000
LIMIT_MB = 5.0


def rss_mb():
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_round(rng):
    calls = []
    for i, (op, kw, _) in enumerate(CELLS):
        dtype = np.float32 if i % 2 else np.float64
        args, lens = make_inputs(rng, op, 4, 3, 5, 6, dtype, lengths=True)
        grads = upstream(rng, op, (4, 3, 6), 3, 6, dtype)
        forward, backward = getattr(F, op + "_forward"), getattr(F, op + "_backward")
        calls.append(lambda f=forward, b=backward, a=args, k=kw, n=lens, g=grads:
                     b(f(**a, **k, lengths=n, training=True)[-1], **g))
    x = rng.standard_normal((2, 12, 4)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    y = F.conv1d_forward(x, w, bias, groups=2, padding="same")[0]
    calls.append(lambda: F.conv1d_backward(
        F.conv1d_forward(x, w, bias, groups=2, padding="same", training=True)[1], y))
    calls.append(lambda: F.max_pool1d_backward(
        F.max_pool1d_forward(x, pool_size=3, stride=2, training=True)[1], None))
    calls.append(lambda: F.global_avg_pool1d_backward(
        F.global_avg_pool1d_forward(x, training=True)[1], x[:, 0]))
    lstm_ctx = F.lstm_forward(np.zeros((2, 1, 1)), np.zeros((4, 1)), np.zeros((4, 1)),
                              training=True)[-1]

    def refusals():
        for bad in (lambda: F.conv1d_backward(None, y),
                    lambda: F.lstm_backward(lstm_ctx, np.zeros((2, 1, 2))),
                    lambda: F.max_pool1d_forward(x, pool_size=99),
                    lambda: F.rnn_forward(np.broadcast_to(np.float32(0), (2, 2, 2**42)),
                                          np.broadcast_to(np.float32(0), (1, 2**42)),
                                          np.zeros((1, 1), np.float32))):
            try:
                bad()
            except (TypeError, ValueError, MemoryError):
                pass
            else:
                raise AssertionError("a bad call was accepted")

    calls.append(refusals)
    return calls


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.skipif(os.environ.get("RNNFAST_SANITIZED") == "1",
                    reason="the sanitizer's allocator keeps freed memory in quarantine")
def test_resident_set_stays_flat(rng):
    calls = make_round(rng)
    for _ in range(WARMUP):
        for call in calls:
            call()
    gc.collect()
    before = rss_mb()
    for _ in range(ROUNDS - WARMUP):
        for call in calls:
            call()
    gc.collect()
    growth = rss_mb() - before
    print(f"RSS growth over {ROUNDS - WARMUP} rounds of {len(calls)} calls: {growth:.2f} MB")
    assert growth < LIMIT_MB, f"resident set grew by {growth:.1f} MB"
