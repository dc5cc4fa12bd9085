// The small-batch step product for AVX2 + FMA (compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "recurrent_small_impl.h"

namespace rnnfast {
namespace small {
namespace {

struct F32 {
  using T = float;
  using vec = __m256;
  static constexpr int W = 8, kAcc = 8, kRows = 4;
  static vec zero() { return _mm256_setzero_ps(); }
  static vec load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec set1(T x) { return _mm256_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
};

struct F64 {
  using T = double;
  using vec = __m256d;
  static constexpr int W = 4, kAcc = 8, kRows = 4;
  static vec zero() { return _mm256_setzero_pd(); }
  static vec load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, vec v) { _mm256_storeu_pd(p, v); }
  static vec set1(T x) { return _mm256_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
};

}  // namespace

const SmallKernels<float> kSmallAvx2F32 = make_kernels<F32>();
const SmallKernels<double> kSmallAvx2F64 = make_kernels<F64>();

}  // namespace small
}  // namespace rnnfast
