"""Sequences of T = 100,000 steps (WaveNet-scale) through every op, inference and training: the
results equal those of shorter chunks stitched together (recurrent ops by their states, conv
and max pooling by overlapping windows, global pools by combining chunk results), so no offset
overflows and no step is computed differently far into a sequence. The memory of such calls
is measured in test_memory.py."""
import numpy as np
import pytest

from rnnfast import functional as F
from recurrent_cases import CELLS, GATES

T_LONG = 100_000
CHUNKS = [0, 1, 37_000, 62_500, T_LONG]  # uneven chunks, one of a single step


def assert_near(got, want, what, tol=1e-12):
    """float64 results: equal up to the last bits (the chunks' GEMMs may block rows
    differently)."""
    assert got.shape == want.shape, what
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max()) / scale
    assert err <= tol, f"{what}: relative error {err:.3g}"


@pytest.fixture(scope="module")
def long_rng():
    return np.random.default_rng(100_000)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("op,kw,cell", CELLS, ids=[c[2] for c in CELLS])
def test_recurrent_long_sequence_equals_stitched_chunks(long_rng, op, kw, cell, training):
    G, B, I, H = GATES[op], 2, 3, 5
    rng = long_rng
    x = rng.standard_normal((T_LONG, B, I))
    w_ih = rng.standard_normal((G * H, I)) * 0.5
    w_hh = rng.standard_normal((G * H, H)) * 0.4
    b_ih, b_hh = rng.standard_normal(G * H) * 0.1, rng.standard_normal(G * H) * 0.1
    forward = getattr(F, op + "_forward")
    backward = getattr(F, op + "_backward")
    lstm = op == "lstm"

    def run(xs, state):
        states = dict(h0=state[0], c0=state[1]) if lstm else dict(h0=state[0])
        out = forward(xs, w_ih, w_hh, b_ih, b_hh, **states, **kw, training=training)
        return out[0], out[1:-1], out[-1]

    zero = (np.zeros((B, H)), np.zeros((B, H)))
    y, final, ctx = run(x, zero)
    assert np.isfinite(y).all()
    state, ys, ctxs = zero, [], []
    for a, b in zip(CHUNKS, CHUNKS[1:]):
        y_k, state, ctx_k = run(x[a:b], state if lstm else (state[0], None))
        ys.append(y_k)
        ctxs.append(ctx_k)
    assert_near(np.concatenate(ys), y, "y")
    for got, want, name in zip(state, final, ["h_n", "c_n"]):
        assert_near(got, want, name)
    if not training:
        return
    dy = rng.standard_normal(y.shape)
    full = backward(ctx, dy)
    # Backward through the chunks, last first: each chunk's dh0 (dc0) is the dh_n (dc_n) of
    # the chunk before it; weight gradients add up.
    d_state = {}
    dxs, sums = [], {k: 0.0 for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
    for (a, b), ctx_k in reversed(list(zip(zip(CHUNKS, CHUNKS[1:]), ctxs))):
        g = backward(ctx_k, dy[a:b], **d_state)
        dxs.append(g["x"])
        for k in sums:
            sums[k] = sums[k] + g[k]
        d_state = {"dh_n": g["h0"]}
        if lstm:
            d_state["dc_n"] = g["c0"]
    assert_near(np.concatenate(dxs[::-1]), full["x"], "dx")
    assert_near(d_state["dh_n"], full["h0"], "dh0")
    for k in sums:
        assert_near(sums[k], full[k], "d" + k, tol=1e-10)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "cf"])
def test_conv_long_sequence_equals_stitched_windows(long_rng, channels_last, training):
    B, C_in, C_out, K, dilation = 2, 3, 4, 5, 3
    span = dilation * (K - 1) + 1
    rng = long_rng
    x = rng.standard_normal((B, T_LONG, C_in))
    w = rng.standard_normal((C_out, C_in, K)) * 0.3
    b = rng.standard_normal(C_out)
    lay = (lambda a: a) if channels_last else (lambda a: np.ascontiguousarray(a.transpose(0, 2, 1)))
    unlay = lay  # the transpose is its own inverse
    kw = dict(dilation=dilation, padding="valid", channels_last=channels_last, training=training)
    y, ctx = F.conv1d_forward(lay(x), w, b, **kw)
    y = unlay(y)
    L_out = T_LONG - span + 1
    assert y.shape == (B, L_out, C_out)
    # Output step t reads x[t : t + span]: chunks of outputs read overlapping input windows.
    parts, ctxs, bounds = [], [], [0, 1, 40_000, 77_777, L_out]
    for a, e in zip(bounds, bounds[1:]):
        y_k, ctx_k = F.conv1d_forward(lay(x[:, a:e + span - 1]), w, b, **kw)
        parts.append(unlay(y_k))
        ctxs.append(ctx_k)
    assert_near(np.concatenate(parts, axis=1), y, "y")
    if not training:
        return
    dy = rng.standard_normal(y.shape)
    full = F.conv1d_backward(ctx, lay(dy))
    dx = np.zeros_like(x)
    dw, db = np.zeros_like(w), np.zeros_like(b)
    for (a, e), ctx_k in zip(zip(bounds, bounds[1:]), ctxs):
        g = F.conv1d_backward(ctx_k, lay(dy[:, a:e]))
        dx[:, a:e + span - 1] += unlay(g["x"])  # overlapping windows add up
        dw += g["w"]
        db += g["b"]
    assert_near(dx, unlay(full["x"]), "dx")
    assert_near(dw, full["w"], "dw", tol=1e-10)
    assert_near(db, full["b"], "db", tol=1e-10)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_pools_long_sequence_equal_stitched_chunks(long_rng, training):
    B, C = 2, 3
    rng = long_rng
    x = rng.standard_normal((B, T_LONG, C))
    pool, stride = 4, 3
    y, ctx = F.max_pool1d_forward(x, pool_size=pool, stride=stride, training=training)
    L_out = (T_LONG - pool) // stride + 1
    assert y.shape == (B, L_out, C)
    bounds = [0, 1, 20_001, L_out]  # in outputs; output t reads x[t*stride : t*stride + pool]
    parts, ctxs = [], []
    for a, e in zip(bounds, bounds[1:]):
        y_k, ctx_k = F.max_pool1d_forward(x[:, a * stride:(e - 1) * stride + pool],
                                          pool_size=pool, stride=stride, training=training)
        parts.append(y_k)
        ctxs.append(ctx_k)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), y)
    gmax, gctx = F.global_max_pool1d_forward(x, training=training)
    gavg, actx = F.global_avg_pool1d_forward(x, training=training)
    halves = [x[:, :T_LONG // 3], x[:, T_LONG // 3:]]
    np.testing.assert_array_equal(
        gmax, np.maximum(*[F.global_max_pool1d_forward(h)[0] for h in halves]))
    weighted = sum(F.global_avg_pool1d_forward(h)[0] * h.shape[1] for h in halves) / T_LONG
    assert_near(gavg, weighted, "global average")
    if not training:
        return
    dy = rng.standard_normal(y.shape)
    full = F.max_pool1d_backward(ctx, dy)["x"]
    dx = np.zeros_like(x)
    for (a, e), ctx_k in zip(zip(bounds, bounds[1:]), ctxs):
        dx[:, a * stride:(e - 1) * stride + pool] += F.max_pool1d_backward(ctx_k, dy[:, a:e])["x"]
    np.testing.assert_array_equal(dx, full)
    dg = rng.standard_normal(gmax.shape)
    dmax = F.global_max_pool1d_backward(gctx, dg)["x"]
    winners = x.argmax(axis=1)
    want = np.zeros_like(x)
    for bi in range(B):
        want[bi, winners[bi], np.arange(C)] = dg[bi]
    np.testing.assert_array_equal(dmax, want)
    davg = F.global_avg_pool1d_backward(actx, dg)["x"]
    assert_near(davg, np.broadcast_to(dg[:, None, :] / T_LONG, x.shape), "global average dx")
