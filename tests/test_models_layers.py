"""Keras-style layers of rnnfast.models.layers: recurrent layers (last valid step, masks with
pre- and post-padding, bidirectional, return_state), gradients against finite differences,
Keras' initialisation, and bad arguments."""
import numpy as np
import pytest

from nn_cases import check_layer_gradients, rel_err
from rnnfast import nn
from rnnfast.models import layers as L
from rnnfast.models.layers import align_mask

RECURRENT = [L.SimpleRNN, L.LSTM, L.GRU]


def make(cls, units=3, **kw):
    return cls(units, dtype=np.float64, seed=0, **kw)


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_gradients(rng, cls, return_sequences):
    layer = make(cls, return_sequences=return_sequences)
    x = rng.standard_normal((2, 4, 3))
    dx = check_layer_gradients(layer, x, rng)
    assert dx.shape == x.shape


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients_with_a_pre_padding_mask(rng, cls, return_sequences):
    layer = L.Bidirectional(make(cls, return_sequences=return_sequences))
    x = rng.standard_normal((3, 5, 2))
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], bool)
    y = check_layer_gradients(layer.layer, x, rng, call=lambda a: layer(a, mask=mask))
    assert y.shape == x.shape
    out = layer(x, mask=mask)
    assert out.shape == ((3, 5, 6) if return_sequences else (3, 6))


def reference_last_states(layer, x, mask):
    """Each row's tokens alone (no padding), through the same weights."""
    rows = []
    for b in range(len(x)):
        tokens = x[b][mask[b]]
        rows.append(layer(tokens[None])[0])
    return np.stack(rows)


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_masked_steps_are_skipped(rng, cls, padding):
    layer = make(cls, units=4)
    lengths = [5, 2, 4, 1]
    x = rng.standard_normal((4, 5, 3))
    mask = np.zeros((4, 5), bool)
    for b, n in enumerate(lengths):
        if padding == "pre":
            mask[b, 5 - n:] = True
        else:
            mask[b, :n] = True
    x[~mask] = 100.0  # padded steps must not matter
    want = reference_last_states(layer, x, mask)
    assert rel_err(layer(x, mask=mask), want) < 1e-12
    seq = make(cls, units=4, return_sequences=True)
    out = seq(x, mask=mask)
    assert np.all(out[~mask] == 0)
    for b in range(4):
        alone = seq(x[b][mask[b]][None])[0]
        assert rel_err(out[b][mask[b]], alone) < 1e-12


def test_bidirectional_last_step_is_both_final_states(rng):
    layer = L.Bidirectional(make(L.LSTM, units=2))
    x = rng.standard_normal((3, 6, 4))
    mask = np.ones((3, 6), bool)
    mask[1, 4:] = False
    y = layer(x, mask=mask)
    inner = layer.layer.rnn
    out, (h, _) = inner(x, lengths=np.array([6, 4, 6]))
    np.testing.assert_array_equal(y, np.concatenate([h[0], h[1]], axis=1))
    np.testing.assert_array_equal(y[:, :2], out[np.arange(3), [5, 3, 5], :2])
    np.testing.assert_array_equal(y[:, 2:], out[:, 0, 2:])


def test_align_mask():
    assert align_mask(None, 2, 3) == (None, None)
    lengths, index = align_mask(np.ones((2, 3), bool), 2, 3)
    assert lengths is None and index is None
    lengths, index = align_mask(np.array([[1, 1, 0], [1, 0, 0]], bool), 2, 3)
    assert lengths.tolist() == [2, 1] and index is None
    lengths, index = align_mask(np.array([[0, 1, 1], [1, 1, 0], [0, 0, 0]], bool), 3, 3)
    assert lengths.tolist() == [2, 2, 1]
    assert index.tolist() == [[1, 2, 0], [0, 1, 2], [0, 1, 2]]
    with pytest.raises(ValueError, match="row 1 has padding between tokens"):
        align_mask(np.array([[1, 1, 1], [1, 0, 1]], bool), 2, 3)
    with pytest.raises(ValueError, match=r"mask: expected shape \(batch, steps\) = \(2, 3\)"):
        align_mask(np.ones((3, 2), bool), 2, 3)


def test_return_state_and_its_gradient(rng):
    lstm = make(L.LSTM, units=3, return_state=True)
    x = rng.standard_normal((2, 4, 5))
    y, h, c = lstm(x)
    np.testing.assert_array_equal(y, h)
    assert c.shape == (2, 3)
    dy, dh, dc = (rng.standard_normal((2, 3)) for _ in range(3))
    lstm.zero_grad()
    dx = lstm.backward(dy, dh, dc)
    plain = make(L.LSTM, units=3)
    plain.load_state_dict(lstm.state_dict())
    plain.rnn(x)
    dx_ref, _ = plain.rnn.backward(None, ((dy + dh)[None], dc[None]))
    assert rel_err(dx, dx_ref) < 1e-12
    gru = make(L.GRU, return_state=True)
    assert len(gru(x)) == 2


def test_keras_initialisation():
    lstm = L.LSTM(8, input_dim=5, seed=0)
    w_hh = lstm.rnn.weight_hh_l0.data.astype(np.float64)
    np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(8), atol=1e-5)
    limit = np.sqrt(6 / (5 + 32))
    assert limit >= np.abs(lstm.rnn.weight_ih_l0.data).max() > 0.8 * limit
    bias = lstm.rnn.bias_ih_l0.data
    assert np.all(bias[8:16] == 1) and np.all(bias[:8] == 0) and np.all(bias[16:] == 0)
    assert "bias_hh_l0" not in lstm.rnn.state_dict()  # Keras' single bias
    emb = L.Embedding(100, 4, seed=0)
    assert 0.05 >= np.abs(emb.weight.data).max() > 0.04
    assert emb.input_dim == 100 and emb.output_dim == 4


def test_lazy_build_and_state_dicts(rng):
    src = L.GRU(4, seed=1)
    assert not src.built and src.parameters() == []
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    y = src(x)
    assert y.shape == (2, 4) and y.dtype == np.float32
    assert [n for n, _ in src.named_parameters()][0] == "rnn.weight_ih_l0"
    dst = L.GRU(4)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst(x), y)
    with pytest.raises(ValueError, match="x: expected 6 features"):
        src(rng.standard_normal((2, 3, 5)))
    assert L.LSTM(3, input_shape=(10, 7)).input_size == 7


def test_activation_layer(rng):
    x = rng.standard_normal((3, 4))
    linear = L.Activation("linear")
    np.testing.assert_array_equal(linear(x), x)
    check_layer_gradients(linear, x, rng)
    check_layer_gradients(L.Activation("tanh"), x, rng)
    with pytest.raises(ValueError, match="activation: expected one of"):
        L.Activation("gelu")


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation: the LSTM kernel computes 'tanh'"):
        L.LSTM(4, activation="relu")
    with pytest.raises(ValueError, match="recurrent_activation: the GRU kernel uses 'sigmoid'"):
        L.GRU(4, recurrent_activation="hard_sigmoid")
    assert L.SimpleRNN(2, activation="relu", input_dim=3).rnn.nonlinearity == "relu"
    with pytest.raises(TypeError, match="units: expected an int"):
        L.LSTM(4.0)
    with pytest.raises(TypeError, match="layer: expected a SimpleRNN, LSTM or GRU"):
        L.Bidirectional(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="wrap the recurrent layer before it is built"):
        L.Bidirectional(L.LSTM(3, input_dim=2))
    with pytest.raises(ValueError, match="merge_mode: expected one of"):
        L.Bidirectional(L.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(batch, steps, features\)"):
        L.LSTM(3)(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="dstates: expected at most"):
        lstm = L.LSTM(3)
        lstm(np.zeros((1, 2, 2)))
        lstm.backward(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"shape: expected sizes >= 1"):
        L.Input((0,))
