"""Functional models (rnnfast.models.Model) against Keras 3 itself: the same graphs, built by
the same code in both with the same weights, give the same predictions (float32, 1e-5) and the
same weights after SGD steps: a two-input model, a shared-layer model, a two-output model with
two losses and loss weights, the merge layers, and the notes' encoder-decoder (embeddings, an
LSTM encoder returning its states, an LSTM decoder started from them with teacher forcing,
dot-product attention over the encoder's outputs, Concatenate, a softmax Dense), also with
padding masks.

The recurrent layers have their biases (Keras' single bias) in the training comparisons too.
Attention layers' ``get_weights`` / ``set_weights`` follow Keras' order and shapes."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from rnnfast import models
from rnnfast.models import layers as L
from rnnfast.models import optimizers as O

pytestmark = KERAS_WARNINGS


class Ours:
    Input = staticmethod(models.Input)
    Model = models.Model
    Sequential = models.Sequential
    layers = L
    optimizers = O


class Theirs:
    Input = staticmethod(keras.Input)
    Model = keras.Model
    layers = keras.layers
    optimizers = keras.optimizers


def copy_weights(kmodel, model):
    """Keras' weights into ``model``, layer by layer (by name)."""
    for name in model.layer_names:
        weights = kmodel.get_layer(name).get_weights()
        layer = model.get_layer(name)
        if weights:
            layer.set_weights(weights)


def assert_same_weights(kmodel, model):
    for name in model.layer_names:
        kw = kmodel.get_layer(name).get_weights()
        if kw:
            got = model.get_layer(name).get_weights()
            assert len(got) == len(kw), name
            for i, (g, k) in enumerate(zip(got, kw)):
                assert_close(g, k, what=f"{name} weight {i}")


def pair(build, rng):
    kmodel = build(Theirs)
    model = build(Ours)
    assert model.layer_names == [layer.name for layer in kmodel.layers
                                 if not isinstance(layer, keras.layers.InputLayer)] or \
        sorted(model.layer_names) == sorted(layer.name for layer in kmodel.layers
                                            if not isinstance(layer, keras.layers.InputLayer))
    randomise(kmodel, rng)
    copy_weights(kmodel, model)
    return kmodel, model


def predictions(kmodel, model, x):
    got = model.predict(x, verbose=0)
    want = kmodel.predict(x, verbose=0)
    if isinstance(want, dict):
        want = [want[n] for n in model.output_names]
    return got, want


# models -------------------------------------------------------------------------------------
def two_inputs(K, recurrent_bias=True):
    seq = K.Input(shape=(5, 3), name="seq")
    meta = K.Input(shape=(4,), name="meta")
    h = K.layers.LSTM(6, use_bias=recurrent_bias, name="lstm")(seq)
    m = K.layers.Dense(5, activation="relu", name="meta_dense")(meta)
    z = K.layers.Concatenate(name="concat")([h, m])
    out = K.layers.Dense(3, activation="softmax", name="out")(z)
    return K.Model([seq, meta], out)


def shared(K, recurrent_bias=True):
    a = K.Input(shape=(6, 4), name="a")
    b = K.Input(shape=(6, 4), name="b")
    encoder = K.layers.GRU(5, use_bias=recurrent_bias, name="shared_gru")
    dense = K.layers.Dense(5, activation="tanh", name="shared_dense")
    ea, eb = dense(encoder(a)), dense(encoder(b))
    diff = K.layers.Subtract(name="sub")([ea, eb])
    prod = K.layers.Multiply(name="mul")([ea, eb])
    z = K.layers.Concatenate(name="concat")([diff, prod, K.layers.Add(name="add")([ea, eb]),
                                             K.layers.Average(name="avg")([ea, eb])])
    return K.Model([a, b], K.layers.Dense(1, activation="sigmoid", name="out")(z))


def two_outputs(K, recurrent_bias=True):
    x = K.Input(shape=(7, 3), name="x")
    h = K.layers.SimpleRNN(6, return_sequences=True, use_bias=recurrent_bias, name="rnn")(x)
    per_step = K.layers.Dense(2, name="per_step")(h)
    last = K.layers.GlobalAveragePooling1D(name="pool")(h)
    label = K.layers.Dense(4, activation="softmax", name="label")(last)
    return K.Model(x, [per_step, label])


def encoder_decoder(K, recurrent_bias=True, mask_zero=False, vocab=13, units=8):
    """The notes' translation model: teacher forcing feeds the target shifted by one."""
    source = K.Input(shape=(None,), dtype="int32", name="source")
    target = K.Input(shape=(None,), dtype="int32", name="target")
    src = K.layers.Embedding(vocab, 6, mask_zero=mask_zero, name="src_embedding")(source)
    enc_out, h, c = K.layers.LSTM(units, return_sequences=True, return_state=True,
                                  use_bias=recurrent_bias, name="encoder")(src)
    tgt = K.layers.Embedding(vocab, 6, mask_zero=mask_zero, name="tgt_embedding")(target)
    dec_out = K.layers.LSTM(units, return_sequences=True, use_bias=recurrent_bias,
                            name="decoder")(tgt, initial_state=[h, c])
    context = K.layers.Attention(name="attention")([dec_out, enc_out])
    joined = K.layers.Concatenate(name="concat")([dec_out, context])
    probs = K.layers.Dense(vocab, activation="softmax", name="probs")(joined)
    return K.Model([source, target], probs)


def bidirectional_encoder_decoder(K, recurrent_bias=True, vocab=13, units=5):
    """The notes' bidirectional encoder: attention over both directions' outputs; the decoder
    starts from zeros (Bidirectional cannot return its states here)."""
    source = K.Input(shape=(None,), dtype="int32", name="source")
    target = K.Input(shape=(None,), dtype="int32", name="target")
    enc_out = K.layers.Bidirectional(
        K.layers.LSTM(units, return_sequences=True, use_bias=recurrent_bias, name="fw"),
        name="encoder")(K.layers.Embedding(vocab, 6, name="src_embedding")(source))
    dec_out = K.layers.LSTM(2 * units, return_sequences=True, use_bias=recurrent_bias,
                            name="decoder")(K.layers.Embedding(vocab, 6,
                                                               name="tgt_embedding")(target))
    context = K.layers.AdditiveAttention(name="attention")([dec_out, enc_out])
    joined = K.layers.Concatenate(name="concat")([dec_out, context])
    return K.Model([source, target], K.layers.Dense(vocab, activation="softmax",
                                                    name="probs")(joined))


def data(rng, n=24, vocab=13, ts=7, tt=5):
    source = rng.integers(1, vocab, (n, ts)).astype(np.int32)
    target = rng.integers(1, vocab, (n, tt + 1)).astype(np.int32)
    return source, target[:, :-1], target[:, 1:]  # decoder input, shifted labels


# predictions --------------------------------------------------------------------------------
def test_two_input_model_predicts_as_keras(rng):
    kmodel, model = pair(two_inputs, rng)
    x = [rng.standard_normal((9, 5, 3)).astype(np.float32),
         rng.standard_normal((9, 4)).astype(np.float32)]
    got, want = predictions(kmodel, model, x)
    assert_close(got, want, what="predictions")
    # by Input name too
    assert_close(model.predict({"meta": x[1], "seq": x[0]}, verbose=0), want, what="dict")


def test_shared_layer_model_predicts_as_keras(rng):
    kmodel, model = pair(shared, rng)
    assert model.layer_names.count("shared_gru") == 1
    assert sum(1 for n in model._nodes if n.layer is model.get_layer("shared_gru")) == 2
    x = [rng.standard_normal((8, 6, 4)).astype(np.float32) for _ in range(2)]
    got, want = predictions(kmodel, model, x)
    assert_close(got, want, what="predictions")


def test_two_output_model_predicts_as_keras(rng):
    kmodel, model = pair(two_outputs, rng)
    assert model.output_names == ["per_step", "label"]
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    got, want = predictions(kmodel, model, x)
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        assert_close(g, w, what="predictions")


def test_encoder_decoder_predicts_as_keras(rng):
    kmodel, model = pair(encoder_decoder, rng)
    source, target_in, _ = data(rng)
    got, want = predictions(kmodel, model, [source, target_in])
    assert got.shape == (24, 5, 13)
    assert_close(got, want, what="predictions")


def test_masked_encoder_decoder_predicts_as_keras_on_the_real_steps(rng):
    kmodel, model = pair(lambda K: encoder_decoder(K, mask_zero=True), rng)
    source, target_in, _ = data(rng, n=6)
    for i, (s, t) in enumerate([(7, 5), (4, 3), (2, 1), (6, 5), (1, 2), (5, 4)]):
        source[i, s:] = 0  # padding at the end of each row
        target_in[i, t:] = 0
    got, want = predictions(kmodel, model, [source, target_in])
    real = target_in != 0
    assert_close(got[real], want[real], what="predictions on real target steps")


# training -----------------------------------------------------------------------------------
def trained(build, rng, x, y, compile_args, epochs=2, batch_size=8):
    kmodel, model = pair(build, rng)
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2), **compile_args)
    model.compile(optimizer=O.SGD(learning_rate=0.2), **compile_args)
    kh = kmodel.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    h = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    assert model.optimizer.iterations == int(kmodel.optimizer.iterations)
    assert_same_weights(kmodel, model)
    return kh.history, h, kmodel, model


def test_two_input_model_trains_as_keras(rng):
    x = [rng.standard_normal((24, 5, 3)).astype(np.float32),
         rng.standard_normal((24, 4)).astype(np.float32)]
    y = rng.integers(0, 3, 24)
    kh, h, _, _ = trained(two_inputs, rng, x, y, dict(loss="sparse_categorical_crossentropy",
                                                      metrics=["accuracy"]), epochs=3)
    assert_close(h["loss"], kh["loss"], what="losses")
    assert_close(h["accuracy"], kh["accuracy"], what="accuracy")


def test_shared_layer_model_trains_as_keras(rng):
    x = [rng.standard_normal((16, 6, 4)).astype(np.float32) for _ in range(2)]
    y = rng.integers(0, 2, (16, 1)).astype(np.float32)
    kh, h, _, model = trained(shared, rng, x, y, dict(loss="binary_crossentropy"))
    assert_close(h["loss"], kh["loss"], what="losses")
    # one set of weights, trained through both calls
    assert len([p for p in model.parameters()]) == len(model.state_dict())


def test_two_output_model_with_two_losses_and_weights_trains_as_keras(rng):
    x = rng.standard_normal((24, 7, 3)).astype(np.float32)
    y = {"per_step": rng.standard_normal((24, 7, 2)).astype(np.float32),
         "label": rng.integers(0, 4, 24)}
    args = dict(loss={"per_step": "mse", "label": "sparse_categorical_crossentropy"},
                loss_weights={"per_step": 0.5, "label": 2.0})
    kh, h, _, _ = trained(two_outputs, rng, x, y, args, epochs=2)
    assert_close(h["loss"], kh["loss"], what="total losses")
    for name in ("per_step_loss", "label_loss"):
        assert_close(h[name], kh[name], what=name)
    # the total is the weighted sum of the parts
    np.testing.assert_allclose(h["loss"], 0.5 * np.array(h["per_step_loss"]) +
                               2.0 * np.array(h["label_loss"]), rtol=1e-12)


def test_encoder_decoder_trains_with_teacher_forcing_as_keras(rng, tmp_path):
    source, target_in, target_out = data(rng)
    kh, h, kmodel, model = trained(encoder_decoder, rng, [source, target_in], target_out,
                                   dict(loss="sparse_categorical_crossentropy"), epochs=3)
    assert_close(h["loss"], kh["loss"], what="losses")
    assert h["loss"][-1] < h["loss"][0]
    got, want = predictions(kmodel, model, [source, target_in])
    assert_close(got, want, what="predictions after training")
    path = tmp_path / "translate.keras"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_array_equal(loaded.predict([source, target_in], verbose=0), got)
    assert loaded.output_names == model.output_names
    assert loaded.input_names == ["source", "target"]


def test_bidirectional_encoder_decoder_predicts_and_trains_as_keras(rng):
    source, target_in, target_out = data(rng)
    kmodel, model = pair(bidirectional_encoder_decoder, rng)
    got, want = predictions(kmodel, model, [source, target_in])
    assert_close(got, want, what="predictions")
    kh, h, _, _ = trained(bidirectional_encoder_decoder, rng, [source, target_in], target_out,
                          dict(loss="sparse_categorical_crossentropy"), epochs=2)
    assert_close(h["loss"], kh["loss"], what="losses")


# merge layers -------------------------------------------------------------------------------
MERGES = [("Add", {}), ("Subtract", {}), ("Multiply", {}), ("Average", {}), ("Maximum", {}),
          ("Minimum", {}), ("Concatenate", {"axis": -1}), ("Concatenate", {"axis": 1}),
          ("Dot", {"axes": -1}), ("Dot", {"axes": (1, 1), "normalize": True})]


@pytest.mark.parametrize("name, kwargs", MERGES, ids=[f"{n}-{i}" for i, (n, _) in
                                                       enumerate(MERGES)])
def test_merge_layers_match_keras_forward_and_backward(rng, name, kwargs):
    torch = pytest.importorskip("torch")
    shape = (3, 4, 5)
    a, b = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    klayer = getattr(keras.layers, name)(**kwargs)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ky = klayer([ta, tb])
    dy = rng.standard_normal(tuple(ky.shape)).astype(np.float32)
    (ky * torch.tensor(dy)).sum().backward()
    layer = getattr(L, name)(**kwargs)
    layer.train()
    y = layer.forward([a, b])
    assert_close(y, ky.detach().numpy(), what="output")
    da, db = layer.backward(dy)
    assert_close(da, ta.grad.numpy(), what="da")
    assert_close(db, tb.grad.numpy(), what="db")


# attention weights ---------------------------------------------------------------------------
ATTENTIONS = [("Attention", {"use_scale": True}), ("Attention", {"score_mode": "concat"}),
              ("Attention", {"use_scale": True, "score_mode": "concat"}), ("Attention", {}),
              ("AdditiveAttention", {}), ("AdditiveAttention", {"use_scale": False})]


@pytest.mark.parametrize("name, kwargs", ATTENTIONS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(ATTENTIONS)])
def test_attention_weights_in_keras_order_and_shapes(rng, name, kwargs):
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    v = rng.standard_normal((2, 5, 4)).astype(np.float32)
    klayer = getattr(keras.layers, name)(**kwargs)
    klayer([q, v])
    want = randomise(klayer, rng)
    layer = getattr(L, name)(**kwargs)
    layer.set_weights(want)  # an unbuilt AdditiveAttention is built from the list
    got = layer.get_weights()
    assert [w.shape for w in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert_close(layer.forward([q, v]), klayer([q, v]).detach().numpy(), what="output")
    if got:  # copies: changing them leaves the layer as it is
        got[0][...] += 1
        np.testing.assert_array_equal(layer.get_weights()[0], want[0])
    if want:
        with pytest.raises(ValueError, match=r"weights\[0\]: expected shape"):
            layer.set_weights([np.zeros(7, np.float32)] + want[1:])
    with pytest.raises(ValueError, match=f"this {name} has {len(want)} weight"):
        layer.set_weights(want + [np.zeros((), np.float32)])


def test_every_layer_has_keras_get_and_set_weights(rng):
    """Per layer, Keras' ``get_weights()`` list (none for weightless layers, the wrapped
    layer's for TimeDistributed), and ``set_weights`` takes it back; a weightless layer takes
    only ``[]``."""
    def build(K):
        return K.Sequential([
            K.Input(shape=(6, 4)), K.layers.TimeDistributed(K.layers.Dense(5), name="td"),
            K.layers.Activation("relu", name="act"), K.layers.Dropout(0.2, name="drop"),
            K.layers.MaxPooling1D(2, name="pool"), K.layers.Flatten(name="flat"),
            K.layers.Dense(3, name="out")])

    kmodel, model = build(keras), build(Ours)
    randomise(kmodel, rng)
    for klayer, layer in zip(kmodel.layers, model.layers, strict=True):
        want = klayer.get_weights()
        layer.set_weights(want)
        got = layer.get_weights()
        assert [w.shape for w in got] == [w.shape for w in want], klayer.name
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        if not want:
            with pytest.raises(ValueError, match="has no weights; expected \\[\\], got 1 arrays"):
                layer.set_weights([np.zeros(3, np.float32)])
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    assert_close(model.predict(x, verbose=0), kmodel.predict(x, verbose=0), what="predictions")
    for layer in (L.Concatenate(), L.GlobalAveragePooling1D(), L.Masking(0.0)):
        assert layer.get_weights() == []
        layer.set_weights([])
