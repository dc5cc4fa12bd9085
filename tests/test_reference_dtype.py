"""The reference in float32 (dtype=np.float32), the yardstick of the float32 kernels' tests: every
array of the forward, of its ctx and of the backward is float32, so its error against the
float64 reference is a float32 implementation's; float64 stays the default."""
import numpy as np
import pytest

from rnnfast import reference as R
from recurrent_cases import as64, make_inputs, run, upstream

EPS32 = float(np.finfo(np.float32).eps)

CELLS = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}),
         ("gru", {"reset_after": True}), ("gru", {"reset_after": False}),
         ("layer_norm_lstm", {}), ("layer_norm_gru", {})]
VARIANTS = [{}, {"zoneout": 0.3, "seed": 1}, {"recurrent_dropout": 0.25, "seed": 2},
            {"lengths": True, "reverse": True, "batch_first": True}]


def float_arrays(obj, seen=None):
    """Every floating-point NumPy array reachable from obj (ctx attributes, caches, dicts)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if np.issubdtype(obj.dtype, np.floating):
            yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from float_arrays(v, seen)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from float_arrays(v, seen)
    elif hasattr(obj, "__dict__"):
        yield from float_arrays(vars(obj), seen)


def recurrent_call(rng, op, kw, variant, T=7, B=5, I=4, H=6):
    base = "lstm" if op == "layer_norm_lstm" else "gru" if op == "layer_norm_gru" else op
    variant = dict(variant)
    lengths = variant.pop("lengths", False)
    args, lens = make_inputs(rng, base, T, B, I, H, np.float32, lengths=lengths,
                             batch_first=variant.get("batch_first", False))
    options = dict(kw, lengths=lens, **variant)
    y_shape = args["x"].shape[:2] + (H,)
    return args, options, upstream(rng, base, y_shape, B, H, np.float32)


@pytest.mark.parametrize("variant", VARIANTS, ids=["plain", "zoneout", "rec_dropout", "ragged"])
@pytest.mark.parametrize("op,kw", CELLS, ids=[c[0] + str(c[1]) for c in CELLS])
def test_recurrent_reference_in_float32(rng, op, kw, variant):
    args, options, grads = recurrent_call(rng, op, kw, variant)
    forward = getattr(R, op + "_forward")
    result = forward(**args, **options, training=True, dtype=np.float32)
    out32, ctx32 = result[:-1], result[-1]
    arrays = list(float_arrays(ctx32))
    assert arrays and {a.dtype for a in arrays} == {np.dtype(np.float32)}
    g32 = getattr(R, op + "_backward")(ctx32, **grads)
    assert {a.dtype for a in float_arrays(list(out32) + [g32])} == {np.dtype(np.float32)}
    out64, g64 = run(R, op, as64(args), options, as64(grads))
    for got, (name, want) in zip(out32, out64.items()):
        err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
        assert err < 1e-4, name  # float32 rounding, not another computation
    errors = [np.abs(g32[k] - g64[k]).max() / max(1.0, np.abs(g64[k]).max())
              for k in g64 if g64[k] is not None]
    assert max(errors) < 1e-4
    assert max(errors) > 0  # computed in float32, not float64 then rounded
    # a float64 call is the default, and its ctx holds float64 only
    ctx64 = forward(**as64(args), **options, training=True)[-1]
    assert {a.dtype for a in float_arrays(ctx64)} == {np.dtype(np.float64)}


CONV_CASES = [dict(padding="same", channels_last=True), dict(padding="causal", dilation=2),
              dict(padding=(1, 2), stride=2, groups=2, channels_last=False)]


@pytest.mark.parametrize("kw", CONV_CASES, ids=["same", "causal", "strided_groups"])
def test_conv_reference_in_float32(rng, kw):
    channels_last = kw.get("channels_last", True)
    x = rng.standard_normal((3, 11, 4) if channels_last else (3, 4, 11)).astype(np.float32)
    w = (rng.standard_normal((6, 4 // kw.get("groups", 1), 3)) * 0.5).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y32, ctx32 = R.conv1d_forward(x, w, b, training=True, dtype=np.float32, **kw)
    y64, ctx64 = R.conv1d_forward(x, w, b, training=True, **kw)
    dy = rng.standard_normal(y32.shape).astype(np.float32)
    g32, g64 = R.conv1d_backward(ctx32, dy), R.conv1d_backward(ctx64, dy)
    assert {a.dtype for a in float_arrays([y32, ctx32, g32])} == {np.dtype(np.float32)}
    assert {a.dtype for a in float_arrays([y64, ctx64, g64])} == {np.dtype(np.float64)}
    assert 0 < np.abs(y32 - y64).max() < 64 * EPS32 * max(1.0, np.abs(y64).max())
    for k in ("x", "w", "b"):
        assert np.abs(g32[k] - g64[k]).max() < 64 * EPS32 * max(1.0, np.abs(g64[k]).max()), k


@pytest.mark.parametrize("name,kw", [("max_pool1d", {"pool_size": 3, "stride": 2}),
                                     ("global_max_pool1d", {}), ("global_avg_pool1d", {})])
def test_pool_reference_in_float32(rng, name, kw):
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    y32, ctx32 = getattr(R, name + "_forward")(x, training=True, dtype=np.float32, **kw)
    y64, ctx64 = getattr(R, name + "_forward")(x, training=True, **kw)
    dy = rng.standard_normal(y32.shape).astype(np.float32)
    g32 = getattr(R, name + "_backward")(ctx32, dy)["x"]
    g64 = getattr(R, name + "_backward")(ctx64, dy)["x"]
    assert y32.dtype == g32.dtype == np.float32 and y64.dtype == g64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=4 * EPS32, atol=4 * EPS32)
    np.testing.assert_allclose(g32, g64, rtol=4 * EPS32, atol=4 * EPS32)


def test_linear_reference_in_float32(rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 5), (3, 5), (3,)))
    y32, ctx = R.linear_forward(x, w, b, training=True, dtype=np.float32)
    g = R.linear_backward(ctx, np.ones_like(y32))
    assert y32.dtype == np.float32 and {v.dtype for v in g.values()} == {np.dtype(np.float32)}
    np.testing.assert_allclose(y32, R.linear_forward(x, w, b)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, "complex64", None, "float"])
def test_other_dtypes_are_refused(rng, dtype):
    x = np.zeros((2, 1, 3))
    if dtype == "float":  # Python's float is float64: accepted
        assert R.rnn_forward(x, np.zeros((4, 3)), np.zeros((4, 4)), dtype=float)[0].dtype == \
            np.float64
        return
    for call in (lambda: R.rnn_forward(x, np.zeros((4, 3)), np.zeros((4, 4)), dtype=dtype),
                 lambda: R.conv1d_forward(x, np.zeros((2, 3, 1)), dtype=dtype),
                 lambda: R.max_pool1d_forward(x, pool_size=1, dtype=dtype),
                 lambda: R.linear_forward(x, np.zeros((2, 3)), dtype=dtype)):
        with pytest.raises(TypeError, match="dtype: expected float64 or float32"):
            call()
