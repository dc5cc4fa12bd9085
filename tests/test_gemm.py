"""The package's GEMM and packed GEMM against NumPy float64.

Every instruction set this machine supports (forced with ``_C.set_isa``), every transpose
combination, sizes that are not multiples of any tile, K = 0, alpha and beta, strided rows;
results bitwise identical across thread counts and runs.

The error bound is the classical one of a dot product of length K, elementwise:
``|got - want| <= (K + 4) * eps * (|alpha| |op(A)| |op(B)| + |beta| |C|)``, which any correct
summation order meets and a missing or wrong term breaks.
"""
import time

import numpy as np
import pytest

import rnnfast
from rnnfast import _C

ISAS = rnnfast.supported_isas()
DTYPES = [np.float32, np.float64]

# (M, N, K): ones, primes, tile edges +-1, K beyond every depth block (384), N beyond a B block
# (512; 1024 for AVX-512 float), M beyond the in-place limit of A (4 row tiles), and M beyond the
# rows of a transposed A packed at a time (4096). AVX-512 float runs a K of up to 512 as one
# block, up to 1024 as two (512 columns wide at depth 512; 992 at 257), 256 deep beyond: K at
# and around those edges with N beyond the narrower blocks.
SIZES = [
    (1, 1, 1),
    (1, 17, 5),
    (7, 1, 3),
    (13, 33, 17),
    (17, 7, 13),
    (31, 65, 33),
    (33, 31, 65),
    (64, 48, 96),
    (65, 129, 31),
    (3, 300, 257),
    (15, 40, 800),
    (70, 530, 9),
    (29, 1100, 270),
    (4103, 9, 20),
    (30, 530, 512),
    (45, 1000, 513),
    (20, 900, 1000),
    (70, 100, 1030),
    (9, 33, 1025),
]


@pytest.fixture(params=ISAS)
def isa(request):
    saved = _C.active_isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(saved)


def operand(rng, shape, dtype, transposed):
    """A matrix whose op() has `shape`, stored transposed when asked."""
    rows, cols = shape
    x = rng.standard_normal((cols, rows) if transposed else (rows, cols)).astype(dtype)
    return x, (x.T if transposed else x).astype(np.float64)


def assert_close(got, want, bound_terms, k, dtype):
    eps = np.finfo(dtype).eps
    bound = (k + 4) * eps * bound_terms + np.finfo(dtype).tiny
    err = np.abs(got.astype(np.float64) - want)
    assert got.dtype == dtype
    assert got.shape == want.shape
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), f"error {err[worst]} > bound {bound[worst]} at {worst}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", SIZES)
def test_gemm_matches_numpy(rng, isa, dtype, trans_a, trans_b, m, n, k):
    a, a64 = operand(rng, (m, k), dtype, trans_a)
    b, b64 = operand(rng, (k, n), dtype, trans_b)
    got = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert_close(got, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.7, -0.5), (-2.0, 0.0), (1.0, 3.0)])
@pytest.mark.parametrize("m,n,k", [(5, 9, 7), (29, 70, 800), (1, 40, 3)])
def test_gemm_alpha_beta(rng, isa, dtype, alpha, beta, m, n, k):
    a, a64 = operand(rng, (m, k), dtype, False)
    b, b64 = operand(rng, (k, n), dtype, True)
    c = rng.standard_normal((m, n)).astype(dtype)
    c_before = c.copy()
    got = _C.gemm(a, b, trans_b=True, alpha=alpha, beta=beta, c=c)
    want = alpha * (a64 @ b64) + beta * c.astype(np.float64)
    terms = abs(alpha) * (np.abs(a64) @ np.abs(b64)) + abs(beta) * np.abs(c.astype(np.float64))
    assert_close(got, want, terms, k, dtype)
    np.testing.assert_array_equal(c, c_before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.7, -0.5), (-2.0, 0.0)])
@pytest.mark.parametrize("m,n,k", [(17, 600, 1000), (60, 70, 513)])
def test_gemm_alpha_beta_deep(rng, isa, dtype, trans_a, alpha, beta, m, n, k):
    """alpha, beta and accumulation into C across two deep depth blocks (rows of A) and across
    the usual ones (a transposed A), N beyond a block at that depth."""
    a, a64 = operand(rng, (m, k), dtype, trans_a)
    b, b64 = operand(rng, (k, n), dtype, False)
    c = rng.standard_normal((m, n)).astype(dtype)
    got = _C.gemm(a, b, trans_a=trans_a, alpha=alpha, beta=beta, c=c)
    want = alpha * (a64 @ b64) + beta * c.astype(np.float64)
    terms = abs(alpha) * (np.abs(a64) @ np.abs(b64)) + abs(beta) * np.abs(c.astype(np.float64))
    assert_close(got, want, terms, k, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_beta_zero_ignores_c(rng, isa, dtype):
    a, a64 = operand(rng, (9, 20), dtype, False)
    b, b64 = operand(rng, (20, 37), dtype, False)
    c = np.full((9, 37), np.nan, dtype)
    got = _C.gemm(a, b, beta=0.0, c=c)
    assert_close(got, a64 @ b64, np.abs(a64) @ np.abs(b64), 20, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 2.5])
def test_gemm_k_zero_scales_c(rng, isa, dtype, beta):
    c = rng.standard_normal((6, 11)).astype(dtype)
    got = _C.gemm(np.zeros((6, 0), dtype), np.zeros((0, 11), dtype), beta=beta, c=c)
    np.testing.assert_array_equal(got, (beta * c).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(0, 5), (4, 0), (0, 0)])
def test_gemm_empty(dtype, m, n):
    got = _C.gemm(np.zeros((m, 3), dtype), np.zeros((3, n), dtype))
    assert got.shape == (m, n) and got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_strided_rows(rng, isa, dtype, trans_a, trans_b):
    """Row strides larger than the row (lda, ldb > columns), including 4 KiB multiples."""
    m, n, k = 23, 45, 40
    big_a = rng.standard_normal((64, 1024)).astype(dtype)
    big_b = rng.standard_normal((64, 1000)).astype(dtype)
    a = big_a[: (k if trans_a else m), : (m if trans_a else k)]
    b = big_b[: (n if trans_b else k), : (k if trans_b else n)]
    a64 = (a.T if trans_a else a).astype(np.float64)
    b64 = (b.T if trans_b else b).astype(np.float64)
    got = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert_close(got, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype)


# gemm_packed: the recurrent step's shape family, op(B) = W^T (trans_b) or W.
PACKED_SIZES = [
    (1, 1, 1),
    (1, 256, 100),
    (2, 31, 17),
    (3, 64, 33),
    (5, 7, 129),
    (14, 40, 64),
    (15, 33, 65),
    (33, 130, 47),
    (64, 96, 160),
    (70, 20, 31),
    (9, 800, 50),
    (14, 1000, 600),
    (5, 513, 1050),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,k,n", PACKED_SIZES)
def test_gemm_packed_matches_numpy(rng, isa, dtype, trans_b, m, k, n):
    a, a64 = operand(rng, (m, k), dtype, False)
    b, b64 = operand(rng, (k, n), dtype, trans_b)
    got = _C.gemm_packed(a, b, trans_b=trans_b)
    assert_close(got, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1.0, -0.25])
def test_gemm_packed_beta_and_reuse(rng, isa, dtype, beta):
    m, k, n = 6, 48, 70
    a, a64 = operand(rng, (m, k), dtype, False)
    b, b64 = operand(rng, (k, n), dtype, True)
    c = rng.standard_normal((m, n)).astype(dtype)
    once = _C.gemm_packed(a, b, trans_b=True, beta=beta, c=c)
    want = a64 @ b64 + beta * c.astype(np.float64)
    assert_close(once, want, np.abs(a64) @ np.abs(b64) + abs(beta) * np.abs(c.astype(np.float64)),
                 k, dtype)
    # The same PackedB used five times gives the same bits every time.
    np.testing.assert_array_equal(_C.gemm_packed(a, b, trans_b=True, beta=beta, c=c, repeats=5), once)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_packed_strided_a(rng, isa, dtype):
    """A read in place with lda > K, including a 4 KiB multiple (copied instead)."""
    big = rng.standard_normal((40, 1024)).astype(dtype)
    b, b64 = operand(rng, (60, 50), dtype, True)
    for rows in (1, 3, 20, 40):
        a = big[:rows, :60]
        a64 = a.astype(np.float64)
        assert_close(_C.gemm_packed(a, b, trans_b=True), a64 @ b64, np.abs(a64) @ np.abs(b64), 60, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 4, 30])
@pytest.mark.parametrize("cols", [(0, 77), (0, 32), (5, 40), (16, 17), (33, 77), (70, 77), (20, 20)])
def test_gemm_packed_cols_equals_full(rng, isa, dtype, m, cols):
    """Columns computed alone are bitwise those of the full product; the others are untouched."""
    k, n = 41, 77
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    full = _C.gemm_packed(a, b, trans_b=True, beta=0.5, c=c)
    part = _C.gemm_packed(a, b, trans_b=True, beta=0.5, c=c, cols=cols)
    lo, hi = cols
    np.testing.assert_array_equal(part[:, lo:hi], full[:, lo:hi])
    np.testing.assert_array_equal(part[:, :lo], c[:, :lo])
    np.testing.assert_array_equal(part[:, hi:], c[:, hi:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [(0, 600), (5, 560), (512, 530), (511, 513)])
def test_gemm_packed_cols_equals_full_deep(rng, isa, dtype, cols):
    """The same at a K of two deep blocks, whose B blocks are 512 columns wide (AVX-512 float)."""
    m, k, n = 20, 1000, 600
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    full = _C.gemm_packed(a, b, beta=1.0, c=c)
    part = _C.gemm_packed(a, b, beta=1.0, c=c, cols=cols)
    lo, hi = cols
    np.testing.assert_array_equal(part[:, lo:hi], full[:, lo:hi])
    np.testing.assert_array_equal(part[:, :lo], c[:, :lo])
    np.testing.assert_array_equal(part[:, hi:], c[:, hi:])
    # gemm on the same operands takes the same depth blocks: the same bits.
    np.testing.assert_array_equal(_C.gemm(a, b, beta=1.0, c=c), full)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_packed_k_zero(rng, isa, dtype):
    c = rng.standard_normal((3, 5)).astype(dtype)
    got = _C.gemm_packed(np.zeros((3, 0), dtype), np.zeros((5, 0), dtype), trans_b=True, beta=2.0, c=c)
    np.testing.assert_array_equal(got, (2.0 * c).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_across_threads_and_runs(rng, isa, threads, dtype):
    """Work is split over M and N only: every thread count gives the same bits, every run too."""
    cases = [
        ("gemm", (rng.standard_normal((130, 300)).astype(dtype),
                  rng.standard_normal((200, 300)).astype(dtype)), dict(trans_b=True)),
        ("gemm", (rng.standard_normal((500, 37)).astype(dtype),
                  rng.standard_normal((500, 91)).astype(dtype)), dict(trans_a=True)),
        ("gemm", (rng.standard_normal((600, 150)).astype(dtype),
                  rng.standard_normal((600, 1100)).astype(dtype)), dict(trans_a=True)),
        # deep blocks (rows of A), split by rows or columns
        ("gemm", (rng.standard_normal((200, 1000)).astype(dtype),
                  rng.standard_normal((600, 1000)).astype(dtype)), dict(trans_b=True)),
        ("gemm", (rng.standard_normal((3000, 520)).astype(dtype),
                  rng.standard_normal((520, 100)).astype(dtype)), {}),
        # B read in place (at most 8 row panels), split by columns; a transposed A read in place
        ("gemm", (rng.standard_normal((100, 300)).astype(dtype),
                  rng.standard_normal((300, 700)).astype(dtype)), {}),
        ("gemm", (rng.standard_normal((900, 400)).astype(dtype),
                  rng.standard_normal((900, 100)).astype(dtype)), dict(trans_a=True)),
        # a transposed A packed per depth block, split by rows (the weight gradients)
        ("gemm", (rng.standard_normal((700, 300)).astype(dtype),
                  rng.standard_normal((700, 200)).astype(dtype)), dict(trans_a=True)),
        ("gemm_packed", (rng.standard_normal((64, 1000)).astype(dtype),
                         rng.standard_normal((600, 1000)).astype(dtype)), dict(trans_b=True)),
        ("gemm_packed", (rng.standard_normal((64, 256)).astype(dtype),
                         rng.standard_normal((520, 256)).astype(dtype)), dict(trans_b=True)),
        ("gemm_packed", (rng.standard_normal((1, 256)).astype(dtype),
                         rng.standard_normal((256, 1024)).astype(dtype)), dict(trans_b=False)),
        # products of 1-32 M multiply-adds per thread, cut into several parts per thread that
        # the threads claim one by one: by columns (a recurrent step's products, rows of A read
        # in place), by rows (B read in place, or packed once), with partial panels
        ("gemm_packed", (rng.standard_normal((32, 512)).astype(dtype),
                         rng.standard_normal((512, 128)).astype(dtype)), dict(trans_b=False)),
        ("gemm_packed", (rng.standard_normal((32, 128)).astype(dtype),
                         rng.standard_normal((512, 128)).astype(dtype)), dict(trans_b=True)),
        ("gemm_packed", (rng.standard_normal((203, 97)).astype(dtype),
                         rng.standard_normal((97, 131)).astype(dtype)), dict(trans_b=False)),
        ("gemm", (rng.standard_normal((96, 500)).astype(dtype),
                  rng.standard_normal((500, 64)).astype(dtype)), {}),
        ("gemm", (rng.standard_normal((61, 333)).astype(dtype),
                  rng.standard_normal((333, 77)).astype(dtype)), {}),
    ]
    for name, args, kwargs in cases:
        fn = getattr(_C, name)
        results = []
        for t in (1, 2, 3, 2, 1):
            rnnfast.set_num_threads(t)
            results.append(fn(*args, **kwargs))
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0], err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_after_the_pool_slept(rng, threads, dtype):
    """A product after an idle gap finds the pool's workers asleep: a small one runs on the caller
    alone, one right after it (a run of calls) wakes them, a larger one is cut into more parts
    than threads. The bits are those of one thread, whichever happened."""
    cases = [  # (a, b, trans_b): about 1 M, 2 M and 3-8 M multiply-adds
        (rng.standard_normal((32, 512)).astype(dtype), rng.standard_normal((512, 64)).astype(dtype),
         False),
        (rng.standard_normal((32, 128)).astype(dtype),
         rng.standard_normal((512, 128)).astype(dtype), True),
        (rng.standard_normal((96, 500)).astype(dtype), rng.standard_normal((500, 64)).astype(dtype),
         False),
        (rng.standard_normal((203, 301)).astype(dtype),
         rng.standard_normal((301, 131)).astype(dtype), False),
    ]
    for a, b, trans_b in cases:
        rnnfast.set_num_threads(1)
        want = _C.gemm(a, b, trans_b=trans_b)
        for t in (2, 3):
            rnnfast.set_num_threads(t)
            for _ in range(3):
                time.sleep(0.003)  # the workers spin for 60 us after a call, then sleep
                first, second = _C.gemm(a, b, trans_b=trans_b), _C.gemm(a, b, trans_b=trans_b)
                np.testing.assert_array_equal(first, want)
                np.testing.assert_array_equal(second, want)


def test_set_isa_validation():
    with pytest.raises(ValueError, match="isa: unknown instruction set 'sse9'"):
        _C.set_isa("sse9")
    assert ISAS[0] == "generic"
    assert rnnfast.active_isa() in ISAS


def test_default_isa_is_the_best():
    """The process starts on the best instruction set unless RNNFAST_ISA forces one."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RNNFAST_ISA"}
    out = subprocess.run(
        [sys.executable, "-c", "import rnnfast; print(rnnfast.active_isa())"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == ISAS[-1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_accepts_views_and_byte_orders(rng, dtype):
    """Column-strided views, negative strides and non-native byte order are copied correctly."""
    a = rng.standard_normal((12, 30)).astype(dtype)
    b = rng.standard_normal((20, 9)).astype(dtype)
    views = [
        (a[:, ::3], b[::2, :]),
        (a[::-1, :10], b[:10, ::-1]),
        (a[:, :10].astype(np.dtype(dtype).newbyteorder(">")), b[:10].astype(np.dtype(dtype).newbyteorder(">"))),
    ]
    for x, y in views:
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        got = _C.gemm(x, y)
        assert got.dtype == dtype
        assert_close(got, x64 @ y64, np.abs(x64) @ np.abs(y64), x.shape[1], dtype)
        got_packed = _C.gemm_packed(x, y)
        assert_close(got_packed, x64 @ y64, np.abs(x64) @ np.abs(y64), x.shape[1], dtype)


# (M, N, K) read without packing: B (not transposed) in place for at most 8 panels of rows of A
# (112 on AVX-512), whole panels and a masked last one (N % 32 in 1..16 and 17..31, N < 16);
# multi-panel tiles of 1-3 rows; two depth blocks (K 600); and a transposed A in place when C
# has at most four column panels (N <= 128 on AVX-512 float).
IN_PLACE_SIZES = [
    (1, 5, 7), (1, 100, 300), (2, 65, 33), (3, 130, 600), (5, 17, 64), (14, 33, 1),
    (15, 31, 257), (64, 334, 192), (64, 96, 500), (112, 48, 600), (113, 40, 20),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", IN_PLACE_SIZES)
def test_operands_read_in_place_give_the_packed_values(rng, isa, dtype, m, n, k):
    """B read where it is (few rows of A) and a transposed A read where it is (few columns of C)
    give the bits of the packed operands: each element is the same chain of multiply-adds."""
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    got = _C.gemm(a, b)
    assert_close(got, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype)
    packed = _C.gemm(a, np.ascontiguousarray(b.T), trans_b=True)  # op(B) always packed
    np.testing.assert_array_equal(got, packed)
    wide = np.concatenate([b, rng.standard_normal((k, 140)).astype(dtype)], axis=1)
    strided = _C.gemm(a, wide[:, :n])  # rows of B wider apart than N
    np.testing.assert_array_equal(strided, packed)
    # a transposed A: in place for N <= 4 panels (8 in one depth block), packed for N + 600
    at = np.ascontiguousarray(a.T)
    narrow = _C.gemm(at, b, trans_a=True)
    assert_close(narrow, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype)
    wider = np.concatenate([b, rng.standard_normal((k, 600)).astype(dtype)], axis=1)
    np.testing.assert_array_equal(narrow, _C.gemm(at, wider, trans_a=True)[:, :n])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(70, 100, 64), (512, 250, 128), (33, 150, 256), (29, 200, 1),
                                   (300, 129, 200), (40, 250, 257)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_transposed_a_of_one_depth_block_read_in_place(rng, isa, threads, nthreads, dtype, m, n,
                                                       k, beta):
    """A transposed A whose product is one depth block (K <= 256) is read in place up to eight
    column panels (the LSTM backward's weight-gradient blocks): the bits of the packed A (the same
    product with 600 more columns), at every thread count, and the reference's values."""
    rnnfast.set_num_threads(nthreads)
    at = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal((k, n + 600)).astype(dtype)
    c = rng.standard_normal((m, n + 600)).astype(dtype)
    got = np.ascontiguousarray(c[:, :n])
    _C.gemm(at, np.ascontiguousarray(b[:, :n]), trans_a=True, beta=beta, out=got)
    packed = c.copy()
    _C.gemm(at, b, trans_a=True, beta=beta, out=packed)
    np.testing.assert_array_equal(got, packed[:, :n])
    a64, b64 = at.T.astype(np.float64), b[:, :n].astype(np.float64)
    want = a64 @ b64 + beta * c[:, :n].astype(np.float64)
    assert_close(got, want, np.abs(a64) @ np.abs(b64) + np.abs(beta * c[:, :n]), k, dtype)


def test_b_read_in_place_stops_at_its_last_column():
    """The last panel of a B read in place is loaded masked: a B whose last row ends where an
    unreadable page begins is multiplied without a fault, on every instruction set."""
    import subprocess
    import sys

    code = """if True:
        import ctypes, mmap
        import numpy as np
        import rnnfast
        from rnnfast import _C
        libc = ctypes.CDLL(None)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        page = mmap.PAGESIZE
        for dtype in (np.float32, np.float64):
            for k, n in ((7, 5), (33, 17), (300, 45), (600, 100)):
                size = k * n * np.dtype(dtype).itemsize
                pages = -(-size // page) + 1
                buf = mmap.mmap(-1, pages * page)
                base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
                assert libc.mprotect(base + (pages - 1) * page, page, 0) == 0
                start = (pages - 1) * page - size
                b = np.frombuffer(buf, dtype, k * n, start).reshape(k, n)
                b[...] = np.random.default_rng(k).standard_normal((k, n))
                a = np.random.default_rng(n).standard_normal((3, k)).astype(dtype)
                for isa in rnnfast.supported_isas():
                    _C.set_isa(isa)
                    got = _C.gemm(a, b)
                    want = a.astype(np.float64) @ b.astype(np.float64)
                    assert np.abs(got - want).max() < 1e-3 * k, (isa, dtype, k, n)
                del b
        print("ok")
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_gemm_out_updates_c_in_place(rng, dtype, trans_a, trans_b):
    """out= is BLAS's C: out = alpha op(a) op(b) + beta out, written in place and returned, with
    the bits of the c= call (which copies C)."""
    m, n, k = 37, 70, 45
    a, _ = operand(rng, (m, k), dtype, trans_a)
    b, _ = operand(rng, (k, n), dtype, trans_b)
    c = rng.standard_normal((m, n)).astype(dtype)
    for alpha, beta in ((1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)):
        out = c.copy()
        got = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, out=out)
        assert got is out
        want = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
        np.testing.assert_array_equal(out, want)
    out = np.full((m, n), np.nan, dtype)  # beta = 0: out is only written
    _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b, out=out)
    np.testing.assert_array_equal(out, _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b))


def test_gemm_out_refusals():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    good = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="c: expected None when out is given"):
        _C.gemm(a, b, c=good, out=good.copy())
    with pytest.raises(ValueError, match=r"out: expected shape \(M, N\)"):
        _C.gemm(a, b, out=np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match="out"):
        _C.gemm(a, b, out=np.zeros((3, 5), np.float64))
    with pytest.raises(TypeError, match="out"):
        _C.gemm(a, b, out=[[0.0] * 5] * 3)
    ro = np.zeros((3, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: expected a writeable.*read-only"):
        _C.gemm(a, b, out=ro)
    with pytest.raises(ValueError, match="out: expected a writeable.*another layout"):
        _C.gemm(a, b, out=np.zeros((5, 3), np.float32).T)
    square = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="out: expected an array that shares no memory"):
        _C.gemm(square, np.ones((4, 4), np.float32), out=square)
    np.testing.assert_array_equal(good, 0.0)


# (M, N, K, beta) of A B^T with few rows of A, which the driver computes as C^T = B A^T when that
# moves fewer elements (AVX-512 float: 16 <= M <= 128): the Conv1D weight gradients in
# channels-first layout (64 x 192 x 334, 64 x 500 x 96, beta 1), M not a multiple of the vector,
# two depth blocks with beta (C read transposed first), N beyond a B block.
TRANSPOSED_SIZES = [
    (64, 192, 334, 1.0), (64, 500, 96, 1.0), (16, 512, 128, 0.0), (48, 300, 200, -0.5),
    (47, 400, 257, 1.0), (64, 300, 600, 2.0), (128, 192, 334, 0.0), (96, 1100, 700, 1.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,beta", TRANSPOSED_SIZES)
@pytest.mark.parametrize("alpha", [1.0, -0.75])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_few_rows_times_b_transposed_gives_the_untransposed_bits(rng, isa, threads, nthreads,
                                                                 dtype, m, n, k, beta, alpha):
    """A B^T computed transposed (B's rows as the rows of the product, C^T transposed back) gives
    the bits of the same product with B^T stored (B read in place) and of the pre-packed B: every
    element is the same chain of fused multiply-adds, then alpha, then beta * C. At 2 and 3
    threads each part moves its own block of C^T (and reads it from C first, with several depth
    blocks and beta): the blocks of every grid must cover C exactly once."""
    rnnfast.set_num_threads(nthreads)
    wide_a = rng.standard_normal((m, k + 3)).astype(dtype)
    wide_b = rng.standard_normal((n, k + 5)).astype(dtype)
    a, b = wide_a[:, :k], wide_b[:, :k]  # rows further apart than K
    c = rng.standard_normal((m, n)).astype(dtype)
    got = c.copy()
    _C.gemm(a, b, trans_b=True, alpha=alpha, beta=beta, out=got)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert_close(got, alpha * a64 @ b64.T + beta * c,
                 np.abs(alpha) * np.abs(a64) @ np.abs(b64.T) + np.abs(beta * c), k, dtype)
    bt = np.ascontiguousarray(b.T)
    np.testing.assert_array_equal(got, _C.gemm(a, bt, alpha=alpha, beta=beta, c=c))
    if alpha == 1.0:
        np.testing.assert_array_equal(
            got, _C.gemm_packed(np.ascontiguousarray(a), np.ascontiguousarray(b), trans_b=True,
                                beta=beta, c=c))
    if beta == 0.0:  # C is only written: NaN before is harmless
        nan = np.full((m, n), np.nan, dtype)
        _C.gemm(a, b, trans_b=True, alpha=alpha, out=nan)
        np.testing.assert_array_equal(nan, got)


# (M, N, K) whose rows of A, read in place (C of at most four column panels), are 4 KiB apart: on
# AVX-512 they run as panels of 7 rows against two B panels per tile. M not a multiple of 7 and
# of 1-3 rows, N of two panels, of a panel and a part (the second panel masked or narrow), of
# three and four; one and two depth blocks; B packed and (at most 112 rows) read in place.
ALIASED_ROWS_SIZES = [
    (1, 65, 300), (3, 100, 512), (23, 40, 1000), (57, 64, 600), (113, 97, 1024), (300, 64, 1024),
    (450, 128, 700),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", ALIASED_ROWS_SIZES)
def test_rows_of_a_4k_apart_give_the_bits_of_other_strides(rng, isa, threads, dtype, m, n, k):
    """Rows of A whose stride is a multiple of 4 KiB (every one in the same L1 set) give the bits
    of the same A stored with another stride, at every thread count, in gemm and gemm_packed."""
    row = 4096 // np.dtype(dtype).itemsize
    aliased = rng.standard_normal((m, ((k + row - 1) // row) * row)).astype(dtype)[:, :k]
    other = np.empty((m, k + 16), dtype)[:, :k]
    other[...] = aliased
    b = rng.standard_normal((k, n)).astype(dtype)
    a64, b64 = aliased.astype(np.float64), b.astype(np.float64)
    results = []
    for t in (1, 2, 3):
        rnnfast.set_num_threads(t)
        got = _C.gemm(aliased, b)
        assert_close(got, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype)
        results += [got, _C.gemm(other, b),
                    _C.gemm(aliased, np.ascontiguousarray(b.T), trans_b=True)]
        results += [_C.gemm_packed(aliased, b), _C.gemm_packed(other, b)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
