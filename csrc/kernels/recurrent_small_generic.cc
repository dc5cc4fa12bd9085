// The small-batch step product for the baseline instruction set: plain C++ over small arrays
// (a * b + c as the portable GEMM micro-kernel computes it), which the compiler vectorises.
#include "recurrent_small_impl.h"

namespace rnnfast {
namespace small {
namespace {

template <typename Scalar, int Lanes>
struct Portable {
  using T = Scalar;
  struct vec {
    T v[Lanes];
  };
  static constexpr int W = Lanes, kAcc = 8, kRows = 4;
  static vec zero() {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = T(0);
    return r;
  }
  static vec load(const T* p) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = p[l];
    return r;
  }
  static void store(T* p, vec v) {
    for (int l = 0; l < W; ++l) p[l] = v.v[l];
  }
  static vec set1(T x) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = x;
    return r;
  }
  static vec fma(vec a, vec b, vec c) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
    return r;
  }
};

}  // namespace

const SmallKernels<float> kSmallGenericF32 = make_kernels<Portable<float, 4>>();
const SmallKernels<double> kSmallGenericF64 = make_kernels<Portable<double, 2>>();

}  // namespace small
}  // namespace rnnfast
