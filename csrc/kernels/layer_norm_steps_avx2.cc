// LayerNorm step kernels for AVX2 + FMA (compiled with -mavx2 -mfma).
#include "layer_norm_steps_impl.h"

namespace rnnfast {
namespace cells {

const LayerNormSteps<float> kLayerNormStepsAvx2F32 = make_layer_norm_steps<float>();
const LayerNormSteps<double> kLayerNormStepsAvx2F64 = make_layer_norm_steps<double>();

}  // namespace cells
}  // namespace rnnfast
