// The pooled convolution backward's kernels for AVX-512 (compiled with -mavx512f/bw/dq/vl):
// blocks of 32 values (2 vectors of floats, 4 of doubles) of two rows at once in registers
// (blocks of 8 vectors of one row: 19% more time in float, 43% in double; bench/RESULTS.md).
#include "conv1d_pooled_impl.h"
#include "simd_avx512.h"

namespace rnnfast {
namespace pooled {
namespace {

struct F32 : simd::Avx512F32 {
  static constexpr int kAcc = 2;
  static constexpr bool kPairs = true;
};
struct F64 : simd::Avx512F64 {
  static constexpr int kAcc = 4;
  static constexpr bool kPairs = true;
};

}  // namespace

const PooledGrad<float> kPooledAvx512F32 = make_pooled<F32>();
const PooledGrad<double> kPooledAvx512F64 = make_pooled<F64>();

}  // namespace pooled
}  // namespace rnnfast
