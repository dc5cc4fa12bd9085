"""Conv1d / Conv1D, MaxPool1d / MaxPooling1D and the global pools as layers: gradients against
central finite differences (float64), values against PyTorch, initialisation, state_dicts and
bad arguments."""
import numpy as np
import pytest

from nn_cases import check_layer_gradients, rel_err
from rnnfast import nn
from rnnfast.models import layers as L


def tie_free(rng, shape):
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) / n


@pytest.mark.parametrize("kw,shape", [
    (dict(), (2, 3, 9)),
    (dict(stride=2, padding=1), (2, 3, 10)),
    (dict(padding="same", dilation=2), (1, 3, 8)),
    (dict(padding=(2, 0), groups=3, bias=False), (2, 3, 7)),
    (dict(channels_last=True, padding="causal"), (2, 8, 3)),
    (dict(), (3, 9)),  # unbatched (C, L)
])
def test_conv1d_gradients(rng, kw, shape):
    groups = kw.get("groups", 1)
    conv = nn.Conv1d(3, 6 if groups == 1 else 3, 3, dtype=np.float64, seed=0, **kw)
    dx = check_layer_gradients(conv, rng.standard_normal(shape), rng)
    assert dx.shape == shape


@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_keras_conv1d_gradients(rng, activation, padding):
    conv = L.Conv1D(4, 3, padding=padding, activation=activation, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, 7, 5))
    conv(x)
    conv.bias.data[...] = rng.standard_normal(4)
    check_layer_gradients(conv, x, rng)


@pytest.mark.parametrize("layer,shape", [
    (nn.MaxPool1d(3), (2, 4, 10)),
    (nn.MaxPool1d(3, stride=1, padding="same"), (2, 4, 7)),
    (nn.MaxPool1d(2), (4, 9)),
    (L.MaxPooling1D(2), (2, 9, 3)),
    (L.MaxPooling1D(4, strides=2, padding="same"), (2, 9, 3)),
    (L.GlobalMaxPooling1D(), (2, 9, 3)),
    (L.GlobalAveragePooling1D(), (2, 9, 3)),
    (L.GlobalMaxPool1D(keepdims=True), (2, 9, 3)),
    (L.GlobalAvgPool1D(data_format="channels_first", keepdims=True), (2, 3, 9)),
])
def test_pool_gradients(rng, layer, shape):
    dx = check_layer_gradients(layer, tie_free(rng, shape), rng)
    assert dx.shape == shape and layer.parameters() == []


def test_pool_values(rng):
    x = tie_free(rng, (2, 9, 3)).astype(np.float32)
    y = L.MaxPooling1D(3)(x)
    np.testing.assert_array_equal(y, x.reshape(2, 3, 3, 3).max(axis=2))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(L.GlobalMaxPooling1D()(x), x.max(axis=1))
    np.testing.assert_allclose(L.GlobalAveragePooling1D()(x), x.mean(axis=1), rtol=1e-6)
    assert L.GlobalMaxPool1D(keepdims=True)(x).shape == (2, 1, 3)
    assert L.MaxPool1D is L.MaxPooling1D and L.GlobalAvgPool1D is L.GlobalAveragePooling1D
    assert L.GlobalMaxPool1D is L.GlobalMaxPooling1D
    assert not any(hasattr(nn, n) for n in ("MaxPool1D", "GlobalMaxPool1D", "GlobalAvgPool1D",
                                            "GlobalAveragePool1D"))
    assert not {"Dense", "Conv1D", "MaxPooling1D", "GlobalMaxPooling1D",
                "GlobalAveragePooling1D"} & set(nn.__all__)


def test_conv1d_and_pool_match_torch(rng):
    torch = pytest.importorskip("torch")
    ref = torch.nn.Conv1d(5, 4, 3, stride=2, padding=1, dilation=1, groups=1)
    conv = nn.Conv1d(5, 4, 3, stride=2, padding=1)
    conv.load_state_dict(ref.state_dict())
    pool, ref_pool = nn.MaxPool1d(2), torch.nn.MaxPool1d(2)
    x = tie_free(rng, (3, 5, 12)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    out = ref_pool(ref(xt))
    dy = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    (out * torch.from_numpy(dy)).sum().backward()
    y = pool(conv(x))
    assert rel_err(y, out.detach().numpy()) < 1e-5
    assert rel_err(conv.backward(pool.backward(dy)), xt.grad.numpy()) < 1e-5
    assert rel_err(conv.weight.grad, ref.weight.grad.numpy()) < 1e-5
    assert rel_err(conv.bias.grad, ref.bias.grad.numpy()) < 1e-5


def test_conv1d_initialisation():
    conv = nn.Conv1d(8, 300, 4, groups=2, seed=0)
    bound = 1 / np.sqrt(4 * 4)
    assert conv.weight.shape == (300, 4, 4)
    for p in conv.parameters():
        assert bound >= np.abs(p.data).max() > 0.9 * bound
    keras = L.Conv1D(300, 4, seed=0)
    assert keras.parameters() == [] and not keras.built
    y = keras(np.zeros((2, 10, 8), np.float32))
    assert y.shape == (2, 7, 300) and keras.weight.shape == (300, 8, 4)
    limit = np.sqrt(6 / (8 * 4 + 300 * 4))
    assert limit >= np.abs(keras.weight.data).max() > 0.9 * limit
    assert np.all(keras.bias.data == 0)


def test_keras_conv1d_builds_from_shapes_and_state_dicts(rng):
    src = L.Conv1D(6, 5, activation="relu", input_shape=(20, 4), seed=3)
    assert src.built and src.weight.shape == (6, 4, 5)
    dst = L.Conv1D(6, 5, activation="relu")
    dst.load_state_dict(src.state_dict())
    x = rng.standard_normal((2, 20, 4)).astype(np.float32)
    np.testing.assert_array_equal(dst(x), src(x))
    with pytest.raises(ValueError, match=r"state_dict\['weight'\]: expected shape"):
        L.Conv1D(6, 3).load_state_dict(src.state_dict())
    with pytest.raises(ValueError, match="x: expected 4 channels on the last axis"):
        src(rng.standard_normal((2, 20, 5)))
    first = L.Conv1D(6, 5, data_format="channels_first", input_shape=(4, 20))
    assert first(rng.standard_normal((2, 4, 20))).shape == (2, 6, 16)


def test_conv_layers_follow_modes(rng):
    conv = L.Conv1D(2, 3).eval()
    conv(rng.standard_normal((1, 5, 2)))
    with pytest.raises(RuntimeError, match="no forward pass"):
        conv.backward(np.zeros((1, 3, 2)))


def test_bad_arguments(rng):
    with pytest.raises(TypeError, match="kernel_size: expected an int"):
        nn.Conv1d(3, 4, 2.5)
    with pytest.raises(ValueError, match="kernel_size: expected an int >= 1"):
        L.Conv1D(4, 0)
    with pytest.raises(ValueError, match="groups: expected a divisor of the input channels"):
        nn.Conv1d(3, 4, 2, groups=2)
    with pytest.raises(ValueError, match="padding: expected one of"):
        nn.Conv1d(3, 4, 2, padding="full")
    with pytest.raises(ValueError, match="padding: expected 'valid', 'same' or 'causal'"):
        L.Conv1D(4, 2, padding=1)
    with pytest.raises(ValueError, match="data_format: expected"):
        L.Conv1D(4, 2, data_format="NWC")
    with pytest.raises(ValueError, match="activation: expected one of"):
        L.Conv1D(4, 2, activation="swish")
    with pytest.raises(ValueError, match="ceil_mode: only False"):
        nn.MaxPool1d(2, ceil_mode=True)
    with pytest.raises(ValueError, match=r"padding: only 0 \('valid'\) or 'same'"):
        nn.MaxPool1d(2, padding=1)
    with pytest.raises(ValueError, match="padding: expected 'valid' or 'same'"):
        L.MaxPooling1D(2, padding="causal")
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(batch, length, channels\)"):
        L.MaxPooling1D(2)(rng.standard_normal((4, 5)))
    with pytest.raises(TypeError, match="x: expected a float array"):
        L.GlobalMaxPooling1D()(np.ones((2, 3, 4), np.int32))
    with pytest.raises(ValueError, match="kernel_size 3 with dilation"):
        nn.Conv1d(2, 2, 3)(rng.standard_normal((1, 2, 2)))
    with pytest.raises(ValueError, match="dy: expected shape"):
        pool = L.MaxPooling1D(2)
        pool(rng.standard_normal((1, 4, 2)))
        pool.backward(np.zeros((1, 3, 2)))
