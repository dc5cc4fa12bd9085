"""Keras' layer arguments in rnnfast.models.layers against Keras 3 itself: LayerNormalization
(forward and backward, against NumPy finite differences and Keras' autograd), Masking before
the recurrent layers, Dropout(rate=...), ``input_shape`` on every layer (Keras' output
shapes), per-layer get_weights() / set_weights() in Keras' order and layout both ways, and
errors naming the public layer and the argument."""
import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from nn_cases import FD_TOL, numeric_grad, rel_err
from rnnfast import nn
from rnnfast.models import Sequential, set_keras_weights
from rnnfast.models import layers as L

pytestmark = KERAS_WARNINGS
torch = pytest.importorskip("torch")


def knumpy(t):
    return keras.ops.convert_to_numpy(t)


# LayerNormalization --------------------------------------------------------------------------
def reference_layer_norm(x, gamma, beta, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    return y if beta is None else y + beta


LN_CASES = [((4, 7), -1, True, True), ((3, 5, 6), -1, True, True),
            ((3, 5, 6), [-2, -1], True, True), ((2, 3, 4), 2, False, True),
            ((2, 3, 4), -1, True, False), ((1, 1, 5), -1, False, False)]


@pytest.mark.parametrize("shape, axis, center, scale", LN_CASES)
def test_layer_normalization_forward_backward_match_keras(rng, shape, axis, center, scale):
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 0.5
    dy = rng.standard_normal(shape).astype(np.float32)
    klayer = keras.layers.LayerNormalization(axis=axis, center=center, scale=scale)
    klayer.build(shape)
    weights = [(rng.standard_normal(w.shape) * 0.5 + 1).astype(np.float32)
               for w in klayer.get_weights()]
    klayer.set_weights(weights)
    xt = torch.tensor(x, requires_grad=True)
    yt = klayer(xt)
    (yt * torch.tensor(dy)).sum().backward()
    layer = L.LayerNormalization(axis=axis, center=center, scale=scale)
    assert layer.epsilon == klayer.epsilon == 1e-3  # Keras' default
    layer.set_weights(weights)
    y = layer.forward(x)
    assert_close(y, knumpy(yt.detach()), what="output")
    assert_close(layer.backward(dy), xt.grad.numpy(), what="dx")
    kgrads = [v.value.grad.numpy() for v in (klayer.gamma if scale else None,
                                             klayer.beta if center else None) if v is not None]
    ours = [p.grad for p in (layer.weight, layer.bias) if p is not None]
    assert len(ours) == len(kgrads) == len(layer.get_weights())
    for g, k in zip(ours, kgrads):
        assert_close(g, k, what="parameter gradient")


@pytest.mark.parametrize("shape, axis, center, scale", LN_CASES)
def test_layer_normalization_float64_against_numpy_and_finite_differences(rng, shape, axis,
                                                                          center, scale):
    x = rng.standard_normal(shape)
    layer = L.LayerNormalization(axis=axis, center=center, scale=scale, epsilon=0.1,
                                 dtype=np.float64)
    layer.build(shape)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    k = len(layer.normalized_shape)
    axes = tuple(range(len(shape) - k, len(shape)))
    want = reference_layer_norm(x, None if layer.weight is None else layer.weight.data,
                                None if layer.bias is None else layer.bias.data, axes, 0.1)
    assert rel_err(layer.forward(x), want) < 1e-12
    dy = rng.standard_normal(shape)
    dx = layer.backward(dy)

    def loss():
        return float(np.sum(layer.forward(x) * dy))

    assert rel_err(dx, numeric_grad(loss, x)) < FD_TOL
    for p in layer.parameters():
        assert rel_err(p.grad, numeric_grad(loss, p.data)) < FD_TOL


def test_layer_normalization_errors_and_lazy_build(rng):
    with pytest.raises(ValueError, match="axis: \\(1,\\) are not the last axes"):
        L.LayerNormalization(axis=1).forward(rng.standard_normal((2, 3, 4)))
    with pytest.raises(ValueError, match="LayerNormalization: rms_scaling=True is not supported"):
        L.LayerNormalization(rms_scaling=True)
    with pytest.raises(ValueError, match="LayerNormalization: gamma_initializer='zeros'"):
        L.LayerNormalization(gamma_initializer="zeros")
    with pytest.raises(ValueError, match="epsilon: expected a positive float"):
        L.LayerNormalization(epsilon=0)
    layer = L.LayerNormalization()
    assert layer.get_weights() == [] and layer.parameters() == []
    layer.forward(rng.standard_normal((2, 5)))
    with pytest.raises(ValueError, match="expected the sizes \\(5,\\) on axis"):
        layer.forward(rng.standard_normal((2, 6)))


# Masking ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_before_a_recurrent_layer_matches_keras(rng, kind, mask_value):
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    x[1, 4:] = mask_value  # post-padded
    x[2, :3] = mask_value  # pre-padded
    x[3, 6:] = mask_value
    kmodel = keras.Sequential([keras.Input((7, 3)), keras.layers.Masking(mask_value),
                               getattr(keras.layers, kind)(4), keras.layers.Dense(2)])
    weights = randomise(kmodel, rng)
    model = Sequential([L.Masking(mask_value, input_shape=(7, 3)), getattr(L, kind)(4),
                        L.Dense(2)])
    set_keras_weights(model, weights)
    assert_close(model.predict(x), knumpy(kmodel(x)))
    layer = L.Masking(mask_value)
    y = layer.forward(x)
    np.testing.assert_array_equal(layer.mask, np.any(x != mask_value, axis=-1))
    np.testing.assert_array_equal(y, knumpy(keras.layers.Masking(mask_value)(x)))
    dx = layer.backward(np.ones_like(x))
    assert not dx[1, 4:].any() and dx[1, :4].all()


def test_masking_mask_reaches_the_loss_and_refuses_middle_padding(rng):
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    x[0, 4:] = 0
    model = Sequential([L.Masking(input_shape=(6, 3)), L.GRU(5, return_sequences=True),
                        L.TimeDistributed(L.Dense(2))])
    model.predict(x)
    model.forward(x)
    np.testing.assert_array_equal(model.output_mask, np.any(x != 0, axis=-1))
    x[1, 2] = 0
    with pytest.raises(ValueError, match="mask: row 1 has padding between tokens"):
        model.predict(x)
    with pytest.raises(ValueError, match="cannot take the padding mask of "
                                         "Embedding\\(mask_zero=True\\) or Masking"):
        Sequential([L.Masking(input_shape=(6, 3)), L.Conv1D(2, 3)])


# Dropout --------------------------------------------------------------------------------------
def test_dropout_takes_keras_rate(rng):
    layer = L.Dropout(rate=0.25, seed=0)
    assert layer.p == 0.25 and L.Dropout(0.3).p == 0.3
    y = layer.forward(np.ones((200, 50), np.float32))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02 and np.allclose(y[kept], 1 / 0.75)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(np.ones((3, 4))), np.ones((3, 4)))
    with pytest.raises(ValueError, match="Dropout: noise_shape=\\(None, 1\\) is not supported"):
        L.Dropout(0.5, noise_shape=(None, 1))
    with pytest.raises(ValueError, match="rate, p: give one of them"):
        L.Dropout(0.2, rate=0.3)
    with pytest.raises(ValueError, match="rate"):
        L.Dropout(rate=1.5)


# input_shape on every layer: the output shapes are Keras' ----------------------------------------
LAYERS = {
    "Dense": ((6,), lambda m, s: m.Dense(4, input_shape=s) if m is L else m.Dense(4)),
    "Dense3d": ((5, 6), lambda m, s: m.Dense(4, input_shape=s) if m is L else m.Dense(4)),
    "Dropout": ((5, 6), lambda m, s: m.Dropout(0.5, input_shape=s) if m is L else m.Dropout(0.5)),
    "Flatten": ((5, 6), lambda m, s: m.Flatten(input_shape=s) if m is L else m.Flatten()),
    "Conv1D": ((9, 3), lambda m, s: m.Conv1D(4, 3, input_shape=s) if m is L else m.Conv1D(4, 3)),
    "MaxPooling1D": ((9, 3), lambda m, s: m.MaxPooling1D(2, input_shape=s) if m is L
                     else m.MaxPooling1D(2)),
    "GlobalMaxPooling1D": ((9, 3), lambda m, s: m.GlobalMaxPooling1D(input_shape=s) if m is L
                           else m.GlobalMaxPooling1D()),
    "GlobalAveragePooling1D": ((9, 3), lambda m, s: m.GlobalAveragePooling1D(input_shape=s)
                               if m is L else m.GlobalAveragePooling1D()),
    "TimeDistributed": ((5, 6), lambda m, s: m.TimeDistributed(m.Dense(3), input_shape=s)
                        if m is L else m.TimeDistributed(m.Dense(3))),
    "Activation": ((5, 6), lambda m, s: m.Activation("relu", input_shape=s) if m is L
                   else m.Activation("relu")),
    "Embedding": ((8,), lambda m, s: m.Embedding(20, 4, input_shape=s) if m is L
                  else m.Embedding(20, 4)),
    "SimpleRNN": ((5, 6), lambda m, s: m.SimpleRNN(3, input_shape=s) if m is L
                  else m.SimpleRNN(3)),
    "LSTM": ((5, 6), lambda m, s: m.LSTM(3, return_sequences=True, input_shape=s) if m is L
             else m.LSTM(3, return_sequences=True)),
    "GRU": ((5, 6), lambda m, s: m.GRU(3, input_shape=s) if m is L else m.GRU(3)),
    "Bidirectional": ((5, 6), lambda m, s: m.Bidirectional(m.LSTM(3), input_shape=s) if m is L
                      else m.Bidirectional(m.LSTM(3))),
    "LayerNormalization": ((5, 6), lambda m, s: m.LayerNormalization(input_shape=s) if m is L
                           else m.LayerNormalization()),
    "Masking": ((5, 6), lambda m, s: m.Masking(input_shape=s) if m is L else m.Masking()),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_input_shape_on_every_layer_gives_keras_output_shape(name):
    shape, make = LAYERS[name]
    model = Sequential([make(L, shape)])
    assert model.built and model.input_shape == (None,) + shape
    kmodel = keras.Sequential([keras.Input(shape), make(keras.layers, shape)])
    assert model.output_shape == kmodel.output_shape
    lines = []
    model.summary(print_fn=lines.append)
    assert any(str(kmodel.output_shape) in line for line in lines)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape: expected one sample's shape"):
        L.Dense(3, input_shape=(0,))
    with pytest.raises(TypeError, match="input_shape: expected a tuple of ints"):
        L.Dropout(0.5, input_shape="big")
    with pytest.raises(ValueError, match="input_shape: expected \\(steps, features\\)"):
        L.Bidirectional(L.LSTM(3), input_shape=(6,))


# get_weights / set_weights ----------------------------------------------------------------------
WEIGHTED = {
    "Dense": ((6,), lambda m: m.Dense(4)),
    "Dense_nobias": ((6,), lambda m: m.Dense(4, use_bias=False)),
    "Conv1D": ((9, 3), lambda m: m.Conv1D(4, 3, padding="same")),
    "Conv1D_groups": ((9, 4), lambda m: m.Conv1D(6, 2, groups=2)),
    "Embedding": ((8,), lambda m: m.Embedding(20, 4)),
    "LayerNormalization": ((5, 6), lambda m: m.LayerNormalization()),
    "SimpleRNN": ((5, 3), lambda m: m.SimpleRNN(4)),
    "LSTM": ((5, 3), lambda m: m.LSTM(4)),
    "GRU": ((5, 3), lambda m: m.GRU(4)),
    "GRU_reset_before": ((5, 3), lambda m: m.GRU(4, reset_after=False)),
    "LSTM_nobias": ((5, 3), lambda m: m.LSTM(4, use_bias=False)),
    "Bidirectional": ((5, 3), lambda m: m.Bidirectional(m.GRU(4))),
}


def sample(rng, shape):
    if shape == (8,):
        return rng.integers(0, 20, (3,) + shape)
    return rng.standard_normal((3,) + shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_get_and_set_weights_in_keras_order_and_layout(rng, name):
    shape, make = WEIGHTED[name]
    kmodel = keras.Sequential([keras.Input(shape), make(keras.layers)])
    weights = randomise(kmodel, rng)
    klayer = kmodel.layers[0]
    layer = make(L)
    if not isinstance(layer, L.Embedding):  # built at once (input_dim is known)
        assert layer.get_weights() == []  # not built yet, as in Keras
    layer.set_weights(klayer.get_weights())
    got = layer.get_weights()
    assert [w.shape for w in got] == [w.shape for w in weights]
    for g, w in zip(got, weights):
        np.testing.assert_array_equal(g, w)
    x = sample(rng, shape)
    model = Sequential([L.Input(shape, dtype=x.dtype), layer])
    assert_close(model.predict(x), knumpy(kmodel(x)), what="Keras' weights")
    # the other way: rnnfast's own parameters (both recurrent biases random) into Keras
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.3
    klayer.set_weights(layer.get_weights())
    assert_close(model.predict(x), knumpy(kmodel(x)), what="rnnfast's weights")


def test_set_weights_errors_name_the_array(rng):
    layer = L.Dense(4, input_shape=(6,))
    with pytest.raises(ValueError, match="weights\\[0\\]: expected the kernel of this Dense"):
        layer.set_weights([np.zeros((4, 6)), np.zeros(4)])
    with pytest.raises(ValueError, match="Dense takes 2 arrays, got 3"):
        layer.set_weights([np.zeros((6, 4)), np.zeros(4), np.zeros(4)])


# errors that name the public layer and the argument --------------------------------------------
@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("arg", ["time_major", "zero_output_for_mask", "implementation"])
def test_unsupported_recurrent_arguments_name_the_layer(cls, arg):
    with pytest.raises(TypeError, match=f"^{cls}: argument\\(s\\) {arg} not supported") as info:
        getattr(L, cls)(4, **{arg: 1})
    assert "_Recurrent" not in str(info.value)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_recurrent_dropout_reaches_the_core(cls):
    layer = getattr(L, cls)(4, recurrent_dropout=0.2, input_dim=3)
    assert layer.rnn.recurrent_dropout == 0.2 and layer.get_config()["recurrent_dropout"] == 0.2
    assert getattr(L, cls)(4, input_dim=3).rnn.recurrent_dropout == 0.0  # Keras' default


def test_nn_dense_still_pytorch_free_of_keras_lists(rng):
    # rnnfast.nn.Linear (PyTorch's) has no Keras per-layer lists; Dense does
    assert not hasattr(nn.Linear(2, 3), "get_weights")
    assert [w.shape for w in L.Dense(3, input_dim=2).get_weights()] == [(2, 3), (3,)]


def test_bidirectional_merge_mode_error_names_the_layer():
    with pytest.raises(ValueError, match="^Bidirectional: merge_mode: expected one of "
                                         r"\['concat', 'sum', 'mul', 'ave', None\], got 'max'"):
        L.Bidirectional(L.LSTM(3), merge_mode="max")


def test_models_with_the_new_layers_save_and_load(rng, tmp_path):
    from rnnfast.models import load_model
    model = Sequential([L.Masking(input_shape=(6, 3)), L.LayerNormalization(),
                        L.LSTM(4, return_sequences=True), L.Dropout(rate=0.2),
                        L.LayerNormalization(axis=[-2, -1]), L.TimeDistributed(L.Dense(2))])
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((5, 6, 3)).astype(np.float32)
    x[1, 4:] = 0
    loaded = load_model(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[1].epsilon == 1e-3 and loaded.layers[4].axis == (-2, -1)
