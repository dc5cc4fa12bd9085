// The register-blocked micro-kernel and the block loop around it, written once over a
// vector-traits type V that each instruction-set translation unit defines:
//   V::T, V::vec; V::W lanes per vector; V::NV vectors per B panel (NR = NV * W); V::MR rows;
//   V::zero(), V::load(p), V::load_n(p, n), V::store(p, v), V::store_n(p, v, n) (first n lanes),
//   V::set1(x), V::fma(a, b, c) = a * b + c, V::mul(a, b),
//   V::transpose(src, ld, rows, dst, ldd, lanes): dst[j * ldd + r] = src[r * ld + j] for j < W,
//   r < lanes (zero for r >= rows); reads W values from each of the first `rows` rows.
// The traits live in an unnamed namespace, so every instantiation below has internal linkage
// and is compiled with its own unit's flags (no code of this header is shared between units).
#pragma once
#include <cstdint>

#include "gemm_kernels.h"

namespace rnnfast {
namespace gemm_detail {
namespace body {

// B panels one tile covers: small row counts take several panels, so that at least eight
// independent accumulator chains hide the latency of the fused multiply-add.
template <int R>
struct PanelsPerTile {
  static constexpr int value = R == 1 ? 4 : (R <= 3 ? 2 : 1);
};

// C[0:R, 0:ncols] of one tile: R rows of A against P consecutive B panels (ncols <= P * NR).
// kRowA: A element (i, k) at a[i * s + k] (rows of A read in place); else at a[k * s + i].
// kNarrow (P == 1, ncols <= W): only the panel's first vector of columns is computed (the last
// panel of an N that is not a multiple of NR: H = 100 leaves 4 columns of a 32-wide panel).
// alpha and beta are read from g only after the k loop, so that they hold no vector register
// during it (AVX2 has exactly enough for 6 x 16).
// kInPlaceB: B read in place, its rows g.b_ks apart (else packed, NR apart: a constant).
// kMaskB (P == 1, B in place): the panel's last vector of columns is loaded masked to the
// ncols columns that exist (the last panel of a B that is not a multiple of NR wide).
template <class V, int R, int P, bool kRowA, bool kInPlaceB, bool kNarrow = false,
          bool kMaskB = false>
void tile(const BlockArgs<typename V::T>& g, const typename V::T* a, idx s,
          const typename V::T* b, typename V::T* c, idx ncols) {
  using T = typename V::T;
  using vec = typename V::vec;
  const idx kc = g.kc, b_ps = g.b_ps, ldc = g.ldc;
  const idx b_ks = kInPlaceB ? g.b_ks : V::NV * V::W;
  constexpr int NV = V::NV;
  constexpr int NR = V::NV * V::W;
  constexpr int NT = kNarrow ? 1 : P * NV;  // vectors per tile row
  vec acc[R][NT];
#pragma GCC unroll 64
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 64
    for (int j = 0; j < NT; ++j) acc[i][j] = V::zero();
  // The C tile is needed only after the k loop: fetch its lines meanwhile.
  constexpr int kLines = (NT * V::W * static_cast<int>(sizeof(T)) + 63) / 64;
#pragma GCC unroll 64
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int l = 0; l <= kLines; ++l)
      __builtin_prefetch(reinterpret_cast<const char*>(c + i * ldc) + 64 * l, 1, 3);

  // Each B panel is read once per tile, a line per 64 / (NR * sizeof(T)) steps of k: it is
  // prefetched into L1 kL1Ahead bytes ahead and into L2 kL2Ahead bytes ahead (the hardware's
  // streams stop at every 4 KiB page, and a pre-packed B that does not fit in L2, as the
  // step product's weights at H = 512, comes from L3 for the first panel of rows). The A/B
  // against no prefetch is in bench/RESULTS.md (session 6, the float32 GEMM against MKL).
  constexpr int kRowBytes = NR * static_cast<int>(sizeof(T));
  constexpr int kL1Ahead = 1024, kL2Ahead = 6144;
  constexpr int kLinesPerK = kRowBytes >= 64 ? kRowBytes / 64 : 1;
  constexpr int kL1Rows = kL1Ahead / kRowBytes, kL2Rows = kL2Ahead / kRowBytes;
  const idx tail = ncols - (NT - 1) * V::W;  // columns of the last vector (kMaskB)
  // Tiles of few rows (the single-sequence steps of a small batch) do too few multiply-adds
  // per k for the prefetches to pay: their weights stay in cache anyway.
  constexpr bool kPrefetchB = R >= 4;
  for (idx k = 0; k < kc; ++k) {
    vec bv[NT];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        if (p * NV + v < NT)
          bv[p * NV + v] = kMaskB && p * NV + v == NT - 1
                               ? V::load_n(b + p * b_ps + k * b_ks + v * V::W, tail)
                               : V::load(b + p * b_ps + k * b_ks + v * V::W);
    if constexpr (kPrefetchB) {
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        const char* l1 = reinterpret_cast<const char*>(b + p * b_ps + (k + kL1Rows) * b_ks);
        const char* l2 = reinterpret_cast<const char*>(b + p * b_ps + (k + kL2Rows) * b_ks);
#pragma GCC unroll 8
        for (int l = 0; l < kLinesPerK; ++l) {
          __builtin_prefetch(l1 + 64 * l, 0, 3);
          __builtin_prefetch(l2 + 64 * l, 0, 2);
        }
      }
    }
#pragma GCC unroll 64
    for (int i = 0; i < R; ++i) {
      const vec ai = V::set1(kRowA ? a[i * s + k] : a[k * s + i]);
#pragma GCC unroll 64
      for (int j = 0; j < NT; ++j) acc[i][j] = V::fma(ai, bv[j], acc[i][j]);
    }
  }

  const vec va = V::set1(g.alpha);
  const vec vb = V::set1(g.beta);
  const bool read_c = g.beta != T(0);
  if (ncols == NT * V::W) {
#pragma GCC unroll 64
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 64
      for (int j = 0; j < NT; ++j) {
        T* cp = c + i * ldc + j * V::W;
        vec r = V::mul(va, acc[i][j]);
        if (read_c) r = V::fma(vb, V::load(cp), r);
        V::store(cp, r);
      }
  } else {
#pragma GCC unroll 64
    for (int j = 0; j < NT; ++j) {
      const idx lanes = ncols - j * V::W;
      if (lanes <= 0) break;
      const idx n = lanes < V::W ? lanes : V::W;
#pragma GCC unroll 64
      for (int i = 0; i < R; ++i) {
        T* cp = c + i * ldc + j * V::W;
        vec r = V::mul(va, acc[i][j]);
        if (read_c) r = V::fma(vb, V::load_n(cp, n), r);
        V::store_n(cp, r, n);
      }
    }
  }
}

// One panel of R rows of A against all the B panels of the block, P panels per tile.
template <class V, int R, bool kRowA, bool kInPlaceB, int P = PanelsPerTile<R>::value>
void sweep(const BlockArgs<typename V::T>& g, const typename V::T* a, idx s, typename V::T* c) {
  constexpr int NR = V::NV * V::W;
  const idx np = (g.n + NR - 1) / NR;
  constexpr bool B_ = kInPlaceB;
  idx j = 0;
  if (P > 1) {
    // B in place: the multi-panel tiles take whole panels only (the last one is masked).
    const idx whole = kInPlaceB ? g.n / NR : np;
    for (; j + P <= whole; j += P) {
      const idx cols = g.n - j * NR < P * NR ? g.n - j * NR : P * NR;
      tile<V, R, P, kRowA, B_>(g, a, s, g.b + j * g.b_ps, c + j * NR, cols);
    }
  }
  for (; j < np; ++j) {
    const idx cols = g.n - j * NR < NR ? g.n - j * NR : NR;
    const typename V::T* b = g.b + j * g.b_ps;
    if (kInPlaceB && cols < NR) {
      if (V::NV > 1 && cols <= V::W)
        tile<V, R, 1, kRowA, B_, true, true>(g, a, s, b, c + j * NR, cols);
      else
        tile<V, R, 1, kRowA, B_, false, true>(g, a, s, b, c + j * NR, cols);
    } else if (V::NV > 1 && cols <= V::W) {
      tile<V, R, 1, kRowA, B_, true>(g, a, s, b, c + j * NR, cols);
    } else {
      tile<V, R, 1, kRowA, B_>(g, a, s, b, c + j * NR, cols);
    }
  }
}

// Copies R rows of opA (element (i, k) at a[i * rs + k * cs]) to buf as [k * R + i].
template <class V, int R>
void pack_rows(idx kc, const typename V::T* a, idx rs, idx cs, typename V::T* buf) {
  constexpr int W = V::W;
  if (cs == 1) {
    // W x W register transposes: every row is read W values at a time (rows whose stride is a
    // multiple of 4 KiB would evict one another from L1 if read one column at a time).
    idx k = 0;
    for (; k + W <= kc; k += W)
      for (int g = 0; g < R; g += W) {
        const int n = R - g < W ? R - g : W;
        V::transpose(a + g * rs + k, rs, n, buf + k * R + g, R, n);
      }
    for (; k < kc; ++k)
#pragma GCC unroll 64
      for (int i = 0; i < R; ++i) buf[k * R + i] = a[i * rs + k];
  } else {
    for (idx k = 0; k < kc; ++k)
#pragma GCC unroll 8
      for (int g = 0; g < R; g += W) {
        const int n = R - g < W ? R - g : W;
        V::store_n(buf + k * R + g, V::load_n(a + k * cs + g, n), n);
      }
  }
}

template <class V>
void pack_b(bool trans, const typename V::T* B, idx ldb, idx k0, idx kc, idx n0, idx nc,
            typename V::T* dst, idx ps) {
  using T = typename V::T;
  constexpr int W = V::W, NV = V::NV, NR = V::NV * V::W;
  for (idx j = 0; j * NR < nc; ++j) {
    T* d = dst + j * ps;
    const idx c0 = n0 + j * NR;
    const idx cols = nc - j * NR < NR ? nc - j * NR : NR;
    if (!trans) {
      for (idx k = 0; k < kc; ++k) {
        const T* s = B + (k0 + k) * ldb + c0;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const idx lanes = cols - v * W;
          const typename V::vec x = lanes >= W ? V::load(s + v * W)
                                    : lanes > 0 ? V::load_n(s + v * W, lanes)
                                                : V::zero();
          V::store(d + k * NR + v * W, x);
        }
      }
    } else {
      idx k = 0;
      for (; k + W <= kc; k += W)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const idx left = cols - v * W;
          const idx rows = left <= 0 ? 0 : (left < W ? left : W);
          const T* s = rows > 0 ? B + (c0 + v * W) * ldb + k0 + k : B;
          V::transpose(s, ldb, rows, d + k * NR + v * W, NR, W);
        }
      for (; k < kc; ++k)
        for (idx c = 0; c < NR; ++c) d[k * NR + c] = c < cols ? B[(c0 + c) * ldb + k0 + k] : T(0);
    }
  }
}

// C[i, j] = sum_k a[i * lda + k] * b[j * ldb + k]: W rows of B at a time against every row
// of A (the W rows stay in L1), each dot product one vector of partial sums over k (W
// independent chains hide the FMA latency); the W vectors are then transposed and added, which
// leaves the W sums in one vector (a scalar sum per dot product would cost more than the
// products at the K of a recurrent step).
template <class V>
void dot_rows(idx m, idx n, idx k, const typename V::T* a, idx lda, const typename V::T* b,
              idx ldb, typename V::T* c, idx ldc) {
  using T = typename V::T;
  using vec = typename V::vec;
  constexpr int W = V::W;
  const idx tail = k % W, kv = k - tail;
  alignas(64) T parts[W * W], sums[W * W];
  const vec one = V::set1(T(1));
  for (idx j = 0; j < n; j += W) {
    const int nj = n - j < W ? static_cast<int>(n - j) : W;
    const T* bj = b + j * ldb;
    for (idx i = 0; i < m; ++i) {
      const T* ai = a + i * lda;
      vec acc[W];
#pragma GCC unroll 16
      for (int q = 0; q < W; ++q) acc[q] = V::zero();
      for (idx kk = 0; kk < kv; kk += W) {
        const vec av = V::load(ai + kk);
#pragma GCC unroll 16
        for (int q = 0; q < W; ++q)
          if (q < nj) acc[q] = V::fma(av, V::load(bj + q * ldb + kk), acc[q]);
      }
      if (tail) {
        const vec av = V::load_n(ai + kv, tail);
#pragma GCC unroll 16
        for (int q = 0; q < W; ++q)
          if (q < nj) acc[q] = V::fma(av, V::load_n(bj + q * ldb + kv, tail), acc[q]);
      }
#pragma GCC unroll 16
      for (int q = 0; q < W; ++q) V::store(parts + q * W, acc[q]);
      V::transpose(parts, W, nj, sums, W, W);  // sums[l * W + q]: lane l of dot product q
      vec total = V::load(sums);
#pragma GCC unroll 16
      for (int l = 1; l < W; ++l) total = V::fma(one, V::load(sums + l * W), total);
      V::store_n(c + i * ldc + j, total, nj);
    }
  }
}

// dst[j * ldd + i] = src[i * lds + j] (beta == 0) or fma(beta, dst[j * ldd + i], src[i * lds + j])
// for i < rows, j < cols: W x W register transposes (a last partial block of rows masked; the
// columns past the last whole W gathered one at a time), added to dst with the micro-kernel's
// own fma, so that a product computed transposed with beta = 0 and added here gets the bits the
// micro-kernel gives it with beta.
template <class V>
void transpose(idx rows, idx cols, const typename V::T* src, idx lds, typename V::T* dst,
               idx ldd, typename V::T beta) {
  using T = typename V::T;
  constexpr int W = V::W;
  alignas(64) T tmp[W * W];
  const typename V::vec vb = V::set1(beta);
  const idx whole = cols - cols % W;
  for (idx i = 0; i < rows; i += W) {
    const idx n = rows - i < W ? rows - i : W;
    for (idx j = 0; j < cols; j += W) {
      const idx w = cols - j < W ? cols - j : W;
      if (beta == T(0) && j < whole) {
        V::transpose(src + i * lds + j, lds, n, dst + j * ldd + i, ldd, n);
        continue;
      }
      if (j < whole) {
        V::transpose(src + i * lds + j, lds, n, tmp, W, W);
      } else {
        for (idx c = 0; c < w; ++c)
          for (idx r = 0; r < n; ++r) tmp[c * W + r] = src[(i + r) * lds + j + c];
      }
      for (idx c = 0; c < w; ++c) {
        T* d = dst + (j + c) * ldd + i;
        const typename V::vec t = V::load(tmp + c * W);
        V::store_n(d, beta == T(0) ? t : V::fma(vb, V::load_n(d, n), t), n);
      }
    }
  }
}

template <class V, int R, bool kInPlaceB, int P>
void row_panel_b(const BlockArgs<typename V::T>& g, idx i0) {
  typename V::T* c = g.c + i0 * g.ldc;
  if (g.a_read == ARead::packed) {
    sweep<V, R, false, kInPlaceB, P>(g, g.a + i0 * g.kc, R, c);
    return;
  }
  const typename V::T* a = g.a + i0 * g.a_rs;
  if (g.a_read == ARead::in_place && g.a_cs == 1) {
    sweep<V, R, true, kInPlaceB, P>(g, a, g.a_rs, c);
  } else if (g.a_read == ARead::in_place && g.a_rs == 1) {
    sweep<V, R, false, kInPlaceB, P>(g, a, g.a_cs, c);
  } else {
    pack_rows<V, R>(g.kc, a, g.a_rs, g.a_cs, g.a_buf);
    sweep<V, R, false, kInPlaceB, P>(g, g.a_buf, R, c);
  }
}

template <class V, int R, int P>
void row_panel(const BlockArgs<typename V::T>& g, idx i0) {
  if (g.b_ks == V::NV * V::W)
    row_panel_b<V, R, false, P>(g, i0);
  else
    row_panel_b<V, R, true, P>(g, i0);
}

// Tiles of two B panels for panels of at most MR / 2 rows (wide_tiles).
template <int R>
struct WidePanelsPerTile {
  static constexpr int value = PanelsPerTile<R>::value > 2 ? PanelsPerTile<R>::value : 2;
};

// Calls row_panel<V, rows> for a run-time rows in 1..R (kWide: with WidePanelsPerTile).
template <class V, int R, bool kWide = false>
struct RowDispatch {
  static void run(int rows, const BlockArgs<typename V::T>& g, idx i0) {
    if (rows == R)
      row_panel<V, R, kWide ? WidePanelsPerTile<R>::value : PanelsPerTile<R>::value>(g, i0);
    else
      RowDispatch<V, R - 1, kWide>::run(rows, g, i0);
  }
};
template <class V, bool kWide>
struct RowDispatch<V, 0, kWide> {
  static void run(int, const BlockArgs<typename V::T>&, idx) {}
};

// Calls pack_rows<V, rows> for a run-time rows in 1..R.
template <class V, int R>
struct PackDispatch {
  static void run(int rows, idx kc, const typename V::T* a, idx rs, idx cs, typename V::T* buf) {
    if (rows == R)
      pack_rows<V, R>(kc, a, rs, cs, buf);
    else
      PackDispatch<V, R - 1>::run(rows, kc, a, rs, cs, buf);
  }
};
template <class V>
struct PackDispatch<V, 0> {
  static void run(int, idx, const typename V::T*, idx, idx, typename V::T*) {}
};

// The m rows in the fewest panels of at most MR rows, of near-equal size: m = 16 with MR = 14
// runs as 8 + 8 rather than 14 + 2, whose two-row tile reads as many B vectors as the
// fourteen-row one for a seventh of the multiply-adds (16 x 128 x 512: 7% faster). Each C
// element is computed alone, so the values do not depend on the split.
template <class V>
idx panel_count(idx m) {
  return (m + V::MR - 1) / V::MR;
}

// Rows of A read in place whose stride is a multiple of 4 KiB all map to one L1 set (8 ways
// on every x86 core this runs on): more than eight of them per tile evict one another at every
// step of k, and each broadcast of A comes from L2 (the char-level LSTM's dx, rows of 1024
// floats: 25% slower than with rows 1040 apart on Zen 4). Such blocks of at least two B panels
// run as panels of MR / 2 rows against two B panels per tile (the same accumulators, A read
// once per row panel instead of once per B panel).
template <class V>
bool wide_tiles(const BlockArgs<typename V::T>& g) {
  constexpr int NR = V::NV * V::W;
  if (V::MR <= 8 || g.n <= NR || g.a_read != ARead::in_place || g.a_cs != 1) return false;
  return (g.a_rs * static_cast<idx>(sizeof(typename V::T))) % 4096 == 0;
}

template <class V>
void block(const BlockArgs<typename V::T>& g) {
  if constexpr (V::MR > 8) {
    if (wide_tiles<V>(g)) {
      constexpr int R = V::MR / 2;
      const idx panels = (g.m + R - 1) / R;
      for (idx p = 0; p < panels; ++p) {
        const idx i0 = g.m * p / panels, i1 = g.m * (p + 1) / panels;
        RowDispatch<V, R, true>::run(static_cast<int>(i1 - i0), g, i0);
      }
      return;
    }
  }
  const idx panels = panel_count<V>(g.m);
  for (idx p = 0; p < panels; ++p) {
    const idx i0 = g.m * p / panels, i1 = g.m * (p + 1) / panels;
    RowDispatch<V, V::MR>::run(static_cast<int>(i1 - i0), g, i0);
  }
}

// Packs the m rows of opA[:, 0:kc] into block()'s panels (ARead::packed). Columns of A (rs ==
// 1, a transposed operand) are read kK values of k at a time across every panel: kK runs of m
// contiguous values, which the hardware prefetches, where a panel at a time would read R values
// from each of kc rows kc apart (the weight gradients' dgates^T: 8 KiB apart), and each panel
// is written kK * R contiguous values at a time (one k across every panel would write a few
// values to each of m / R panels whose starts share two L1 sets).
template <class V>
void pack_a(idx m, idx kc, const typename V::T* a, idx rs, idx cs, typename V::T* dst) {
  constexpr int W = V::W;
  constexpr idx kK = 16;
  const idx panels = panel_count<V>(m);
  if (rs == 1) {
    for (idx k0 = 0; k0 < kc; k0 += kK) {
      const idx k1 = k0 + kK < kc ? k0 + kK : kc;
      for (idx p = 0; p < panels; ++p) {
        const idx i0 = m * p / panels, r = m * (p + 1) / panels - i0;
        typename V::T* d = dst + i0 * kc;
        for (idx k = k0; k < k1; ++k) {
          const typename V::T* src = a + k * cs + i0;
          __builtin_prefetch(reinterpret_cast<const char*>(src) + 256, 0, 3);
          for (idx v = 0; v < r; v += W) {
            const idx n = r - v < W ? r - v : W;
            V::store_n(d + k * r + v, V::load_n(src + v, n), n);
          }
        }
      }
    }
    return;
  }
  for (idx p = 0; p < panels; ++p) {
    const idx i0 = m * p / panels, i1 = m * (p + 1) / panels;
    PackDispatch<V, V::MR>::run(static_cast<int>(i1 - i0), kc, a + i0 * rs, rs, cs,
                                dst + i0 * kc);
  }
}

// The KernelSet of traits V with cache blocks of depth KC (up to KD, see KernelSet::kc_deep),
// width at most NC and at most BB elements (depth x width <= BB): the register tile (MR x NR)
// comes from V, and the blocks are checked against it and the caches they must fit.
template <class V, int KC, int NC, int KD = KC, long BB = static_cast<long>(KC) * NC>
constexpr KernelSet<typename V::T> kernel_set() {
  using T = typename V::T;
  constexpr int NR = V::NV * V::W;
  static_assert(NC % NR == 0, "a B block is whole panels");
  static_assert(KD >= KC, "the deepest block is at least the usual one");
  static_assert(V::MR * KD * sizeof(T) <= (32 << 10), "an A panel (MR x depth) stays in L1");
  static_assert(BB * sizeof(T) <= (1 << 20), "a B block (depth x width) stays in L2");
  static_assert(BB / KD >= NR, "the deepest block still spans a panel");
  return {V::MR, NR, KC, KD, NC, BB, &block<V>, &pack_a<V>, &pack_b<V>, &dot_rows<V>,
          &transpose<V>};
}

}  // namespace body
}  // namespace gemm_detail
}  // namespace rnnfast
