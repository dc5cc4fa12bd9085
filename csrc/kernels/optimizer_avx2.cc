// The Adam range kernel for AVX2 (compiled with -mavx2 -mfma; contraction off, see
// optimizer_impl.h): eight floats or four doubles per operation.
#include "optimizer_impl.h"

namespace rnnfast {
namespace optimizer_kernels {

const AdamRange<float> kAdamAvx2F32 = make_adam_range<float>();
const AdamRange<double> kAdamAvx2F64 = make_adam_range<double>();

}  // namespace optimizer_kernels
}  // namespace rnnfast
