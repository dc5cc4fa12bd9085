"""The optimisers' one-pass kernels (``_C.adam_update``, ``_C.sum_squares``) against the NumPy
expressions they replace: the Adam update bitwise (both rules, float32 and float64, amsgrad,
the clipping factor, sizes around the vector width and the threads' chunks, non-finite values,
1 and 2 threads, every instruction set), the sum of squares to float64 rounding; the bad-input errors; and the
optimisers built on them (``rnnfast.optim.Adam``, Keras' ``Adam``, clipping) bitwise against
the NumPy formulation they had before the kernel."""
import math

import numpy as np
import pytest

import rnnfast
from rnnfast import _C, nn, optim
from rnnfast.models import optimizers as keras_optimizers

DTYPES = [np.float32, np.float64]
SIZES = [0, 1, 3, 8, 9, 17, 31, 4095, 4097, 70001]  # the kernel splits >= 32768 between threads
ISAS = rnnfast.supported_isas()


@pytest.fixture
def isa(request):
    """The instruction set named by the test's ``isa`` parameter, active for the test."""
    isa0 = rnnfast.active_isa()
    rnnfast.set_isa(request.param)
    yield request.param
    rnnfast.set_isa(isa0)


def _keras_numpy(w, g, m, v, vh, t, lr, beta_1, beta_2, epsilon, scale=None):
    """Keras' Adam step as rnnfast.models.optimizers wrote it in NumPy (the clipped gradient
    ``g * mul / div`` first); returns the kernel's constants."""
    T = w.dtype.type
    if scale is not None:
        g = g * T(scale[0]) / T(scale[1])
    one, tt, b1, b2 = T(1), T(t), T(beta_1), T(beta_2)
    alpha = T(lr) * np.sqrt(one - b2 ** tt) / (one - b1 ** tt)
    m *= b1
    m += (one - b1) * g
    v *= b2
    v += (one - b2) * (g * g)
    if vh is not None:
        np.maximum(vh, v, out=vh)
        v = vh
    w -= (m * alpha) / (np.sqrt(v) + T(epsilon))
    return dict(rule="keras", beta1=b1, one_minus_beta1=one - b1, beta2=b2,
                one_minus_beta2=one - b2, lr=alpha, eps=T(epsilon),
                grad_mul=1.0 if scale is None else T(scale[0]),
                grad_div=1.0 if scale is None else T(scale[1]))


def _torch_numpy(w, g, m, v, vh, step, lr, beta1, beta2, eps):
    """PyTorch's Adam step as rnnfast.optim wrote it in NumPy; returns the kernel's
    constants."""
    m += (g - m) * (1 - beta1)
    v *= beta2
    v += (1 - beta2) * g * g
    step_size = lr / (1 - beta1 ** step)
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
    if vh is not None:
        np.maximum(vh, v, out=vh)
        v = vh
    denom = np.sqrt(v) / bias_correction2_sqrt + eps
    w -= step_size * m / denom
    return dict(rule="torch", beta1=beta1, one_minus_beta1=1 - beta1, beta2=beta2,
                one_minus_beta2=1 - beta2, lr=step_size, eps=eps,
                bias2_sqrt=bias_correction2_sqrt)


def _state(rng, n, dtype, amsgrad):
    w = rng.standard_normal(n).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = (rng.random(n) * 0.01).astype(dtype)
    vh = (rng.random(n) * 0.01).astype(dtype) if amsgrad else None
    return [w, m, v, vh]


def _copies(arrays):
    return [None if a is None else a.copy() for a in arrays]


def _assert_bitwise(a, b):
    for x, y in zip(a, b):
        if x is None:
            assert y is None
            continue
        assert x.dtype == y.dtype
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8))


def _gradient(rng, n, dtype, step):
    # magnitudes from subnormal-making to large, and exact zeros
    g = rng.standard_normal(n) * 10.0 ** float(rng.integers(-40, 4) if step % 2 else 0)
    g[rng.random(n) < 0.05] = 0.0
    return g.astype(dtype)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_keras_rule_bitwise(n, dtype, amsgrad, threads, isa):
    rng = np.random.default_rng(n + 7 * amsgrad)
    rnnfast.set_num_threads(threads)
    try:
        ref = _state(rng, n, dtype, amsgrad)
        ours = _copies(ref)
        for t in range(1, 5):
            g = _gradient(rng, n, dtype, t)
            scale = (5.0, 7.25 + t) if t % 2 else None
            c = _keras_numpy(*ref[:1], g, *ref[1:], t, 3e-3, 0.9, 0.999, 1e-7, scale)
            _C.adam_update(ours[0], g, ours[1], ours[2], ours[3], **c)
            _assert_bitwise(ref, ours)
    finally:
        rnnfast.set_num_threads(2)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_torch_rule_bitwise(n, dtype, amsgrad, threads, isa):
    rng = np.random.default_rng(100 + n + 7 * amsgrad)
    rnnfast.set_num_threads(threads)
    try:
        ref = _state(rng, n, dtype, amsgrad)
        ours = _copies(ref)
        for step in range(1, 5):
            g = _gradient(rng, n, dtype, step)
            c = _torch_numpy(*ref[:1], g, *ref[1:], step, 1e-2, 0.8, 0.99, 1e-8)
            _C.adam_update(ours[0], g, ours[1], ours[2], ours[3], **c)
            _assert_bitwise(ref, ours)
    finally:
        rnnfast.set_num_threads(2)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("rule", ["keras", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_values_as_numpy(rule, dtype, isa):
    """NaN and inf in the gradient, the moments or the maximum give NumPy's results (NaN
    propagated through the running maximum as np.maximum propagates it)."""
    rng = np.random.default_rng(3)
    n = 64
    ref = _state(rng, n, dtype, True)
    g = rng.standard_normal(n).astype(dtype)
    g[[1, 5, 9]] = [np.nan, np.inf, -np.inf]
    ref[1][12] = np.nan
    ref[3][20] = np.nan
    ref[2][30] = np.inf
    ours = _copies(ref)
    with np.errstate(all="ignore"):
        if rule == "keras":
            c = _keras_numpy(ref[0], g, *ref[1:], 3, 1e-3, 0.9, 0.999, 1e-7, (1.0, np.inf))
        else:
            c = _torch_numpy(ref[0], g, *ref[1:], 3, 1e-3, 0.9, 0.999, 1e-8)
    _C.adam_update(ours[0], g, ours[1], ours[2], ours[3], **c)
    _assert_bitwise(ref, ours)


def test_gradient_sharing_memory_with_w_is_read_first():
    """g may be w itself (a gradient stored in the weights' array): the kernel reads a copy,
    as NumPy's expressions do."""
    rng = np.random.default_rng(4)
    ref = _state(rng, 50, np.float32, False)
    ours = _copies(ref)
    c = _keras_numpy(ref[0], ref[0].copy(), *ref[1:], 1, 1e-2, 0.9, 0.999, 1e-7)
    _C.adam_update(ours[0], ours[0], ours[1], ours[2], None, **c)
    _assert_bitwise(ref, ours)
    ref = _state(rng, 50, np.float64, False)
    ours = _copies(ref)
    c = _keras_numpy(ref[0], ref[0][::-1].copy(), *ref[1:], 1, 1e-2, 0.9, 0.999, 1e-7)
    _C.adam_update(ours[0], ours[0][::-1], ours[1], ours[2], None, **c)
    _assert_bitwise(ref, ours)


@pytest.mark.parametrize("layout", ["fortran", "strided", "big-endian", "shared"])
def test_python_wrapper_takes_any_layout(layout):
    """rnnfast.optim._adam_update updates arrays the kernel cannot write in place through
    contiguous copies: the same values."""
    rng = np.random.default_rng(5)
    ref = [rng.standard_normal((6, 5)).astype(np.float32) for _ in range(3)]
    ref[2] = np.abs(ref[2])
    g = rng.standard_normal((6, 5)).astype(np.float32)
    expected = _copies(ref)
    c = _keras_numpy(expected[0], g, expected[1], expected[2], None, 2, 1e-2, 0.9, 0.999, 1e-7)
    if layout == "fortran":
        arrays = [np.asfortranarray(a) for a in ref]
    elif layout == "strided":
        arrays = []
        for a in ref:
            big = np.zeros((6, 10), np.float32)
            big[:, ::2] = a
            arrays.append(big[:, ::2])
    elif layout == "big-endian":
        arrays = [a.astype(">f4") for a in ref]
        g = g.astype(">f4")
    else:  # m and v the same memory: the kernel refuses it, the wrapper updates copies of
        # them (as if they were two arrays) and writes them back, v last
        same = np.abs(ref[1])
        arrays = [ref[0].copy(), same, same]
        expected = [ref[0].copy(), same.copy(), same.copy()]
        c = _keras_numpy(expected[0], g, expected[1], expected[2], None, 2, 1e-2, 0.9, 0.999,
                         1e-7)
        expected[1] = expected[2]
    optim._adam_update(arrays[0], g, arrays[1], arrays[2], None, **c)
    for a, e in zip(arrays, expected):
        assert np.array_equal(np.asarray(a, np.float32), e)


def _ok(**overrides):
    w, g, m, v = (np.zeros((3, 4), np.float32) for _ in range(4))
    args = dict(w=w, g=g, m=m, v=v, v_max=None, rule="keras", beta1=0.9, one_minus_beta1=0.1,
                beta2=0.999, one_minus_beta2=0.001, lr=1e-3, eps=1e-7)
    args.update(overrides)
    return args


@pytest.mark.parametrize("overrides, error, message", [
    (dict(w=np.zeros((3, 4), np.float16)), TypeError, "w: expected a float32 or float64"),
    (dict(w=[[0.0] * 4] * 3), TypeError, "w: expected a NumPy array"),
    (dict(g=np.zeros((3, 4), np.float64)), TypeError, "g: expected dtype float32"),
    (dict(g=np.zeros((4, 3), np.float32)), ValueError, "g: expected shape the shape of w"),
    (dict(g="x"), TypeError, "g: expected a float32 or float64 array"),
    (dict(m=np.zeros((3, 5), np.float32)), ValueError, "m: expected shape"),
    (dict(v=np.zeros((3, 4), np.int32)), TypeError, "v: expected a float32 or float64"),
    (dict(v_max=np.zeros(12, np.float32)), ValueError, "v_max: expected shape"),
    (dict(m=np.zeros((4, 3), np.float32).T), ValueError, "m: expected a writeable"),
    (dict(v=np.zeros((3, 4), ">f4")), ValueError, "v: expected a writeable"),
    (dict(rule="adam"), ValueError, "rule: expected 'keras' or 'torch'"),
    (dict(rule=1), TypeError, "rule: expected 'keras' or 'torch'"),
])
def test_bad_arguments(overrides, error, message):
    with pytest.raises(error) as info:
        _C.adam_update(**_ok(**overrides))
    assert str(info.value).startswith(message), str(info.value)


def test_read_only_and_shared_arrays_are_refused():
    args = _ok()
    args["w"].setflags(write=False)
    with pytest.raises(ValueError, match="^w: .*got a read-only one"):
        _C.adam_update(**args)
    both = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="^v: shares memory with m"):
        _C.adam_update(**_ok(m=both[0], v=both[0]))
    flat = np.zeros(24, np.float32)
    with pytest.raises(ValueError, match="^v_max: shares memory with w"):
        _C.adam_update(**_ok(w=flat[:12].reshape(3, 4), v_max=flat[6:18].reshape(3, 4)))
    with pytest.raises(TypeError, match="adam_update"):
        _C.adam_update(**_ok(lr="fast"))


# several parameters in one call ---------------------------------------------------------------
NAMES = ("beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "lr", "eps", "bias2_sqrt",
         "grad_mul", "grad_div")


def _many_updates(rng, rule):
    """Parameters of mixed dtypes, sizes (around the vector width and the threads' chunks) and
    amsgrad, each with its constants in its dtype: ``[(w, g, m, v, v_max, constants)]``."""
    return [_update(rng, rule, DTYPES[i % 2], n, i)
            for i, n in enumerate([0, 1, 9, 4097, 70001, 31])]


def _update(rng, rule, dtype, n, i):
    """Parameter ``i`` of ``n`` elements: ``(w, g, m, v, v_max, constants)`` in ``dtype``, with
    amsgrad for every third and the clipping factor for every second."""
    T = dtype
    w, m, v, vh = _state(rng, n, dtype, amsgrad=i % 3 == 1)
    g = _gradient(rng, n, dtype, i)
    scale = (T(5.0), T(7.25)) if i % 2 else (1.0, 1.0)
    constants = (T(0.9), T(1) - T(0.9), T(0.999), T(1) - T(0.999), T(1e-3) * (i + 1),
                 T(1e-7), 1.0 if rule == "keras" else math.sqrt(1 - 0.999 ** (i + 1)), *scale)
    return w, g, m, v, vh, constants


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rule", ["keras", "torch"])
def test_many_bitwise_one_call_each(rule, threads, isa):
    """adam_update_many: every parameter bitwise as its own adam_update call, in list order (a
    later gradient that is an earlier parameter's weights reads them updated, as in the
    calls); v_maxs None or a list with None where there is none; empty lists."""
    rng = np.random.default_rng(21)
    rnnfast.set_num_threads(threads)
    try:
        for step in range(3):
            updates = _many_updates(rng, rule)
            w0 = updates[0][0]
            # the last parameter's gradient: the second one's weights (read after its update)
            n = updates[2][0].size
            last = list(updates[-1])
            last[0], last[2], last[3] = (np.zeros(n, updates[2][0].dtype) for _ in range(3))
            last[1], last[4] = updates[2][0], None
            updates[-1] = tuple(last)
            ref = [[None if a is None else a.copy() for a in u[:5]] for u in updates]
            ref[-1][1] = ref[2][0]  # the same aliasing in the calls
            for (w, g, m, v, vh), u in zip(ref, updates):
                _C.adam_update(w, g, m, v, vh, rule=rule, **dict(zip(NAMES, u[5])))
            ws, gs, ms, vs, vhs, cs = (list(x) for x in zip(*updates))
            if not any(vh is not None for vh in vhs) or step == 1:
                vhs = None if not any(vh is not None for vh in vhs) else vhs
            _C.adam_update_many(ws, gs, ms, vs, vhs, tuple(cs), rule=rule)
            for (w, g, m, v, vh), u in zip(ref, updates):
                _assert_bitwise([w, m, v, vh], [u[0], u[2], u[3], u[4]])
            assert updates[0][0] is w0
        _C.adam_update_many([], [], [], [], None, [], rule=rule)
        _C.adam_update_many((), (), (), (), (), (), rule=rule)
    finally:
        rnnfast.set_num_threads(2)


def _one_dtype_updates(rng, rule, dtype, sizes):
    """Parameters of one dtype (``adam_update_many``'s one pass over all their elements), with
    and without amsgrad and the clipping factor: ``[(w, g, m, v, v_max, constants)]``."""
    return [_update(rng, rule, dtype, n, i) for i, n in enumerate(sizes)]


def _one_call_each_then_many(updates, rule, aliases=()):
    """The updates applied to copies by one adam_update each, then to the originals by one
    adam_update_many; both compared bitwise. ``aliases``: pairs ``((i, a), (j, b))``, array
    ``a`` of update ``i`` is array ``b`` of update ``j`` (in the copies too)."""
    ref = [[None if a is None else a.copy() for a in u[:5]] for u in updates]
    for (i, a), (j, b) in aliases:
        ref[i][a] = ref[j][b]
    for (w, g, m, v, vh), u in zip(ref, updates):
        _C.adam_update(w, g, m, v, vh, rule=rule, **dict(zip(NAMES, u[5])))
    ws, gs, ms, vs, vhs, cs = (list(x) for x in zip(*updates))
    _C.adam_update_many(ws, gs, ms, vs, vhs, tuple(cs), rule=rule)
    for (w, g, m, v, vh), u in zip(ref, updates):
        _assert_bitwise([w, m, v, vh], [u[0], u[2], u[3], u[4]])


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ["keras", "torch"])
def test_many_one_dtype_in_one_pass_bitwise_one_call_each(rule, dtype, threads, isa):
    """Parameters of one dtype sharing no memory (one pass over all their elements, the
    threads' chunks crossing from one parameter into the next): bitwise one adam_update each;
    also with two parameters reading one gradient array."""
    rng = np.random.default_rng(33)
    rnnfast.set_num_threads(threads)
    try:
        for sizes in ([40000, 0, 1, 9, 70001, 31, 30000, 17], [1], [5, 0], [65536, 3, 32768]):
            _one_call_each_then_many(_one_dtype_updates(rng, rule, dtype, sizes), rule)
        shared = _one_dtype_updates(rng, rule, dtype, [4097, 4097, 50000])
        shared[1] = (shared[1][0], shared[0][1]) + shared[1][2:]  # the first one's gradient
        _one_call_each_then_many(shared, rule)
    finally:
        rnnfast.set_num_threads(2)


@pytest.mark.parametrize("rule", ["keras", "torch"])
def test_many_gradient_in_its_own_weights_is_read_first(rule):
    """A gradient that overlaps its own parameter's weights, one element behind them (element
    i of g is element i - 1 of w, which the update writes first), in the one-pass call: read
    before that parameter's update, as adam_update reads it."""
    rng = np.random.default_rng(35)
    updates = _one_dtype_updates(rng, rule, np.float32, [9000, 50000, 17])
    for k in (1, 2):
        big = rng.standard_normal(updates[k][0].size + 1).astype(np.float32)
        updates[k] = (big[1:], big[:-1]) + updates[k][2:]
    ref = [[None if a is None else a.copy() for a in u[:5]] for u in updates]
    for k in (1, 2):
        big = np.concatenate([updates[k][1][:1], ref[k][0]])
        ref[k][0], ref[k][1] = big[1:], big[:-1]
    for (w, g, m, v, vh), u in zip(ref, updates):
        _C.adam_update(w, g, m, v, vh, rule=rule, **dict(zip(NAMES, u[5])))
    ws, gs, ms, vs, vhs, cs = (list(x) for x in zip(*updates))
    _C.adam_update_many(ws, gs, ms, vs, vhs, tuple(cs), rule=rule)
    for (w, g, m, v, vh), u in zip(ref, updates):
        _assert_bitwise([w, m, v, vh], [u[0], u[2], u[3], u[4]])


@pytest.mark.parametrize("rule", ["keras", "torch"])
def test_many_one_array_in_two_parameters_updated_twice(rule):
    """One weight array in two parameters of one dtype (another array's memory, so one call
    after the other): updated twice, as two adam_update calls update it; a state array of one
    parameter that is another's gradient likewise read updated."""
    rng = np.random.default_rng(34)
    updates = _one_dtype_updates(rng, rule, np.float32, [70001, 70001, 9])
    updates[1] = (updates[0][0],) + updates[1][1:]  # the first one's weights
    _one_call_each_then_many(updates, rule, aliases=[((1, 0), (0, 0))])
    updates = _one_dtype_updates(rng, rule, np.float64, [9, 9])
    updates[1] = (updates[1][0], updates[0][2]) + updates[1][2:]  # gradient: the first's m
    _one_call_each_then_many(updates, rule, aliases=[((1, 1), (0, 2))])


def _many_ok():
    rng = np.random.default_rng(3)
    return {"ws": [rng.standard_normal(4).astype(np.float32), np.zeros((3, 4), np.float64)],
            "gs": [np.ones(4, np.float32), np.ones((3, 4), np.float64)],
            "ms": [np.zeros(4, np.float32), np.zeros((3, 4), np.float64)],
            "vs": [np.zeros(4, np.float32), np.zeros((3, 4), np.float64)],
            "v_maxs": None,
            "constants": [(0.9, 0.1, 0.999, 0.001, 1e-3, 1e-7, 1.0, 1.0, 1.0)] * 2}


@pytest.mark.parametrize("name, value, error, message", [
    ("ws", np.zeros(4, np.float32), TypeError, "ws: expected a list or tuple of arrays"),
    ("gs", [np.ones(4, np.float32)], ValueError, "gs: expected 2 arrays (one per entry of ws)"),
    ("v_maxs", [None], ValueError, "v_maxs: expected 2 arrays or None"),
    ("constants", [(0.9,) * 9] * 3, ValueError, "constants: expected 2 tuples"),
    ("constants", [(0.9,) * 9, (0.9,) * 8], ValueError, "constants[1]: expected 9 floats"),
    ("constants", [(0.9,) * 9, 0.9], TypeError, "constants[1]: expected a list or tuple"),
    ("constants", [(0.9,) * 9, (0.9,) * 4 + ("fast",) + (0.9,) * 4], TypeError,
     "constants[1][4]: expected a float"),
    ("gs", [np.ones(4, np.float32), np.ones((3, 4), np.float32)], TypeError,
     "gs[1]: expected dtype float64"),
    ("gs", [np.ones(4, np.float32), np.ones((4, 3), np.float64)], ValueError,
     "gs[1]: expected shape the shape of ws[1]"),
    ("ms", [np.zeros(4, np.float32), np.zeros((4, 3), np.float64).T], ValueError,
     "ms[1]: expected a writeable"),
    ("vs", [np.zeros(4, np.float32), [[0.0] * 4] * 3], TypeError, "vs[1]: expected a NumPy"),
    ("ws", [np.zeros(4, np.float32), np.zeros((3, 4), np.float16)], TypeError,
     "ws[1]: expected a float32 or float64"),
    ("rule", "adam", ValueError, "rule: expected 'keras' or 'torch'"),
])
def test_many_bad_arguments_update_nothing(name, value, error, message):
    """Every argument is checked before the first update: a bad entry at index 1 leaves
    parameter 0 as it was; the message names the entry."""
    args = _many_ok()
    rule = "keras"
    if name == "rule":
        rule = value
    else:
        args[name] = value
    updated = [a for k in ("ws", "ms", "vs") if isinstance(args[k], list) for a in args[k]
               if isinstance(a, np.ndarray)]
    before = [a.copy() for a in updated]
    with pytest.raises(error) as info:
        _C.adam_update_many(**args, rule=rule)
    assert str(info.value).startswith(message), str(info.value)
    _assert_bitwise(before, [np.ascontiguousarray(a) for a in updated])


def test_many_shared_arrays_are_refused():
    args = _many_ok()
    args["vs"][1] = args["ms"][1]
    with pytest.raises(ValueError, match=r"^vs\[1\]: shares memory with ms\[1\]"):
        _C.adam_update_many(**args, rule="torch")


# the sum of squares ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES + [1 << 16, (1 << 16) + 5])
def test_sum_squares(n, dtype):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    expected = math.fsum((x.astype(np.float64) ** 2).tolist())  # exact (float32: squares exact)
    got = _C.sum_squares(x)
    assert isinstance(got, float)
    assert abs(got - expected) <= 4 * np.finfo(np.float64).eps * max(expected, 1e-300) * \
        math.log2(max(n, 2))
    rnnfast.set_num_threads(1)
    try:
        assert _C.sum_squares(x) == got  # the order depends on n only
    finally:
        rnnfast.set_num_threads(2)
    assert _C.sum_squares(x.reshape(-1, 1)) == got  # any shape
    if n:
        assert _C.sum_squares(np.repeat(x, 2)[::2]) == got  # any layout (a copy)


def test_sum_squares_small_integers_exact_and_non_finite():
    assert _C.sum_squares(np.arange(10, dtype=np.float32)) == 285.0
    assert _C.sum_squares(np.zeros((0, 3))) == 0.0
    assert _C.sum_squares(np.array([1.0, np.inf], np.float32)) == math.inf
    assert math.isnan(_C.sum_squares(np.array([np.nan, 1.0])))
    big = np.full(5, 3e38, np.float32)  # squares overflow float32, not float64
    assert _C.sum_squares(big) == pytest.approx(5 * float(np.float32(3e38)) ** 2, rel=1e-15)
    with pytest.raises(TypeError, match="^x: expected a float32 or float64 array"):
        _C.sum_squares(np.arange(3))
    with pytest.raises(TypeError, match="^x: expected a float32 or float64 array"):
        _C.sum_squares(None)


# the optimisers on the kernels -----------------------------------------------------------------
def _params(rng, dtype):
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in [(7, 5), (33,), (2, 3, 4)]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [dict(), dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6,
                                                 weight_decay=0.1),
                                    dict(amsgrad=True, maximize=True)])
def test_torch_adam_bitwise_its_numpy_form(dtype, kwargs):
    rng = np.random.default_rng(11)
    params = _params(rng, dtype)
    ref = [p.data.copy() for p in params]
    opt = optim.Adam(params, **kwargs)
    group = opt.param_groups[0]
    beta1, beta2 = group["betas"]
    state = [[np.zeros_like(r), np.zeros_like(r), np.zeros_like(r)] for r in ref]
    for step in range(1, 5):
        grads = [rng.standard_normal(r.shape).astype(dtype) for r in ref]
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        for r, g, (m, v, vh) in zip(ref, grads, state):
            if group["maximize"]:
                g = -g
            if group["weight_decay"]:
                g = g + group["weight_decay"] * r
            _torch_numpy(r, g, m, v, vh if group["amsgrad"] else None, step, group["lr"],
                         beta1, beta2, group["eps"])
        for p, r in zip(params, ref):
            assert np.array_equal(p.data, r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [dict(), dict(clipnorm=0.5, amsgrad=True),
                                    dict(global_clipnorm=1.0), dict(clipvalue=0.3),
                                    dict(clipnorm=100.0, weight_decay=0.01)])
def test_keras_adam_bitwise_its_numpy_form(dtype, kwargs):
    rng = np.random.default_rng(12)
    params = _params(rng, dtype)
    ref = [p.data.copy() for p in params]
    opt = keras_optimizers.Adam(learning_rate=3e-3, **kwargs).build(params)
    state = [[np.zeros_like(r), np.zeros_like(r), np.zeros_like(r)] for r in ref]
    for t in range(1, 5):
        grads = [rng.standard_normal(r.shape).astype(dtype) for r in ref]
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        scales = [None] * len(grads)
        # Keras' clipping as rnnfast wrote it before the kernels, but with the norms of
        # _C.sum_squares (their sums run in another order than np.sum's: test_sum_squares)
        norms = [math.sqrt(_C.sum_squares(g)) for g in grads]
        if opt.clipnorm is not None:
            scales = [(opt.clipnorm, max(n, opt.clipnorm)) for n in norms]
        elif opt.global_clipnorm is not None:
            total = math.sqrt(sum(n ** 2 for n in norms))
            scale = opt.global_clipnorm * min(1.0 / total, 1.0 / opt.global_clipnorm)
            grads = [g * g.dtype.type(scale) for g in grads]
        elif opt.clipvalue is not None:
            grads = [np.clip(g, -opt.clipvalue, opt.clipvalue) for g in grads]
        for r, g, (m, v, vh), s in zip(ref, grads, state, scales):
            if opt.weight_decay is not None:
                r *= r.dtype.type(1 - opt.weight_decay * 3e-3)
            _keras_numpy(r, g, m, v, vh if opt.amsgrad else None, t, 3e-3, 0.9, 0.999, 1e-7, s)
        for p, r in zip(params, ref):
            assert np.array_equal(p.data, r)


def test_keras_adam_subclass_keeps_its_rule():
    """A subclass of Keras' Adam that defines its own _update is not replaced by the kernel."""
    calls = []

    class Logged(keras_optimizers.Adam):
        def _update(self, w, g, slots, lr):
            calls.append(g.copy())
            super()._update(w, g, slots, lr)

    p = nn.Parameter(np.ones(4, np.float32))
    opt = Logged(learning_rate=0.1, clipnorm=1.0).build([p])
    p.grad = np.full(4, 2.0, np.float32)
    opt.step()
    assert len(calls) == 1
    assert np.allclose(calls[0], 0.5)  # the clipped gradient: norm 4 scaled to 1
    assert np.all(p.data < 1)


def test_torch_adam_subclass_keeps_its_rule():
    """A subclass of rnnfast.optim.Adam that defines its own _update is called per parameter."""
    calls = []

    class Logged(optim.Adam):
        def _update(self, p, grad, g, state):
            calls.append(grad.copy())
            super()._update(p, grad, g, state)

    p = nn.Parameter(np.ones(4, np.float32))
    opt = Logged([p], lr=0.1)
    p.grad = np.full(4, 2.0, np.float32)
    opt.step()
    assert len(calls) == 1 and np.all(p.data < 1)


def test_many_falls_back_to_one_call_each_through_copies():
    """optim._adam_update_many with an array the kernel cannot write in place (a transposed
    state, a big-endian weight): bitwise one _adam_update each (through copies), in order."""
    rng = np.random.default_rng(8)
    updates, ref = [], []
    for i, (shape, dtype) in enumerate([((3, 4), np.float32), ((5, 2), np.float64),
                                        ((6,), np.float32)]):
        w, m, v, _ = _state(rng, int(np.prod(shape)), dtype, False)
        w, m, v = w.reshape(shape), m.reshape(shape), v.reshape(shape)
        if i == 1:
            m = np.array(m.T, order="C").T  # another layout
        if i == 2:
            w = w.astype(w.dtype.newbyteorder(">"))
        g = _gradient(rng, w.size, dtype, i).reshape(shape)
        c = (0.9, 0.1, 0.999, 0.001, 1e-2, 1e-8, 0.7, 1.0, 1.0)
        updates.append((w, g, m, v, None, c))
        ref.append((w.copy(), g, m.copy(), v.copy(), None, c))
    optim._adam_update_many(updates, "torch")
    for w, g, m, v, vh, c in ref:
        optim._adam_update(w, g, m, v, vh, rule="torch", **dict(zip(optim._ADAM_CONSTANTS, c)))
    for got, want in zip(updates, ref):
        for a, b in zip((got[0], got[2], got[3]), (want[0], want[2], want[3])):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert updates[1][2].flags.f_contiguous and updates[2][0].dtype.byteorder == ">"


def test_clip_grad_norm_bitwise_its_numpy_form():
    rng = np.random.default_rng(13)
    for max_norm in (0.5, 1e6):
        params = _params(rng, np.float32)
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        grads = [p.grad.copy() for p in params]
        before = [id(p.grad) for p in params]
        total = optim.clip_grad_norm_(params, max_norm)
        norms = np.array([math.sqrt(float(np.sum(np.square(g.astype(np.float64)))))
                          for g in grads])
        expected = math.sqrt(float(np.sum(np.square(norms))))
        assert total == pytest.approx(expected, rel=1e-15)
        coef = min(max_norm / (total + 1e-6), 1.0)
        for p, g, i in zip(params, grads, before):
            assert id(p.grad) == i  # in place
            assert np.array_equal(p.grad, g * np.float32(coef) if coef < 1 else g)
