// Step kernels of the recurrent cells for the portable build (baseline x86-64 or the host's).
#include "cell_steps_impl.h"

namespace rnnfast {
namespace cells {

const CellSteps<float> kStepsGenericF32 = make_steps<float>();
const CellSteps<double> kStepsGenericF64 = make_steps<double>();

}  // namespace cells
}  // namespace rnnfast
