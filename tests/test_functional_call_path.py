"""The functional recurrent ops' per-call path (rnnfast/functional/recurrent.py): plain float
arrays go to the binding without a call per argument, and everything else still takes the full
path: a bfloat16 array in any one argument position is widened, array-likes and ndarray
subclasses are accepted as before, and bad rates are still refused by name."""
import numpy as np
import pytest

from rnnfast import functional as F
from recurrent_cases import make_inputs

OPS = [("rnn", {}), ("lstm", {}), ("gru", {}), ("lstm", {"peephole": True})]


def _inputs(op, peephole=False):
    rng = np.random.default_rng(3)
    args, _ = make_inputs(rng, op, 4, 2, 3, 5, np.float32, bias=True, h0=True, peephole=peephole)
    return args


@pytest.mark.parametrize("op,extra", OPS, ids=["rnn", "lstm", "gru", "lstm_peephole"])
def test_one_bfloat16_argument_anywhere_is_widened(op, extra):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    args = _inputs(op, **extra)
    forward, backward = getattr(F, op + "_forward"), getattr(F, op + "_backward")
    rounded = {k: v.astype(ml_dtypes.bfloat16).astype(np.float32) for k, v in args.items()}
    want = forward(**rounded, training=True)
    dy = np.ones_like(want[0])
    want_g = backward(want[-1], dy)
    for name in args:  # exactly one argument a bfloat16 array, the others float32
        given = dict(rounded, **{name: args[name].astype(ml_dtypes.bfloat16)})
        got = forward(**given, training=True)
        for a, b in zip(got[:-1], want[:-1]):
            np.testing.assert_array_equal(a, b)
        got_g = backward(got[-1], dy.astype(ml_dtypes.bfloat16))
        for k in want_g:
            if want_g[k] is None:
                assert got_g[k] is None
            else:
                np.testing.assert_array_equal(got_g[k], want_g[k])


@pytest.mark.parametrize("op,extra", OPS, ids=["rnn", "lstm", "gru", "lstm_peephole"])
def test_array_likes_and_subclasses_give_the_same_values(op, extra):
    class Sub(np.ndarray):
        pass

    args = _inputs(op, **extra)
    forward = getattr(F, op + "_forward")
    want = forward(**args)
    got = forward(**{k: v.view(Sub) for k, v in args.items()})  # float32 subclasses
    for a, b in zip(got[:-1], want[:-1]):
        np.testing.assert_array_equal(a, b)
    want64 = forward(**{k: v.astype(np.float64) for k, v in args.items()})
    got = forward(**{k: v.tolist() for k, v in args.items()})  # lists: float64
    for a, b in zip(got[:-1], want64[:-1]):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("bad,error", [(True, TypeError), ("0", TypeError), (-0.5, ValueError),
                                        (1.0, ValueError), (float("nan"), ValueError)])
def test_bad_recurrent_dropout_is_refused_in_inference_and_training(training, bad, error):
    args = _inputs("lstm")
    with pytest.raises(error, match="recurrent_dropout"):
        F.lstm_forward(**args, training=training, recurrent_dropout=bad)


@pytest.mark.parametrize("bad,error", [(True, TypeError), ("0", TypeError), (-0.5, ValueError),
                                        (1.0, ValueError)])
@pytest.mark.parametrize("training", [False, True])
def test_bad_zoneout_is_refused_in_inference_and_training(training, bad, error):
    args = _inputs("gru")
    with pytest.raises(error, match="zoneout"):
        F.gru_forward(**args, training=training, zoneout=bad)


def test_zero_rates_of_any_number_type_are_the_plain_cell():
    args = _inputs("lstm")
    want = F.lstm_forward(**args, training=True)
    for zero in (0, np.float32(0), np.int64(0), -0.0):
        got = F.lstm_forward(**args, training=True, zoneout=zero, recurrent_dropout=zero)
        for a, b in zip(got[:-1], want[:-1]):
            np.testing.assert_array_equal(a, b)
