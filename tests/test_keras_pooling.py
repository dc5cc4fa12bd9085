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
