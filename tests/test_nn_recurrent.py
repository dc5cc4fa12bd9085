"""rnnfast.nn.RNN/LSTM/GRU without PyTorch: names, initialisation, finite differences (GRU
reset_after=False, dropout), accumulation, modes and bad arguments."""
import numpy as np
import pytest

from nn_cases import FD_TOL, numeric_grad, rel_err
from rnnfast import nn
from rnnfast import reference as R


def test_parameter_names_shapes_and_order():
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    shapes = {name: p.shape for name, p in lstm.named_parameters()}
    assert list(shapes) == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
        "bias_hh_l0_reverse",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
        "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse",
        "bias_hh_l1_reverse",
    ]
    assert shapes["weight_ih_l0"] == (20, 3)
    assert shapes["weight_ih_l1_reverse"] == (20, 10)
    assert shapes["weight_hh_l1"] == (20, 5)
    assert shapes["bias_hh_l0_reverse"] == (20,)
    gru = nn.GRU(4, 6, bias=False)
    assert {n: p.shape for n, p in gru.named_parameters()} == {
        "weight_ih_l0": (18, 4), "weight_hh_l0": (18, 6)}
    assert nn.RNN(2, 7).weight_hh_l0.shape == (7, 7)


def test_initialisation_is_torch_like_and_seeded():
    a = nn.GRU(8, 16, num_layers=2, seed=1)
    b = nn.GRU(8, 16, num_layers=2, seed=1)
    c = nn.GRU(8, 16, num_layers=2, seed=2)
    bound = 1 / np.sqrt(16)
    values = np.concatenate([p.data.ravel() for p in a.parameters()])
    assert values.dtype == np.float32
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound
    assert abs(values.mean()) < 0.05 * bound
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(a.weight_ih_l0.data, c.weight_ih_l0.data)
    d = nn.GRU(8, 16, num_layers=2, seed=1, dtype=np.float64)
    assert d.weight_ih_l0.dtype == np.float64
    np.testing.assert_array_equal(d.weight_ih_l0.data.astype(np.float32), a.weight_ih_l0.data)
    e = nn.GRU(8, 16, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(e.weight_ih_l0.data, a.weight_ih_l0.data)


def recurrent_fd_check(layer, x, state, lengths, rng, reseed=None):
    """Finite differences of sum(y*dy) + sum(h_n*dh) for x, the state and every parameter."""
    def run():
        if reseed is not None:
            layer.rng = np.random.default_rng(reseed)
        y, final = layer(x, state, lengths=lengths)
        return y, (final if isinstance(final, tuple) else (final,))

    y, final = run()
    dy = rng.standard_normal(y.shape)
    dfinal = tuple(rng.standard_normal(f.shape) for f in final)
    layer.zero_grad()
    dx, dstate0 = layer.backward(dy, dfinal if len(dfinal) == 2 else dfinal[0])

    def loss():
        y_, final_ = run()
        return float(np.sum(y_ * dy) + sum(np.sum(f * d) for f, d in zip(final_, dfinal)))

    assert rel_err(dx, numeric_grad(loss, x)) < FD_TOL
    states = state if isinstance(state, tuple) else (state,)
    grads0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
    for s, g in zip(states, grads0):
        assert rel_err(g, numeric_grad(loss, s)) < FD_TOL
    for name, p in layer.named_parameters():
        assert rel_err(p.grad, numeric_grad(loss, p.data)) < FD_TOL, name


def test_gru_reset_before_matches_finite_differences(rng):
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, reset_after=False,
                 dtype=np.float64, seed=0)
    x = rng.standard_normal((3, 5, 3))
    h0 = rng.standard_normal((4, 3, 4))
    recurrent_fd_check(gru, x, h0, np.array([5, 2, 4]), rng)


def test_gru_reset_before_first_layer_equals_the_reference(rng):
    gru = nn.GRU(3, 4, reset_after=False, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 2, 3))
    y, h = gru(x)
    w = [gru.weight_ih_l0.data, gru.weight_hh_l0.data, gru.bias_ih_l0.data, gru.bias_hh_l0.data]
    y_ref, h_ref, _ = R.gru_forward(x, *w, reset_after=False)
    assert rel_err(y, y_ref) < 1e-12 and rel_err(h[0], h_ref) < 1e-12


def test_inter_layer_dropout_gradients_with_a_fixed_mask(rng):
    lstm = nn.LSTM(3, 4, num_layers=3, dropout=0.4, dtype=np.float64, seed=0)
    x = rng.standard_normal((4, 2, 3))
    state = (rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4)))
    recurrent_fd_check(lstm, x, state, None, rng, reseed=11)


def test_dropout_changes_training_outputs_only(rng):
    x = rng.standard_normal((6, 3, 4))
    rnn = nn.RNN(4, 8, num_layers=2, dropout=0.5, dtype=np.float64, seed=0)
    plain = nn.RNN(4, 8, num_layers=2, dtype=np.float64)
    plain.load_state_dict(rnn.state_dict())
    y_train, _ = rnn(x)
    y_plain, _ = plain(x)
    assert rel_err(y_train, y_plain) > 1e-3
    rnn.eval()
    y_eval, _ = rnn(x)
    np.testing.assert_array_equal(y_eval, y_plain)
    rnn.train()
    rnn.rng = np.random.default_rng(5)
    a, _ = rnn(x)
    rnn.rng = np.random.default_rng(5)
    b, _ = rnn(x)
    np.testing.assert_array_equal(a, b)


def test_dropout_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.LSTM(2, 3, dropout=0.2)


def test_backward_accumulates_and_zero_grad_clears(rng):
    gru = nn.GRU(3, 4, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((5, 2, 3))
    y, h = gru(x)
    dy = rng.standard_normal(y.shape)
    dx1, _ = gru.backward(dy)
    first = {n: p.grad.copy() for n, p in gru.named_parameters()}
    dx2, _ = gru.backward(dy)
    np.testing.assert_array_equal(dx1, dx2)
    for n, p in gru.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[n], rtol=1e-14)
    gru.zero_grad()
    assert all(p.grad is None for p in gru.parameters())
    gru.backward(dy)
    gru.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in gru.parameters())


def test_missing_output_gradients_are_zeros(rng):
    lstm = nn.LSTM(3, 4, num_layers=2, dtype=np.float64)
    x = rng.standard_normal((5, 2, 3))
    y, (h, c) = lstm(x)
    dh = rng.standard_normal(h.shape)
    a, _ = lstm.backward(None, (dh, None))
    b, _ = lstm.backward(np.zeros_like(y), (dh, np.zeros_like(c)))
    np.testing.assert_array_equal(a, b)
    c_only, _ = lstm.backward(None, None)
    assert np.all(c_only == 0)


def test_float64_inputs_are_cast_to_the_layer_dtype(rng):
    rnn = nn.RNN(3, 4)
    y, h = rnn(rng.standard_normal((5, 2, 3)))
    assert y.dtype == np.float32 and h.dtype == np.float32
    dx, dh0 = rnn.backward(rng.standard_normal(y.shape), None)
    assert dx.dtype == np.float32 and dh0 is None


def test_eval_mode_keeps_nothing_for_backward(rng):
    lstm = nn.LSTM(3, 4)
    lstm.eval()
    y, _ = lstm(rng.standard_normal((5, 2, 3)))
    with pytest.raises(RuntimeError, match="training mode"):
        lstm.backward(np.ones_like(y))
    fresh = nn.GRU(3, 4)
    with pytest.raises(RuntimeError, match="no forward pass"):
        fresh.backward(np.ones((5, 2, 4)))


def test_lengths_accept_lists_and_keep_padding_zero(rng):
    gru = nn.GRU(3, 4, batch_first=True, bidirectional=True)
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    y, h = gru(x, lengths=[6, 2, 4])
    assert y.shape == (3, 6, 8)
    assert np.all(y[1, 2:] == 0) and np.all(y[2, 4:] == 0)
    y2, h2 = gru(x[1:2, :2], lengths=None)
    np.testing.assert_allclose(y2[0], y[1, :2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h2[:, 0], h[:, 1], rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip(rng):
    a = nn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=1)
    b = nn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=2)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((5, 2, 3))
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    sd = a.state_dict()
    sd["weight_ih_l0"][...] = 0  # a copy: the layer is unchanged
    assert np.any(a.weight_ih_l0.data != 0)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(input_size=0, hidden_size=3), ValueError, "input_size"),
    (dict(input_size=2, hidden_size=0), ValueError, "hidden_size"),
    (dict(input_size=2, hidden_size=3, num_layers=0), ValueError, "num_layers"),
    (dict(input_size=2.5, hidden_size=3), TypeError, "input_size"),
    (dict(input_size=2, hidden_size=3, dropout=1.5), ValueError, "dropout"),
    (dict(input_size=2, hidden_size=3, dropout="x"), TypeError, "dropout"),
    (dict(input_size=2, hidden_size=3, dtype=np.int32), TypeError, "dtype"),
    (dict(input_size=2, hidden_size=3, dtype=np.float16), TypeError, "dtype"),
    (dict(input_size=2, hidden_size=3, device="cuda"), ValueError, "device"),
    (dict(input_size=2, hidden_size=3, seed=1, rng=np.random.default_rng(1)), ValueError, "seed"),
])
def test_bad_constructor_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        nn.LSTM(**kwargs)


def test_bad_cell_specific_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"proj_size: expected an int < hidden_size \(3\), got 3"):
        nn.LSTM(2, 3, proj_size=3)
    with pytest.raises(ValueError, match="proj_size: expected an int >= 0, got -1"):
        nn.LSTM(2, 3, proj_size=-1)
    with pytest.raises(TypeError, match="proj_size: expected an int, got float"):
        nn.LSTM(2, 3, proj_size=1.0)
    lstm = nn.LSTM(2, 3, proj_size=2)
    with pytest.raises(ValueError, match=r"state\[0\]: expected shape \(num_layers\*num_directions, "
                       r"batch, proj_size\) = \(1, 4, 2\), got \(1, 4, 3\)"):
        lstm(np.zeros((5, 4, 2)), (np.zeros((1, 4, 3)), np.zeros((1, 4, 3))))


def test_bad_forward_and_backward_arguments(rng):
    lstm = nn.LSTM(3, 4, num_layers=2)
    x = rng.standard_normal((5, 2, 3))
    with pytest.raises(ValueError, match=r"x: expected 3 features"):
        lstm(rng.standard_normal((5, 2, 4)))
    with pytest.raises(ValueError, match=r"x: expected a 3-D array"):
        lstm(rng.standard_normal((5, 2, 3, 1)))
    with pytest.raises(TypeError, match=r"x: expected a float array"):
        lstm(np.ones((5, 2, 3), np.int64))
    with pytest.raises(TypeError, match=r"state: expected a tuple \(h, c\)"):
        lstm(x, rng.standard_normal((2, 2, 4)))
    with pytest.raises(ValueError,
                       match=r"state\[1\]: expected shape .* = \(2, 2, 4\), got \(2, 3, 4\)"):
        lstm(x, (rng.standard_normal((2, 2, 4)), rng.standard_normal((2, 3, 4))))
    with pytest.raises(ValueError, match="lengths"):
        lstm(x, lengths=[5, 6])
    with pytest.raises(TypeError, match="lengths"):
        lstm(x, lengths=[5.0, 2.0])
    with pytest.raises(ValueError, match="lengths: must be None for an unbatched"):
        lstm(x[:, 0], lengths=[5])
    y, _ = lstm(x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(5, 2, 4\)"):
        lstm.backward(np.ones((5, 2, 8)))
    with pytest.raises(TypeError, match="dstate: expected a tuple"):
        lstm.backward(np.ones(y.shape), np.ones((2, 2, 4)))
    gru = nn.GRU(3, 4)
    with pytest.raises(TypeError, match="state: expected an array"):
        gru(x, (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match=r"state: expected shape"):
        gru(x, np.zeros((2, 2, 4)))


def test_repr_reads_like_torch():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"


def test_peephole_lstm_names_reference_and_finite_differences(rng):
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, peephole=True,
                   dtype=np.float64, seed=0)
    names = [n for n, _ in lstm.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "weight_peephole_l0"]
    assert lstm.weight_peephole_l1_reverse.shape == (3, 4)
    assert "peephole=True" in repr(lstm)
    x = rng.standard_normal((3, 5, 3))
    one = nn.LSTM(3, 4, batch_first=True, peephole=True, dtype=np.float64, seed=1)
    y, (h, c) = one(x)
    w = {k: getattr(one, n + "_l0").data for k, n in [
        ("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh"),
        ("w_peephole", "weight_peephole")]}
    y_ref, h_ref, c_ref, _ = R.lstm_forward(x, **w, batch_first=True)
    assert rel_err(y, y_ref) < 1e-12 and rel_err(c[0], c_ref) < 1e-12
    state = (rng.standard_normal((4, 3, 4)), rng.standard_normal((4, 3, 4)))
    recurrent_fd_check(lstm, x, state, np.array([5, 2, 4]), rng)
