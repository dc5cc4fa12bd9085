// Chooses the LayerNorm step kernels of the active instruction set.
#include "layer_norm_steps.h"

#include "rnnfast/cpu.h"

namespace rnnfast {
namespace cells {

template <>
const LayerNormSteps<float>& active_layer_norm_steps<float>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kLayerNormStepsAvx512F32;
    case Isa::avx2: return kLayerNormStepsAvx2F32;
    case Isa::generic: break;
  }
#endif
  return kLayerNormStepsGenericF32;
}

template <>
const LayerNormSteps<double>& active_layer_norm_steps<double>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kLayerNormStepsAvx512F64;
    case Isa::avx2: return kLayerNormStepsAvx2F64;
    case Isa::generic: break;
  }
#endif
  return kLayerNormStepsGenericF64;
}

}  // namespace cells
}  // namespace rnnfast
