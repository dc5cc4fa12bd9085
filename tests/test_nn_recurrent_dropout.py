"""rnnfast.nn.RNN/LSTM/GRU(recurrent_dropout=p): the layer against the NumPy reference with the
masks its rng draws (one seed per layer and direction, stacked and bidirectional), finite
differences through a stacked bidirectional layer with fixed masks, evaluation drops nothing,
the LayerNorm cells refuse it by name, bad rates."""
import numpy as np
import pytest

from nn_cases import rel_err
from rnnfast import nn
from rnnfast import reference as R
from test_nn_recurrent import recurrent_fd_check
from test_nn_zoneout import LAYERS, reference_weights


def _weights(layer, layer_index, k):
    suffix = f"_l{layer_index}" + ("_reverse" if k else "")
    keys = [("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"),
            ("b_hh", "bias_hh"), ("w_peephole", "weight_peephole"), ("w_hr", "weight_hr")]
    return {key: getattr(layer, name + suffix).data for key, name in keys
            if hasattr(layer, name + suffix)}


@pytest.mark.parametrize("layer_id", LAYERS)
@pytest.mark.parametrize("training", [True, False])
def test_stacked_bidirectional_layer_matches_the_reference(rng, layer_id, training):
    cls, kwargs, ref_forward, ref_kwargs = LAYERS[layer_id]
    layer = cls(3, 5, num_layers=2, bidirectional=True, recurrent_dropout=0.35,
                dtype=np.float64, seed=0, **kwargs)
    layer.train(training)
    x = rng.standard_normal((6, 4, 3))
    lengths = np.array([6, 3, 5, 1])
    layer.rng = np.random.default_rng(21)
    y, final = layer(x, lengths=lengths)
    h_n = final[0] if isinstance(final, tuple) else final
    P = h_n.shape[-1]
    seeds = np.random.default_rng(21).integers(0, 2 ** 63 - 1, size=4) if training else [None] * 4
    layer_input = x
    for layer_index in range(2):
        outs = []
        for d in range(2):
            k = layer_index * 2 + d
            out = ref_forward(layer_input, **_weights(layer, layer_index, d), lengths=lengths,
                              reverse=d == 1, training=training,
                              recurrent_dropout=0.35 if training else 0.0,
                              seed=None if seeds[k] is None else int(seeds[k]), **ref_kwargs)
            assert rel_err(h_n[k], out[1]) < 1e-12
            outs.append(out[0])
        layer_input = np.concatenate(outs, axis=-1)
    assert rel_err(y, layer_input) < 1e-12
    assert "recurrent_dropout=0.35" in repr(layer)


@pytest.mark.parametrize("layer_id", LAYERS)
def test_finite_differences_with_fixed_masks(rng, layer_id):
    cls, kwargs, _, _ = LAYERS[layer_id]
    layer = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, recurrent_dropout=0.4,
                zoneout=0.2 if layer_id == "lstm" else 0.0, dtype=np.float64, seed=0, **kwargs)
    x = rng.standard_normal((3, 5, 3))
    h0 = rng.standard_normal((4, 3, kwargs.get("proj_size") or 4))
    state = (h0, rng.standard_normal((4, 3, 4))) if cls is nn.LSTM else h0
    recurrent_fd_check(layer, x, state, np.array([5, 2, 4]), rng, reseed=13)


def test_first_layer_equals_the_reference_in_one_direction(rng):
    layer = nn.GRU(3, 6, recurrent_dropout=0.5, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 2, 3))
    layer.rng = np.random.default_rng(3)
    y, _ = layer(x)
    seed = int(np.random.default_rng(3).integers(0, 2 ** 63 - 1, size=1)[0])
    want = R.gru_forward(x, **reference_weights(layer, 0), training=True,
                         recurrent_dropout=0.5, seed=seed)[0]
    assert rel_err(y, want) < 1e-12


def test_training_draws_new_masks_and_evaluation_is_plain(rng):
    lstm = nn.LSTM(3, 6, recurrent_dropout=0.5, seed=0)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert not np.array_equal(a, b)  # the rng moved on: new masks
    lstm.eval()
    plain = nn.LSTM(3, 6, seed=0)
    plain.eval()
    np.testing.assert_array_equal(lstm(x)[0], plain(x)[0])


@pytest.mark.parametrize("value,err", [(1.0, ValueError), (-0.1, ValueError),
                                       ("0.1", TypeError), (True, TypeError)])
def test_bad_recurrent_dropout(value, err):
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        with pytest.raises(err, match="recurrent_dropout: expected a"):
            cls(3, 4, recurrent_dropout=value)


@pytest.mark.parametrize("cls", [nn.LayerNormLSTM, nn.LayerNormGRU])
def test_layer_norm_cells_refuse_it_by_name(cls):
    with pytest.raises(TypeError, match="recurrent_dropout: not an option of the layer_norm"):
        cls(3, 4, recurrent_dropout=0.2)
