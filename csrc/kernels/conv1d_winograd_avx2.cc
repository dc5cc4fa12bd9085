// The Winograd convolution's transforms for AVX2 + FMA: 8 channels per vector.
#include "conv1d_winograd_impl.h"
#include "simd_avx2.h"

namespace rnnfast {
namespace winograd {
namespace {

using S = simd::Avx2F32;

}  // namespace

const TransformSet kWinogradAvx2 = {transforms_of<S, 0>(), transforms_of<S, 1>(),
                                   transforms_of<S, 2>(), transforms_of<S, 3>(),
                                   transforms_of<S, 4>()};

const FinishPool kFinishPoolAvx2 = &finish_pool;

}  // namespace winograd
}  // namespace rnnfast
