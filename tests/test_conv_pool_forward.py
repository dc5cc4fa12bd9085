"""conv1d_max_pool1d_forward: a Conv1D and the max pool over its output in one pass (the
convolution's output never stored), bitwise the two calls, on every ISA and thread count;
against the NumPy reference; its ctxs in the backward; the models' use of it."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import reference as R
from rnnfast.functional import conv as conv_functions
from rnnfast.models import Input, Model, Sequential
from rnnfast.models import layers as KL
from test_conv import TOL, _runs_per_isa, make_inputs, rel_err

# (B, L, C_in, C_out, K, conv options, pool options)
CASES = [
    (2, 20, 5, 7, 3, {}, {"pool_size": 4}),                                   # IMDB's shape
    (1, 5, 3, 4, 5, {}, {"pool_size": 1}),                                    # L = K, B = 1
    (3, 23, 4, 17, 3, {}, {"pool_size": 4}),                                  # ragged last window
    (2, 19, 3, 5, 2, {"stride": 2}, {"pool_size": 3, "pool_stride": 1}),      # overlapping
    (2, 17, 6, 9, 4, {"padding": "same"}, {"pool_size": 3, "pool_padding": "same"}),
    (2, 21, 4, 6, 3, {"padding": "causal", "dilation": 2},
     {"pool_size": 2, "pool_stride": 5}),                                     # gaps between windows
    (2, 15, 6, 9, 3, {"groups": 3}, {"pool_size": 2, "pool_padding": "same"}),
    (2, 18, 4, 8, 3, {"groups": 4}, {"pool_size": 3}),                        # depthwise kernel
    (2, 16, 3, 5, 3, {"channels_last": False}, {"pool_size": 3, "pool_stride": 2}),
    (2, 14, 2, 4, 3, {"channels_last": False, "groups": 2, "padding": "same"},
     {"pool_size": 4, "pool_padding": "same"}),
    (2, 3000, 2, 5, 3, {}, {"pool_size": 7, "pool_stride": 3}),               # blocks per sequence
    (2, 2600, 2, 3, 2, {"channels_last": False}, {"pool_size": 5}),
    (1, 40, 3, 4, 3, {"stride": 50}, {"pool_size": 1}),                       # one output step
]
IDS = [str(i) for i in range(len(CASES))]


def _two_calls(x, w, b, conv_kw, pool_kw, relu):
    """py, its winners' gradient routing (pool ctx) and the conv ctx of the two calls."""
    y, ctx = F.conv1d_forward(x, w, b, training=True, activation="relu" if relu else None,
                              **conv_kw)
    py, pctx = F.max_pool1d_forward(y, pool_size=pool_kw["pool_size"],
                                    stride=pool_kw.get("pool_stride"),
                                    padding=pool_kw.get("pool_padding", "valid"),
                                    channels_last=conv_kw.get("channels_last", True),
                                    training=True)
    return py, ctx, pctx


def _fused(x, w, b, conv_kw, pool_kw, relu, training=True):
    return F.conv1d_max_pool1d_forward(x, w, b, training=training,
                                       activation="relu" if relu else None, **conv_kw, **pool_kw)


def _winners(pctx, shape, dtype):
    """Where the pool sends each output's gradient: the backward of a distinct value per
    output (every winner, ties and NaN included, shows)."""
    dy = np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64).reshape(shape).astype(dtype)
    return F.max_pool1d_backward(pctx, dy)["x"]


def _inputs(rng, case, dtype, special):
    B, L, c_in, c_out, K, conv_kw, _ = case
    channels_last = conv_kw.get("channels_last", True)
    x, w, b = make_inputs(rng, B, L, c_in, c_out, conv_kw.get("groups", 1), K, channels_last)
    if special == "ties":  # few distinct values: equal outputs within windows
        x, w, b = np.round(x), np.round(w * 2), np.round(b)
    elif special == "nonfinite":
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, size=3, replace=False)] = [np.nan, np.inf, -np.inf]
    return x.astype(dtype), w.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("special", ["plain", "ties", "nonfinite"])
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_is_the_two_calls_bitwise(rng, case, relu, special):
    for dtype in (np.float32, np.float64):
        x, w, b = _inputs(rng, case, dtype, special)
        conv_kw, pool_kw = case[5], case[6]
        py, _, pctx = _two_calls(x, w, b, conv_kw, pool_kw, relu)
        want_winners = _winners(pctx, py.shape, dtype)

        def fused():
            got, ctx, got_pctx = _fused(x, w, b, conv_kw, pool_kw, relu)
            return got, _winners(got_pctx, got.shape, dtype), got_pctx.input_shape

        for isa, runs in _runs_per_isa(fused):
            # the two calls on this ISA (values differ between ISAs, never threads)
            with_isa = _isa_run(isa, lambda: _two_calls(x, w, b, conv_kw, pool_kw, relu))
            want_py, want_pctx = with_isa[0], with_isa[2]
            want_arg = _winners(want_pctx, want_py.shape, dtype)
            for got, got_arg, input_shape in runs:
                assert got.dtype == dtype and got.shape == want_py.shape
                assert got.tobytes() == want_py.tobytes(), (isa, dtype)
                assert got_arg.tobytes() == want_arg.tobytes(), (isa, dtype)
                assert input_shape == want_pctx.input_shape
        assert want_winners.shape == pctx.input_shape


# Shapes on Winograd's path (float32, channels last, stride 1, 3-7 taps), whose rows the
# instruction set's epilogue (bias, ReLU, pool) finishes: the IMDB layer; odd channel counts;
# fewer channels than a vector; padded, overlapping, gapped and ragged windows; B = 1.
WINOGRAD_CASES = [
    (2, 100, 100, 64, 5, {}, {"pool_size": 4}),
    (1, 41, 49, 67, 3, {"padding": "same"}, {"pool_size": 3, "pool_padding": "same"}),
    (3, 30, 50, 17, 7, {"padding": "causal"}, {"pool_size": 5, "pool_stride": 2}),
    (2, 12, 5, 7, 4, {}, {"pool_size": 1}),
    (2, 26, 48, 33, 6, {}, {"pool_size": 2, "pool_stride": 3}),
    (2, 9, 20, 18, 5, {"padding": "same"}, {"pool_size": 7, "pool_padding": "same"}),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("special", ["plain", "ties", "nonfinite"])
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=[str(c[:5]) for c in WINOGRAD_CASES])
def test_fused_winograd_is_the_two_calls_bitwise(rng, case, relu, special, bias):
    """On Winograd's path the fused call's py and winners are those of conv1d_forward then
    max_pool1d_forward, bit for bit, on every ISA at 1, 2 and 3 threads."""
    x, w, b = _inputs(rng, case, np.float32, special)
    b = b if bias else None
    conv_kw, pool_kw = {**case[5], "algorithm": "winograd"}, case[6]

    def fused():
        got, _, got_pctx = _fused(x, w, b, conv_kw, pool_kw, relu)
        return got, _winners(got_pctx, got.shape, np.float32)

    for isa, runs in _runs_per_isa(fused):
        want_py, _, want_pctx = _isa_run(isa, lambda: _two_calls(x, w, b, conv_kw, pool_kw,
                                                                 relu))
        want_arg = _winners(want_pctx, want_py.shape, np.float32)
        for got, got_arg in runs:
            assert got.shape == want_py.shape
            assert got.tobytes() == want_py.tobytes(), isa
            assert got_arg.tobytes() == want_arg.tobytes(), isa


def _isa_run(isa, call):
    isa0 = rnnfast.active_isa()
    rnnfast.set_isa(isa)
    try:
        return call()
    finally:
        rnnfast.set_isa(isa0)


@pytest.mark.parametrize("case", CASES[:10], ids=IDS[:10])
def test_fused_matches_reference(rng, case):
    conv_kw, pool_kw = case[5], case[6]
    for dtype in (np.float64, np.float32):
        x, w, b = _inputs(rng, case, dtype, "plain")
        want, ctx_ref, pctx_ref = R.conv1d_max_pool1d_forward(
            x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), training=True,
            activation="relu", **conv_kw, **pool_kw)
        got, ctx, pctx = _fused(x, w, b, conv_kw, pool_kw, True)
        assert got.shape == want.shape
        assert rel_err(got, want) < TOL[dtype][0]
        dpy = rng.standard_normal(got.shape).astype(dtype)
        want_g = R.conv1d_backward(ctx_ref, R.max_pool1d_backward(pctx_ref, dpy)["x"])
        got_g = F.conv1d_backward(ctx, dpy, pool=pctx)
        for name in "xwb":
            assert rel_err(got_g[name], want_g[name]) < TOL[dtype][1], (name, dtype)


@pytest.mark.parametrize("special", ["plain", "nonfinite"])
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_ctxs_give_the_two_calls_gradients(rng, case, relu, special):
    """conv1d_backward(conv_ctx, dpy, pool=pool_ctx) of the fused call: the gradients of the
    two calls' ctxs, bitwise (the winners-only route and the dense one), and the pool ctx serves
    max_pool1d_backward alone."""
    conv_kw, pool_kw = case[5], case[6]
    for dtype in (np.float32, np.float64):
        x, w, b = _inputs(rng, case, dtype, special)
        py, ctx, pctx = _two_calls(x, w, b, conv_kw, pool_kw, relu)
        got_py, fctx, fpctx = _fused(x, w, b, conv_kw, pool_kw, relu)
        dpy = rng.standard_normal(py.shape).astype(dtype)
        want = F.conv1d_backward(ctx, dpy, pool=pctx)
        got = F.conv1d_backward(fctx, dpy, pool=fpctx)
        for name in "xwb":
            assert got[name].tobytes() == want[name].tobytes(), (name, dtype)
        np.testing.assert_array_equal(F.max_pool1d_backward(fpctx, dpy)["x"],
                                      F.max_pool1d_backward(pctx, dpy)["x"])
        if not relu:  # no ReLU: the dense backward needs no output, and takes this ctx
            dy = rng.standard_normal(pctx.input_shape).astype(dtype)
            dense = F.conv1d_backward(fctx, dy)
            plain = F.conv1d_backward(ctx, dy)
            for name in "xwb":
                assert dense[name].tobytes() == plain[name].tobytes(), (name, dtype)


def test_fused_relu_ctx_refuses_a_dense_backward_or_another_pool(rng):
    x, w, b = _inputs(rng, CASES[0], np.float32, "plain")
    py, ctx, pctx = _fused(x, w, b, {}, {"pool_size": 4}, True)
    y_shape = pctx.input_shape
    with pytest.raises(ValueError, match="pool: this ctx is conv1d_max_pool1d_forward's, whose "
                                         "ReLU output was never stored.*got None"):
        F.conv1d_backward(ctx, np.zeros(y_shape, np.float32))
    other = _fused(x, w, b, {}, {"pool_size": 4}, True)[2]
    with pytest.raises(ValueError, match="got another pool's ctx"):
        F.conv1d_backward(ctx, py, pool=other)
    _, _, two_calls_pctx = _two_calls(x, w, b, {}, {"pool_size": 4}, True)
    with pytest.raises(ValueError, match="got another pool's ctx"):
        F.conv1d_backward(ctx, py, pool=two_calls_pctx)
    # the right pair works, also after the other ctxs are gone
    del other, two_calls_pctx
    assert F.conv1d_backward(ctx, py, pool=pctx)["w"].shape == w.shape


def test_fused_inference_returns_no_ctx(rng):
    x, w, b = _inputs(rng, CASES[2], np.float64, "plain")
    py, ctx, pctx = _fused(x, w, b, {}, {"pool_size": 4}, True, training=False)
    assert ctx is None and pctx is None
    want = _two_calls(x, w, b, {}, {"pool_size": 4}, True)[0]
    assert py.tobytes() == want.tobytes()


def test_fused_bfloat16_is_the_two_calls(rng):
    x, w, b = _inputs(rng, CASES[0], np.float32, "plain")
    kw = {"precision": "bfloat16"}
    want = _two_calls(x, w, b, kw, {"pool_size": 4}, True)[0]
    got = _fused(x, w, b, kw, {"pool_size": 4}, True)[0]
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("bad, error, match", [
    ({"pool_size": 0}, ValueError, "pool_size"),
    ({"pool_size": 2.5}, TypeError, "pool_size"),
    ({"pool_size": 30}, ValueError, "pool_size: a window of 30 steps is longer than the input "
                                    "length 18 of the convolution's output with "
                                    "pool_padding='valid'"),
    ({"pool_size": 2, "pool_stride": 0}, ValueError, "pool_stride"),
    ({"pool_size": 2, "pool_stride": "2"}, TypeError, "pool_stride"),
    ({"pool_size": 2, "pool_padding": "causal"}, ValueError, "pool_padding"),
    ({"pool_size": 2, "pool_padding": 1}, (TypeError, ValueError), "pool_padding"),
    ({"pool_size": None}, TypeError, "pool_size"),
])
def test_fused_bad_pool_arguments(rng, bad, error, match):
    x, w, b = _inputs(rng, CASES[0], np.float32, "plain")
    with pytest.raises(error, match=match):
        F.conv1d_max_pool1d_forward(x, w, b, **bad)


def test_fused_bad_conv_arguments_as_conv1d_forward(rng):
    x, w, b = _inputs(rng, CASES[0], np.float32, "plain")
    cases = [((x[0], w, b), {}), ((x, w[:, :2], b), {}), ((x, w, b[:3]), {}),
             ((x, w.astype(np.float64), b), {}), ((x, w, b), {"stride": 0}),
             ((x, w, b), {"padding": "full"}), ((x, w, b), {"activation": "tanh"}),
             ((x, w, b), {"precision": "int8"}), ((x[:, :2], w, b), {})]
    for args, kw in cases:
        with pytest.raises((ValueError, TypeError)) as want:
            F.conv1d_forward(*args, **kw)
        with pytest.raises(type(want.value)) as got:
            F.conv1d_max_pool1d_forward(*args, pool_size=2, **kw)
        assert str(got.value) == str(want.value)


# ------------------------------------------------------------------ models


def _sequential(activation, pool_kw, conv_kw):
    return Sequential([KL.Embedding(40, 6), KL.Conv1D(5, 3, activation=activation, **conv_kw),
                       KL.MaxPooling1D(**pool_kw), KL.LSTM(4), KL.Dense(1, activation="sigmoid")])


def _functional(activation, pool_kw, conv_kw):
    inp = Input(shape=(18,), dtype="int32")
    h = KL.Embedding(40, 6)(inp)
    h = KL.Conv1D(5, 3, activation=activation, **conv_kw)(h)
    h = KL.MaxPooling1D(**pool_kw)(h)
    out = KL.Dense(1, activation="sigmoid")(KL.LSTM(4)(h))
    return Model(inp, out)


def _train(build, fuse, activation, pool_kw, conv_kw, weights, monkeypatch):
    calls = []
    real = conv_functions.conv1d_max_pool1d_forward  # (F's may be an earlier run's wrapper)
    monkeypatch.setattr(F, "conv1d_max_pool1d_forward",
                        lambda *a, **k: calls.append(k["training"]) or real(*a, **k))
    model = build(activation, pool_kw, conv_kw)
    monkeypatch.setattr(type(model), "_fuse_conv_pool_forward", fuse)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    if isinstance(model, Sequential):
        model.build((None, 18))
    model.set_weights(weights(model))
    rng = np.random.default_rng(3)
    x = rng.integers(0, 40, (24, 18))
    y = rng.integers(0, 2, (24, 1)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    pred = model.predict(x, verbose=0)
    return model.get_weights(), pred, calls


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
@pytest.mark.parametrize("activation", ["relu", None, "tanh"])
@pytest.mark.parametrize("pool_kw, conv_kw", [
    ({"pool_size": 4}, {}),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, {"padding": "same", "strides": 2}),
])
def test_models_fuse_the_pair_bitwise(build, activation, pool_kw, conv_kw, monkeypatch):
    """fit and predict with the pair's forward fused (and only where the kernel can: not with
    tanh) give the unfused run's weights and predictions bit for bit."""
    start = {}

    def weights(model):
        if not start:
            start["w"] = [w.copy() for w in model.get_weights()]
        return start["w"]

    w_off, p_off, calls_off = _train(build, False, activation, pool_kw, conv_kw, weights,
                                     monkeypatch)
    w_on, p_on, calls_on = _train(build, True, activation, pool_kw, conv_kw, weights,
                                  monkeypatch)
    assert calls_off == []
    if activation == "tanh":
        assert calls_on == []
    else:  # 3 batches x 2 epochs in training, then predict's one batch
        assert calls_on.count(True) == 6 and calls_on.count(False) >= 1
    assert p_on.tobytes() == p_off.tobytes()
    for a, b in zip(w_on, w_off):
        assert a.tobytes() == b.tobytes()


def test_sequential_fused_errors_name_their_own_layer():
    model = _sequential("relu", {"pool_size": 30}, {})
    with pytest.raises(ValueError, match=r"layer 2 .*\(MaxPooling1D\).*pool_size"):
        model.predict(np.zeros((2, 18), np.int32), verbose=0)


def test_fused_layers_keep_what_backward_through_pool_needs(rng):
    conv, pool = KL.Conv1D(5, 3, activation="relu"), KL.MaxPooling1D(2)
    x = rng.standard_normal((3, 12, 4)).astype(np.float32)
    assert conv.fuses_pool(pool)
    py = conv.forward_pooled(x, pool)
    assert conv.pools_into(pool)
    want = pool.forward(conv.forward(x))
    assert py.tobytes() == want.tobytes()
    dpy = rng.standard_normal(py.shape).astype(np.float32)
    conv.forward_pooled(x, pool)
    dx = conv.backward_through_pool(pool, dpy)
    grad_w = conv.weight.grad.copy()
    conv.zero_grad()
    pool.forward(conv.forward(x))
    np.testing.assert_array_equal(conv.backward_through_pool(pool, dpy), dx)
    np.testing.assert_array_equal(conv.weight.grad, grad_w)
    # the ReLU's output is gone: the layer's own backward says so
    conv.forward_pooled(x, pool)
    with pytest.raises(ValueError, match="never stored"):
        conv.backward(np.zeros((3, 10, 5), np.float32))
    assert not conv.fuses_pool(KL.MaxPooling1D(2, data_format="channels_first"))
    assert not KL.Conv1D(5, 3, activation="tanh").fuses_pool(pool)
    assert not KL.Conv1D(5, 3, activity_regularizer="l2").fuses_pool(pool)
