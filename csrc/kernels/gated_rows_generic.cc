// Row kernels of WaveNet's gated activation for the portable build (baseline x86-64 or the host's).
#include "gated_rows_impl.h"

namespace rnnfast {
namespace gated {

const GatedRows<float> kGatedGenericF32 = make_rows<float>();
const GatedRows<double> kGatedGenericF64 = make_rows<double>();

}  // namespace gated
}  // namespace rnnfast
