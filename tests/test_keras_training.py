"""Training like Keras: the same model and weights trained by Keras 3 itself (torch backend) and
by rnnfast with SGD for several epochs on the same batches end with the same weights and the
same epoch losses. This holds because the Keras-style SimpleRNN, LSTM and GRU(reset_after=False)
have Keras' single bias (two summed biases would learn twice as fast), and because fit adds the
layers' regularization penalties to the loss and applies their constraints after each step, as
Keras does.

Tolerance: float32 arithmetic in two implementations (fused kernels vs. torch ops, different
summation orders) differs by a few ulps per operation; after 3 epochs of SGD the weights differ
by up to 1.3e-6 relative to their scale (measured over the cases below), so the bound is 1e-5
relative to the array's scale (``keras_oracle.scaled_error``) for weights and losses."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, keras, scaled_error
from rnnfast.models import Sequential, set_keras_weights
from rnnfast.models import layers as L
from rnnfast.models import optimizers as O

pytestmark = KERAS_WARNINGS
TOL = 1e-5
EPOCHS = 3


def pair(build):
    """The Keras and the rnnfast model built by ``build(module)``, with the same random
    weights (biases included)."""
    k_model = keras.Sequential(build(keras.layers))
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
               for w in k_model.get_weights()]
    k_model.set_weights(weights)
    r_model = Sequential(build(L))
    set_keras_weights(r_model, k_model.get_weights())
    return k_model, r_model


def train_both(k_model, r_model, x, y, loss="mse", lr=0.1, epochs=EPOCHS, batch_size=8):
    k_model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=loss)
    r_model.compile(optimizer=O.SGD(learning_rate=lr), loss=loss)
    k_hist = k_model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    r_hist = r_model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return k_hist.history["loss"], r_hist.history["loss"]


def assert_same_training(k_model, r_model, k_loss, r_loss):
    assert scaled_error(r_loss, k_loss) <= TOL, (r_loss, k_loss)
    k_weights = k_model.get_weights()
    r_weights = [w for layer in r_model.layers if hasattr(layer, "get_weights")
                 for w in layer.get_weights()]
    assert [w.shape for w in r_weights] == [w.shape for w in k_weights]
    for i, (got, want) in enumerate(zip(r_weights, k_weights)):
        err = scaled_error(got, want)
        assert err <= TOL, f"weights[{i}] {want.shape}: {err:.2e}"


def data(rng, n=24, steps=6, features=5, outputs=1):
    x = rng.standard_normal((n, steps, features)).astype(np.float32)
    y = rng.standard_normal((n, outputs)).astype(np.float32)
    return x, y


RECURRENT = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {"reset_after": False}),
             ("GRU", {"reset_after": True}), ("LSTM", {"use_bias": False}),
             ("GRU", {"go_backwards": True}), ("SimpleRNN", {"go_backwards": True})]


@pytest.mark.parametrize("kind,options", RECURRENT)
def test_sgd_training_matches_keras(rng, kind, options):
    x, y = data(rng)
    k_model, r_model = pair(lambda m: [m.Input((6, 5)), getattr(m, kind)(4, **options),
                                       m.Dense(1)])
    start = r_model.layers[0].get_weights()
    k_loss, r_loss = train_both(k_model, r_model, x, y)
    assert_same_training(k_model, r_model, k_loss, r_loss)
    moved = [scaled_error(a, b) for a, b in zip(r_model.layers[0].get_weights(), start)]
    assert min(moved) > 1e-3  # every weight (the bias too) learned: the check is not vacuous


def test_bias_shapes_and_counts_are_keras(rng):
    for kind, options in RECURRENT:
        k_model, r_model = pair(lambda m: [m.Input((6, 5)), getattr(m, kind)(4, **options)])
        assert [w.shape for w in r_model.layers[0].get_weights()] == \
            [tuple(w.shape) for w in k_model.get_weights()]
        assert r_model.count_params() == k_model.count_params(), (kind, options)


def test_bidirectional_masked_sequence_model_trains_like_keras(rng):
    x = rng.integers(1, 20, (24, 7))
    x[3, 5:] = 0
    x[7, 2:] = 0
    y = rng.standard_normal((24, 1)).astype(np.float32)
    k_model, r_model = pair(lambda m: [
        m.Input((7,), dtype="int32"), m.Embedding(20, 5, mask_zero=True),
        m.Bidirectional(m.LSTM(3, return_sequences=True)), m.GRU(3, reset_after=False),
        m.Dense(1)])
    k_loss, r_loss = train_both(k_model, r_model, x, y)
    assert_same_training(k_model, r_model, k_loss, r_loss)


@pytest.mark.parametrize("kind", ["SimpleRNN"])
def test_stateful_training_carries_states_like_keras(rng, kind):
    """States carried across every batch and epoch (Keras resets nothing by itself), no
    gradient through the carried state, as Keras. (Keras 3 on torch cannot train a stateful
    LSTM or GRU: its backward fails on the states it assigned in place; their stateful
    inference is compared in test_keras_recurrent_args.py.)"""
    x, y = data(rng, n=24)
    k_layer = getattr(keras.layers, kind)(4, stateful=True)
    k_model = keras.Sequential([keras.Input(batch_shape=(8, 6, 5)), k_layer,
                                keras.layers.Dense(1)])
    k_model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                         for w in k_model.get_weights()])
    r_layer = getattr(L, kind)(4, stateful=True)
    r_model = Sequential([L.Input((6, 5)), r_layer, L.Dense(1)])
    set_keras_weights(r_model, k_model.get_weights())
    k_loss, r_loss = train_both(k_model, r_model, x, y, epochs=2)
    assert_same_training(k_model, r_model, k_loss, r_loss)
    k_states = k_layer.states if isinstance(k_layer.states, (list, tuple)) else [k_layer.states]
    assert scaled_error(r_layer.states[0][0], keras.ops.convert_to_numpy(k_states[0])) <= TOL
