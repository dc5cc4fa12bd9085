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


# ------------------------------------------------ the positional entry and the checks' fast paths

POSITIONAL = ["nonlinearity", "reset_after", "lengths", "reverse", "batch_first", "training",
              "precision", "w_peephole", "w_hr", "zoneout", "zoneout_h", "zoneout_c",
              "recurrent_mask"]
ARRAYS = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0"]
DEFAULTS = {"precision": "float32", "zoneout": 0.0}


def _both_entries(op, arrays, options):
    """The results (or the errors) of _C.recurrent_forward and, with the same arguments by
    position, _C.recurrent_forward_positional."""
    from rnnfast import _C
    keyword = {k: v for k, v in arrays.items() if k not in ARRAYS}
    given = dict(DEFAULTS, **options, **keyword)
    out = []
    for call in (lambda: _C.recurrent_forward(op, *[arrays.get(k) for k in ARRAYS], **options,
                                              **keyword),
                 lambda: _C.recurrent_forward_positional(op, *[arrays.get(k) for k in ARRAYS],
                                                         *[given.get(k) for k in POSITIONAL])):
        try:
            out.append(call())
        except (TypeError, ValueError) as e:
            out.append(e)
    return out


def _options(op, **kw):
    return dict({"nonlinearity": "tanh", "reset_after": True, "lengths": None, "reverse": False,
                 "batch_first": False, "training": False}, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,extra,opts", [
    ("rnn", {}, {"nonlinearity": "relu"}), ("gru", {}, {"reset_after": False}),
    ("lstm", {"peephole": True}, {"reverse": True}), ("lstm", {"proj_size": 3}, {}),
    ("gru", {}, {"batch_first": True}), ("lstm", {}, {"training": True}),
    ("lstm", {}, {"lengths": np.array([4, 1, 3])}),
], ids=["rnn_relu", "gru_before", "lstm_peep_rev", "lstm_proj", "gru_bf", "lstm_train",
        "lstm_len"])
def test_the_positional_entry_gives_the_keyword_entrys_results(op, extra, opts, dtype):
    from rnnfast import _C
    rng = np.random.default_rng(5)
    args, _ = make_inputs(rng, op, 4, 3, 5, 6, dtype, batch_first=opts.get("batch_first", False),
                          **extra)
    a, b = _both_entries(op, args, _options(op, **opts))
    for u, v in zip(a[:3], b[:3]):
        if u is None:
            assert v is None
        else:
            assert u.dtype == v.dtype == dtype
            np.testing.assert_array_equal(u, v)
    assert (a[3] is None) == (b[3] is None) == (not opts.get("training", False))
    if a[3] is not None:
        dy = np.ones_like(a[0])
        ga, gb = _C.recurrent_backward(op, a[3], dy, None, None), \
            _C.recurrent_backward(op, b[3], dy, None, None)
        for k in ga:
            if ga[k] is None:
                assert gb[k] is None
            else:
                np.testing.assert_array_equal(ga[k], gb[k])


def _bad(args, **change):
    return dict(args, **change)


@pytest.mark.parametrize("case", range(12))
def test_the_positional_entry_refuses_as_the_keyword_entry(case):
    """The same exception type and message from both entries (the messages are built only on
    an error now: their text must not change)."""
    rng = np.random.default_rng(6)
    args, _ = make_inputs(rng, "lstm", 4, 3, 5, 6, np.float32, peephole=True)
    op, opts = "lstm", _options("lstm")
    bad = [
        lambda: ("LSTM", args, opts),
        lambda: (None, args, opts),
        lambda: (op, _bad(args, w_hh=args["w_hh"][:-1]), opts),
        lambda: (op, _bad(args, w_hh=args["w_hh"][:-4]), opts),
        lambda: (op, _bad(args, w_hh=np.zeros((24, 0), np.float32)), opts),
        lambda: (op, _bad(args, w_ih=args["w_ih"][:, 1:]), opts),
        lambda: (op, _bad(args, x=args["x"][0]), opts),
        lambda: (op, _bad(args, x=np.zeros((0, 3, 5), np.float32)), opts),
        lambda: (op, _bad(args, h0=args["h0"].astype(np.float64)), opts),
        lambda: (op, _bad(args, w_peephole=args["w_peephole"][:2]), opts),
        lambda: ("rnn", {k: args[k] for k in ("x", "h0")} | {"w_ih": args["w_ih"][:6],
                                                            "w_hh": args["w_hh"][:6]},
                 _options("rnn", nonlinearity="sigmoid")),
        lambda: (op, _bad(args, b_ih=args["b_ih"][:-1]), opts),
    ][case]
    a, b = _both_entries(*bad())
    assert isinstance(a, Exception), a
    assert type(a) is type(b) and str(a) == str(b)


@pytest.mark.parametrize("layout", ["big_endian", "fortran", "strided", "misaligned", "readonly",
                                    "subclass"])
def test_arguments_that_are_not_plain_ndarrays_give_the_same_values(layout):
    """The checks take a plain C-contiguous native ndarray as it is and convert anything else:
    every other layout of every argument gives the plain arrays' results."""
    rng = np.random.default_rng(7)
    args, _ = make_inputs(rng, "lstm", 5, 2, 3, 4, np.float32, peephole=True)
    want = F.lstm_forward(**args)

    class Sub(np.ndarray):
        pass

    def change(a):
        if layout == "big_endian":
            return a.astype(a.dtype.newbyteorder(">"))
        if layout == "fortran":
            return np.asfortranarray(a)
        if layout == "strided":
            return np.repeat(a, 2, axis=-1)[..., ::2]
        if layout == "misaligned":
            buf = np.empty(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
            buf[...] = a
            return buf
        if layout == "readonly":
            b = a.copy()
            b.flags.writeable = False
            return b
        return a.view(Sub)

    for name in args:
        given = dict(args, **{name: change(args[name])})
        got = F.lstm_forward(**given)
        for u, v in zip(got, want):
            np.testing.assert_array_equal(u, v)
