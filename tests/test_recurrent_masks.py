"""The zoneout and recurrent dropout masks (rnnfast._masks.recurrent_masks, drawn by the C++
kernel; rnnfast.reference.recurrent_masks, the same rule in NumPy): kernel == reference bit for
bit over ops, shapes, seeds, rates, both dtypes and thread counts 1/2/3; the rule itself written
out with Python ints; the rates; each mask's own stream; reproducibility; the functional forwards
use the kernel's masks; bad arguments."""
import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from rnnfast import functional as F
from rnnfast import reference as R
from rnnfast._masks import recurrent_masks as kernel_masks

MASK64 = 2 ** 64 - 1


def _splitmix64(seed, j):
    """SplitMix64's output j from seed, in Python ints (independent of the NumPy reference)."""
    z = (seed + (j + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _bits(seed, i):
    z = _splitmix64(seed, i // 2)
    return (z >> 32) if i % 2 else (z & 0xFFFFFFFF)


SIZES = [  # (op, T, B, H, proj_size)
    ("lstm", 1, 1, 1, None), ("lstm", 3, 5, 7, None), ("lstm", 4, 3, 9, 5),
    ("gru", 2, 1, 17, None), ("rnn", 5, 2, 3, None), ("layer_norm_lstm", 2, 3, 33, None),
    ("layer_norm_gru", 1, 4, 65, None), ("lstm", 7, 33, 129, 65), ("gru", 0, 3, 4, None),
    ("lstm", 2, 0, 4, None), ("rnn", 3, 2, 0, None),
]
SEEDS = [0, 1, 12345, 2 ** 63, 2 ** 64 - 1]
RATES = [(0.25, 0.0), (0.0, 0.3), (0.5, 0.5), (1e-9, 0.999999), (0.999999, 1e-9)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("rates", RATES, ids=str)
def test_kernel_equals_reference(size, rates, dtype):
    op, T, B, H, P = size
    zoneout, recurrent_dropout = rates
    for seed in SEEDS:
        kw = dict(proj_size=P, zoneout=zoneout, recurrent_dropout=recurrent_dropout, seed=seed,
                  dtype=dtype)
        got, want = kernel_masks(op, T, B, H, **kw), R.recurrent_masks(op, T, B, H, **kw)
        assert set(got) == set(want) and got
        for name in want:
            assert got[name].dtype == want[name].dtype == dtype
            assert got[name].shape == want[name].shape
            assert got[name].flags.c_contiguous
            np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [1, 3, 70, 300])
def test_same_masks_at_any_thread_count(T, dtype, threads):
    # T = 300: 300 * 32 * 65 values per mask, several work items each across the threads
    kw = dict(proj_size=65, zoneout=0.2, recurrent_dropout=0.3, seed=77, dtype=dtype)
    runs = []
    for t in (1, 2, 3):
        rnnfast.set_num_threads(t)
        runs.append(kernel_masks("lstm", T, 32, 96, **kw))
    want = R.recurrent_masks("lstm", T, 32, 96, **kw)
    for run in runs:
        assert set(run) == set(want)
        for name in want:
            np.testing.assert_array_equal(run[name], want[name])


def test_the_rule_written_out_with_python_ints():
    """Mask k has the seed splitmix64(seed, k); element i draws 32 bits of output i // 2 of that
    seed's sequence (low half for even i); zoneout keeps below ceil(p * 2**32), recurrent dropout
    keeps (1 / (1 - p)) at or above it. The first outputs of SplitMix64 from 1234567 are its
    published sequence."""
    assert [_splitmix64(1234567, j) for j in range(3)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423]
    seed, zoneout, rate = 987654321987654321, 0.3, 0.4
    for dtype in (np.float32, np.float64):
        masks = kernel_masks("lstm", 3, 2, 5, proj_size=3, zoneout=zoneout,
                             recurrent_dropout=rate, seed=seed, dtype=dtype)
        for k, name in enumerate(("zoneout_h", "zoneout_c", "recurrent")):
            s_k = _splitmix64(seed, k)
            flat = masks[name].reshape(-1)
            for i, value in enumerate(flat.tolist()):
                u = _bits(s_k, i)
                if name == "recurrent":
                    want = float(dtype(1.0 / (1.0 - rate))) if u >= int(np.ceil(rate * 2 ** 32)) \
                        else 0.0
                else:
                    want = 1.0 if u < int(np.ceil(zoneout * 2 ** 32)) else 0.0
                assert value == want, (name, i)


def test_rates_and_layouts():
    masks = kernel_masks("lstm", 60, 40, 50, proj_size=20, zoneout=0.3, recurrent_dropout=0.25,
                         seed=5)
    assert masks["zoneout_h"].shape == (60, 40, 20)
    assert masks["zoneout_c"].shape == (60, 40, 50)
    assert masks["recurrent"].shape == (4, 40, 20)
    for name in ("zoneout_h", "zoneout_c"):
        assert set(np.unique(masks[name])) == {0.0, 1.0}
        n = masks[name].size
        # within 5 standard deviations of the rate
        assert abs(masks[name].mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
    rec = masks["recurrent"]
    assert set(np.unique(rec)) == {0.0, 1.0 / 0.75}
    assert abs((rec == 0).mean() - 0.25) < 5 * np.sqrt(0.25 * 0.75 / rec.size)
    # independent per gate, per step, and between h and c
    assert not np.array_equal(rec[0], rec[1])
    assert not np.array_equal(masks["zoneout_h"][0], masks["zoneout_h"][1])
    assert not np.array_equal(masks["zoneout_h"], masks["zoneout_c"][..., :20])
    # the 32-bit threshold: a tiny rate keeps no unit, one near 1 keeps every unit
    tiny = kernel_masks("gru", 50, 50, 50, zoneout=1e-12, seed=3)["zoneout_h"]
    assert tiny.sum() == 0
    high = kernel_masks("gru", 50, 50, 50, zoneout=1 - 1e-12, recurrent_dropout=1 - 1e-12, seed=3)
    assert high["zoneout_h"].min() == 1.0 and high["recurrent"].max() == 0.0


def test_each_mask_has_its_own_stream():
    """A mask does not depend on which other masks are drawn, nor on their sizes."""
    both = kernel_masks("lstm", 4, 3, 6, zoneout=0.5, recurrent_dropout=0.5, seed=11)
    zone = kernel_masks("lstm", 4, 3, 6, zoneout=0.5, seed=11)
    drop = kernel_masks("lstm", 4, 3, 6, recurrent_dropout=0.5, seed=11)
    for name in ("zoneout_h", "zoneout_c"):
        np.testing.assert_array_equal(both[name], zone[name])
    np.testing.assert_array_equal(both["recurrent"], drop["recurrent"])
    longer = kernel_masks("lstm", 9, 3, 6, zoneout=0.5, recurrent_dropout=0.5, seed=11)
    np.testing.assert_array_equal(longer["zoneout_h"][:4], both["zoneout_h"])
    np.testing.assert_array_equal(longer["recurrent"], both["recurrent"])
    gru = kernel_masks("gru", 4, 3, 6, zoneout=0.5, seed=11)
    np.testing.assert_array_equal(gru["zoneout_h"], both["zoneout_h"])


def test_reproducible_by_seed_fresh_without():
    kw = dict(zoneout=0.5, recurrent_dropout=0.5)
    a = kernel_masks("lstm", 5, 4, 8, seed=3, **kw)
    b = kernel_masks("lstm", 5, 4, 8, seed=np.uint64(3), **kw)
    c = kernel_masks("lstm", 5, 4, 8, seed=4, **kw)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])
    d = kernel_masks("lstm", 5, 4, 8, **kw)
    e = kernel_masks("lstm", 5, 4, 8, **kw)
    assert not np.array_equal(d["zoneout_h"], e["zoneout_h"])
    assert kernel_masks("lstm", 5, 4, 8) == {} == R.recurrent_masks("lstm", 5, 4, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_functional_forward_draws_the_kernels_masks(op, dtype, rng):
    """A training forward with a seed uses the masks recurrent_masks gives for it (in x's
    dtype, no float64 copy): the results of the forward given those masks."""
    G = {"rnn": 1, "lstm": 4, "gru": 3}[op]
    T, B, I, H = 4, 3, 5, 6
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w_ih = rng.standard_normal((G * H, I)).astype(dtype)
    w_hh = rng.standard_normal((G * H, H)).astype(dtype)
    fw = getattr(F, f"{op}_forward")
    kw = dict(zoneout=0.3, recurrent_dropout=0.2, training=True)
    seeded = fw(x, w_ih, w_hh, seed=21, **kw)
    masks = R.recurrent_masks(op, T, B, H, zoneout=0.3, recurrent_dropout=0.2, seed=21,
                              dtype=dtype)
    given = fw(x, w_ih, w_hh, masks=masks, **kw)
    np.testing.assert_array_equal(seeded[0], given[0])
    other = fw(x, w_ih, w_hh, seed=22, **kw)
    assert not np.array_equal(seeded[0], other[0])


BAD = [
    (dict(op="lstmp"), ValueError, "op: expected one of"),
    (dict(T=-1), ValueError, "T: expected an int >= 0, got -1"),
    (dict(B=2.0), TypeError, "B: expected an int >= 0, got float"),
    (dict(proj_size=True), TypeError, "proj_size: expected an int >= 0, got bool"),
    (dict(zoneout=1.0), ValueError, r"zoneout: expected a float in \[0, 1\), got 1.0"),
    (dict(recurrent_dropout="0.1"), TypeError,
     r"recurrent_dropout: expected a float in \[0, 1\), got str"),
    (dict(seed=-1), ValueError, r"seed: expected an int in 0..2\*\*64-1 or None, got -1"),
    (dict(seed=2 ** 64), ValueError, r"seed: expected an int in 0..2\*\*64-1 or None, got"),
    (dict(seed=1.5), TypeError, r"seed: expected an int in 0..2\*\*64-1 or None, got float"),
    (dict(seed=True), TypeError, r"seed: expected an int in 0..2\*\*64-1 or None, got bool"),
    (dict(seed=[1, 2]), TypeError, r"seed: expected an int in 0..2\*\*64-1 or None, got list"),
    (dict(dtype=np.int32), TypeError, "dtype: expected float32 or float64, got int32"),
    (dict(dtype="bfloat"), TypeError, "dtype: expected float32 or float64, got 'bfloat'"),
]


@pytest.mark.parametrize("impl", [kernel_masks, R.recurrent_masks], ids=["kernel", "reference"])
@pytest.mark.parametrize("bad,error,match", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_arguments_give_clear_errors(impl, bad, error, match):
    args = dict(op="lstm", T=2, B=3, H=4, zoneout=0.2, recurrent_dropout=0.2, seed=1)
    args.update(bad)
    with pytest.raises(error, match=match):
        impl(args.pop("op"), args.pop("T"), args.pop("B"), args.pop("H"), **args)


def test_binding_draws_given_shapes():
    zh, zc, rec = _C.recurrent_masks((2, 3), None, [4], zoneout=0.5, recurrent_dropout=0.5,
                                     seed=9, dtype="float32")
    assert zh.shape == (2, 3) and zc is None and rec.shape == (4,)
    assert zh.dtype == rec.dtype == np.float32
    empty = _C.recurrent_masks((0, 5), (), None, zoneout=0.0, recurrent_dropout=0.0, seed=0,
                               dtype="float64")
    assert empty[0].shape == (0, 5) and empty[1].shape == () and empty[2] is None
    assert empty[1] == 0.0  # zoneout 0 keeps nothing
    assert _C.recurrent_masks(None, None, (3,), zoneout=0.0, recurrent_dropout=0.0, seed=0,
                              dtype="float64")[2].tolist() == [1.0, 1.0, 1.0]
