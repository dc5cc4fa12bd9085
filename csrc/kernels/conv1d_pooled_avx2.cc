// The pooled convolution backward's kernels for AVX2 + FMA (compiled with -mavx2 -mfma): blocks
// of 32 values (4 vectors of floats, 8 of doubles) of two rows at once (8 accumulators for
// floats, all 16 registers for doubles; blocks of 8 vectors of one row: 15-18% more time).
#include "conv1d_pooled_impl.h"
#include "simd_avx2.h"

namespace rnnfast {
namespace pooled {
namespace {

struct F32 : simd::Avx2F32 {
  static constexpr int kAcc = 4;
  static constexpr bool kPairs = true;
};
struct F64 : simd::Avx2F64 {
  static constexpr int kAcc = 8;
  static constexpr bool kPairs = true;
};

}  // namespace

const PooledGrad<float> kPooledAvx2F32 = make_pooled<F32>();
const PooledGrad<double> kPooledAvx2F64 = make_pooled<F64>();

}  // namespace pooled
}  // namespace rnnfast
