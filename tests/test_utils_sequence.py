"""pad_sequences (Cython loop vs the pure-Python version and Keras' documented examples) and
to_categorical."""
import numpy as np
import pytest

from rnnfast.utils import pad_sequences, to_categorical
from rnnfast.utils import sequence as seqmod
from rnnfast.utils.sequence import pad_sequences_python

KERAS_EXAMPLE = [[1], [2, 3], [4, 5, 6]]


def test_the_cython_loop_is_built():
    assert seqmod._padding is not None


@pytest.mark.parametrize("impl", [pad_sequences, pad_sequences_python])
def test_keras_documented_examples(impl):
    out = impl(KERAS_EXAMPLE)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(impl(KERAS_EXAMPLE, value=-1),
                                  [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(impl(KERAS_EXAMPLE, padding="post"),
                                  [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(impl(KERAS_EXAMPLE, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(impl(KERAS_EXAMPLE, maxlen=2, truncating="post"),
                                  [[0, 1], [2, 3], [4, 5]])


def test_reuters_style_padding(rng):
    articles = [list(rng.integers(1, 1000, n)) for n in (87, 100, 250, 3)]
    out = pad_sequences(articles, maxlen=100)
    assert out.shape == (4, 100) and out.dtype == np.int32
    np.testing.assert_array_equal(out[0, 13:], articles[0])
    assert np.all(out[0, :13] == 0)
    np.testing.assert_array_equal(out[2], articles[2][-100:])
    np.testing.assert_array_equal(out[3, -3:], articles[3])


def _random_case(rng):
    count = int(rng.integers(0, 12))
    seqs = []
    for _ in range(count):
        n = int(rng.integers(0, 9))
        kind = rng.integers(0, 6)
        values = rng.integers(-5, 300, n)
        if kind == 0:
            seqs.append(values.tolist())
        elif kind == 1:
            seqs.append(tuple(values.tolist()))
        elif kind == 2:
            seqs.append(values.astype(np.int64))
        elif kind == 3:
            seqs.append((values + 0.75).tolist())  # floats: truncated into int outputs
        elif kind == 4:
            seqs.append([bool(v % 2) for v in values])
        else:
            seqs.append(list(np.int64(v) for v in values))
    return seqs


def outcome(impl, *args, **kw):
    """The result of impl, or the type and message of what it raised."""
    try:
        return impl(*args, **kw)
    except (ValueError, TypeError, OverflowError) as exc:
        return type(exc), str(exc)


def assert_same_outcome(*args, **kw):
    want = outcome(pad_sequences_python, *args, **kw)
    got = outcome(pad_sequences, *args, **kw)
    if isinstance(want, tuple):
        assert got == want
    else:
        assert isinstance(got, np.ndarray), got
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    return want


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64", "uint8", "int16"])
def test_cython_matches_python_on_random_ragged_lists(rng, dtype):
    results = []
    for _ in range(60):
        seqs = _random_case(rng)
        kw = dict(dtype=dtype, padding=str(rng.choice(["pre", "post"])),
                  truncating=str(rng.choice(["pre", "post"])),
                  value=float(rng.choice([0, -1, 2.5])))
        kw["maxlen"] = None if rng.random() < 0.3 or not seqs else int(rng.integers(0, 11))
        if not seqs and kw["maxlen"] is None:
            kw["maxlen"] = 3
        results.append(assert_same_outcome(seqs, **kw))
    assert sum(isinstance(r, np.ndarray) for r in results) > 20


def test_cython_matches_python_on_edge_values():
    rows = [[[2 ** 31 - 1, -(2 ** 31)]], [[2 ** 31]], [[2 ** 63 - 1]], [[2 ** 70]],
            [[1.5e300, -2.0]], [[float("inf"), float("nan")]], [[True, 3]], [["7", 1]]]
    for dtype in ("int32", "int64", "float64"):
        for seqs in rows:
            assert_same_outcome(seqs, dtype=dtype)
    np.testing.assert_array_equal(pad_sequences(rows[0]), [[2 ** 31 - 1, -2 ** 31]])
    with pytest.raises(OverflowError):
        pad_sequences([[2 ** 31]], dtype="int32")
    with pytest.raises(OverflowError):
        pad_sequences([[2 ** 70]], dtype="int64")
    with pytest.raises(RuntimeWarning, match="overflow"):
        pad_sequences([[1e300]], dtype="float32")


def test_nested_and_object_sequences():
    feats = [[[1, 2], [3, 4]], [[5, 6]], []]
    out = pad_sequences(feats, padding="post", dtype="float32")
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[1], [[5, 6], [0, 0]])
    words = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["a", "b"], ["<pad>", "c"]]
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    assert pad_sequences([], maxlen=4).shape == (0, 4)


@pytest.mark.parametrize("impl", [pad_sequences, pad_sequences_python])
def test_pad_sequences_bad_arguments(impl):
    with pytest.raises(ValueError, match='Padding type "middle" not understood'):
        impl(KERAS_EXAMPLE, padding="middle")
    with pytest.raises(ValueError, match='Truncating type "both" not understood'):
        impl(KERAS_EXAMPLE, truncating="both")
    with pytest.raises(ValueError, match="must be a list of iterables. Found non-iterable: 5"):
        impl([[1, 2], 5])
    with pytest.raises(ValueError, match="must be iterable"):
        impl(5)
    with pytest.raises(ValueError, match="Shape of sample"):
        impl([[1, 2], [[1, 2]]])
    with pytest.raises(ValueError, match="is not compatible with `value`"):
        impl(KERAS_EXAMPLE, value="x")
    with pytest.raises(TypeError, match="maxlen: expected an int"):
        impl(KERAS_EXAMPLE, maxlen=2.0)
    with pytest.raises(ValueError, match="maxlen: expected an int >= 0"):
        impl(KERAS_EXAMPLE, maxlen=-1)
    with pytest.raises(ValueError, match="give maxlen"):
        impl([])


def test_to_categorical():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), np.eye(3)[[0, 2, 1]])
    out = to_categorical(np.array([[1], [3]]), num_classes=5)
    assert out.shape == (2, 5) and out.dtype == np.float32
    assert to_categorical(np.zeros((2, 3), int), 4).shape == (2, 3, 4)
    assert to_categorical([1.0, 0.0], dtype="int64").dtype == np.int64
    with pytest.raises(ValueError, match="class labels must be < num_classes = 3"):
        to_categorical([3], 3)
    with pytest.raises(ValueError, match="class labels must be >= 0"):
        to_categorical([-1])
    with pytest.raises(ValueError, match="non-integer floats"):
        to_categorical([0.5])
    with pytest.raises(TypeError, match="expected integer class labels"):
        to_categorical(["a"])
