"""The package's GEMM against NumPy, every transpose combination, odd sizes, both dtypes."""
import numpy as np
import pytest

from rnnfast import _C

SIZES = [(1, 1, 1), (1, 17, 5), (7, 1, 3), (13, 33, 17), (64, 48, 96), (65, 129, 31), (3, 300, 257)]


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", SIZES)
def test_gemm_matches_numpy(rng, dtype, tol, trans_a, trans_b, m, n, k):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    got = _C.gemm(a, b, trans_a, trans_b)
    assert got.dtype == dtype
    assert got.shape == (m, n)
    scale = max(1.0, np.abs(want).max())
    assert np.abs(got - want).max() / scale < tol * np.sqrt(k)


def test_gemm_rejects_bad_input():
    with pytest.raises(TypeError, match="a: expected a float32 or float64 array"):
        _C.gemm(np.ones((2, 2), np.int64), np.ones((2, 2)))
    with pytest.raises(TypeError, match="b: expected dtype float32"):
        _C.gemm(np.ones((2, 2), np.float32), np.ones((2, 2)))
    with pytest.raises(ValueError, match="b: inner dimension 3"):
        _C.gemm(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        _C.gemm(np.ones(2), np.ones((2, 2)))
