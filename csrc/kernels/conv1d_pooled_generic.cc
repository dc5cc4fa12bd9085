// The pooled convolution backward's kernels for the baseline instruction set (simd_portable.h:
// plain C++ over small arrays, which the compiler vectorises).
#include "conv1d_pooled_impl.h"
#include "simd_portable.h"

namespace rnnfast {
namespace pooled {
namespace {

// Floats: blocks of 32 (8 vectors of 4) of two rows at once, twice as fast as 16 of one row;
// doubles: 8 (4 vectors of 2) of one row, faster than two rows or wider blocks.
template <typename Scalar, int Lanes, int Acc, bool Pairs>
struct Portable : simd::Portable<Scalar, Lanes> {
  static constexpr int kAcc = Acc;
  static constexpr bool kPairs = Pairs;
};

}  // namespace

const PooledGrad<float> kPooledGenericF32 = make_pooled<Portable<float, 4, 8, true>>();
const PooledGrad<double> kPooledGenericF64 = make_pooled<Portable<double, 2, 4, false>>();

}  // namespace pooled
}  // namespace rnnfast
