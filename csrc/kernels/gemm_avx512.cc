// AVX-512 micro-kernels: float 14 x 32 and double 14 x 16 tiles (28 zmm accumulators).
// Compiled with -mavx512f/bw/dq/vl; includes nothing but intrinsics and the internal headers.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's AVX-512 shuffle intrinsics start from _mm512_undefined_*(), which its
// -Wuninitialized misreports (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "gemm_kernels.h"

namespace rnnfast {
namespace gemm_detail {

namespace {

struct Avx512F32 {
  using T = float;
  using vec = __m512;
  static constexpr int W = 16, NV = 2, MR = 14;
  static __mmask16 mask(idx n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static vec zero() { return _mm512_setzero_ps(); }
  static vec load(const T* p) { return _mm512_loadu_ps(p); }
  static vec load_n(const T* p, idx n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(T* p, vec v) { _mm512_storeu_ps(p, v); }
  static void store_n(T* p, vec v, idx n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static vec set1(T x) { return _mm512_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
  static void transpose(const T* src, idx ld, idx rows, T* dst, idx ldd, idx lanes) {
    vec r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(src + i * ld) : zero();
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
      const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
      r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
      r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
      r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
      r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
        t[8 * h + 4 + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0xDD);
      }
    const __mmask16 m = mask(lanes);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      _mm512_mask_storeu_ps(dst + i * ldd, m, _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88));
      _mm512_mask_storeu_ps(dst + (8 + i) * ldd, m, _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD));
    }
  }
};

struct Avx512F64 {
  using T = double;
  using vec = __m512d;
  static constexpr int W = 8, NV = 2, MR = 14;
  static __mmask8 mask(idx n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static vec zero() { return _mm512_setzero_pd(); }
  static vec load(const T* p) { return _mm512_loadu_pd(p); }
  static vec load_n(const T* p, idx n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store(T* p, vec v) { _mm512_storeu_pd(p, v); }
  static void store_n(T* p, vec v, idx n) { _mm512_mask_storeu_pd(p, mask(n), v); }
  static vec set1(T x) { return _mm512_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm512_mul_pd(a, b); }
  static void transpose(const T* src, idx ld, idx rows, T* dst, idx ldd, idx lanes) {
    vec r[8], t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm512_loadu_pd(src + i * ld) : zero();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
#pragma GCC unroll 2
      for (int i = 0; i < 2; ++i) {
        r[4 * h + i] = _mm512_shuffle_f64x2(t[4 * h + i], t[4 * h + 2 + i], 0x88);
        r[4 * h + 2 + i] = _mm512_shuffle_f64x2(t[4 * h + i], t[4 * h + 2 + i], 0xDD);
      }
    const __mmask8 m = mask(lanes);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      _mm512_mask_storeu_pd(dst + i * ldd, m, _mm512_shuffle_f64x2(r[i], r[4 + i], 0x88));
      _mm512_mask_storeu_pd(dst + (4 + i) * ldd, m, _mm512_shuffle_f64x2(r[i], r[4 + i], 0xDD));
    }
  }
};

}  // namespace
}  // namespace gemm_detail
}  // namespace rnnfast

#include "gemm_body.h"

namespace rnnfast {
namespace gemm_detail {

// float: depth blocks of 256 (384 and 512 are slower on the weight gradients and on K >= 2048),
// but a K of up to 1024 with rows of A (dx of the LSTM's backward at H <= 256, the step products)
// runs as one or two blocks of up to 512 rather than 2-4 blocks of 256, reloading its C tiles
// once or not at all (dx 5-15% faster); B blocks of 1 MiB: 1024 columns up to depth 256 (512
// columns are slower on the shallow products, whose C tiles are short), 512 at depth 512. The
// A/B figures are in bench/RESULTS.md ("the float32 GEMM against MKL", sessions 5-7).
extern const KernelSet<float> kAvx512F32 = body::kernel_set<Avx512F32, 256, 1024, 512, 256L * 1024>();
extern const KernelSet<double> kAvx512F64 = body::kernel_set<Avx512F64, 256, 384>();

}  // namespace gemm_detail
}  // namespace rnnfast
