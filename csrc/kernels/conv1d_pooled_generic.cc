// The pooled convolution backward's kernels for the baseline instruction set (simd_portable.h:
// plain C++ over small arrays, which the compiler vectorises).
#include "conv1d_pooled_impl.h"
#include "simd_portable.h"

namespace rnnfast {
namespace pooled {
namespace {

template <typename Scalar, int Lanes>
struct Portable : simd::Portable<Scalar, Lanes> {
  static constexpr int kAcc = 4;
};

}  // namespace

const PooledGrad<float> kPooledGenericF32 = make_pooled<Portable<float, 4>>();
const PooledGrad<double> kPooledGenericF64 = make_pooled<Portable<double, 2>>();

}  // namespace pooled
}  // namespace rnnfast
