"""weights_token: the bfloat16 packings of w_ih and w_hh kept across forward calls.

A token names the current values of the weights (rnnfast.functional.new_weights_token). With
it the forwards give exactly the values they give without it, on every bfloat16 path, every
way of projecting the inputs and every thread count; on the hardware paths the packings are
reused while the token and the arrays stay the same (a write into the weights under the same
token is not seen: the caller's promise, documented), and a new token, other arrays, arrays the
binding converts (ml_dtypes' bfloat16, another dtype) and the portable path pack anew.
"""
import numpy as np
import pytest

import rnnfast
import rnnfast.functional as F
from recurrent_cases import make_inputs

BF16_ISAS = rnnfast.supported_bf16_isas()
HARDWARE = [i for i in BF16_ISAS if i != "portable"]


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    before = rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(request.param)
    yield rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(before if before in BF16_ISAS else "portable")


@pytest.fixture
def hardware_isa():
    if not HARDWARE:
        pytest.skip("no bfloat16 hardware path on this machine: nothing is packed or kept")
    before = rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(HARDWARE[-1])
    if rnnfast.active_bf16_isa() == "portable":
        rnnfast.set_bf16_isa(before)
        pytest.skip("the active float32 instruction set is not avx512: the portable path runs")
    yield rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(before)


# (name, op, T, B, I, H, options, window budget): the ways inference projects the inputs
PATHS = [
    ("blocks", "lstm", 9, 64, 300, 300, {}, 0),          # windows by blocks of units
    ("blocks_gru", "gru", 9, 64, 300, 300, {}, 0),
    ("windows", "gru", 11, 37, 40, 48, {}, 3 * 37 * 3 * 48 * 4),  # windows of about 3 steps
    ("merged", "lstm", 11, 37, 40, 48, {}, 0),          # [x_t, h] [W_ih, W_hh]^T per step
    ("windows_rnn", "rnn", 11, 37, 40, 48, {}, 3 * 37 * 48 * 4),
    ("all_rows", "gru", 9, 40, 72, 56, {"reverse": True, "lengths": True}, 0),  # every row first
    ("small_batch", "gru", 6, 3, 20, 33, {}, 0),
]


def call(op, args, opts, budget, **kw):
    rnnfast._C._set_projection_window_bytes(budget)
    try:
        out = getattr(F, op + "_forward")(**args, **opts, precision="bfloat16", **kw)
    finally:
        rnnfast._C._set_projection_window_bytes(0)
    return [o for o in out if isinstance(o, np.ndarray)]


def case(name):
    _, op, T, B, I, H, opts, budget = next(p for p in PATHS if p[0] == name)
    rng = np.random.default_rng(sum(map(ord, name)))
    args, lens = make_inputs(rng, op, T, B, I, H, np.float32, lengths=bool(opts.get("lengths")))
    opts = dict(opts)
    if lens is not None:
        opts["lengths"] = lens
    return op, args, opts, budget


def assert_same(got, want):
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", [p[0] for p in PATHS])
def test_a_token_gives_the_values_of_no_token(name, bf16_isa, threads):
    op, args, opts, budget = case(name)
    for n in (1, 2, 3):
        rnnfast.set_num_threads(n)
        want = call(op, args, opts, budget)
        token = F.new_weights_token()
        for _ in range(3):  # the first call packs and keeps, the others reuse
            assert_same(call(op, args, opts, budget, weights_token=token), want)


@pytest.mark.parametrize("name", ["blocks", "windows", "all_rows"])
@pytest.mark.parametrize("changed", ["w_ih", "w_hh"])
def test_the_packings_are_kept_while_the_token_stays(name, changed, hardware_isa):
    """A write into the weights under the same token is not seen (the packings are reused:
    the documented contract); a new token sees it."""
    op, args, opts, budget = case(name)
    token = F.new_weights_token()
    before = call(op, args, opts, budget, weights_token=token)
    args[changed] += np.float32(0.25)  # in place: the same array, the same address
    assert_same(call(op, args, opts, budget, weights_token=token), before)
    fresh = call(op, args, opts, budget)
    assert np.abs(fresh[0] - before[0]).max() > 1e-3
    assert_same(call(op, args, opts, budget, weights_token=F.new_weights_token()), fresh)


@pytest.mark.parametrize("changed", ["w_ih", "w_hh"])
def test_the_merged_lstm_packs_at_every_call(changed, hardware_isa):
    """The LSTM whose steps multiply [x_t, h] by [W_ih, W_hh]^T packs a copy made in the call,
    which no token names: a write into the weights is seen under the same token."""
    op, args, opts, budget = case("merged")
    token = F.new_weights_token()
    before = call(op, args, opts, budget, weights_token=token)
    args[changed] += np.float32(0.25)
    after = call(op, args, opts, budget, weights_token=token)
    assert np.abs(after[0] - before[0]).max() > 1e-3
    assert_same(after, call(op, args, opts, budget))


def test_other_arrays_under_the_same_token_are_packed_apart(hardware_isa):
    """The address is part of the key: two sets of weights, both alive, one token."""
    op, args, opts, budget = case("blocks")
    other = dict(args, w_ih=args["w_ih"] * np.float32(0.5), w_hh=args["w_hh"] * np.float32(-1))
    want_a, want_b = call(op, args, opts, budget), call(op, other, opts, budget)
    token = F.new_weights_token()
    for _ in range(2):
        assert_same(call(op, args, opts, budget, weights_token=token), want_a)
        assert_same(call(op, other, opts, budget, weights_token=token), want_b)


def test_the_least_recently_used_packings_are_dropped(hardware_isa):
    """At most 16 packings are kept: after 10 calls on other weights (2 packings each) the
    first weights' are gone, and a write into them is seen under their old token."""
    op, args, opts, budget = case("windows")
    token = F.new_weights_token()
    call(op, args, opts, budget, weights_token=token)
    for i in range(10):
        other = dict(args, w_ih=args["w_ih"] + np.float32(i), w_hh=args["w_hh"].copy())
        call(op, other, opts, budget, weights_token=F.new_weights_token())
    args["w_hh"] *= np.float32(-1)
    assert_same(call(op, args, opts, budget, weights_token=token), call(op, args, opts, budget))


def test_converted_weights_are_never_kept(bf16_isa):
    """Weights the call converts (ml_dtypes' bfloat16, float64 rows for a float32 call, a
    non-contiguous view) are copies freed after the call: a token does not keep them."""
    op, args, opts, budget = case("blocks")
    token = F.new_weights_token()
    view = np.asfortranarray(args["w_hh"])  # converted to a C-contiguous copy by the binding
    call(op, dict(args, w_hh=view), opts, budget, weights_token=token)
    view *= np.float32(-1)
    assert_same(call(op, dict(args, w_hh=view), opts, budget, weights_token=token),
                call(op, dict(args, w_hh=np.ascontiguousarray(view)), opts, budget))
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = dict(args, w_ih=args["w_ih"].astype(ml_dtypes.bfloat16))
    call(op, bf, opts, budget, weights_token=token)
    bf["w_ih"] *= ml_dtypes.bfloat16(-1)
    assert_same(call(op, bf, opts, budget, weights_token=token), call(op, bf, opts, budget))


def test_the_token_changes_nothing_in_float32():
    op, args, opts, budget = case("blocks")
    token = F.new_weights_token()
    want = F.lstm_forward(**args)[0]
    np.testing.assert_array_equal(F.lstm_forward(**args, weights_token=token)[0], want)
    args["w_hh"] *= np.float32(-1)
    np.testing.assert_array_equal(F.lstm_forward(**args, weights_token=token)[0],
                                  F.lstm_forward(**args)[0])


def test_new_weights_token_never_repeats():
    tokens = [F.new_weights_token() for _ in range(100)]
    assert len(set(tokens)) == 100 and min(tokens) >= 1


@pytest.mark.parametrize("bad,err,match", [
    ("1", TypeError, "weights_token: expected an int in 0..2\\*\\*64-1, got <class 'str'>"),
    (True, TypeError, "weights_token: expected an int in 0..2\\*\\*64-1, got <class 'bool'>"),
    (1.0, TypeError, "weights_token: expected an int"),
    (-1, ValueError, "weights_token: expected an int in 0..2\\*\\*64-1, got -1"),
    (2 ** 64, ValueError, "weights_token: expected an int"),
])
def test_a_bad_token_is_refused_by_name(bad, err, match):
    op, args, opts, budget = case("small_batch")
    with pytest.raises(err, match=match):
        F.gru_forward(**args, precision="bfloat16", weights_token=bad)
    with pytest.raises(err, match=match):
        rnnfast._C.recurrent_forward(op, args["x"], args["w_ih"], args["w_hh"], None, None, None,
                                     None, nonlinearity="tanh", reset_after=True, lengths=None,
                                     reverse=False, batch_first=False, training=False,
                                     weights_token=bad)
