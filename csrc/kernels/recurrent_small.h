// The per-step product of the small-batch recurrent loops (recurrent_small.cc): a few rows of
// A (the batch, 1..8 sequences) against a packed B whose panels the caller packed once per call
// with PackedB (rnnfast/gemm.h), compiled once per instruction set
// (recurrent_small_{generic,avx2,avx512}.cc) and chosen at run time.
//
// Included by the instruction-set translation units: plain structs and declarations only.
#pragma once
#include "rnnfast/common.h"

namespace rnnfast {
namespace small {

template <typename T>
struct SmallKernels {
  int lanes;  // values per vector; the panels must be 2 vectors wide (PackedB's width)
  // out[i * ldo + col] = the chain of fused multiply-adds over k in [0, kc), in increasing k,
  // of a[i * lda + k] * panel(k, col), for i < m (1..8) and every column of `panels` panels
  // (panel p at b + p * ps, element (k, col) at [k * 2 * lanes + col], ldo >= panels * 2 * lanes):
  // each element the value the GEMM's micro-kernel gives for one depth block. backwards: the
  // panels in decreasing order (the same values; a step that starts with the panels the step
  // before ended with finds them in L1).
  void (*product)(index_t m, index_t kc, const T* a, index_t lda, const T* b, index_t ps,
                  index_t panels, T* out, index_t ldo, bool backwards);
};

extern const SmallKernels<float> kSmallGenericF32;
extern const SmallKernels<double> kSmallGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const SmallKernels<float> kSmallAvx2F32;
extern const SmallKernels<double> kSmallAvx2F64;
extern const SmallKernels<float> kSmallAvx512F32;
extern const SmallKernels<double> kSmallAvx512F64;
#endif

}  // namespace small
}  // namespace rnnfast
