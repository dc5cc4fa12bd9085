// The small-batch step product for the baseline instruction set: plain C++ over small arrays
// (simd_portable.h: a * b + c as the portable GEMM micro-kernel computes it), which the compiler
// vectorises.
#include "recurrent_small_impl.h"
#include "simd_portable.h"

namespace rnnfast {
namespace small {
namespace {

template <typename Scalar, int Lanes>
struct Portable : simd::Portable<Scalar, Lanes> {
  static constexpr int kAcc = 8, kRows = 4;
};

}  // namespace

const SmallKernels<float> kSmallGenericF32 = make_kernels<Portable<float, 4>>();
const SmallKernels<double> kSmallGenericF64 = make_kernels<Portable<double, 2>>();

}  // namespace small
}  // namespace rnnfast
