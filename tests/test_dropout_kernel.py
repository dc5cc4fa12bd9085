"""The dropout kernel (rnnfast.functional.dropout) against its NumPy reference: bitwise the same
values for both dtypes, odd sizes, any layout and thread count; the drop rate; the layer's use
of it (forward and backward share the mask, a seed per call); bad arguments."""
import numpy as np
import pytest

import rnnfast
from rnnfast import functional as F
from rnnfast import nn
from rnnfast import reference as R
from rnnfast.reference.dropout import dropout_bits


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (2,), (3,), (17,), (5, 7), (3, 33, 65), (2, 129, 257)])
@pytest.mark.parametrize("p", [0.0, 1e-9, 0.1, 0.5, 0.9, 0.999999])
def test_kernel_equals_reference(dtype, shape, p, rng):
    x = rng.standard_normal(shape).astype(dtype)
    for seed in (0, 12345, 2 ** 64 - 1):
        got = F.dropout(x, p, seed)
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_array_equal(got, R.dropout(x, p, seed))


def test_reference_bits_are_splitmix64():
    """The first outputs of SplitMix64 seeded with 1234567 (its published sequence), split into
    low and high halves."""
    want64 = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    bits = dropout_bits(1234567, 6)
    got64 = [int(bits[2 * j]) | (int(bits[2 * j + 1]) << 32) for j in range(3)]
    assert got64 == want64


@pytest.mark.parametrize("n", [1, 2, 3, 16383, 16384, 16385, 100_001, 1_000_003])
def test_same_values_at_any_thread_count(n, threads, rng):
    x = rng.standard_normal(n).astype(np.float32)
    outs = []
    for t in (1, 2, 3):
        rnnfast.set_num_threads(t)
        outs.append(F.dropout(x, 0.3, 99))
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    if n <= 100_001:
        np.testing.assert_array_equal(outs[0], R.dropout(x, 0.3, 99))


def test_layouts_and_array_likes(rng):
    x = rng.standard_normal((6, 9))
    want = R.dropout(x, 0.4, 7)
    np.testing.assert_array_equal(F.dropout(np.asfortranarray(x), 0.4, 7), want)
    np.testing.assert_array_equal(F.dropout(x.tolist(), 0.4, 7), want)
    wide = rng.standard_normal((6, 18))
    np.testing.assert_array_equal(F.dropout(wide[:, ::2], 0.4, 7), R.dropout(wide[:, ::2], 0.4, 7))


@pytest.mark.parametrize("p", [0.05, 0.5, 0.8])
def test_drop_rate_and_scale(p):
    x = np.ones(400_000, np.float32)
    y = F.dropout(x, p, 3)
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / x.size)  # 5 sigma
    np.testing.assert_array_equal(y[y != 0], np.float32(1) / np.float32(1 - p))


def test_seeds_give_independent_masks():
    x = np.ones(100_000)
    a, b = F.dropout(x, 0.5, 1) != 0, F.dropout(x, 0.5, 2) != 0
    assert abs((a == b).mean() - 0.5) < 0.01
    c = F.dropout(np.ones(100_001), 0.5, 1) != 0  # a longer x keeps the prefix
    np.testing.assert_array_equal(c[:100_000], a)


def test_dropped_nan_and_infinity_stay_nan():
    x = np.array([np.nan, np.inf, -np.inf, -1.0] * 64, np.float32)
    y = F.dropout(x, 0.5, 11)
    kept = R.dropout(np.ones_like(x), 0.5, 11) != 0
    assert np.isnan(y[:: 4]).all()
    np.testing.assert_array_equal(np.isnan(y[1::4]), ~kept[1::4])
    np.testing.assert_array_equal(y[3::4], np.where(kept[3::4], -2.0, -0.0))
    assert np.signbit(y[3::4]).all()  # -1 * 0 is -0, as x * mask


@pytest.mark.parametrize("bad, error, match", [
    (dict(p=1.0), ValueError, r"p: expected a float in \[0, 1\)"),
    (dict(p=-0.5), ValueError, r"p: expected a float in \[0, 1\)"),
    (dict(p=float("nan")), ValueError, r"p: expected a float in \[0, 1\)"),
    (dict(seed=-1), ValueError, r"seed: expected an int in 0..2\*\*64-1"),
    (dict(seed=2 ** 64), ValueError, r"seed: expected an int in 0..2\*\*64-1"),
    (dict(seed=1.0), TypeError, r"seed: expected an int in 0..2\*\*64-1, got <class 'float'>"),
    (dict(seed=True), TypeError, r"seed: expected an int"),
    (dict(x=np.ones(3, np.int32)), TypeError, r"x: expected a float32 or float64 array, got dtype int32"),
    (dict(x="x"), TypeError, r"x: expected a float32 or float64 array"),
])
def test_bad_arguments(bad, error, match):
    args = dict(x=np.ones(4, np.float32), p=0.5, seed=1)
    args.update(bad)
    with pytest.raises(error, match=match):
        F.dropout(args["x"], args["p"], args["seed"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_backward_uses_the_forward_mask(dtype, rng):
    drop = nn.Dropout(0.3, seed=4)
    x = rng.standard_normal((7, 11, 13)).astype(dtype)
    y = drop(x)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = drop.backward(dy)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx == 0, y == 0)
    scale = dtype(1) / dtype(1 - 0.3)
    np.testing.assert_array_equal(dx[y != 0], dy[y != 0] * scale)
    # the mask is the reference's for the seed the layer drew from its generator
    seed = int(np.random.default_rng(4).integers(0, 2 ** 64, dtype=np.uint64))
    np.testing.assert_array_equal(y, R.dropout(x, 0.3, seed))
    # a second call draws a new seed: another mask
    assert not np.array_equal(drop(x) == 0, y == 0)


def test_layer_rate_one_and_eval():
    x = np.array([1.0, np.nan, -2.0])
    drop = nn.Dropout(1.0)
    y = drop(x)
    assert y[0] == 0 and np.isnan(y[1]) and y[2] == 0
    np.testing.assert_array_equal(drop.backward(np.ones(3)), 0)
    np.testing.assert_array_equal(nn.Dropout(0.5).eval()(x), x)
    drop = nn.Dropout(0.0)
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(np.ones(3)), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 33, 16385, 100_001])
def test_every_instruction_set_gives_the_reference(dtype, n, threads, rng):
    """The AVX-512 unit (eight SplitMix64 outputs per vector) and the generic loop: bitwise the
    reference's values, dropped NaN and infinities NaN, at 1 and 2 threads."""
    x = rng.standard_normal(n).astype(dtype)
    x[::7] = np.inf
    x[3::11] = np.nan
    with np.errstate(invalid="ignore"):  # inf * 0
        want = R.dropout(x, 0.35, 2 ** 63 + 5)
    isa0 = rnnfast.active_isa()
    try:
        for isa in rnnfast.supported_isas():
            rnnfast.set_isa(isa)
            for t in (1, 2):
                rnnfast.set_num_threads(t)
                np.testing.assert_array_equal(F.dropout(x, 0.35, 2 ** 63 + 5), want,
                                              err_msg=f"{isa} {t} threads")
    finally:
        rnnfast.set_isa(isa0)


def _embedding_dropout_run(model, x, dy, fuse, training=True):
    """Two forwards and backwards of ``model`` (fused or not): outputs, output masks and
    parameter gradients."""
    from rnnfast.models import Sequential  # noqa: F401 (the model's class)
    model._fuse_embedding_dropout = fuse
    model.train(training)
    outs, masks = [], []
    for p in model.parameters():
        p.grad = None
    for _ in range(2):
        outs.append(model.forward(x))
        masks.append(model.output_mask)
        if training:
            model.backward(dy.astype(outs[-1].dtype))
    grads = {name: None if p.grad is None else p.grad.copy()
             for name, p in model.named_parameters()}
    return outs, masks, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p,mask_zero,regularizer,fused", [
    (0.5, False, None, True), (0.3, True, None, True), (0.0, False, None, True),
    (1.0, False, None, True), (0.5, False, "embeddings", True), (0.5, False, "activity", False)])
def test_sequential_embedding_then_dropout_in_one_pass(rng, threads, dtype, p, mask_zero,
                                                       regularizer, fused):
    """Sequential runs Embedding -> Dropout as one lookup-and-drop pass (``forward_dropped``)
    and their backwards as one drop-and-add pass (``backward_dropped``): bitwise the outputs,
    masks, generator draws and gradients (the embeddings regularizer's included) of the two
    layers called one after the other, in training and in eval mode, at 1 and 3 threads; an
    Embedding with an activity regularizer (on the rows before the dropout) is not fused."""
    from rnnfast.models import Sequential
    from rnnfast.models import layers as L

    def build():
        return Sequential([L.Embedding(40, 13, mask_zero=mask_zero, seed=1, dtype=dtype,
                                       embeddings_regularizer="l2" if regularizer == "embeddings"
                                       else None,
                                       activity_regularizer="l2" if regularizer == "activity"
                                       else None),
                           L.Dropout(p, seed=2), L.LSTM(5, seed=3, dtype=dtype),
                           L.Dense(2, seed=4, dtype=dtype)])
    x = rng.integers(1, 40, (6, 9))
    if mask_zero:
        x[:2, -3:] = 0  # post-padding
    dy = rng.standard_normal((6, 2))
    for t in (1, 3):
        rnnfast.set_num_threads(t)
        model_fused, model_plain = build(), build()
        assert (model_fused._dropout_after(0) is not None) is fused
        for training in (True, False):
            got = _embedding_dropout_run(model_fused, x, dy, True, training)
            want = _embedding_dropout_run(model_plain, x, dy, False, training)
            for a, b in zip(got[0], want[0]):
                np.testing.assert_array_equal(a, b)
            for a, b in zip(got[1], want[1]):
                assert (a is None and b is None) or np.array_equal(a, b)
            assert set(got[2]) == set(want[2])
            for name in want[2]:
                np.testing.assert_array_equal(got[2][name], want[2][name], err_msg=name)
        assert model_fused.layers[1].rng.integers(2 ** 62) == model_plain.layers[1].rng.integers(
            2 ** 62)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_dropped_reads_only_its_own_forwards_mask(rng, threads, dtype):
    """``Embedding.forward_dropped`` keeps the dropout's mask as bits for ``backward_dropped``;
    a backward called twice, after another fused forward, after the Dropout's own forward (a
    new seed), after a forward without the dropout or with the rate changed gives what the
    mask drawn from the Dropout's current seed and rate gives (np.add.at of the reference
    dropout), never a stale mask."""
    from rnnfast import nn
    from rnnfast.reference import dropout as reference_dropout
    emb = nn.Embedding(30, 11, seed=0, dtype=dtype)
    drop = nn.Dropout(0.4, seed=1)
    x1, x2 = rng.integers(0, 30, (4, 7)), rng.integers(0, 30, (4, 7))
    x1[0, 0], x2[-1, -1] = 0, 29
    dy = rng.standard_normal((4, 7, 11)).astype(dtype)

    def want(x, start=None):
        seed = drop._saved()[0]
        out = np.zeros((30, 11), dtype) if start is None else start.copy()
        np.add.at(out, x.reshape(-1), reference_dropout(dy, drop.p, seed).reshape(-1, 11))
        return out

    def backward():
        emb.weight.grad = None
        emb.backward_dropped(dy, drop)
        return emb.weight.grad

    for t in (1, 2):
        rnnfast.set_num_threads(t)
        drop.p = 0.4
        y = emb.forward_dropped(x1, drop)
        seed = drop._saved()[0]
        np.testing.assert_array_equal(
            y, reference_dropout(emb.weight.data[x1], drop.p, seed))
        kept = emb._saved()[1]  # (seed, p, bits): the bits are the reference's mask
        assert kept[:2] == (seed, 0.4)
        np.testing.assert_array_equal(kept[2], np.packbits(
            reference_dropout(np.ones(y.size, dtype), 0.4, seed) != 0, bitorder="little"))
        once = backward().copy()
        np.testing.assert_array_equal(once, want(x1))
        emb.backward_dropped(dy, drop)  # twice: accumulated, the same mask
        np.testing.assert_array_equal(emb.weight.grad, want(x1, once))
        emb.forward_dropped(x2, drop)  # another fused forward: its own mask
        np.testing.assert_array_equal(backward(), want(x2))
        drop.forward(np.ones((4, 7, 11), dtype))  # the Dropout alone: a new seed
        assert drop._saved()[0] != emb._saved()[1][0]
        np.testing.assert_array_equal(backward(), want(x2))
        emb.forward_dropped(x1, drop)
        emb.forward(x2)  # without the dropout: nothing kept, the Dropout's seed drawn again
        assert emb._saved()[1] is None
        np.testing.assert_array_equal(backward(), want(x2))
        emb.forward_dropped(x1, drop)
        drop.p = 0.7  # another rate than the kept bits'
        np.testing.assert_array_equal(backward(), want(x1))
