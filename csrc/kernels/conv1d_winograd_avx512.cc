// The Winograd convolution's transforms for AVX-512 (compiled with -mavx512f/bw/dq/vl): 16
// channels per vector.
#include "conv1d_winograd_impl.h"
#include "simd_avx512.h"

namespace rnnfast {
namespace winograd {
namespace {

using S = simd::Avx512F32;

}  // namespace

const TransformSet kWinogradAvx512 = {transforms_of<S, 0>(), transforms_of<S, 1>(),
                                   transforms_of<S, 2>(), transforms_of<S, 3>(),
                                   transforms_of<S, 4>()};

const FinishPool kFinishPoolAvx512 = &finish_pool;

}  // namespace winograd
}  // namespace rnnfast
