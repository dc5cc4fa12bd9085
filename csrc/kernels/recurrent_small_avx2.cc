// The small-batch step product for AVX2 + FMA (compiled with -mavx2 -mfma).
#include "recurrent_small_impl.h"
#include "simd_avx2.h"

namespace rnnfast {
namespace small {
namespace {

// 8 accumulators per tile (of 16 registers), up to 4 rows at once.
struct F32 : simd::Avx2F32 {
  static constexpr int kAcc = 8, kRows = 4;
};

struct F64 : simd::Avx2F64 {
  static constexpr int kAcc = 8, kRows = 4;
};

}  // namespace

const SmallKernels<float> kSmallAvx2F32 = make_kernels<F32>();
const SmallKernels<double> kSmallAvx2F64 = make_kernels<F64>();

}  // namespace small
}  // namespace rnnfast
