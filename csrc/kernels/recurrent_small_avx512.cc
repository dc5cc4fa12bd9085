// The small-batch step product for AVX-512 (compiled with -mavx512f/bw/dq/vl -mfma).
#include <immintrin.h>

#include "recurrent_small_impl.h"

namespace rnnfast {
namespace small {
namespace {

struct F32 {
  using T = float;
  using vec = __m512;
  static constexpr int W = 16, kAcc = 16, kRows = 8;
  static vec zero() { return _mm512_setzero_ps(); }
  static vec load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec set1(T x) { return _mm512_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
};

struct F64 {
  using T = double;
  using vec = __m512d;
  static constexpr int W = 8, kAcc = 16, kRows = 8;
  static vec zero() { return _mm512_setzero_pd(); }
  static vec load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, vec v) { _mm512_storeu_pd(p, v); }
  static vec set1(T x) { return _mm512_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
};

}  // namespace

const SmallKernels<float> kSmallAvx512F32 = make_kernels<F32>();
const SmallKernels<double> kSmallAvx512F64 = make_kernels<F64>();

}  // namespace small
}  // namespace rnnfast
