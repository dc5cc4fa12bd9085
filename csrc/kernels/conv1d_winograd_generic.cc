// The Winograd convolution's transforms for the baseline instruction set (simd_portable.h:
// plain C++ over small arrays, which the compiler vectorises).
#include "conv1d_winograd_impl.h"
#include "simd_portable.h"

namespace rnnfast {
namespace winograd {
namespace {

using S = simd::Portable<float, 4>;

}  // namespace

const TransformSet kWinogradGeneric = {transforms_of<S, 0>(), transforms_of<S, 1>(),
                                   transforms_of<S, 2>(), transforms_of<S, 3>(),
                                   transforms_of<S, 4>()};

const FinishPool kFinishPoolGeneric = &finish_pool;

}  // namespace winograd
}  // namespace rnnfast
