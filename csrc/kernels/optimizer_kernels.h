// The Adam update over a range of elements: the contract between optimizer.cc (the thread
// split, the public entry) and the range kernels compiled once per instruction set
// (optimizer_generic.cc, optimizer_avx2.cc), chosen by rnnfast::active_isa(). Every width
// gives the same bits (each element's operations are the same IEEE operations in the same
// order, never contracted into fused multiply-adds: see optimizer_impl.h).
//
// Included by the instruction-set translation units: declarations only.
#pragma once
#include "rnnfast/common.h"
#include "rnnfast/optimizer.h"

namespace rnnfast {
namespace optimizer_kernels {

template <typename T>
struct AdamRange {
  // Elements [i0, i1) of adam_update's arrays (v_max null without amsgrad).
  void (*update)(index_t i0, index_t i1, const AdamStep<T>& s, T* w, const T* g, T* m, T* v,
                 T* v_max);
};

extern const AdamRange<float> kAdamGenericF32;
extern const AdamRange<double> kAdamGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
// Also the AVX-512 set's: 256-bit vectors ran the update faster than 512-bit ones on AMD Zen 4
// (whose divider and square root take a 512-bit vector as two halves).
extern const AdamRange<float> kAdamAvx2F32;
extern const AdamRange<double> kAdamAvx2F64;
#endif

}  // namespace optimizer_kernels
}  // namespace rnnfast
