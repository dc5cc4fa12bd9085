// Step kernels of the recurrent cells for AVX-512 (compiled with -mavx512f/bw/dq/vl).
#include "cell_steps_impl.h"

namespace rnnfast {
namespace cells {

const CellSteps<float> kStepsAvx512F32 = make_steps<float>();
const CellSteps<double> kStepsAvx512F64 = make_steps<double>();

}  // namespace cells
}  // namespace rnnfast
