// The small-batch step product for AVX-512 (compiled with -mavx512f/bw/dq/vl -mfma).
#include "recurrent_small_impl.h"
#include "simd_avx512.h"

namespace rnnfast {
namespace small {
namespace {

// 16 accumulators per tile (of 32 registers), up to 8 rows at once.
struct F32 : simd::Avx512F32 {
  static constexpr int kAcc = 16, kRows = 8;
};

struct F64 : simd::Avx512F64 {
  static constexpr int kAcc = 16, kRows = 8;
};

}  // namespace

const SmallKernels<float> kSmallAvx512F32 = make_kernels<F32>();
const SmallKernels<double> kSmallAvx512F64 = make_kernels<F64>();

}  // namespace small
}  // namespace rnnfast
