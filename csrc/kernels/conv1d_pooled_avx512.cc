// The pooled convolution backward's kernels for AVX-512 (compiled with -mavx512f/bw/dq/vl):
// blocks of 8 vectors (128 floats) of one row in registers.
#include "conv1d_pooled_impl.h"
#include "simd_avx512.h"

namespace rnnfast {
namespace pooled {
namespace {

struct F32 : simd::Avx512F32 {
  static constexpr int kAcc = 8;
};
struct F64 : simd::Avx512F64 {
  static constexpr int kAcc = 8;
};

}  // namespace

const PooledGrad<float> kPooledAvx512F32 = make_pooled<F32>();
const PooledGrad<double> kPooledAvx512F64 = make_pooled<F64>();

}  // namespace pooled
}  // namespace rnnfast
