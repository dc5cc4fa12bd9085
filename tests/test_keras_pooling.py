"""Keras' ``AveragePooling1D`` against Keras 3 itself (torch backend): outputs and input
gradients for every padding, stride, pool size and data format (float32, 1e-5 of the scale),
float64, inside a Sequential that saves and loads, and the errors."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras
from rnnfast.models import Sequential, load_model
from rnnfast.models import layers as L

pytestmark = KERAS_WARNINGS

CASES = [(k, s, p, length) for k in (1, 2, 3, 4) for s in (None, 1, 2, 3)
         for p in ("valid", "same") for length in (5, 8) if not (p == "valid" and length < k)]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pool_size, strides, padding, length", CASES,
                         ids=[f"k{k}-s{s}-{p}-L{n}" for k, s, p, n in CASES])
def test_average_pooling_matches_keras(rng, pool_size, strides, padding, length, data_format):
    torch = pytest.importorskip("torch")
    shape = (2, length, 3) if data_format == "channels_last" else (2, 3, length)
    x = rng.standard_normal(shape).astype(np.float32)
    args = dict(pool_size=pool_size, strides=strides, padding=padding, data_format=data_format)
    klayer = keras.layers.AveragePooling1D(**args)
    tx = torch.tensor(x, requires_grad=True)
    ky = klayer(tx)
    dy = rng.standard_normal(tuple(ky.shape)).astype(np.float32)
    (ky * torch.tensor(dy)).sum().backward()
    layer = L.AveragePooling1D(**args)
    layer.train()
    assert_close(layer.forward(x), ky.detach().numpy(), what="output")
    assert_close(layer.backward(dy), tx.grad.numpy(), what="dx")
    x64 = x.astype(np.float64)
    assert layer.forward(x64).dtype == np.float64


def test_average_pooling_in_a_sequential_trains_saves_and_loads(rng, tmp_path):
    x = rng.standard_normal((8, 9, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    model = Sequential([L.Input((9, 3)), L.AvgPool1D(3, strides=2, padding="same"),
                        L.Flatten(), L.Dense(2, seed=0)], seed=1)
    assert model.output_shapes[0] == (None, 5, 3)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    loaded = load_model(model.save(tmp_path / "pool.keras"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[0].get_config() == {"pool_size": 3, "strides": 2, "padding": "same",
                                              "data_format": "channels_last"}


def test_average_pooling_errors():
    with pytest.raises(ValueError, match="padding: expected 'valid' or 'same'"):
        L.AveragePooling1D(2, padding="causal")
    with pytest.raises(ValueError, match="pool_size"):
        L.AveragePooling1D(0)
    with pytest.raises(ValueError, match="2 steps are fewer than pool_size=3"):
        L.AveragePooling1D(3).forward(np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match="x: expected"):
        L.AveragePooling1D(2).forward(np.zeros((4, 3), np.float32))


def _conv_pool_grads(model, x, dy, fuse):
    model._fuse_conv_pool = fuse
    model.train()
    for p in model.parameters():
        p.grad = None
    out = model.forward(x)
    dx = model.backward(dy.astype(out.dtype))
    return out, dx, {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv_kw,pool_kw,fused", [
    ({"activation": "relu"}, {"pool_size": 4}, True),
    ({}, {"pool_size": 3, "strides": 2}, True),
    ({"activation": "relu", "padding": "same"}, {"pool_size": 2, "padding": "same"}, True),
    ({"activation": "tanh"}, {"pool_size": 2}, False),
    ({"activation": "relu", "activity_regularizer": "l2"}, {"pool_size": 2}, False),
])
def test_sequential_conv_then_max_pool_backward_in_one_call(rng, dtype, conv_kw, pool_kw, fused):
    """Sequential differentiates Conv1D -> MaxPooling1D in one kernel call (only the windows'
    winners have gradients) when the activation is none or the kernel's ReLU and there is no
    activity regularizer: the gradients of the two backwards one after the other."""
    model = Sequential([L.Conv1D(7, 3, seed=1, dtype=dtype, **conv_kw),
                        L.MaxPooling1D(**pool_kw), L.LSTM(5, seed=2, dtype=dtype),
                        L.Dense(2, seed=3, dtype=dtype)])
    x = rng.standard_normal((4, 23, 6)).astype(dtype)
    dy = rng.standard_normal((4, 2))
    out1, dx1, g1 = _conv_pool_grads(model, x, dy, True)
    assert model.layers[0].pools_into(model.layers[1]) is fused
    out0, dx0, g0 = _conv_pool_grads(model, x, dy, False)
    np.testing.assert_array_equal(out1, out0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx1, dx0, rtol=tol, atol=tol)
    assert set(g1) == set(g0)
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], rtol=tol, atol=tol, err_msg=name)


def _functional_conv_pool(dtype, conv_kw, pool_kw, branch=None):
    """Input -> Conv1D -> MaxPooling1D -> LSTM -> Dense as a functional Model (the layers of the
    Sequential above, the same seeds); ``branch`` "pooled": the Conv1D's output also feeds a
    GlobalMaxPooling1D concatenated with the LSTM's; "output": it is a model output too."""
    from rnnfast.models import Input, Model
    from rnnfast.models.merging import Concatenate
    inp = Input((23, 6), dtype=dtype)
    c = L.Conv1D(7, 3, seed=1, dtype=dtype, **conv_kw)(inp)
    h = L.LSTM(5, seed=2, dtype=dtype)(L.MaxPooling1D(**pool_kw)(c))
    if branch == "pooled":
        h = Concatenate()([h, L.GlobalMaxPooling1D()(c)])
    out = L.Dense(2, seed=3, dtype=dtype)(h)
    return Model(inp, [out, c] if branch == "output" else out)


def _count_calls(monkeypatch, layer):
    calls = []
    original = layer.backward_through_pool
    monkeypatch.setattr(layer, "backward_through_pool",
                        lambda pool, dy: calls.append(1) or original(pool, dy))
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv_kw,pool_kw,fused", [
    ({"activation": "relu"}, {"pool_size": 4}, True),
    ({}, {"pool_size": 3, "strides": 2}, True),
    ({"activation": "tanh"}, {"pool_size": 2}, False),
])
def test_functional_conv_then_max_pool_backward_in_one_call(rng, monkeypatch, dtype, conv_kw,
                                                            pool_kw, fused):
    """The functional Model differentiates a Conv1D whose output only a MaxPooling1D takes in one
    call as the Sequential does: the Sequential's gradients bit for bit, and the two backwards'
    one after the other (``_fuse_conv_pool = False``) within rounding."""
    model = _functional_conv_pool(dtype, conv_kw, pool_kw)
    seq = Sequential([L.Conv1D(7, 3, seed=1, dtype=dtype, **conv_kw),
                      L.MaxPooling1D(**pool_kw), L.LSTM(5, seed=2, dtype=dtype),
                      L.Dense(2, seed=3, dtype=dtype)])
    x = rng.standard_normal((4, 23, 6)).astype(dtype)
    dy = rng.standard_normal((4, 2))
    conv = next(layer for layer in model.layers if isinstance(layer, L.Conv1D))
    calls = _count_calls(monkeypatch, conv)
    out1, dx1, g1 = _conv_pool_grads(model, x, dy, True)
    assert len(calls) == int(fused)
    out_s, dx_s, g_s = _conv_pool_grads(seq, x, dy, True)
    np.testing.assert_array_equal(out1, out_s)
    np.testing.assert_array_equal(dx1, dx_s)
    assert set(g1) == set(g_s)  # the same layer names
    for name in g_s:
        np.testing.assert_array_equal(g1[name], g_s[name], err_msg=name)
    out0, dx0, g0 = _conv_pool_grads(model, x, dy, False)
    assert len(calls) == int(fused)  # not called with the fusion off
    np.testing.assert_array_equal(out1, out0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx1, dx0, rtol=tol, atol=tol)
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], rtol=tol, atol=tol, err_msg=name)


def _backward(model, x, dy, fuse):
    """One training forward and backward with the conv -> pool pairs fused or not: the input
    gradients and a copy of every parameter's gradient."""
    model._fuse_conv_pool = fuse
    model.train()
    for p in model.parameters():
        p.grad = None
    model.forward(x)
    dx = model.backward(dy)
    return dx, {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("branch", ["pooled", "output"])
def test_functional_conv_output_taken_twice_is_not_fused(rng, monkeypatch, branch):
    """A Conv1D output that another call (or the model's outputs) also takes gets the sum of its
    gradients through the plain backward: the values of the separate backwards."""
    model = _functional_conv_pool(np.float64, {"activation": "relu"}, {"pool_size": 2}, branch)
    x = rng.standard_normal((4, 23, 6))
    conv = next(layer for layer in model.layers if isinstance(layer, L.Conv1D))
    calls = _count_calls(monkeypatch, conv)
    dys = [rng.standard_normal((4, 2))] + ([rng.standard_normal((4, 21, 7))]
                                           if branch == "output" else [])
    got = [_backward(model, x, dys, fuse) for fuse in (True, False)]
    assert calls == []
    np.testing.assert_array_equal(got[0][0], got[1][0])
    for name in got[0][1]:
        np.testing.assert_array_equal(got[0][1][name], got[1][1][name], err_msg=name)


def test_functional_shared_conv_each_call_with_its_pool(rng, monkeypatch):
    """A Conv1D shared by two inputs, each call's output pooled: each pair in one call, with that
    call's saved state (the weight gradients of both calls add up), as the separate backwards."""
    from rnnfast.models import Input, Model
    from rnnfast.models.merging import Concatenate
    conv = L.Conv1D(5, 3, activation="relu", seed=1, dtype=np.float64)
    a, b = Input((17, 4), dtype=np.float64), Input((13, 4), dtype=np.float64)
    ha = L.GlobalMaxPooling1D()(L.MaxPooling1D(2)(conv(a)))
    hb = L.GlobalMaxPooling1D()(L.MaxPooling1D(3)(conv(b)))
    model = Model([a, b], L.Dense(2, seed=2, dtype=np.float64)(Concatenate()([ha, hb])))
    xs = [rng.standard_normal((3, 17, 4)), rng.standard_normal((3, 13, 4))]
    dy = rng.standard_normal((3, 2))
    calls = _count_calls(monkeypatch, conv)
    got = [_backward(model, xs, dy, fuse) for fuse in (True, False)]
    assert len(calls) == 2
    for d1, d0 in zip(got[0][0], got[1][0]):
        np.testing.assert_allclose(d1, d0, rtol=1e-12, atol=1e-12)
    for name in got[1][1]:
        np.testing.assert_allclose(got[0][1][name], got[1][1][name], rtol=1e-12, atol=1e-12,
                                   err_msg=name)
