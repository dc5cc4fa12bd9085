"""``mask=`` in a symbolic call (``LSTM(...)(x, mask=m)``, ``Attention(...)([q, v],
mask=[qm, vm])``), against Keras 3 itself: the same predictions and the same weights after
training (float32, 1e-5 of the scale); an explicit mask replaces the one flowing with the input;
saving and loading keep it; the errors."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from rnnfast import models
from rnnfast.models import load_model
from rnnfast.models import layers as L
from rnnfast.models import merging
from rnnfast.models import optimizers as O

pytestmark = KERAS_WARNINGS


class Ours:
    Input = staticmethod(models.Input)
    Model = models.Model
    layers = L
    Concatenate = merging.Concatenate


class Theirs:
    Input = staticmethod(keras.Input)
    Model = keras.Model
    layers = keras.layers
    Concatenate = keras.layers.Concatenate


def recurrent(K, kind="LSTM", bidirectional=False):
    x = K.Input(shape=(6, 3), name="x")
    m = K.Input(shape=(6,), dtype="bool", name="m")
    layer = getattr(K.layers, kind)(5, name="rnn")
    if bidirectional:
        layer = K.layers.Bidirectional(layer, name="bi")
    return K.Model([x, m], K.layers.Dense(2, name="out")(layer(x, mask=m)))


def attention(K):
    q = K.Input(shape=(4, 3), name="q")
    v = K.Input(shape=(6, 3), name="v")
    qm = K.Input(shape=(4,), dtype="bool", name="qm")
    vm = K.Input(shape=(6,), dtype="bool", name="vm")
    att = K.layers.Attention(use_scale=True, name="att")([q, v], mask=[qm, vm])
    return K.Model([q, v, qm, vm], K.layers.Dense(2, name="out")(att))  # per query step


def lengths_mask(rng, n, steps):
    mask = np.zeros((n, steps), bool)
    for i in range(n):
        mask[i, :1 + i % steps] = True
    return mask


def copy_weights(kmodel, model):
    for name in model.layer_names:
        weights = kmodel.get_layer(name).get_weights()
        if weights:
            model.get_layer(name).set_weights(weights)


CASES = {"lstm": lambda K: recurrent(K), "gru": lambda K: recurrent(K, "GRU"),
         "simple_rnn": lambda K: recurrent(K, "SimpleRNN"),
         "bidirectional": lambda K: recurrent(K, bidirectional=True)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recurrent_layer_with_an_explicit_mask_predicts_and_trains_as_keras(rng, case):
    kmodel, model = CASES[case](Theirs), CASES[case](Ours)
    randomise(kmodel, rng)
    copy_weights(kmodel, model)
    x = rng.standard_normal((12, 6, 3)).astype(np.float32)
    m = lengths_mask(rng, 12, 6)
    y = rng.standard_normal((12, 2)).astype(np.float32)
    want = kmodel.predict([x, m], verbose=0)
    assert_close(model.predict([x, m], verbose=0), want, what="predictions")
    # the mask matters: without it the outputs differ
    assert np.abs(model.predict([x, np.ones_like(m)], verbose=0) - want).max() > 1e-3
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.compile(optimizer=O.SGD(learning_rate=0.1), loss="mse")
    kh = kmodel.fit([x, m], y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h = model.fit([x, m], y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert_close(h["loss"], kh.history["loss"], what="losses")
    for name in model.layer_names:
        for i, (g, w) in enumerate(zip(model.get_layer(name).get_weights(),
                                       kmodel.get_layer(name).get_weights(), strict=True)):
            assert_close(g, w, what=f"{name} weight {i}")


def test_attention_with_explicit_query_and_value_masks_predicts_and_trains_as_keras(rng):
    kmodel, model = attention(Theirs), attention(Ours)
    randomise(kmodel, rng)
    copy_weights(kmodel, model)
    x = [rng.standard_normal((8, 4, 3)).astype(np.float32),
         rng.standard_normal((8, 6, 3)).astype(np.float32),
         lengths_mask(rng, 8, 4), lengths_mask(rng, 8, 6)[::-1].copy()]
    y = rng.standard_normal((8, 4, 2)).astype(np.float32)
    real = x[2]  # the query mask reaches the output: the loss skips the masked query steps
    assert_close(model.predict(x, verbose=0)[real], kmodel.predict(x, verbose=0)[real],
                 what="predictions")
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.compile(optimizer=O.SGD(learning_rate=0.1), loss="mse")
    kh = kmodel.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert_close(h["loss"], kh.history["loss"], what="losses")
    for name in ("att", "out"):
        for g, w in zip(model.get_layer(name).get_weights(),
                        kmodel.get_layer(name).get_weights(), strict=True):
            assert_close(g, w, what=name)


def test_an_explicit_mask_replaces_the_embedding_mask_as_in_keras(rng):
    def build(K):
        ids = K.Input(shape=(5,), dtype="int32", name="ids")
        m = K.Input(shape=(5,), dtype="bool", name="m")
        emb = K.layers.Embedding(9, 3, mask_zero=True, name="emb")(ids)
        return K.Model([ids, m], K.layers.GRU(4, name="gru")(emb, mask=m))

    kmodel, model = build(Theirs), build(Ours)
    randomise(kmodel, rng)
    copy_weights(kmodel, model)
    ids = rng.integers(1, 9, (6, 5)).astype(np.int32)
    ids[:, 3:] = 0  # the Embedding's mask would stop at step 3
    m = lengths_mask(rng, 6, 5)
    assert_close(model.predict([ids, m], verbose=0), kmodel.predict([ids, m], verbose=0),
                 what="predictions")


def test_a_model_with_explicit_masks_saves_and_loads(rng, tmp_path):
    model = attention(Ours)
    assert model.get_config()["nodes"][0]["masks"] == [0, 1]
    x = [rng.standard_normal((3, 4, 3)).astype(np.float32),
         rng.standard_normal((3, 6, 3)).astype(np.float32),
         lengths_mask(rng, 3, 4), lengths_mask(rng, 3, 6)]
    loaded = load_model(model.save(tmp_path / "masks.keras"))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    single = recurrent(Ours)
    assert single.get_config()["nodes"][0]["masks"] == [0]
    loaded = load_model(single.save(tmp_path / "single.keras"))
    x, m = rng.standard_normal((4, 6, 3)).astype(np.float32), lengths_mask(rng, 4, 6)
    np.testing.assert_array_equal(loaded.predict([x, m], verbose=0),
                                  single.predict([x, m], verbose=0))


def test_mask_argument_errors():
    x = models.Input((6, 3))
    with pytest.raises(TypeError, match="mask: expected a symbolic tensor"):
        L.LSTM(2)(x, mask=np.ones((1, 6), bool))
    with pytest.raises(ValueError, match=r"mask: expected a tensor of shape \(batch, steps\)"):
        L.LSTM(2)(x, mask=models.Input((6, 2)))
    with pytest.raises(ValueError, match="cannot take the padding mask"):
        L.Conv1D(2, 3)(x, mask=models.Input((6,), dtype="bool"))
    with pytest.raises(TypeError, match="mask: expected a list of at most 2"):
        L.Attention()([x, x], mask=[None, None, None])
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 6\) \(batch, steps\)"):
        L.LSTM(2)(x, mask=models.Input((5,), dtype="bool"))
    x, m = models.Input((None, 3)), models.Input((None,), dtype="bool")
    model = models.Model([x, m], L.LSTM(2)(x, mask=m))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 6\)"):
        model.predict([np.ones((2, 6, 3), np.float32), np.ones((2, 5), bool)], verbose=0)
