// WaveNet's gated activation over a block of rows: the contract between conv1d.cc (which splits
// the rows between the threads) and the row kernels compiled once per instruction set
// (gated_rows_{generic,avx2,avx512}.cc), chosen by rnnfast::active_isa() like the cell steps.
//
// Included by the instruction-set translation units: plain structs and declarations only.
#pragma once
#include "rnnfast/common.h"

namespace rnnfast {
namespace gated {

template <typename T>
struct GatedRows {
  // Rows [0, n) of a [n, 2C] (filter pre-activation, then gate): z[r, c] = tanh(a[r, c]) *
  // sigmoid(a[r, C + c]), z [n, C].
  void (*forward)(index_t n, index_t C, const T* a, T* z);
  // da[r, c] = dz g (1 - f^2), da[r, C + c] = dz f g (1 - g) with f, g recomputed from a.
  void (*backward)(index_t n, index_t C, const T* a, const T* dz, T* da);
};

extern const GatedRows<float> kGatedGenericF32;
extern const GatedRows<double> kGatedGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const GatedRows<float> kGatedAvx2F32;
extern const GatedRows<double> kGatedAvx2F64;
extern const GatedRows<float> kGatedAvx512F32;
extern const GatedRows<double> kGatedAvx512F64;
#endif

// The row kernels of the active instruction set.
template <typename T>
const GatedRows<T>& active_gated_rows();

}  // namespace gated
}  // namespace rnnfast
