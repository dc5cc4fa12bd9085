"""Bad input to the recurrent ops raises TypeError/ValueError naming the argument; no crash."""
import numpy as np
import pytest

from rnnfast import functional as F
from recurrent_cases import make_inputs

T, B, I, H = 5, 3, 4, 6


@pytest.fixture
def lstm_args(rng):
    args, _ = make_inputs(rng, "lstm", T, B, I, H, np.float32)
    return args


def call_lstm(args, **options):
    return F.lstm_forward(**args, **options)


BAD_ARRAYS = [
    # (argument, replacement builder, exception, message fragment)
    ("x", lambda a: a["x"].astype(np.int64), TypeError, "x: expected a float32 or float64 array, got dtype int64"),
    ("x", lambda a: a["x"].astype(np.float16), TypeError, "x: expected a float32 or float64 array, got dtype float16"),
    ("x", lambda a: "not an array", TypeError, "x: expected a float32 or float64 array, got str (dtype <U12)"),
    ("x", lambda a: a["x"][0], ValueError, "x: expected a 3-D array (seq_len, batch, input_size), got shape (3, 4)"),
    ("x", lambda a: np.zeros((0, B, I), np.float32), ValueError, "x: every dimension must be >= 1"),
    ("w_ih", lambda a: a["w_ih"].astype(np.float64), TypeError, "w_ih: expected dtype float32 (the dtype of x), got float64"),
    ("w_ih", lambda a: a["w_ih"][:, :-1], ValueError, "w_ih: expected shape (4*hidden_size, input_size) = (24, 4), got (24, 3)"),
    ("w_ih", lambda a: a["w_ih"].astype(np.int32), TypeError, "w_ih: expected a float32 or float64 array, got dtype int32"),
    ("w_hh", lambda a: a["w_hh"][:-1], ValueError, "w_hh: expected shape (4*hidden_size, hidden_size) = (24, 6), got (23, 6)"),
    ("w_hh", lambda a: a["w_hh"].ravel(), ValueError, "w_hh: expected a 2-D array, got shape (144,)"),
    ("w_hh", lambda a: None, TypeError, "w_hh: expected a float32 or float64 array, got NoneType (dtype object)"),
    ("b_ih", lambda a: a["b_ih"][:-2], ValueError, "b_ih: expected shape (4*hidden_size,) = (24,), got (22,)"),
    ("b_hh", lambda a: a["b_hh"].astype(np.float64), TypeError, "b_hh: expected dtype float32 (the dtype of x), got float64"),
    ("h0", lambda a: a["h0"][None], ValueError, "h0: expected shape (batch, hidden_size) = (3, 6), got (1, 3, 6)"),
    ("c0", lambda a: a["c0"].T, ValueError, "c0: expected shape (batch, hidden_size) = (3, 6), got (6, 3)"),
    ("c0", lambda a: a["c0"].astype(np.complex64), TypeError, "c0: expected a float32 or float64 array, got dtype complex64"),
]


@pytest.mark.parametrize("name,build,exc,fragment", BAD_ARRAYS,
                         ids=["%s-%d" % (b[0], i) for i, b in enumerate(BAD_ARRAYS)])
def test_bad_arrays(lstm_args, name, build, exc, fragment):
    args = dict(lstm_args)
    args[name] = build(lstm_args)
    with pytest.raises(exc) as info:
        call_lstm(args)
    assert fragment in str(info.value)


BAD_LENGTHS = [
    (np.array([5, 0, 3]), ValueError, "lengths: every entry must be in 1..T = 1..5, got 0 at index 1"),
    (np.array([5, 6, 3]), ValueError, "lengths: every entry must be in 1..T = 1..5, got 6 at index 1"),
    (np.array([5, -1, 3]), ValueError, "got -1 at index 1"),
    (np.array([5, 2]), ValueError, "lengths: expected shape (batch,) = (3,), got (2,)"),
    (np.array([[5, 2, 1]]), ValueError, "lengths: expected shape (batch,) = (3,), got (1, 3)"),
    (np.array([5.0, 2.0, 1.0]), TypeError, "lengths: expected an integer array, got dtype float64"),
    ("abc", TypeError, "lengths: expected an integer array"),
]


@pytest.mark.parametrize("lengths,exc,fragment", BAD_LENGTHS, ids=[str(i) for i in range(len(BAD_LENGTHS))])
def test_bad_lengths(lstm_args, lengths, exc, fragment):
    with pytest.raises(exc) as info:
        call_lstm(lstm_args, lengths=lengths)
    assert fragment in str(info.value)


def test_bad_options(rng):
    args, _ = make_inputs(rng, "rnn", T, B, I, H, np.float64)
    with pytest.raises(ValueError, match="nonlinearity: expected 'tanh' or 'relu', got 'sigmoid'"):
        F.rnn_forward(**args, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"w_hh: expected shape \(hidden_size, hidden_size\)"):
        F.rnn_forward(**dict(args, w_hh=np.zeros((2 * H, H))))
    gargs, _ = make_inputs(rng, "gru", T, B, I, H, np.float64)
    with pytest.raises(ValueError, match=r"w_ih: expected shape \(3\*hidden_size, input_size\)"):
        F.gru_forward(**dict(gargs, w_ih=np.zeros((4 * H, I))))
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(batch, seq_len, input_size\)"):
        F.gru_forward(**dict(gargs, x=np.zeros((3, 4))), batch_first=True)


def test_bad_ctx(rng, lstm_args):
    y, h_n, c_n, ctx = call_lstm(lstm_args, training=True)
    _, _, inference_ctx = F.rnn_forward(**make_inputs(rng, "rnn", T, B, I, H, np.float32)[0])
    assert inference_ctx is None
    with pytest.raises(ValueError, match=r"ctx: got None; call lstm_forward\(..., training=True\)"):
        F.lstm_backward(None, y)
    with pytest.raises(TypeError, match="ctx: expected the ctx returned by lstm_forward"):
        F.lstm_backward({"y": y}, y)
    with pytest.raises(ValueError, match="ctx: expected the ctx of gru_forward, got the ctx of lstm_forward"):
        F.gru_backward(ctx, y)
    with pytest.raises(ValueError, match=r"dy: expected shape \(seq_len, batch, hidden_size\) = \(5, 3, 6\), got \(5, 3, 5\)"):
        F.lstm_backward(ctx, y[..., :-1])
    with pytest.raises(TypeError, match=r"dy: expected dtype float32 \(the dtype of x\), got float64"):
        F.lstm_backward(ctx, y.astype(np.float64))
    with pytest.raises(ValueError, match=r"dc_n: expected shape \(batch, hidden_size\) = \(3, 6\), got \(3,\)"):
        F.lstm_backward(ctx, y, h_n, c_n[:, 0])
    # The ctx still works after all those refusals, and can be used twice.
    first = F.lstm_backward(ctx, y, h_n, c_n)
    second = F.lstm_backward(ctx, y, h_n, c_n)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_c0_is_only_for_lstm(rng):
    args, _ = make_inputs(rng, "gru", T, B, I, H, np.float32)
    out = F.gru_forward(**args)
    assert len(out) == 3
    with pytest.raises(TypeError):
        F.gru_forward(**args, c0=np.zeros((B, H), np.float32))
