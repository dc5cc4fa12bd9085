"""Zoneout on the Keras-style recurrent layers (an rnnfast extension: Keras has no zoneout).

The layer runs the same stack as its ``rnnfast.nn`` core, drawing the same per-layer seeds from
its generator, so given the same generator state the two give the same outputs and gradients
bit for bit; the core's zoneout is checked against the NumPy reference in test_zoneout_recurrent_dropout.py.
"""
import copy

import numpy as np
import pytest

from rnnfast.models import Sequential, load_model
from rnnfast.models import layers as L

CLASSES = [L.SimpleRNN, L.LSTM, L.GRU]


def _x(seed=1, shape=(3, 6, 4)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_layer_equals_its_core_in_training(cls, return_sequences):
    x = _x()
    layer = cls(5, zoneout=0.3, return_sequences=return_sequences, seed=2)
    layer.build(4)
    layer.train()
    start = copy.deepcopy(layer.rng)
    y = layer.forward(x)
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    core = layer.rnn
    core.rng = start
    core.train()
    out = core.forward(x)[0]  # (output, state)
    np.testing.assert_array_equal(y, out if return_sequences else out[:, -1])
    if return_sequences:
        grads = core.backward(dy)
        np.testing.assert_array_equal(dx, grads[0] if isinstance(grads, tuple) else grads)


@pytest.mark.parametrize("cls", CLASSES)
def test_zoneout_changes_training_and_inference_uses_the_expectation(cls):
    x = _x()
    plain = cls(5, return_sequences=True, seed=2)
    zoned = cls(5, return_sequences=True, seed=2, zoneout=0.4)
    plain.build(4)
    zoned.build(4)
    zoned.set_weights(plain.get_weights())
    plain.eval()
    zoned.eval()
    y_plain, y_zoned = plain.forward(x), zoned.forward(x)
    assert not np.allclose(y_plain, y_zoned)  # the expectation mixes in the previous state
    np.testing.assert_array_equal(y_zoned, zoned.forward(x))  # deterministic at inference
    zoned.train()
    first = zoned.forward(x)
    assert not np.array_equal(first, zoned.forward(x))  # fresh masks at every call


def test_bidirectional_and_saving_keep_zoneout(tmp_path):
    x = _x()
    model = Sequential([L.Input(shape=(6, 4)),
                        L.Bidirectional(L.LSTM(5, zoneout=0.25, return_sequences=True)),
                        L.GRU(3, zoneout=0.1)])
    model.compile("adam", "mse")
    model.fit(x, np.zeros((3, 3), np.float32), epochs=1, verbose=0)
    path = tmp_path / "zoneout.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.layers[0].layer.zoneout == 0.25 and loaded.layers[1].zoneout == 0.1
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("value, error", [(1.0, ValueError), (-0.1, ValueError),
                                          ("0.2", TypeError)])
def test_bad_zoneout_names_the_argument(value, error):
    with pytest.raises(error, match="zoneout"):
        L.LSTM(4, zoneout=value)
