"""rnnfast.nn.RNN/LSTM/GRU(zoneout=p): the layer against the NumPy reference with the masks its
rng draws (training) and the expectation (evaluation), finite differences with fixed masks,
and bad arguments."""
import numpy as np
import pytest

from nn_cases import FD_TOL, numeric_grad, rel_err  # noqa: F401 (FD_TOL via the helper)
from rnnfast import nn
from rnnfast import reference as R
from test_nn_recurrent import recurrent_fd_check

# id -> (layer class, constructor keywords, reference forward, reference keywords)
LAYERS = {"rnn": (nn.RNN, {}, R.rnn_forward, {}),
          "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}, R.rnn_forward,
                       {"nonlinearity": "relu"}),
          "lstm": (nn.LSTM, {}, R.lstm_forward, {}),
          "lstm-peephole": (nn.LSTM, {"peephole": True}, R.lstm_forward, {}),
          "lstm-proj": (nn.LSTM, {"proj_size": 2}, R.lstm_forward, {}),
          "gru": (nn.GRU, {}, R.gru_forward, {}),
          "gru-reset-before": (nn.GRU, {"reset_after": False}, R.gru_forward,
                               {"reset_after": False})}
KEYS = [("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"),
        ("w_peephole", "weight_peephole"), ("w_hr", "weight_hr")]


def reference_weights(layer, k):
    suffix = "_l0" + ("_reverse" if k else "")
    return {key: getattr(layer, name + suffix).data for key, name in KEYS
            if hasattr(layer, name + suffix)}


@pytest.mark.parametrize("layer_id", LAYERS)
@pytest.mark.parametrize("training", [True, False])
def test_layer_matches_the_reference(rng, layer_id, training):
    cls, kwargs, ref_forward, ref_kwargs = LAYERS[layer_id]
    layer = cls(3, 5, bidirectional=True, zoneout=0.3, dtype=np.float64, seed=0, **kwargs)
    layer.train(training)
    x = rng.standard_normal((6, 4, 3))
    lengths = np.array([6, 3, 5, 1])
    layer.rng = np.random.default_rng(21)
    y, final = layer(x, lengths=lengths)
    h_n = final[0] if isinstance(final, tuple) else final
    P = h_n.shape[-1]
    seeds = np.random.default_rng(21).integers(0, 2 ** 63 - 1, size=2)
    for k in range(2):
        out = ref_forward(x, **reference_weights(layer, k), lengths=lengths, reverse=k == 1,
                          training=training, zoneout=0.3, seed=int(seeds[k]), **ref_kwargs)
        assert rel_err(y[..., P * k:P * k + P], out[0]) < 1e-12
        assert rel_err(h_n[k], out[1]) < 1e-12
    assert "zoneout=0.3" in repr(layer)


@pytest.mark.parametrize("layer_id", LAYERS)
def test_finite_differences_with_fixed_masks(rng, layer_id):
    cls, kwargs, _, _ = LAYERS[layer_id]
    layer = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, zoneout=0.4,
                dtype=np.float64, seed=0, **kwargs)
    x = rng.standard_normal((3, 5, 3))
    h0 = rng.standard_normal((4, 3, kwargs.get("proj_size") or 4))
    state = (h0, rng.standard_normal((4, 3, 4))) if cls is nn.LSTM else h0
    recurrent_fd_check(layer, x, state, np.array([5, 2, 4]), rng, reseed=13)


def test_training_draws_new_masks_and_evaluation_is_deterministic(rng):
    lstm = nn.LSTM(3, 6, zoneout=0.5, seed=0)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not np.array_equal(a, b)  # the rng moved on: new masks
    lstm.eval()
    c, _ = lstm(x)
    d, _ = lstm(x)
    np.testing.assert_array_equal(c, d)
    plain = nn.LSTM(3, 6, seed=0)
    plain.eval()
    assert not np.allclose(c, plain(x)[0])  # the expectation weighs the previous state


@pytest.mark.parametrize("value,err", [(1.0, ValueError), (-0.1, ValueError), ("0.1", TypeError),
                                       (True, TypeError)])
def test_bad_zoneout(value, err):
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        with pytest.raises(err, match="zoneout: expected a float in"):
            cls(3, 4, zoneout=value)
