// Chooses the step kernels of the active instruction set.
#include "cell_steps.h"

#include "rnnfast/cpu.h"

namespace rnnfast {
namespace cells {

template <>
const CellSteps<float>& active_cell_steps<float>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kStepsAvx512F32;
    case Isa::avx2: return kStepsAvx2F32;
    case Isa::generic: break;
  }
#endif
  return kStepsGenericF32;
}

template <>
const CellSteps<double>& active_cell_steps<double>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kStepsAvx512F64;
    case Isa::avx2: return kStepsAvx2F64;
    case Isa::generic: break;
  }
#endif
  return kStepsGenericF64;
}

}  // namespace cells
}  // namespace rnnfast
