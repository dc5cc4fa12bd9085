// AVX512-BF16 kernels of the bfloat16 GEMM (vdpbf16ps: 16 float sums of pairs of bfloat16
// products per instruction), and the AVX-512 conversions every hardware path uses (rounding,
// packing B into the VNNI panels). Compiled with -mavx512f/bw/dq/vl -mavx512bf16; includes
// nothing but intrinsics and the internal header.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which its -Wuninitialized
// misreports (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "gemm_bf16_kernels.h"
#include "gemm_bf16_simd.h"

namespace rnnfast {
namespace gemm_bf16_detail {

namespace {

// 16 floats -> their bfloat16 bits (round to nearest even, NaN kept quiet), in the low 16 bits
// of each 32-bit lane.
__m512i round16(__m512 x) {
  const __m512i v = _mm512_castps_si512(x);
  const __m512i hi = _mm512_srli_epi32(v, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(v, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(v, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

// 32 floats (a, then b) rounded as round16, as 32 bfloat16 in order (a0..a15, b0..b15):
// vcvtne2ps2bf16, one instruction for 32 values against some 20 for two round16. It rounds
// every normal, infinite and NaN input as bf16_bits does, but flushes subnormal inputs to zero
// (bf16_bits rounds them, the largest up to the smallest normal bfloat16): the rare vector that
// holds one takes round16.
inline __m512i round32(__m512 a, __m512 b) {
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), one = _mm512_set1_epi32(1);
  const __m512i below = _mm512_set1_epi32(0x007fffff);  // |x| - 1 < it: x subnormal
  const __mmask16 sa = _mm512_cmplt_epu32_mask(
      _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(a), abs), one), below);
  const __mmask16 sb = _mm512_cmplt_epu32_mask(
      _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(b), abs), one), below);
  if (__builtin_expect((sa | sb) != 0, 0))
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(round16(a))),
                              _mm512_cvtepi32_epi16(round16(b)), 1);
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
}

// Rows k (a) and k + 1 (b) of 16 columns rounded and joined into 16 VNNI pair words (k in the
// low half, k + 1 in the high half).
inline __m512i round_pairs(__m512 a, __m512 b) {
  const __m512i interleave = _mm512_set_epi16(
      31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
      23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, round32(a, b));
}

void round_bits(idx n, const float* src, bf16* dst) {
  idx i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(dst + i, round32(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
  for (; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtepi32_epi16(round16(_mm512_maskz_loadu_ps(m, src + i))));
  }
}

// r[i] (16 words each) -> column i of the 16 x 16 matrix whose rows are r.
__attribute__((always_inline)) inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) {
      t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
      t[8 * h + 4 + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0xDD);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
  }
}

// The 32-bit word of pair row kk (k = 2kk, 2kk + 1), columns 16h..16h + 15 of a panel, in the
// tile layout of PackedBf16 (rnnfast/gemm_bf16.h): 16 pair rows of 16 words per tile, the two
// tiles of a depth step of 32 side by side.
inline idx word(idx kk, int h) { return (kk / 16) * 512 + h * 256 + (kk % 16) * 16; }

// pack_panel's panels (below) of B itself, not transposed, row k of B at row(k): rows k and k + 1,
// 16 columns at a time (zeros past n: masked loads). Chunks of 64 k across every panel of the
// range, so that each row of B is read once, its chunk staying in cache.
template <typename Row>
inline void pack_rows_of_b(Row row, idx K, idx kp, idx n0, idx n, bf16* dst) {
  const idx panels = (n + kNr - 1) / kNr, pairs = kp / 2;
  const __m512 zero = _mm512_setzero_ps();
  constexpr idx kChunk = 32;  // pairs
  for (idx kc = 0; kc < pairs; kc += kChunk) {
    const idx kc_end = kc + kChunk < pairs ? kc + kChunk : pairs;
    for (idx p = 0; p < panels; ++p) {
      auto* out = reinterpret_cast<std::uint32_t*>(dst + p * kp * kNr);
      const idx cols = n - p * kNr;
      const __mmask16 c0 = mask16(cols), c1 = mask16(cols - 16);
      for (idx kk = kc; kk < kc_end; ++kk) {
        const idx k = 2 * kk;
        for (int h = 0; h < 2; ++h) {
          const __mmask16 cm = h ? c1 : c0;
          const idx col = n0 + p * kNr + 16 * h;
          const __m512 lo = k < K ? _mm512_maskz_loadu_ps(cm, row(k) + col) : zero;
          const __m512 hi = k + 1 < K ? _mm512_maskz_loadu_ps(cm, row(k + 1) + col) : zero;
          _mm512_storeu_si512(out + word(kk, h), round_pairs(lo, hi));
        }
      }
    }
  }
}

void pack_panel_rows(const float* const* rows, idx K, idx kp, idx n0, idx n, bf16* dst) {
  pack_rows_of_b([rows](idx k) { return rows[k]; }, K, kp, n0, n, dst);
}

// Panels of op(B) (columns [n0, n0 + n), n0 a multiple of kNr) in the VNNI layout: the 32-bit
// word of pair row kk and column col holds (k = 2kk) in its low half and (k = 2kk + 1) in its
// high half; tiles as word(). Panel p of the range at dst + p * kp * kNr (64-byte aligned).
void pack_panel(bool trans, const float* B, idx ldb, idx K, idx kp, idx n0, idx n, bf16* dst) {
  if (!trans) {
    pack_rows_of_b([B, ldb](idx k) { return B + k * ldb; }, K, kp, n0, n, dst);
    return;
  }
  const idx panels = (n + kNr - 1) / kNr;
  const __m512 zero = _mm512_setzero_ps();
  // B[col * ldb + k]: a column of op(B) is a row of B, its pairs of k adjacent: 32 values of
  // k rounded in order are the column's 16 pair words. For 16 columns, transposed to 16 pair
  // rows.
  for (idx p = 0; p < panels; ++p) {
    auto* out = reinterpret_cast<float*>(dst + p * kp * kNr);  // words, moved as floats
    for (idx kb = 0; kb < kp; kb += 32) {
      for (int h = 0; h < 2; ++h) {
        __m512 w[16];
        for (int c = 0; c < 16; ++c) {
          const idx col = p * kNr + 16 * h + c;
          if (col >= n) {
            w[c] = zero;
            continue;
          }
          const float* src = B + (n0 + col) * ldb + kb;
          w[c] = _mm512_castsi512_ps(round32(_mm512_maskz_loadu_ps(mask16(K - kb), src),
                                             _mm512_maskz_loadu_ps(mask16(K - kb - 16), src + 16)));
        }
        transpose16(w);
        for (int kk = 0; kk < 16; ++kk) _mm512_storeu_ps(out + word(kb / 2 + kk, h), w[kk]);
      }
    }
  }
}

void pack_rows_trans(const float* A, idx lda, idx K, idx m0, idx n, idx kp, bool tiled,
                     bf16* dst, float* sums) {
  // Blocks of 32 k; in a block, every strip of 16 rows of op(A): rows k and k + 1 of A (16
  // contiguous values of i) rounded and joined into 32-bit words (k low, k + 1 high), 16 such
  // word rows transposed to 16 rows of op(A). The strips of a block read its 32 rows of A line
  // after line: 32 sequential streams, which the hardware prefetchers follow (chunks of 128
  // rows, 128 streams, ran the weight gradients' product at T=100, B=64, I=64, H=256 in 13.8 ms
  // instead of 10.2: every line a miss; bench/RESULTS.md). sums: each strip's running sums kept
  // in sums between blocks, added k by k (the order of a sequential sum).
  const __m512 zero = _mm512_setzero_ps();
  for (idx k0 = 0; k0 < kp; k0 += 32) {
    for (idx s = 0; s < n; s += 16) {
      const idx rows = n - s < 16 ? n - s : 16;
      const __mmask16 m = mask16(rows);
      const float* a = A + m0 + s;
      bf16* d = dst + s * kp;
      __m512 acc = zero;
      if (sums && k0 > 0) acc = _mm512_maskz_loadu_ps(m, sums + s);
      __m512 w[16];
      for (int kk = 0; kk < 16; ++kk) {
        const idx k = k0 + 2 * kk;
        const __m512 lo = k < K ? _mm512_maskz_loadu_ps(m, a + k * lda) : zero;
        const __m512 hi = k + 1 < K ? _mm512_maskz_loadu_ps(m, a + (k + 1) * lda) : zero;
        if (sums) {
          if (k < K) acc = _mm512_add_ps(acc, lo);
          if (k + 1 < K) acc = _mm512_add_ps(acc, hi);
        }
        w[kk] = _mm512_castsi512_ps(round_pairs(lo, hi));
      }
      transpose16(w);
      if (tiled)  // rows past n are zeros (masked loads)
        for (idx i = 0; i < 16; ++i) _mm512_storeu_ps(d + k0 * 16 + i * 32, w[i]);
      else
        for (idx i = 0; i < rows; ++i) _mm512_storeu_ps(d + i * kp + k0, w[i]);
      if (sums) _mm512_mask_storeu_ps(sums + s, m, acc);
    }
  }
}

void pack_rows_tiled(const float* A, idx lda, idx K, idx n, idx kp, bf16* dst) {
  const idx n_pad = (n + 15) / 16 * 16;
  for (idx i = 0; i < n_pad; ++i) {
    bf16* d = dst + (i / 16) * 16 * kp + (i % 16) * 32;
    if (i >= n) {
      for (idx kb = 0; kb < kp; kb += 32) _mm512_storeu_si512(d + kb * 16, _mm512_setzero_si512());
      continue;
    }
    const float* a = A + i * lda;
    for (idx kb = 0; kb < kp; kb += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(mask16(K - kb), a + kb);
      const __m512 hi = _mm512_maskz_loadu_ps(mask16(K - kb - 16), a + kb + 16);
      _mm512_storeu_si512(d + kb * 16, round32(lo, hi));
    }
  }
}

// R rows x one panel: acc[r][h] holds columns 16h..16h+15 of row r.
template <int R>
void tile(const ProductArgs& p, idx i0, const bf16* panel, idx col0, __mmask16 m0, __mmask16 m1) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const idx pairs = p.kp / 2;
  const auto* a = reinterpret_cast<const std::int32_t*>(p.a + i0 * p.kp);
  const idx a_ld = p.kp / 2;
  for (idx kk = 0; kk < pairs; ++kk) {
    const bf16* b = panel + (kk / 16) * 1024 + (kk % 16) * 32;  // PackedBf16's tiles
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 512);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(a[r * a_ld + kk]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* c = p.c + (i0 + r) * p.ldc + col0;
    for (int h = 0; h < 2; ++h)
      if (const __mmask16 m = h ? m1 : m0) store_c(c + 16 * h, m, acc[r][h], p.alpha, p.beta);
  }
}

constexpr int kMr = 12;

template <int R>
void rows_tail(const ProductArgs& p, idx i0, idx rows, const bf16* panel, idx col0, __mmask16 m0,
               __mmask16 m1) {
  if constexpr (R > 0) {
    if (rows == R) return tile<R>(p, i0, panel, col0, m0, m1);
    rows_tail<R - 1>(p, i0, rows, panel, col0, m0, m1);
  }
}

void product(const ProductArgs& p) {
  if (p.m <= 0 || p.n0 >= p.n1) return;
  const idx first = p.n0 / kNr, end = (p.n1 + kNr - 1) / kNr;
  for (idx j = first; j < end; ++j) {
    const idx pj = p.descending ? first + end - 1 - j : j;
    const idx col0 = pj * kNr;
    const idx lo = (p.n0 > col0 ? p.n0 : col0) - col0;
    const idx hi = (p.n1 < col0 + kNr ? p.n1 : col0 + kNr) - col0;
    const std::uint32_t bits = static_cast<std::uint32_t>(
        (hi >= 32 ? 0xffffffffu : ((1u << hi) - 1u)) & ~((1u << lo) - 1u));
    const __mmask16 m0 = static_cast<__mmask16>(bits & 0xffffu), m1 = static_cast<__mmask16>(bits >> 16);
    const bf16* panel = p.b + pj * p.kp * kNr;
    idx i0 = 0;
    for (; i0 + kMr <= p.m; i0 += kMr) tile<kMr>(p, i0, panel, col0, m0, m1);
    if (i0 < p.m) rows_tail<kMr - 1>(p, i0, p.m - i0, panel, col0, m0, m1);
  }
}

}  // namespace

extern const Bf16Kernels kBf16Avx512{1, false, product};
extern const Bf16Convert kBf16ConvertAvx512{round_bits, pack_panel, pack_panel_rows,
                                             pack_rows_trans, pack_rows_tiled};

}  // namespace gemm_bf16_detail
}  // namespace rnnfast
