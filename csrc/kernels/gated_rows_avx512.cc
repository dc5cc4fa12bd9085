// Row kernels of WaveNet's gated activation for AVX-512 (compiled with -mavx512f/bw/dq/vl).
#include "gated_rows_impl.h"

namespace rnnfast {
namespace gated {

const GatedRows<float> kGatedAvx512F32 = make_rows<float>();
const GatedRows<double> kGatedAvx512F64 = make_rows<double>();

}  // namespace gated
}  // namespace rnnfast
