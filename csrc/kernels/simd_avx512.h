// Vector shims for AVX-512 F/BW/DQ/VL: one struct per element type with the operations the
// register-tiled kernels are written over (zero, load, masked load of the first n lanes, store,
// masked store, set1, fma = a * b + c in one rounding, mul). A kernel's traits type derives from
// one and adds its own tile sizes. Included only by translation units compiled with the
// AVX-512 flags (the *_avx512.cc files); internal linkage (unnamed namespace), so no inline
// function built for one instruction set is merged with another's.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace rnnfast {
namespace simd {
namespace {

struct Avx512F32 {
  using T = float;
  using vec = __m512;
  static constexpr int W = 16;
  static __mmask16 mask(std::int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static vec zero() { return _mm512_setzero_ps(); }
  static vec load(const T* p) { return _mm512_loadu_ps(p); }
  static vec load_n(const T* p, std::int64_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(T* p, vec v) { _mm512_storeu_ps(p, v); }
  static void store_n(T* p, vec v, std::int64_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static vec set1(T x) { return _mm512_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
};

struct Avx512F64 {
  using T = double;
  using vec = __m512d;
  static constexpr int W = 8;
  static __mmask8 mask(std::int64_t n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static vec zero() { return _mm512_setzero_pd(); }
  static vec load(const T* p) { return _mm512_loadu_pd(p); }
  static vec load_n(const T* p, std::int64_t n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store(T* p, vec v) { _mm512_storeu_pd(p, v); }
  static void store_n(T* p, vec v, std::int64_t n) { _mm512_mask_storeu_pd(p, mask(n), v); }
  static vec set1(T x) { return _mm512_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm512_mul_pd(a, b); }
};

}  // namespace
}  // namespace simd
}  // namespace rnnfast
