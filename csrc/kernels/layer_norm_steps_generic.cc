// LayerNorm step kernels for the portable build (baseline x86-64 or the host's).
#include "layer_norm_steps_impl.h"

namespace rnnfast {
namespace cells {

const LayerNormSteps<float> kLayerNormStepsGenericF32 = make_layer_norm_steps<float>();
const LayerNormSteps<double> kLayerNormStepsGenericF64 = make_layer_norm_steps<double>();

}  // namespace cells
}  // namespace rnnfast
