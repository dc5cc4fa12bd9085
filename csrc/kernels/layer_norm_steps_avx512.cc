// LayerNorm step kernels for AVX-512 (compiled with -mavx512f/bw/dq/vl).
#include "layer_norm_steps_impl.h"

namespace rnnfast {
namespace cells {

const LayerNormSteps<float> kLayerNormStepsAvx512F32 = make_layer_norm_steps<float>();
const LayerNormSteps<double> kLayerNormStepsAvx512F64 = make_layer_norm_steps<double>();

}  // namespace cells
}  // namespace rnnfast
