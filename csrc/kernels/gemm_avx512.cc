// AVX-512 micro-kernels: float 14 x 32 and double 14 x 16 tiles (28 zmm accumulators).
// Compiled with -mavx512f/bw/dq/vl; includes nothing but intrinsics and the internal headers.
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
};

}  // namespace
}  // namespace gemm_detail
}  // namespace rnnfast

#include "gemm_body.h"

namespace rnnfast {
namespace gemm_detail {

extern const KernelSet<float> kAvx512F32 = {14, 32, 384, 512, &body::block<Avx512F32>};
extern const KernelSet<double> kAvx512F64 = {14, 16, 256, 384, &body::block<Avx512F64>};

}  // namespace gemm_detail
}  // namespace rnnfast
