"""The bfloat16 GEMM (csrc/kernels/gemm_bf16*.cc): rounding, every path this machine has against
the float64 product of the rounded operands, packed products and column ranges, threads, and
the choice of the path (set_bf16_isa, RNNFAST_BF16_ISA, show_config)."""
import io
import subprocess
import sys

import numpy as np
import pytest

import rnnfast
from rnnfast import _C
from subprocess_env import PACKAGE_PARENT, python_env

BF16_ISAS = rnnfast.supported_bf16_isas()
ALL_BF16_ISAS = ["portable", "avx512_bf16", "amx"]


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    before = rnnfast.active_bf16_isa()
    rnnfast.set_bf16_isa(request.param)
    yield request.param
    rnnfast.set_bf16_isa(before if before in BF16_ISAS else "portable")


def run_python(*args, **env):
    environ = python_env(**env)
    if "RNNFAST_ISA" not in env:  # a forced float32 instruction set would force portable
        environ.pop("RNNFAST_ISA", None)
    return subprocess.run([sys.executable, *args], env=environ, cwd=str(PACKAGE_PARENT),
                          capture_output=True, text=True, timeout=120, check=False)


def round_bf16_reference(x):
    """Round to nearest, ties to even, on the bits (NaN kept, made quiet)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    r = np.where(nan, ((u >> 16) | 0x40) << 16, r)
    return r.astype(np.uint32).view(np.float32)


def special_values():
    f = np.float32
    one = np.uint32(0x3F800000)
    ties = np.array([one + 0x8000, one + 0x18000, one + 0x7FFF, one + 0x8001], np.uint32)
    return np.concatenate([
        np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e-40,
                  -1e-45, 1.17549435e-38], f),
        ties.view(np.float32),
        np.random.default_rng(0).standard_normal(1000).astype(f) * 1e3,
    ])


def test_round_bf16_is_round_to_nearest_even():
    x = special_values()
    got = _C.round_bf16(x)
    want = round_bf16_reference(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got[np.isnan(x)].size and np.isnan(got[np.isnan(x)]).all()
    assert np.isinf(got[x == np.float32(3.4e38)]).all()  # past the largest bfloat16
    # the ties: 1 + 2^-8 (exactly between 1 and 1 + 2^-7) rounds to 1 (even), 1 + 3 * 2^-8 up
    assert got[12] == 1.0 and got[13] == np.float32(1 + 2 ** -6)


def test_round_bf16_matches_ml_dtypes_and_torch():
    x = special_values()
    x = x[~np.isnan(x)]
    got = _C.round_bf16(x)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    np.testing.assert_array_equal(got, x.astype(ml_dtypes.bfloat16).astype(np.float32))
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(got, torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def product_of_rounded(a, b, trans_a, trans_b):
    a = round_bf16_reference(a).astype(np.float64)
    b = round_bf16_reference(b).astype(np.float64)
    return (a.T if trans_a else a) @ (b.T if trans_b else b), \
        (np.abs(a.T if trans_a else a) @ np.abs(b.T if trans_b else b))


GEMM_SHAPES = [(1, 1, 1), (3, 5, 2), (17, 33, 31), (16, 32, 32), (33, 64, 65), (70, 100, 129),
               (5, 200, 300)]


@pytest.mark.parametrize("M,N,K", GEMM_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_bf16_is_the_float32_sum_of_bf16_products(M, N, K, trans_a, trans_b, bf16_isa):
    rng = np.random.default_rng(M * 1000 + N + K)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    want, magnitude = product_of_rounded(a, b, trans_a, trans_b)
    bound = (K + 2) * 2.0 ** -24 * magnitude  # float32 summation of K exact products
    got = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b, precision="bfloat16")
    assert got.dtype == np.float32
    assert (np.abs(got - want) <= bound).all()
    c = rng.standard_normal((M, N)).astype(np.float32)
    got = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-2.0, c=c,
                  precision="bfloat16")
    assert (np.abs(got - (0.5 * want - 2.0 * c)) <= bound + 4e-7 * np.abs(c) + 1e-6).all()
    # float32 precision does not round: it is far closer to the unrounded product
    exact = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    if K >= 8:
        f32 = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        bf16 = _C.gemm(a, b, trans_a=trans_a, trans_b=trans_b, precision="bfloat16")
        assert np.abs(f32 - exact).max() * 16 < np.abs(bf16 - exact).max()


@pytest.mark.parametrize("M,N,K", GEMM_SHAPES)
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_gemm_packed_bf16_and_column_ranges(M, N, K, beta, bf16_isa):
    rng = np.random.default_rng(N + 7 * K)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    c = rng.standard_normal((M, N)).astype(np.float32)
    want, magnitude = product_of_rounded(a, b, False, True)
    bound = (K + 2) * 2.0 ** -24 * magnitude + 4e-7 * np.abs(c) + 1e-6
    full = _C.gemm_packed(a, b, trans_b=True, beta=beta, c=c, precision="bfloat16", repeats=2)
    assert (np.abs(full - (want + beta * c)) <= bound).all()
    # a column range gets exactly the values of the whole product, the rest keeps c
    for n0, n1 in [(0, N), (1, N), (0, max(0, N - 3)), (N // 3, N // 3 + 17)]:
        n1 = min(n1, N)
        part = _C.gemm_packed(a, b, trans_b=True, beta=beta, c=c, cols=(n0, n1),
                              precision="bfloat16")
        np.testing.assert_array_equal(part[:, n0:n1], full[:, n0:n1])
        np.testing.assert_array_equal(part[:, :n0], c[:, :n0])
        np.testing.assert_array_equal(part[:, n1:], c[:, n1:])
    # B not transposed packs the same values
    full_nt = _C.gemm_packed(a, np.ascontiguousarray(b.T), trans_b=False, beta=beta, c=c,
                             precision="bfloat16")
    np.testing.assert_array_equal(full_nt, full)


# Deeper than 512 (the AMX kernel goes panel by panel, and from 128 rows brings the next panel
# into L2 while the current one runs), rows not a multiple of 16 or 32, partial panels.
@pytest.mark.parametrize("M,N,K", [(128, 33, 513), (130, 70, 545), (257, 97, 1030), (40, 65, 600)])
def test_gemm_bf16_deep_products(M, N, K, bf16_isa):
    rng = np.random.default_rng(M + N * K)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    want, magnitude = product_of_rounded(a, b, False, True)
    bound = (K + 2) * 2.0 ** -24 * magnitude
    assert (np.abs(_C.gemm_packed(a, b, trans_b=True, precision="bfloat16") - want) <= bound).all()
    assert (np.abs(_C.gemm(a, b, trans_b=True, precision="bfloat16") - want) <= bound).all()
    got = _C.gemm(np.ascontiguousarray(a.T), b, trans_a=True, trans_b=True, precision="bfloat16")
    assert (np.abs(got - want) <= bound).all()


# The recurrent steps' route (a rounded ahead, gemm_bf16_prepacked_cols): B's panels ascending or
# descending (the steps alternate them) give gemm_packed's values bit for bit, whole or by column
# ranges: shallow products (groups of panels; N = 300 is ten panels) and deep ones, several
# blocks of rows.
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (17, 33, 31), (33, 300, 65), (64, 100, 520),
                                   (130, 70, 1030), (5, 200, 300)])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_gemm_bf16_panel_orders_give_the_same_values(M, N, K, beta, bf16_isa):
    rng = np.random.default_rng(M + 3 * N + 7 * K)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    c = rng.standard_normal((M, N)).astype(np.float32)
    if rnnfast.active_bf16_isa() == "portable":  # chosen, or forced by RNNFAST_ISA below avx512
        with pytest.raises(ValueError, match="order: needs precision='bfloat16' on a hardware"):
            _C.gemm_packed(a, b, trans_b=True, precision="bfloat16", order="descending")
        return
    want = _C.gemm_packed(a, b, trans_b=True, beta=beta, c=c, precision="bfloat16")
    for order in ("ascending", "descending"):
        got = _C.gemm_packed(a, b, trans_b=True, beta=beta, c=c, precision="bfloat16",
                             order=order, repeats=2)
        np.testing.assert_array_equal(got, want)
        for n0, n1 in [(1, N), (0, max(0, N - 3)), (N // 3, min(N, N // 3 + 40))]:
            part = _C.gemm_packed(a, b, trans_b=True, beta=beta, c=c, cols=(n0, n1),
                                  precision="bfloat16", order=order)
            np.testing.assert_array_equal(part[:, n0:n1], want[:, n0:n1])
            np.testing.assert_array_equal(part[:, :n0], c[:, :n0])
            np.testing.assert_array_equal(part[:, n1:], c[:, n1:])


def test_gemm_packed_order_refuses_what_has_no_such_route():
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"order: needs precision='bfloat16' .*'float32'"):
        _C.gemm_packed(a, b, order="ascending")
    with pytest.raises(ValueError, match="order: expected None, 'ascending' or 'descending', "
                                         "got 'up'"):
        _C.gemm_packed(a, b, precision="bfloat16", order="up")
    with pytest.raises(TypeError, match="order: expected None, 'ascending' or 'descending', "
                                        "got 1"):
        _C.gemm_packed(a, b, precision="bfloat16", order=1)


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (3, 5, 40), (20, 40, 70), (33, 64, 130)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_bf16_rounds_subnormal_operands_as_every_path(M, N, K, trans_a, trans_b, bf16_isa):
    """The largest subnormal float rounds up to the smallest normal bfloat16 (2^-126) on every
    path: the hardware paths' fast conversions flush subnormal inputs, so a vector holding
    one must take the exact rounding. Each such operand times 2^100 adds exactly 2^-26."""
    rng = np.random.default_rng(M + N + K)
    sub = np.array([0x007FFFFF], np.uint32).view(np.float32)[0]
    a = np.zeros((M, K), np.float32)
    hits = rng.random((M, K)) < 0.3
    hits[0, 0] = True
    sign = np.where(rng.random((M, K)) < 0.5, -1, 1).astype(np.float32)
    a[hits] = sub * sign[hits]
    b = np.full((K, N), 2.0 ** 100, np.float32)
    want = (hits * sign).sum(axis=1, keepdims=True) * 2.0 ** -26 * np.ones((1, N))
    got = _C.gemm(np.ascontiguousarray(a.T) if trans_a else a,
                  np.ascontiguousarray(b.T) if trans_b else b,
                  trans_a=trans_a, trans_b=trans_b, precision="bfloat16")
    np.testing.assert_array_equal(got, want.astype(np.float32))
    # and as the left operand's partner: b subnormal, a 2^100
    got = _C.gemm(np.full((K, M) if trans_a else (M, K), 2.0 ** 100, np.float32),
                  np.ascontiguousarray(a) if trans_b else np.ascontiguousarray(a.T),
                  trans_a=trans_a, trans_b=trans_b, precision="bfloat16")
    np.testing.assert_array_equal(got, want[:, :1].T.repeat(M, 0).astype(np.float32))


def test_gemm_bf16_paths_agree_and_do_not_depend_on_threads():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((150, 300)).astype(np.float32)
    b = rng.standard_normal((300, 260)).astype(np.float32)
    want, magnitude = product_of_rounded(a, b, False, False)
    before_isa, before_threads = rnnfast.active_bf16_isa(), rnnfast.get_num_threads()
    try:
        for isa in BF16_ISAS:
            rnnfast.set_bf16_isa(isa)
            results = []
            for n in (1, 2, 3):
                rnnfast.set_num_threads(n)
                results.append(_C.gemm(a, b, precision="bfloat16"))
                results.append(_C.gemm_packed(a, b, precision="bfloat16"))
            for r in results[2::2]:
                np.testing.assert_array_equal(r, results[0])
            for r in results[3::2]:
                np.testing.assert_array_equal(r, results[1])
            assert (np.abs(results[0] - want) <= 302 * 2.0 ** -24 * magnitude).all()
    finally:
        rnnfast.set_bf16_isa(before_isa)
        rnnfast.set_num_threads(before_threads)


def test_gemm_bf16_zero_sizes(bf16_isa):
    a = np.ones((3, 0), np.float32)
    b = np.ones((0, 4), np.float32)
    c = np.full((3, 4), 2.0, np.float32)
    np.testing.assert_array_equal(_C.gemm(a, b, beta=0.5, c=c, precision="bfloat16"), 1.0)
    np.testing.assert_array_equal(_C.gemm_packed(a, b, beta=0.5, c=c, precision="bfloat16"), 1.0)
    assert _C.gemm(np.ones((0, 3), np.float32), np.ones((3, 2), np.float32),
                   precision="bfloat16").shape == (0, 2)


def test_gemm_bf16_rejects_float64_and_unknown_precisions():
    a = np.ones((2, 2))
    with pytest.raises(TypeError, match="precision 'bfloat16': expected float32 arrays, got a of "
                                        "dtype float64"):
        _C.gemm(a, a, precision="bfloat16")
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16', got 'half'"):
        _C.gemm(a, a, precision="half")


# ------------------------------------------------------------------ choosing the path


def test_bf16_isa_settings():
    assert BF16_ISAS[0] == "portable"
    assert set(BF16_ISAS) <= set(ALL_BF16_ISAS)
    assert rnnfast.active_bf16_isa() in BF16_ISAS
    before = rnnfast.active_bf16_isa()
    with pytest.raises(ValueError, match="unknown bfloat16 path 'fp8'.*this CPU and build support "
                                         + ", ".join(BF16_ISAS)):
        rnnfast.set_bf16_isa("fp8")
    with pytest.raises(TypeError, match="name: expected a str"):
        rnnfast.set_bf16_isa(1)
    for isa in ALL_BF16_ISAS:
        if isa not in BF16_ISAS:
            with pytest.raises(ValueError, match="not supported"):
                rnnfast.set_bf16_isa(isa)
    assert rnnfast.active_bf16_isa() == before
    c = rnnfast.get_config()
    assert c["bf16_isa"] == before and c["bf16_isas_supported"] == BF16_ISAS
    assert set(c["bf16_isa_flags"]) <= set(ALL_BF16_ISAS)
    assert set(BF16_ISAS) <= set(c["bf16_isa_flags"])
    if "amx" in c["bf16_isa_flags"]:
        assert {"-mamx-tile", "-mamx-bf16", "-mavx512bf16"} <= set(c["bf16_isa_flags"]["amx"].split())
        assert "-mavx512bf16" in c["bf16_isa_flags"]["avx512_bf16"].split()
    out = io.StringIO()
    rnnfast.show_config(out)
    assert (f"bfloat16 products: {before} (supported: {', '.join(BF16_ISAS)})"
            in out.getvalue())


def test_hardware_paths_need_the_avx512_instruction_set():
    before = rnnfast.active_isa()
    try:
        for isa in rnnfast.supported_isas():
            rnnfast.set_isa(isa)
            if isa != "avx512":
                assert rnnfast.active_bf16_isa() == "portable"
    finally:
        rnnfast.set_isa(before)


@pytest.mark.parametrize("isa", ALL_BF16_ISAS)
def test_rnnfast_bf16_isa_environment_variable(isa):
    done = run_python("-c", "import rnnfast; print(rnnfast.active_bf16_isa())",
                      RNNFAST_BF16_ISA=isa.upper())
    if isa in BF16_ISAS:
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == isa
    else:
        assert done.returncode != 0
        assert f"RNNFAST_BF16_ISA='{isa.upper()}'" in done.stderr
        assert "not supported" in done.stderr


def test_rnnfast_bf16_isa_rejects_an_unknown_name():
    done = run_python("-c", "import rnnfast", RNNFAST_BF16_ISA="tf32")
    assert done.returncode != 0
    assert "RNNFAST_BF16_ISA='tf32': unknown bfloat16 path 'tf32'" in done.stderr


# The hardware paths pack both operands tile by tile (csrc/kernels/gemm_bf16*.cc): A in blocks
# of 16 rows x 32 k, B in panels of 32 columns, two tiles of 16 per depth step of 32. Sizes at
# and around every edge of those blocks, and K not a multiple of 32.
EDGE_M = [1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65]
EDGE_NK = [(1, 1), (15, 31), (16, 32), (17, 33), (31, 63), (32, 64), (33, 95), (63, 1), (65, 100)]


@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_bf16_block_edges(trans_a, bf16_isa):
    rng = np.random.default_rng(11 + trans_a)
    for N, K in EDGE_NK:
        b = rng.standard_normal((K, N)).astype(np.float32)
        for M in EDGE_M:
            a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
            want, magnitude = product_of_rounded(a, b, trans_a, False)
            bound = (K + 2) * 2.0 ** -24 * magnitude
            got = _C.gemm(a, b, trans_a=trans_a, precision="bfloat16")
            assert (np.abs(got - want) <= bound).all(), (M, N, K)
            if not trans_a:  # the packed product and its column ranges: the same sums
                packed = _C.gemm_packed(a, b, precision="bfloat16")
                np.testing.assert_array_equal(packed, got)
                n0, n1 = N // 3, N - N // 4
                part = _C.gemm_packed(a, b, cols=(n0, n1), precision="bfloat16")
                np.testing.assert_array_equal(part[:, n0:n1], got[:, n0:n1])
                assert not part[:, :n0].any() and not part[:, n1:].any()


@pytest.mark.parametrize("M,N,K", [(300, 70, 1100), (130, 97, 2050), (64, 256, 600)])
def test_gemm_bf16_deep_products_agree_across_paths_and_threads(M, N, K):
    """Depths past the shallow blocking (512) and several row blocks per thread."""
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((K, M)).astype(np.float32)  # the weight gradients' op(A) = A^T
    b = rng.standard_normal((K, N)).astype(np.float32)
    want, magnitude = product_of_rounded(a, b, True, False)
    bound = (K + 2) * 2.0 ** -24 * magnitude
    before_isa, before_threads = rnnfast.active_bf16_isa(), rnnfast.get_num_threads()
    try:
        by_isa = {}
        for isa in BF16_ISAS:
            rnnfast.set_bf16_isa(isa)
            runs = []
            for n in (1, 2, 3):
                rnnfast.set_num_threads(n)
                runs.append(_C.gemm(a, b, trans_a=True, precision="bfloat16"))
            for r in runs[1:]:
                np.testing.assert_array_equal(r, runs[0])
            assert (np.abs(runs[0] - want) <= bound).all()
            by_isa[isa] = runs[0]
        for isa, r in by_isa.items():  # paths differ only in the order of float32 sums
            assert (np.abs(r - by_isa["portable"]) <= 2 * bound).all(), isa
    finally:
        rnnfast.set_bf16_isa(before_isa)
        rnnfast.set_num_threads(before_threads)
