"""The float32 LSTM step's nonlinearities at the accuracy activations.h documents, on every
instruction set, read off one step's cell state. With x = 0, W_ih = 0 and W_hh = 0 every gate's
pre-activation is its bias exactly; biases of +-100 saturate the other gates to exactly 0 or 1,
so that c_1 = sigmoid(b_i) (f = 0, g = 1) or c_1 = tanh(b_g) (i = 1, f = 0), and h_1 = tanh(c_1)
(o = 1). Units of H = 300 (a partial vector of 12 at the end) in batches of 3 (the small-batch
loops) and 9 (the merged product), at 1 and 2 threads; special values keep their answers."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from recurrent_cases import isa, with_threads

H = 300
I_GATE, F_GATE, G_GATE, O_GATE = range(4)


def one_step(gate, values, B):
    """(c_1, h_1) [B, H] of the LSTM whose gate `gate` has the pre-activations `values` [H]."""
    saturated = {I_GATE: 100.0, F_GATE: -100.0, G_GATE: 100.0, O_GATE: 100.0}
    b_ih = np.concatenate([values if k == gate else np.full(H, saturated[k], np.float32)
                           for k in range(4)]).astype(np.float32)
    zeros = np.zeros((B, H), np.float32)
    _, h, c = F.lstm_forward(np.zeros((1, B, 1), np.float32), np.zeros((4 * H, 1), np.float32),
                             np.zeros((4 * H, H), np.float32), b_ih, None, zeros, zeros,
                             training=False)[:3]
    return c, h


def grids():
    """Pre-activations [k, H]: every float32 step near 0, uniform and geometric spreads to the
    saturation, both signs."""
    rng = np.random.default_rng(14)
    near_zero = np.arange(-H // 2, H - H // 2, dtype=np.float32) * np.float32(1.2e-7)
    uniform = [rng.uniform(-r, r, H).astype(np.float32) for r in (0.5, 2.0, 8.0, 20.0, 86.0)]
    signs = np.sign(rng.standard_normal(H))
    geometric = [(signs * np.geomspace(1e-30, 86.0, H)).astype(np.float32)]
    return np.stack([near_zero] + uniform + geometric)


def sigmoid64(x):
    x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("B", [3, 9], ids=["small_batch", "merged"])
def test_sigmoid_and_tanh_accuracy(isa_name, B):
    with isa(isa_name):
        for values in grids():
            for c, h in with_threads((1, 2), lambda: one_step(I_GATE, values, B)):
                want = sigmoid64(values)
                rel = np.abs(c - want) / want
                # 3e-7 relative up to |x| = 20; below, the reduction's error grows with the
                # exponent (4e-7 at x = -86)
                assert rel[:, np.abs(values) <= 20].max() <= 3e-7
                assert rel.max() <= 4e-7
                assert np.abs(h - np.tanh(c.astype(np.float64))).max() <= 1.2e-7
            for c, h in with_threads((1, 2), lambda: one_step(G_GATE, values, B)):
                assert np.abs(c - np.tanh(values.astype(np.float64))).max() <= 1.2e-7
                assert np.abs(h - np.tanh(c.astype(np.float64))).max() <= 1.2e-7


@pytest.mark.parametrize("isa_name", rnnfast.supported_isas())
@pytest.mark.parametrize("B", [3, 9], ids=["small_batch", "merged"])
def test_special_values(isa_name, B):
    special = np.array([np.inf, -np.inf, 1e30, -1e30, 88.0, -88.0, 0.0, -0.0, np.nan],
                       np.float32)
    sig = np.array([1, 0, 1, 0, 1, 0, 0.5, 0.5, np.nan], np.float32)
    tanh = np.array([1, -1, 1, -1, 1, -1, 0, 0, np.nan], np.float32)
    values = np.resize(special, H).astype(np.float32)
    with isa(isa_name):
        c, _ = one_step(I_GATE, values, B)
        np.testing.assert_array_equal(c, np.broadcast_to(np.resize(sig, H), (B, H)))
        c, _ = one_step(G_GATE, values, B)
        np.testing.assert_array_equal(c, np.broadcast_to(np.resize(tanh, H), (B, H)))
