"""Models used as layers of other models (Keras' nested models), against Keras 3 itself: a
functional model called twice inside another (one set of weights), a Sequential inside a
Sequential, a Sequential inside a functional model with a padding mask flowing into it; the
same predictions and the same weights after SGD training (float32, 1e-5 of the scale); saving
and loading; ``trainable = False``; summary; the errors."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from rnnfast import models
from rnnfast.models import Sequential, load_model, set_keras_weights
from rnnfast.models import layers as L
from rnnfast.models import merging
from rnnfast.models import optimizers as O

# Keras warns that its Sequential sets no mask on its output (it passes the mask it is called
# with to its first layer, as rnnfast's does; the output here has no time axis left)
pytestmark = [KERAS_WARNINGS, pytest.mark.filterwarnings(
    "ignore:Layer 'inner' \\(of type Sequential\\) was passed an input with a mask:UserWarning")]


class Ours:
    Input = staticmethod(models.Input)
    Model = models.Model
    Sequential = Sequential
    layers = L
    Concatenate = merging.Concatenate


class Theirs:
    Input = staticmethod(keras.Input)
    Model = keras.Model
    Sequential = keras.Sequential
    layers = keras.layers
    Concatenate = keras.layers.Concatenate


def siamese(K):
    """A functional encoder called on two inputs inside a functional model."""
    inp = K.Input(shape=(5, 3), name="enc_in")
    h = K.layers.LSTM(6, name="lstm")(inp)
    encoder = K.Model(inp, K.layers.Dense(4, activation="tanh", name="proj")(h), name="encoder")
    a = K.Input(shape=(5, 3), name="a")
    b = K.Input(shape=(5, 3), name="b")
    z = K.Concatenate(name="concat")([encoder(a), encoder(b)])
    return K.Model([a, b], K.layers.Dense(3, activation="softmax", name="out")(z))


def stacked(K):
    """A Sequential inside a Sequential."""
    inner = K.Sequential([K.layers.GRU(5, return_sequences=True, name="gru"),
                          K.layers.Dense(4, activation="relu", name="inner_dense")],
                         name="inner")
    return K.Sequential([K.Input(shape=(6, 3)), inner, K.layers.GlobalAveragePooling1D(name="pool"),
                         K.layers.Dense(2, name="out")], name="outer")


def masked(K):
    """A Sequential inside a functional model, the Embedding's mask flowing into it."""
    ids = K.Input(shape=(None,), dtype="int32", name="ids")
    emb = K.layers.Embedding(11, 4, mask_zero=True, name="emb")(ids)
    inner = K.Sequential([K.layers.LSTM(5, return_sequences=True, name="lstm1"),
                          K.layers.LSTM(3, name="lstm2")], name="inner")
    return K.Model(ids, K.layers.Dense(2, name="out")(inner(emb)))


def copy_weights(kmodel, model):
    """Keras' weights into ``model``, layer by layer by name (nested models recursively)."""
    for layer in model.layers:
        name = getattr(layer, "name", None)
        klayer = kmodel.get_layer(name)
        if isinstance(klayer, (keras.Model, keras.Sequential)):
            copy_weights(klayer, layer)
        elif klayer.get_weights():
            set_keras_weights(layer, klayer.get_weights())


def flat_weights(kmodel, model):
    """``(ours, Keras')`` weights in Keras' layout, nested models flattened, by layer name."""
    got, want = [], []
    for layer in model.layers:
        klayer = kmodel.get_layer(layer.name)
        if isinstance(klayer, (keras.Model, keras.Sequential)):
            g, w = flat_weights(klayer, layer)
            got += g
            want += w
        elif klayer.get_weights():
            got += layer.get_weights()
            want += klayer.get_weights()
    return got, want


def pair(build, rng):
    kmodel, model = build(Theirs), build(Ours)
    randomise(kmodel, rng)
    copy_weights(kmodel, model)
    return kmodel, model


def data(build, rng, n=16):
    if build is siamese:
        x = [rng.standard_normal((n, 5, 3)).astype(np.float32) for _ in range(2)]
        return x, rng.integers(0, 3, n), "sparse_categorical_crossentropy"
    if build is stacked:
        return (rng.standard_normal((n, 6, 3)).astype(np.float32),
                rng.standard_normal((n, 2)).astype(np.float32), "mse")
    ids = rng.integers(1, 11, (n, 7)).astype(np.int32)
    for i in range(n):
        ids[i, 1 + i % 6:] = 0  # padded at the end, 1 to 6 real steps
    return ids, rng.standard_normal((n, 2)).astype(np.float32), "mse"


@pytest.mark.parametrize("build", [siamese, stacked, masked])
def test_nested_model_predicts_and_trains_as_keras(rng, build):
    kmodel, model = pair(build, rng)
    x, y, loss = data(build, rng)
    assert_close(model.predict(x, verbose=0), kmodel.predict(x, verbose=0), what="predictions")
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.5), loss=loss)
    model.compile(optimizer=O.SGD(learning_rate=0.1, momentum=0.5), loss=loss)
    kh = kmodel.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert model.optimizer.iterations == int(kmodel.optimizer.iterations) == 8
    assert_close(h["loss"], kh.history["loss"], what="losses")
    got, want = flat_weights(kmodel, model)
    assert len(got) == len(want) == len(kmodel.get_weights())
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, what=f"weight {i}")
    assert_close(model.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                 what="predictions after training")


def test_a_model_called_twice_has_one_set_of_weights(rng):
    model = siamese(Ours)
    encoder = model.get_layer("encoder")
    assert isinstance(encoder, models.Model)
    assert sum(1 for node in model._nodes if node.layer is encoder) == 2
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(set(names)) == 3 + 2 + 2  # LSTM (one bias), proj, out
    assert all(n.startswith(("encoder.", "out.")) for n in names)
    assert model.count_params() == encoder.count_params() + 8 * 3 + 3


@pytest.mark.parametrize("build", [siamese, stacked, masked])
def test_nested_models_save_and_load(rng, tmp_path, build):
    model = build(Ours)
    x, y, loss = data(build, rng)
    model.compile(optimizer=O.Adam(learning_rate=1e-2), loss=loss)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    loaded = load_model(model.save(tmp_path / "nested.keras"))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    inner = [layer for layer in loaded.layers if isinstance(layer, (models.Model, Sequential))]
    assert len(inner) == 1 and inner[0].name == ("encoder" if build is siamese else "inner")
    h1 = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    h2 = loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert h1["loss"] == h2["loss"]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_frozen_nested_model_keeps_its_weights_as_in_keras(rng):
    kmodel, model = pair(siamese, rng)
    kmodel.get_layer("encoder").trainable = False
    model.get_layer("encoder").trainable = False
    assert model.get_layer("encoder").trainable is False and model.trainable is True
    x, y, loss = data(siamese, rng)
    before = [p.data.copy() for p in model.get_layer("encoder").parameters()]
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2), loss=loss)
    model.compile(optimizer=O.SGD(learning_rate=0.2), loss=loss)
    kmodel.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for b, p in zip(before, model.get_layer("encoder").parameters()):
        np.testing.assert_array_equal(b, p.data)
    got, want = flat_weights(kmodel, model)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, what=f"weight {i}")
    lines = []
    model.summary(print_fn=lines.append)
    frozen = model.get_layer("encoder").count_params()
    assert f"Non-trainable params: {frozen:,}" in lines


def test_summary_shows_the_nested_model_as_keras_does(rng):
    lines = []
    model = siamese(Ours)
    model.summary(print_fn=lines.append)
    row = next(line for line in lines if line.startswith(" encoder"))
    assert "(Functional)" in row and "(None, 4)" in row
    assert f"{model.get_layer('encoder').count_params():,}" in row
    kmodel = siamese(Theirs)
    assert model.count_params() == kmodel.count_params()
    lines = []
    stacked(Ours).summary(print_fn=lines.append)
    row = next(line for line in lines if line.startswith(" inner"))
    assert "(Sequential)" in row and "(None, 6, 4)" in row
    assert stacked(Ours).count_params() == stacked(Theirs).count_params()


def test_two_unnamed_nested_models_get_unique_names():
    def block():
        inp = models.Input((3,))
        return models.Model(inp, L.Dense(3)(inp))

    x = models.Input((3,))
    first, second = block(), block()
    model = models.Model(x, second(first(x)))
    assert model.layer_names == ["functional", "functional_1"]
    assert model.predict(np.ones((2, 3), np.float32), verbose=0).shape == (2, 3)


def test_nested_model_errors():
    a, b = models.Input((3,), name="a"), models.Input((3,), name="b")
    two = models.Model([a, b], merging.Add()([L.Dense(2)(a), L.Dense(2)(b)]))
    with pytest.raises(ValueError, match="has 2 inputs and 1 outputs; a Sequential passes one"):
        Sequential([L.Input((3,)), two])
    with pytest.raises(TypeError, match="the model has 2 input\\(s\\), got 1 tensor"):
        two(models.Input((3,)))
    with pytest.raises(ValueError, match="a model cannot be called on its own tensors"):
        two([a, b])
    seq = Sequential([L.Input((3,)), L.Dense(2)])
    with pytest.raises(ValueError, match="a Sequential cannot contain itself"):
        seq.add(seq)
    outer = Sequential([L.Input((3,)), seq])
    with pytest.raises(ValueError, match="contains this Sequential"):
        seq.add(outer)


@pytest.mark.parametrize("build", [siamese, stacked, masked])
def test_keras_whole_model_weight_list_loads_through_the_nested_models(rng, build):
    """``set_keras_weights(model, kmodel.get_weights())``: Keras' flat list of the whole model,
    nested models' weights in their place."""
    kmodel, model = build(Theirs), build(Ours)
    randomise(kmodel, rng)
    set_keras_weights(model, kmodel.get_weights())
    x, _, _ = data(build, rng)
    assert_close(model.predict(x, verbose=0), kmodel.predict(x, verbose=0), what="predictions")


def test_a_summary_between_forward_and_backward_keeps_the_nested_records(rng):
    """Tracing a model (summary, build) between a training forward and its backward leaves
    what the nested model kept for that backward."""
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    model = stacked(Ours)
    model.train()
    y = model.forward(x)
    model.build((None, 6, 3))
    model.summary(print_fn=lambda line: None)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape
    inp = models.Input((6, 3))
    model = Sequential([models.Input((6, 3)), models.Model(inp, L.LSTM(4)(inp)), L.Dense(2)])
    model.train()
    y = model.forward(x)
    model.build((None, 6, 3))  # runs the functional model inside in inference mode
    assert model.backward(np.ones_like(y)).shape == x.shape
    outer = siamese(Ours)
    outer.train()
    y = outer.forward([x[:, :5], x[:, 1:]])
    siamese_again = outer.get_layer("encoder")(models.Input((5, 3)))  # traces the encoder
    assert siamese_again.shape == (None, 4)
    da, db = outer.backward(np.ones_like(y))
    assert da.shape == db.shape == (3, 5, 3)
