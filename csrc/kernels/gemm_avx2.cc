// AVX2 + FMA micro-kernels: float 6 x 16 and double 6 x 8 tiles (12 ymm accumulators).
// Compiled with -mavx2 -mfma; includes nothing but intrinsics and the internal headers.
#include <immintrin.h>

#include <cstdint>

#include "gemm_kernels.h"

namespace rnnfast {
namespace gemm_detail {

namespace {

struct Avx2F32 {
  using T = float;
  using vec = __m256;
  static constexpr int W = 8, NV = 2, MR = 6;
  static __m256i mask(idx n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vec zero() { return _mm256_setzero_ps(); }
  static vec load(const T* p) { return _mm256_loadu_ps(p); }
  static vec load_n(const T* p, idx n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(T* p, vec v) { _mm256_storeu_ps(p, v); }
  static void store_n(T* p, vec v, idx n) { _mm256_maskstore_ps(p, mask(n), v); }
  static vec set1(T x) { return _mm256_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
  static void transpose(const T* src, idx ld, idx rows, T* dst, idx ldd, idx lanes) {
    vec r[8], t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : zero();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      r[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
      r[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
      r[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
      r[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    const __m256i m = mask(lanes);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      _mm256_maskstore_ps(dst + i * ldd, m, _mm256_permute2f128_ps(r[i], r[4 + i], 0x20));
      _mm256_maskstore_ps(dst + (4 + i) * ldd, m, _mm256_permute2f128_ps(r[i], r[4 + i], 0x31));
    }
  }
};

struct Avx2F64 {
  using T = double;
  using vec = __m256d;
  static constexpr int W = 4, NV = 2, MR = 6;
  static __m256i mask(idx n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static vec zero() { return _mm256_setzero_pd(); }
  static vec load(const T* p) { return _mm256_loadu_pd(p); }
  static vec load_n(const T* p, idx n) { return _mm256_maskload_pd(p, mask(n)); }
  static void store(T* p, vec v) { _mm256_storeu_pd(p, v); }
  static void store_n(T* p, vec v, idx n) { _mm256_maskstore_pd(p, mask(n), v); }
  static vec set1(T x) { return _mm256_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_pd(a, b); }
  static void transpose(const T* src, idx ld, idx rows, T* dst, idx ldd, idx lanes) {
    vec r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) r[i] = i < rows ? _mm256_loadu_pd(src + i * ld) : zero();
    const vec t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const vec t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    const __m256i m = mask(lanes);
    _mm256_maskstore_pd(dst, m, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_maskstore_pd(dst + ldd, m, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_maskstore_pd(dst + 2 * ldd, m, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_maskstore_pd(dst + 3 * ldd, m, _mm256_permute2f128_pd(t1, t3, 0x31));
  }
};

}  // namespace
}  // namespace gemm_detail
}  // namespace rnnfast

#include "gemm_body.h"

namespace rnnfast {
namespace gemm_detail {

extern const KernelSet<float> kAvx2F32 = body::kernel_set<Avx2F32, 256, 192>();
extern const KernelSet<double> kAvx2F64 = body::kernel_set<Avx2F64, 256, 96>();

}  // namespace gemm_detail
}  // namespace rnnfast
