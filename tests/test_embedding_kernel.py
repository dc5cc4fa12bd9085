"""The embedding kernels (``_C.embedding_forward`` and ``_C.embedding_backward``, used by
``nn.Embedding`` and the Keras-style ``Embedding``) against NumPy (``np.take`` with the dropout
reference after it, ``np.add.at``): bitwise, for float32 and float64, odd widths, repeated
tokens, a padding index, every instruction set, any thread count; and their bad input."""
import numpy as np
import pytest

import rnnfast
from rnnfast import _C, nn
from rnnfast import reference as R


def reference(ids, dy, grad, padding_idx=None):
    """np.add.at(grad, ids, dy) on a copy, skipping padding_idx (in token order)."""
    out = grad.copy()
    keep = np.ones(ids.shape, bool) if padding_idx is None else ids != padding_idx
    np.add.at(out, ids[keep], dy[keep])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,dim,n", [(1, 1, 1), (7, 15, 33), (50, 17, 1000), (13, 33, 2049),
                                        (5000, 100, 10000), (3, 160, 401), (60000, 7, 5001)])
@pytest.mark.parametrize("padding_idx", [None, 0, 2])
def test_matches_add_at_bitwise_at_any_thread_count(rng, threads, dtype, rows, dim, n,
                                                    padding_idx):
    if padding_idx is not None:
        padding_idx = min(padding_idx, rows - 1)
    ids = rng.integers(0, min(rows, 9), n)  # few distinct ids: many repeats
    ids[: n // 2] = rng.integers(0, rows, n // 2)
    dy = rng.standard_normal((n, dim)).astype(dtype)
    grad0 = rng.standard_normal((rows, dim)).astype(dtype)  # accumulates onto what is there
    want = reference(ids, dy, grad0, padding_idx)
    want_new = reference(ids, dy, np.zeros_like(grad0), padding_idx)
    for t in (1, 2, 3):
        rnnfast.set_num_threads(t)
        got = grad0.copy()
        assert _C.embedding_backward(ids, dy, got, padding_idx=padding_idx) is None
        np.testing.assert_array_equal(got, want)
        got = np.full_like(grad0, np.nan)  # zero=True: grad's contents are not read
        _C.embedding_backward(ids, dy, got, padding_idx=padding_idx, zero=True)
        np.testing.assert_array_equal(got, want_new)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,dim,n", [(1, 1, 1), (7, 15, 33), (13, 33, 2049), (3, 160, 401),
                                        (5000, 100, 10000), (60000, 7, 5001)])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_backward_through_dropout_is_dropout_then_add_at(rng, threads, dtype, rows, dim, n,
                                                         padding_idx):
    """With p > 0, dy dropped as rnnfast.reference.dropout drops the whole (n, dim) array, then
    np.add.at: bitwise, odd widths (rows starting in the middle of a mask pair), one id holding
    a third of the tokens, a vocabulary much larger than the batch, every instruction set, 1 / 2
    / 3 threads."""
    ids = rng.integers(0, rows, n)
    ids[: n // 3] = 0  # a heavy id (the padding of pre-padded reviews)
    dy = rng.standard_normal((n, dim)).astype(dtype)
    grad0 = rng.standard_normal((rows, dim)).astype(dtype)
    isa = _C.active_isa()
    try:
        for p, seed in ((0.5, 77), (0.2, 2 ** 64 - 1)):
            want = reference(ids, R.dropout(dy, p, seed), grad0, padding_idx)
            want_new = reference(ids, R.dropout(dy, p, seed), np.zeros_like(grad0), padding_idx)
            for name in _C.supported_isas():
                _C.set_isa(name)
                for t in (1, 2, 3):
                    rnnfast.set_num_threads(t)
                    got = grad0.copy()
                    _C.embedding_backward(ids, dy, got, padding_idx=padding_idx, p=p, seed=seed)
                    np.testing.assert_array_equal(got, want)
                    got = np.full_like(grad0, np.nan)  # zero=True: every row cleared first
                    _C.embedding_backward(ids, dy, got, padding_idx=padding_idx, p=p, seed=seed,
                                          zero=True)
                    np.testing.assert_array_equal(got, want_new)
    finally:
        _C.set_isa(isa)


@pytest.mark.parametrize("id_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8,
                                      np.uint16, np.uint32, np.uint64])
def test_any_integer_ids_and_layouts(rng, id_dtype):
    ids = rng.integers(0, 20, 301).astype(id_dtype)
    dy = rng.standard_normal((301, 2 * 19)).astype(np.float32)[:, ::2]  # not contiguous
    grad = np.zeros((20, 19), np.float32)
    _C.embedding_backward(ids[::1], dy, grad)
    np.testing.assert_array_equal(grad, reference(ids.astype(np.int64), dy, np.zeros_like(grad)))
    got = np.zeros_like(grad)
    _C.embedding_backward(np.repeat(ids, 2)[::2], np.ascontiguousarray(dy), got)
    np.testing.assert_array_equal(got, grad)


def test_empty_and_overlapping():
    grad = np.ones((4, 3))
    _C.embedding_backward(np.zeros(0, np.int64), np.zeros((0, 3)), grad)
    np.testing.assert_array_equal(grad, 1)
    for p in (0.0, 0.5):  # no tokens, zero=True: all zeros
        _C.embedding_backward(np.zeros(0, np.int64), np.zeros((0, 3)), grad, p=p, zero=True)
        np.testing.assert_array_equal(grad, 0)
        grad[...] = 1
    # dy sharing grad's memory is read as it was before the call
    grad = np.arange(12.0).reshape(4, 3)
    want = reference(np.array([0, 0, 3]), grad[:3].copy(), grad)
    _C.embedding_backward(np.array([0, 0, 3]), grad[:3], grad)
    np.testing.assert_array_equal(grad, want)
    # and with zero=True, before grad is cleared
    grad = np.arange(12.0).reshape(4, 3)
    want = reference(np.array([0, 0, 3]), grad[:3].copy(), np.zeros_like(grad))
    _C.embedding_backward(np.array([0, 0, 3]), grad[:3], grad, zero=True)
    np.testing.assert_array_equal(grad, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,dim,shape", [(1, 1, (1,)), (7, 3, (5,)), (9, 17, (3, 11)),
                                            (4, 1, (7,)), (3, 5, ()), (50, 33, (0, 4)),
                                            (13, 31, (3, 200)), (5000, 100, (100, 100))])
def test_forward_is_take_then_dropout_bitwise(rng, threads, dtype, rows, dim, shape):
    """weight[ids] (p = 0) and its dropout (rnnfast.reference.dropout on np.take's rows) for
    odd widths (a row split between two mask pairs and between two threads' parts), every
    instruction set, 1 / 2 / 3 threads."""
    w = rng.standard_normal((rows, dim)).astype(dtype)
    w[0, 0] = np.nan  # dropped NaN stays NaN, as in the reference
    ids = rng.integers(0, rows, shape)
    rows_of = np.take(w, ids, axis=0)
    isa = _C.active_isa()
    try:
        for name in _C.supported_isas():
            _C.set_isa(name)
            for t in (1, 2, 3):
                rnnfast.set_num_threads(t)
                got = _C.embedding_forward(ids, w)
                assert got.shape == ids.shape + (dim,) and got.dtype == dtype
                np.testing.assert_array_equal(got, rows_of)
                for p, seed in ((0.5, 12345), (0.1, 2 ** 64 - 1), (0.999, 0)):
                    np.testing.assert_array_equal(_C.embedding_forward(ids, w, p, seed),
                                                  R.dropout(rows_of, p, seed))
    finally:
        _C.set_isa(isa)


def kept_bits(n, p, seed, dtype):
    """The reference dropout's mask over n elements as keep= bits (bit e % 8 of byte e // 8)."""
    return np.packbits(R.dropout(np.ones(n, dtype), p, seed) != 0, bitorder="little")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,dim,shape", [(1, 1, (1,)), (7, 3, (5,)), (9, 17, (3, 11)),
                                            (4, 1, (7,)), (3, 5, ()), (6, 15, (1,)),
                                            (13, 31, (3, 200)), (5000, 100, (100, 100)),
                                            (60000, 7, (5001,))])
def test_forward_keeps_the_mask_as_bits_and_backward_reads_them(rng, threads, dtype, rows, dim,
                                                                shape):
    """embedding_forward(..., keep=) fills keep with the dropout's mask as little-endian bits
    (the reference's kept elements, np.packbits), leaving y unchanged; embedding_backward(...,
    keep=) with those bits is bitwise the backward that draws the mask from the seed and
    np.add.at of the reference dropout, with and without zero and padding_idx: odd widths
    (rows starting anywhere in a byte), one row, ids 0 and rows - 1, a heavy id, p near 0 and
    1, every instruction set, 1 / 2 / 3 threads."""
    w = rng.standard_normal((rows, dim)).astype(dtype)
    ids = rng.integers(0, rows, shape)
    flat = ids.reshape(-1)
    if flat.size >= 3:
        flat[:flat.size // 3] = 0  # a heavy id (pre-padding)
        flat[-1] = rows - 1
    n = ids.size * dim
    dy = rng.standard_normal((ids.size, dim)).astype(dtype)
    dy[::3, ::2] = -0.0  # signed zeros: 0 + (-0) is +0, as a cleared row gets it
    grad0 = rng.standard_normal((rows, dim)).astype(dtype)
    isa = _C.active_isa()
    try:
        for p, seed in ((0.5, 12345), (1e-6, 2 ** 64 - 1), (0.999, 0), (0.37, 9)):
            bits = kept_bits(n, p, seed, dtype)
            y_want = R.dropout(np.take(w, ids, axis=0), p, seed)
            dropped = R.dropout(dy, p, seed)
            for name in _C.supported_isas():
                _C.set_isa(name)
                for t in (1, 2, 3):
                    rnnfast.set_num_threads(t)
                    keep = np.full((n + 7) // 8, 0xA5, np.uint8)  # every byte written
                    np.testing.assert_array_equal(
                        _C.embedding_forward(ids, w, p, seed, keep=keep), y_want)
                    np.testing.assert_array_equal(keep, bits)
                    for padding_idx in (None, 0):
                        want = reference(flat, dropped, grad0, padding_idx)
                        got = grad0.copy()
                        _C.embedding_backward(flat, dy, got, padding_idx=padding_idx, p=p,
                                              seed=seed, keep=keep)
                        np.testing.assert_array_equal(got, want)
                        want = reference(flat, dropped, np.zeros_like(grad0), padding_idx)
                        got = np.full_like(grad0, np.nan)
                        _C.embedding_backward(flat, dy, got, padding_idx=padding_idx, p=p,
                                              seed=seed, zero=True, keep=keep)
                        np.testing.assert_array_equal(got, want)
                        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    finally:
        _C.set_isa(isa)


@pytest.mark.parametrize("dim", [1, 16, 23, 100])
def test_backward_reads_the_given_bits_not_the_seed(rng, threads, dim):
    """The backward drops dy by keep's bits (here every other element and then none), whatever
    the seed would draw; the keep array is only read (also where it aliases grad's bytes)."""
    ids = rng.integers(0, 9, 301)
    dy = rng.standard_normal((301, dim)).astype(np.float32)
    n = dy.size
    every_other = (np.arange(n) % 2 == 0)
    isa = _C.active_isa()
    try:
        for name in _C.supported_isas():
            _C.set_isa(name)
            for t in (1, 2):
                rnnfast.set_num_threads(t)
                for kept in (every_other, np.ones(n, bool), np.zeros(n, bool)):
                    keep = np.packbits(kept, bitorder="little")
                    before = keep.copy()
                    scale = np.float32(1) / np.float32(1 - 0.25)
                    want = reference(ids, dy * np.where(kept, scale, np.float32(0)).reshape(
                        dy.shape), np.zeros((9, dim), np.float32))
                    got = np.empty((9, dim), np.float32)
                    _C.embedding_backward(ids, dy, got, p=0.25, seed=3, zero=True, keep=keep)
                    np.testing.assert_array_equal(got, want)
                    np.testing.assert_array_equal(keep, before)
    finally:
        _C.set_isa(isa)
    # keep inside grad's memory: read as it was before the call
    grad = np.zeros((4, 8), np.float32)
    bits = grad.reshape(-1).view(np.uint8)[:1]  # the lowest byte of grad[0, 0]
    bits[0] = 0b10110011
    want = reference(np.array([0]), np.array([[1, 1, 0, 0, 1, 1, 0, 1]], np.float32) * 2,
                     grad.copy())
    _C.embedding_backward(np.array([0]), np.ones((1, 8), np.float32), grad, p=0.5, keep=bits)
    np.testing.assert_array_equal(grad, want)


@pytest.mark.parametrize("id_dtype", [np.int8, np.uint16, np.int32, np.uint64])
def test_forward_ids_and_weight_layouts(rng, id_dtype):
    w = rng.standard_normal((20, 2 * 19)).astype(np.float32)[:, ::2]  # not contiguous
    ids = rng.integers(0, 20, (6, 2 * 7)).astype(id_dtype)[:, ::2]
    np.testing.assert_array_equal(_C.embedding_forward(ids, w, 0.3, 5),
                                  R.dropout(np.take(w, ids.astype(np.int64), axis=0), 0.3, 5))
    np.testing.assert_array_equal(_C.embedding_forward(ids.tolist(), w), w[ids.astype(np.int64)])


def f32(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("call,error,message", [
    (lambda: _C.embedding_backward(np.array([5]), f32(1, 3), f32(5, 3)), ValueError,
     r"ids: every entry must be in 0..4 \(the rows of grad\), got 5 at index 0"),
    (lambda: _C.embedding_backward(np.array([0, -1]), f32(2, 3), f32(5, 3)), ValueError,
     "ids: every entry must be in 0..4 .* got -1 at index 1"),
    (lambda: _C.embedding_backward(np.array([2 ** 64 - 1], np.uint64), f32(1, 3), f32(5, 3)),
     ValueError, "got 18446744073709551615 at index 0"),
    (lambda: _C.embedding_backward(np.array([0.0]), f32(1, 3), f32(5, 3)), TypeError,
     "ids: expected an integer array, got dtype float64"),
    (lambda: _C.embedding_backward("a", f32(1, 3), f32(5, 3)), TypeError,
     "ids: expected an integer array"),
    (lambda: _C.embedding_backward(np.zeros((1, 1), np.int64), f32(1, 3), f32(5, 3)),
     ValueError, "ids: expected a 1-D array, got shape"),
    (lambda: _C.embedding_backward(np.array([0]), f32(2, 3), f32(5, 3)), ValueError,
     r"dy: expected shape \(ids.size, grad.shape\[1\]\) = \(1, 3\), got \(2, 3\)"),
    (lambda: _C.embedding_backward(np.array([0]), np.zeros((1, 3)), f32(5, 3)), TypeError,
     "dy: expected dtype float32 \\(the dtype of grad\\), got float64"),
    (lambda: _C.embedding_backward(np.array([0]), np.zeros((1, 3), np.int32), f32(5, 3)),
     TypeError, "dy: expected a float32 or float64 array"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3, 1)), ValueError,
     "grad: expected a 2-D array"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), [[0.0] * 3] * 5), TypeError,
     "grad: expected a NumPy array"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(3, 5).T), ValueError,
     "grad: expected a writeable, aligned, C-contiguous array"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), np.zeros((5, 3), ">f4")),
     ValueError,
     "grad: expected a writeable, aligned, C-contiguous array in native byte order"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), padding_idx=5),
     ValueError, r"padding_idx: expected None or an int in 0..4 \(the rows of grad\), got 5"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), padding_idx=-1),
     ValueError, "padding_idx: expected an int >= 0, got -1"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), padding_idx=1.5),
     TypeError, "padding_idx: expected an int"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), p=1.0), ValueError,
     r"p: expected a float in \[0, 1\) \(0: no dropout\), got 1.0"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), p=-0.5), ValueError,
     r"p: expected a float in \[0, 1\)"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), p=0.5, seed=2 ** 64),
     ValueError, r"seed: expected an int in 0..2\*\*64-1"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), p=0.5, seed=None),
     TypeError, r"seed: expected an int in 0..2\*\*64-1"),
    (lambda: _C.embedding_forward(np.array([[0, 5]]), f32(5, 3)), ValueError,
     r"ids: every entry must be in 0..4 \(the rows of weight\), got 5 at index 1"),
    (lambda: _C.embedding_forward(np.array([-1]), f32(5, 3)), ValueError,
     "ids: every entry must be in 0..4 .* got -1 at index 0"),
    (lambda: _C.embedding_forward(np.array([2 ** 64 - 1], np.uint64), f32(5, 3)),
     ValueError, "got 18446744073709551615 at index 0"),
    (lambda: _C.embedding_forward(np.array([0.0]), f32(5, 3)), TypeError,
     "ids: expected an integer array, got dtype float64"),
    (lambda: _C.embedding_forward(np.array([0]), f32(5, 3, 1)), ValueError,
     "weight: expected a 2-D array"),
    (lambda: _C.embedding_forward(np.array([0]), np.zeros((5, 3), np.int32)), TypeError,
     "weight: expected a float32 or float64 array"),
    (lambda: _C.embedding_forward(np.array([0]), f32(0, 3)), ValueError,
     "ids: every entry must be in 0..-1"),
    (lambda: _C.embedding_forward(np.array([0]), f32(5, 3), 1.0, 0), ValueError,
     r"p: expected a float in \[0, 1\) \(0: no dropout\), got 1.0"),
    (lambda: _C.embedding_forward(np.array([0]), f32(5, 3), float("nan"), 0), ValueError,
     r"p: expected a float in \[0, 1\)"),
    (lambda: _C.embedding_forward(np.array([0]), f32(5, 3), 0.5, -1), ValueError,
     r"seed: expected an int in 0..2\*\*64-1, got -1"),
    (lambda: _C.embedding_forward(np.array([0]), f32(5, 3), 0.5, 1.5), TypeError,
     r"seed: expected an int in 0..2\*\*64-1, got"),
    (lambda: _C.embedding_forward(np.array([0, 1]), f32(5, 3), 0.5, 1, keep=[0]), TypeError,
     "keep: expected None or a uint8 NumPy array .*, got <class 'list'>"),
    (lambda: _C.embedding_forward(np.array([0, 1]), f32(5, 3), 0.5, 1, keep=np.zeros(1, np.int8)),
     TypeError, "keep: expected a uint8 array, got dtype int8"),
    (lambda: _C.embedding_forward(np.array([0, 1]), f32(5, 3), 0.5, 1,
                                  keep=np.zeros((1, 1), np.uint8)),
     ValueError, "keep: expected a 1-D array"),
    (lambda: _C.embedding_forward(np.array([0, 1]), f32(5, 3), 0.5, 1, keep=np.zeros(2, np.uint8)),
     ValueError, r"keep: expected 1 bytes \(one bit per element of dy or y: \(ids.size \* dim "
     r"\+ 7\) // 8\), got 2"),
    (lambda: _C.embedding_forward(np.array([0, 1, 2]), f32(5, 3), 0.5, 1,
                                  keep=np.zeros(4, np.uint8)[::2]),
     ValueError, "keep: expected a writeable, C-contiguous array, got another layout"),
    (lambda: _C.embedding_forward(np.array([0, 1]), f32(5, 3), 0.0, 1, keep=np.zeros(1, np.uint8)),
     ValueError, r"keep: needs a dropout \(p > 0\), got p = 0"),
    (lambda: (lambda w: _C.embedding_forward(np.array([0, 1]), w, 0.5, 1,
                                             keep=w.reshape(-1).view(np.uint8)[:1]))(f32(5, 3)),
     ValueError, "keep: shares memory with weight or ids"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), p=0.5, keep=[1]),
     TypeError, "keep: expected None or a uint8 NumPy array"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), p=0.5,
                                   keep=np.zeros(1, np.float32)),
     TypeError, "keep: expected a uint8 array, got dtype float32"),
    (lambda: _C.embedding_backward(np.array([0] * 3), f32(3, 3), f32(5, 3), p=0.5,
                                   keep=np.zeros(1, np.uint8)),
     ValueError, r"keep: expected 2 bytes .*, got 1"),
    (lambda: _C.embedding_backward(np.array([0] * 3), f32(3, 3), f32(5, 3), p=0.5,
                                   keep=np.zeros(4, np.uint8)[::2]),
     ValueError, "keep: expected a C-contiguous array, got another layout"),
    (lambda: _C.embedding_backward(np.array([0]), f32(1, 3), f32(5, 3), keep=np.zeros(1, np.uint8)),
     ValueError, r"keep: needs a dropout \(p > 0\), got p = 0"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_read_only_keep_is_refused_by_the_forward_only():
    keep = np.zeros(1, np.uint8)
    keep.setflags(write=False)
    with pytest.raises(ValueError, match="keep: expected a writeable, C-contiguous array, got a "
                                         "read-only one"):
        _C.embedding_forward(np.array([0, 1]), f32(5, 3), 0.5, 1, keep=keep)
    grad = f32(5, 3)
    _C.embedding_backward(np.array([0, 1]), np.ones((2, 3), np.float32), grad, p=0.5, keep=keep)
    np.testing.assert_array_equal(grad, 0)  # every element dropped by the bits


def test_read_only_grad_is_refused():
    grad = f32(5, 3)
    grad.setflags(write=False)
    with pytest.raises(ValueError, match="grad: expected a writeable.* got a read-only one"):
        _C.embedding_backward(np.array([0]), f32(1, 3), grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_gradient_is_add_at_and_accumulates(rng, threads, dtype):
    """nn.Embedding's backward: np.add.at's values, summed over calls, the padding row
    skipped, at any thread count; a read-only gradient set from outside is not written."""
    emb = nn.Embedding(30, 21, padding_idx=4, dtype=dtype, seed=0)
    x = rng.integers(0, 30, (7, 11))
    x[0, :5] = 4
    dys = [rng.standard_normal((7, 11, 21)).astype(dtype) for _ in range(2)]
    want = np.zeros((30, 21), dtype)
    for dy in dys:
        want = reference(x.reshape(-1), dy.reshape(-1, 21), want, 4)
    for t in (1, 3):
        rnnfast.set_num_threads(t)
        emb.weight.grad = None
        for dy in dys:
            emb(x)
            emb.backward(dy)
        np.testing.assert_array_equal(emb.weight.grad, want)
        assert not emb.weight.grad[4].any()
    frozen = np.zeros((30, 21), dtype)
    frozen.setflags(write=False)
    emb.weight.grad = frozen
    emb(x)
    emb.backward(dys[0])
    assert not frozen.any()
    np.testing.assert_array_equal(emb.weight.grad, reference(x.reshape(-1), dys[0].reshape(-1, 21),
                                                             np.zeros((30, 21), dtype), 4))
