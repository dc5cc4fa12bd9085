// The pooled convolution backward's kernels for AVX2 + FMA (compiled with -mavx2 -mfma): blocks
// of 8 vectors (of 16 registers).
#include "conv1d_pooled_impl.h"
#include "simd_avx2.h"

namespace rnnfast {
namespace pooled {
namespace {

struct F32 : simd::Avx2F32 {
  static constexpr int kAcc = 8;
};
struct F64 : simd::Avx2F64 {
  static constexpr int kAcc = 8;
};

}  // namespace

const PooledGrad<float> kPooledAvx2F32 = make_pooled<F32>();
const PooledGrad<double> kPooledAvx2F64 = make_pooled<F64>();

}  // namespace pooled
}  // namespace rnnfast
