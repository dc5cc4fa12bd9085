// Vector shims for AVX2 + FMA: the operations of simd_avx512.h (zero, load, load_n, store,
// store_n, set1, fma, mul) on 256-bit registers. Included only by translation units compiled with
// -mavx2 -mfma (the *_avx2.cc files); internal linkage (unnamed namespace).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace rnnfast {
namespace simd {
namespace {

struct Avx2F32 {
  using T = float;
  using vec = __m256;
  static constexpr int W = 8;
  static __m256i mask(std::int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vec zero() { return _mm256_setzero_ps(); }
  static vec load(const T* p) { return _mm256_loadu_ps(p); }
  static vec load_n(const T* p, std::int64_t n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(T* p, vec v) { _mm256_storeu_ps(p, v); }
  static void store_n(T* p, vec v, std::int64_t n) { _mm256_maskstore_ps(p, mask(n), v); }
  static vec set1(T x) { return _mm256_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
};

struct Avx2F64 {
  using T = double;
  using vec = __m256d;
  static constexpr int W = 4;
  static __m256i mask(std::int64_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static vec zero() { return _mm256_setzero_pd(); }
  static vec load(const T* p) { return _mm256_loadu_pd(p); }
  static vec load_n(const T* p, std::int64_t n) { return _mm256_maskload_pd(p, mask(n)); }
  static void store(T* p, vec v) { _mm256_storeu_pd(p, v); }
  static void store_n(T* p, vec v, std::int64_t n) { _mm256_maskstore_pd(p, mask(n), v); }
  static vec set1(T x) { return _mm256_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_pd(a, b); }
};

}  // namespace
}  // namespace simd
}  // namespace rnnfast
