// Row kernels of WaveNet's gated activation for AVX2 + FMA (compiled with -mavx2 -mfma).
#include "gated_rows_impl.h"

namespace rnnfast {
namespace gated {

const GatedRows<float> kGatedAvx2F32 = make_rows<float>();
const GatedRows<double> kGatedAvx2F64 = make_rows<double>();

}  // namespace gated
}  // namespace rnnfast
