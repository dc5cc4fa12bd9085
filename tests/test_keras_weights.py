"""Keras weight lists into rnnfast layers: outputs against Keras' cell equations written out in
NumPy (float64), Keras' single recurrent bias in ``b_ih`` with ``b_hh = 0`` (why summary()
counts more parameters than Keras), whole models from a flat ``get_weights()`` list, and
clear errors that leave the weights untouched."""
import numpy as np
import pytest

from rnnfast import nn
from rnnfast.models import Sequential, keras_recurrent_weights, set_keras_weights
from rnnfast.models import layers as L

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def keras_weights(rng, kind, features, units, use_bias=True, reset_after=True):
    G = GATES[kind]
    weights = [rng.standard_normal((features, G * units)) * 0.4,
               rng.standard_normal((units, G * units)) * 0.4]
    if use_bias:
        shape = (2, G * units) if kind == "GRU" and reset_after else (G * units,)
        weights.append(rng.standard_normal(shape) * 0.4)
    return weights


def keras_forward(kind, x, weights, activation="tanh", reset_after=True):
    """Keras' SimpleRNN / LSTM / GRU over (B, T, I), all step outputs (B, T, H)."""
    kernel, rec = weights[0], weights[1]
    H = rec.shape[0]
    bias = weights[2] if len(weights) == 3 else np.zeros((2, 3 * H) if kind == "GRU" and
                                                         reset_after else rec.shape[1])
    act = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0))
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if kind == "SimpleRNN":
            h = act(xt @ kernel + h @ rec + bias)
        elif kind == "LSTM":
            i, f, g, o = np.split(xt @ kernel + h @ rec + bias, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        elif reset_after:
            xz, xr, xh = np.split(xt @ kernel + bias[0], 3, axis=1)
            hz, hr, hh = np.split(h @ rec + bias[1], 3, axis=1)
            z, r = sigmoid(xz + hz), sigmoid(xr + hr)
            h = z * h + (1 - z) * np.tanh(xh + r * hh)
        else:
            xz, xr, xh = np.split(xt @ kernel + bias, 3, axis=1)
            z = sigmoid(xz + h @ rec[:, :H])
            r = sigmoid(xr + h @ rec[:, H:2 * H])
            h = z * h + (1 - z) * np.tanh(xh + (r * h) @ rec[:, 2 * H:])
        out.append(h)
    return np.stack(out, axis=1)


CONFIGS = [("SimpleRNN", "tanh", True), ("SimpleRNN", "relu", True), ("LSTM", "tanh", True),
           ("GRU", "tanh", True), ("GRU", "tanh", False)]


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("kind,activation,reset_after", CONFIGS)
def test_keras_layers_compute_keras_equations(rng, kind, activation, reset_after, use_bias):
    x = rng.standard_normal((3, 6, 4))
    weights = keras_weights(rng, kind, 4, 5, use_bias, reset_after)
    options = {"reset_after": reset_after} if kind == "GRU" else {}
    layer = getattr(L, kind)(5, activation=activation, return_sequences=True, use_bias=use_bias,
                             dtype=np.float64, **options)
    set_keras_weights(layer, weights)
    want = keras_forward(kind, x, weights, activation, reset_after)
    np.testing.assert_allclose(layer(x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind,reset_after", [("SimpleRNN", True), ("LSTM", True),
                                              ("GRU", False)])
def test_the_single_keras_bias_is_the_layers_only_bias(rng, kind, reset_after):
    weights = keras_weights(rng, kind, 100, 100, reset_after=reset_after)
    options = {"reset_after": reset_after} if kind == "GRU" else {}
    model = Sequential([L.Input((None, 100)), getattr(L, kind)(100, **options)])
    set_keras_weights(model, weights)
    rnn = model.layers[0].rnn
    bias = weights[2] if kind != "GRU" else np.concatenate(np.split(weights[2], 3)[1::-1] +
                                                           [weights[2][200:]])
    np.testing.assert_array_equal(rnn.bias_ih_l0.data, bias.astype(np.float32))
    assert sorted(rnn.state_dict()) == ["bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
    np.testing.assert_array_equal(model.layers[0].get_weights()[2], weights[2].astype(np.float32))
    # summary() counts as Keras
    G = GATES[kind]
    keras_count = G * 100 * (100 + 100 + 1)
    lines = []
    model.summary(print_fn=lines.append)
    assert f"Total params: {keras_count:,}" in lines
    if kind == "LSTM":
        assert "Total params: 80,400" in lines
    # nn's PyTorch-style layers keep the two biases: Keras' goes to b_ih, b_hh is zeroed
    core = {"SimpleRNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind]
    plain = core(100, 100, batch_first=True, **options)
    set_keras_weights(plain, weights)
    np.testing.assert_array_equal(plain.bias_ih_l0.data, bias.astype(np.float32))
    assert not plain.bias_hh_l0.data.any()


def test_gru_reset_after_keeps_both_keras_biases(rng):
    weights = keras_weights(rng, "GRU", 3, 2, reset_after=True)
    converted = keras_recurrent_weights("GRU", weights, reset_after=True)
    b_in, b_rec = weights[2]
    # Keras z, r, h -> PyTorch r, z, n
    np.testing.assert_array_equal(converted["bias_ih"], np.r_[b_in[2:4], b_in[0:2], b_in[4:6]])
    np.testing.assert_array_equal(converted["bias_hh"], np.r_[b_rec[2:4], b_rec[0:2],
                                                              b_rec[4:6]])
    kernel = weights[0]
    np.testing.assert_array_equal(converted["weight_ih"][:2], kernel[:, 2:4].T)
    lines = []
    model = Sequential([L.Input((None, 3)), L.GRU(2)])
    model.summary(print_fn=lines.append)
    assert "Total params: 42" in lines  # 3 * 2 * (3 + 2) + 2 * 3 * 2, as Keras counts


def reverse_valid(x):
    return x[:, ::-1]


def test_stacked_bidirectional_nn_lstm_and_keras_bidirectional(rng):
    x = rng.standard_normal((2, 5, 3))
    lists = [keras_weights(rng, "LSTM", 3, 4), keras_weights(rng, "LSTM", 3, 4),
             keras_weights(rng, "LSTM", 8, 4), keras_weights(rng, "LSTM", 8, 4)]
    flat = [w for lst in lists for w in lst]

    def keras_bidirectional(inp, fwd, bwd):
        return np.concatenate([keras_forward("LSTM", inp, fwd),
                               reverse_valid(keras_forward("LSTM", reverse_valid(inp), bwd))],
                              axis=2)

    want = keras_bidirectional(keras_bidirectional(x, lists[0], lists[1]), lists[2], lists[3])
    rnn = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64)
    set_keras_weights(rnn, flat)
    out, _ = rnn(x)
    np.testing.assert_allclose(out, want, atol=1e-12)
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True, dtype=np.float64))
    set_keras_weights(layer, flat[:6])
    np.testing.assert_allclose(layer(x), keras_bidirectional(x, lists[0], lists[1]), atol=1e-12)


def test_a_whole_model_from_a_flat_keras_list(rng):
    emb = rng.standard_normal((30, 6))
    conv_k, conv_b = rng.standard_normal((3, 6, 5)) * 0.3, rng.standard_normal(5) * 0.1
    lstm = keras_weights(rng, "LSTM", 5, 4)
    dense_k, dense_b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    flat = [emb, conv_k, conv_b] + lstm + [dense_k, dense_b]
    model = Sequential([L.Embedding(30, 6, dtype=np.float64), L.Dropout(0.5),
                        L.Conv1D(5, 3, activation="relu", dtype=np.float64),
                        L.MaxPooling1D(2), L.LSTM(4, dtype=np.float64),
                        L.Dense(3, dtype=np.float64), L.Activation("softmax")])
    assert set_keras_weights(model, flat) is model
    ids = rng.integers(1, 30, (4, 11))
    e = emb[ids]
    conv = np.stack([np.einsum("bkc,kco->bo", e[:, t:t + 3], conv_k) for t in range(9)], 1)
    conv = np.maximum(conv + conv_b, 0)
    pooled = conv[:, :8].reshape(4, 4, 2, 5).max(axis=2)
    h = keras_forward("LSTM", pooled, lstm)[:, -1]
    z = h @ dense_k + dense_b
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(ids), want, atol=1e-12)


def test_errors_name_the_weight_and_write_nothing(rng):
    model = Sequential([L.Input((None, 3)), L.LSTM(4), L.Dense(2)])
    before = model.get_weights()
    good = keras_weights(rng, "LSTM", 3, 4) + [np.ones((4, 2)), np.ones(2)]
    bad = list(good)
    bad[3] = np.ones((2, 4))
    with pytest.raises(ValueError, match=r"weights\[3\]: expected the kernel of this Dense "
                       r"\(Keras' layout\) of shape \(4, 2\), got \(2, 4\)"):
        set_keras_weights(model, bad)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match="Sequential takes 5 arrays, got 6"):
        set_keras_weights(model, good + [np.ones(1)])
    with pytest.raises(ValueError, match="Dense needs 2 arrays"):
        set_keras_weights(model, good[:4])
    with pytest.raises(ValueError, match=r"weights\[1\]: expected the recurrent_kernel of a "
                       r"Keras LSTM\(4\) on 3 features, of shape \(4, 16\), got \(4, 12\)"):
        set_keras_weights(L.LSTM(4), [np.ones((3, 16)), np.ones((4, 12)), np.ones(16)])
    with pytest.raises(ValueError, match=r"weights\[1\]: expected an LSTM recurrent_kernel"):
        keras_recurrent_weights("LSTM", [np.ones((3, 16)), np.ones((4, 12))])
    gru = L.GRU(2, reset_after=False)
    with pytest.raises(ValueError, match=r"reset_after=False; a \(2, 3 \* units\) bias"):
        set_keras_weights(gru, keras_weights(rng, "GRU", 3, 2, reset_after=True))
    with pytest.raises(ValueError, match=r"weights\[2\]: expected a GRU\(reset_after=True\) "
                       r"bias of shape \(2, 6\)"):
        set_keras_weights(L.GRU(2), keras_weights(rng, "GRU", 3, 2, reset_after=False))
    with pytest.raises(TypeError, match="weights: expected a list of arrays"):
        set_keras_weights(model, np.ones(3))
    with pytest.raises(TypeError, match=r"weights\[0\]: expected a numeric array"):
        set_keras_weights(L.Embedding(3, 2), [np.array([["a", "b"]] * 3)])
    with pytest.raises(ValueError, match="kind: expected one of"):
        keras_recurrent_weights("Conv", good[:3])

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(2, np.float32))

    with pytest.raises(TypeError, match="no Keras weight layout is known for Custom"):
        set_keras_weights(Custom(), [np.ones(2)])
