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
};

}  // namespace
}  // namespace gemm_detail
}  // namespace rnnfast

#include "gemm_body.h"

namespace rnnfast {
namespace gemm_detail {

extern const KernelSet<float> kAvx2F32 = {6, 16, 256, 192, &body::block<Avx2F32>};
extern const KernelSet<double> kAvx2F64 = {6, 8, 256, 96, &body::block<Avx2F64>};

}  // namespace gemm_detail
}  // namespace rnnfast
