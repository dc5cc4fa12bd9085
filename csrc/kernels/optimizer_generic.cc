// The Adam range kernel for the portable build (baseline x86-64 or the host's).
#include "optimizer_impl.h"

namespace rnnfast {
namespace optimizer_kernels {

const AdamRange<float> kAdamGenericF32 = make_adam_range<float>();
const AdamRange<double> kAdamGenericF64 = make_adam_range<double>();

}  // namespace optimizer_kernels
}  // namespace rnnfast
