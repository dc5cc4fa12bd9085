"""Training a ``stateful=True`` recurrent model, compared with Keras 3.

Keras 3 on its torch backend cannot train a stateful layer itself: its call assigns the new
states in place into the variables the same forward pass read its initial states from, and
torch's backward then fails ("one of the variables needed for gradient computation has been
modified by an inplace operation", also with ``train_on_batch``; no other Keras backend is
installed). So the oracle runs Keras' own layers and optimiser and carries the states the way a
stateful Keras layer does, explicitly: the same layer gets ``initial_state`` from two extra
inputs, trained with ``train_on_batch`` one batch after another; before each update a second
Keras model sharing the layers computes the batch's final states (with the weights before the
update, as Keras' stateful call assigns them during the forward pass) and these start the next
batch; the states are constants of each step (no gradient flows into a previous batch).
rnnfast's stateful model is trained by ``fit(shuffle=False)`` on the same batches. The two must
end with the same weights, losses and carried states (float32, within 1e-5 of the scale)."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from rnnfast.models import Sequential, set_keras_weights
from rnnfast.models import layers as L
from rnnfast.models import optimizers as O

pytestmark = KERAS_WARNINGS

KINDS = [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("SimpleRNN", {})]
BATCH, STEPS, FEATURES, UNITS = 4, 5, 3, 6


def keras_carried(kind, options, return_sequences, rng):
    """Keras' layers with the states as inputs: ``(train_model, state_model, weights)``."""
    n_states = 2 if kind == "LSTM" else 1
    x = keras.Input(batch_shape=(BATCH, STEPS, FEATURES))
    states = [keras.Input(batch_shape=(BATCH, UNITS)) for _ in range(n_states)]
    rnn = getattr(keras.layers, kind)(UNITS, return_sequences=return_sequences,
                                      return_state=True, **options)
    out, *final = rnn(x, initial_state=states)
    y = keras.layers.Dense(2)(out)
    train = keras.Model([x] + states, y)
    carry = keras.Model([x] + states, final)
    weights = randomise(train, rng)
    return train, carry, weights


def ours(kind, options, return_sequences, weights):
    rnn = getattr(L, kind)(UNITS, stateful=True, return_sequences=return_sequences, **options)
    model = Sequential([L.Input(batch_shape=(BATCH, STEPS, FEATURES)), rnn, L.Dense(2)])
    set_keras_weights(model, weights)
    return model, rnn


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind,options", KINDS, ids=[f"{k}{o}" for k, o in KINDS])
def test_stateful_training_matches_keras_with_the_states_carried_between_batches(
        rng, kind, options, return_sequences):
    n_batches, epochs = 4, 2
    x = rng.standard_normal((n_batches * BATCH, STEPS, FEATURES)).astype(np.float32)
    y_shape = (n_batches * BATCH,) + ((STEPS, 2) if return_sequences else (2,))
    y = rng.standard_normal(y_shape).astype(np.float32)
    train, carry, weights = keras_carried(kind, options, return_sequences, rng)
    train.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.5), loss="mse")
    model, rnn = ours(kind, options, return_sequences, weights)
    model.compile(optimizer=O.SGD(learning_rate=0.1, momentum=0.5), loss="mse")

    n_states = 2 if kind == "LSTM" else 1
    states = [np.zeros((BATCH, UNITS), np.float32) for _ in range(n_states)]
    keras_losses = []
    for _ in range(epochs):  # neither fit nor this loop resets the states between epochs
        losses = []
        for b in range(n_batches):
            xb, yb = x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH]
            final = carry.predict_on_batch([xb] + states)  # before the update, as Keras does
            losses.append(float(train.train_on_batch([xb] + states, yb)))
            states = [np.asarray(s) for s in (final if isinstance(final, list) else [final])]
        keras_losses.append(np.mean(losses))
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)

    assert model.optimizer.iterations == int(train.optimizer.iterations) == n_batches * epochs
    assert_close(history["loss"], keras_losses, what="epoch losses")
    want = train.get_weights()
    got = rnn.get_weights() + model.layers[1].get_weights()
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, what=f"weight {i}")
    carried = [s for s in rnn.states if s is not None]
    assert len(carried) == n_states
    for i, (g, w) in enumerate(zip(carried, states)):
        assert_close(g[0], w, what=f"carried state {i}")  # (layers, batch, units)
    assert any(np.abs(s).max() > 0.1 for s in states)  # the states did carry something


def test_without_carrying_the_states_the_weights_differ(rng):
    """The comparison above can fail: the same run with the states reset before each batch
    ends with other weights."""
    x = rng.standard_normal((3 * BATCH, STEPS, FEATURES)).astype(np.float32)
    y = rng.standard_normal((3 * BATCH, 2)).astype(np.float32)
    train, _, weights = keras_carried("LSTM", {}, False, rng)
    train.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model, rnn = ours("LSTM", {}, False, weights)
    model.compile(optimizer=O.SGD(learning_rate=0.1), loss="mse")
    zeros = [np.zeros((BATCH, UNITS), np.float32)] * 2
    for b in range(3):
        train.train_on_batch([x[b * BATCH:(b + 1) * BATCH]] + zeros, y[b * BATCH:(b + 1) * BATCH])
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    errors = [np.abs(g - w).max() / np.abs(w).max()
              for g, w in zip(rnn.get_weights(), train.get_weights())]
    assert max(errors) > 1e-4


def test_input_batch_shape_as_keras_writes_it(rng):
    from rnnfast.models import Input
    assert Input(batch_shape=(4, None, 3)).shape == (None, None, 3)
    assert Input(batch_shape=(None, 7)).shape == (None, 7)
    with pytest.raises(ValueError, match="shape, batch_shape: give one of them"):
        Input((3,), batch_shape=(2, 3))
    with pytest.raises(ValueError, match="batch_shape: expected \\(batch, \\*sample shape\\)"):
        Input(batch_shape=())
    with pytest.raises(ValueError, match="batch_shape\\[0\\]: expected an int >= 1"):
        Input(batch_shape=(0, 3))
