// Step kernels of the recurrent cells for AVX2 + FMA (compiled with -mavx2 -mfma).
#include "cell_steps_impl.h"

namespace rnnfast {
namespace cells {

const CellSteps<float> kStepsAvx2F32 = make_steps<float>();
const CellSteps<double> kStepsAvx2F64 = make_steps<double>();

}  // namespace cells
}  // namespace rnnfast
