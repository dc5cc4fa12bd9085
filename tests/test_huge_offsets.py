"""Arrays of more than 2**31 elements: element offsets past the int32 range in the GEMM, the
recurrent kernels (the input projection reads x at such offsets), the convolution and pooling.

Opt-in (`RNNFAST_HUGE_TESTS=1`): each input is a float32 array of 2**31 + a few thousand elements
(8 GiB of address space). Inputs are `np.zeros` with a few rows written at both ends: the zero
pages are mapped lazily, so reading the rest costs page-table work, not memory. Outputs are
kept small (few columns, a stride over time) except the recurrent backward's dx, which is
written in full: that test peaked at 17 GB resident, so it runs only with 18 GiB available. Each check compares the
values at the far end, past offset 2**31, with the reference on those rows alone.
"""
import os

import numpy as np
import pytest

from rnnfast import _C
from rnnfast import functional as F
from rnnfast import reference as R

pytestmark = pytest.mark.skipif(not os.environ.get("RNNFAST_HUGE_TESTS"),
                                reason="8 GiB arrays; set RNNFAST_HUGE_TESTS=1")

K = 1024
ROWS = (1 << 31) // K + 3  # rows * K > 2**31
TAIL = 3  # rows written at the far end


def _available_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1 << 20)
    return 0.0


def _huge(rng):
    """(ROWS, K) float32 zeros with random head and tail rows."""
    a = np.zeros((ROWS, K), np.float32)
    a[:TAIL] = rng.standard_normal((TAIL, K))
    a[-TAIL:] = rng.standard_normal((TAIL, K))
    assert a.size > 2**31
    return a


def test_gemm_reads_past_2_31(rng):
    a = _huge(rng)
    b = rng.standard_normal((K, 3)).astype(np.float32)
    c = _C.gemm(a, b)
    for rows in (slice(0, TAIL), slice(ROWS - TAIL, ROWS)):
        want = a[rows].astype(np.float64) @ b.astype(np.float64)
        np.testing.assert_allclose(c[rows], want, rtol=1e-4, atol=1e-4)
    assert not c[TAIL:ROWS - TAIL].any()


@pytest.mark.parametrize("training", [False, True])
def test_lstm_steps_past_2_31(rng, training):
    """x (T, 1, K) with T * K > 2**31 and zero inputs except the last steps: an LSTM with
    zero biases and a zero state stays exactly at zero through the zero steps, so the last steps'
    outputs equal the reference run on those steps alone."""
    if training and _available_gib() < 18:
        pytest.skip("the backward writes an 8 GiB dx (17 GB resident at its peak)")
    x = _huge(rng).reshape(ROWS, 1, K)
    H = 2
    w_ih = (rng.standard_normal((4 * H, K)) * 0.05).astype(np.float32)
    w_hh = (rng.standard_normal((4 * H, H)) * 0.1).astype(np.float32)
    b = np.zeros(4 * H, np.float32)
    x[:TAIL] = 0  # the state stays zero from the start
    y, h, c, ctx = F.lstm_forward(x, w_ih, w_hh, b, b, training=training)
    assert not y[:ROWS - TAIL].any()
    want, *_ = R.lstm_forward(x[-TAIL:], w_ih, w_hh, b, b)
    np.testing.assert_allclose(y[-TAIL:], want, rtol=1e-5, atol=1e-6)
    if training:
        dy = np.zeros_like(y)
        dy[-1] = 1.0
        grads = F.lstm_backward(ctx, dy)
        _, _, _, rctx = R.lstm_forward(x[-TAIL:], w_ih, w_hh, b, b, training=True)
        rdy = np.zeros((TAIL, 1, H))
        rdy[-1] = 1.0
        rgrads = R.lstm_backward(rctx, rdy)
        np.testing.assert_allclose(grads["x"][-TAIL:], rgrads["x"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(grads["w_ih"], rgrads["w_ih"], rtol=1e-4, atol=1e-6)
        # the gradient reaching back into the zero steps decays (forget gates of 1/2) and is
        # exactly zero a few hundred steps before the tail
        assert not grads["x"][:ROWS - 1000].any()


def test_conv_and_pool_read_past_2_31(rng):
    """One channel over 2**31 + 3 * 1024 steps, channels last; stride 1024 keeps the outputs small."""
    x = _huge(rng).reshape(1, ROWS * K, 1)
    w = np.full((1, 1, 1), 2.0, np.float32)
    y, _ = F.conv1d_forward(x, w, stride=K)
    np.testing.assert_array_equal(y[0, :, 0], 2.0 * x[0, ::K, 0])
    p, _ = F.max_pool1d_forward(x, pool_size=K, stride=K)
    want = x[0, -TAIL * K:, 0].reshape(TAIL, K).max(axis=1)
    np.testing.assert_array_equal(p[0, -TAIL:, 0], want)
    assert not p[0, TAIL:-TAIL, 0].any()
