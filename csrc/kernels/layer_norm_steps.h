// The per-row epilogues of the LayerNorm LSTM and GRU (layer_norm_recurrent.h), forward and
// backward: the contract between their drivers (layer_norm_recurrent.cc) and the kernels
// compiled once per instruction set (layer_norm_steps_{generic,avx2,avx512}.cc).
//
// Every function works on one whole row (one sequence at one step): a layer norm needs all
// G*H values of a product. Gate k of unit j is at [k*H + j].
#pragma once
#include "rnnfast/common.h"

namespace rnnfast {
namespace cells {

template <typename T>
struct LayerNormSteps {
  // Forward. ih_in: the row of x W_ih^T, hh_in: of h W_hh^T; their layer norms (before the
  // gains) go to ih and hh (training), or nowhere when ih and hh are null (inference). gates [G*H]: room
  // for the activated gates (not kept), stats [4] 1/std of ih_in, of hh_in and (LSTM) mean and 1/std of c'.
  // bias: LSTM b_ih + b_hh.
  void (*lstm)(index_t H, T eps, const T* ih_in, T* ih, const T* hh_in, T* hh, const T* ln_ih,
               const T* ln_hh, const T* bias, const T* ln_c_weight, const T* ln_c_bias, T* c,
               T* h, T* gates, T* stats);
  void (*gru)(index_t H, T eps, const T* ih_in, T* ih, const T* hh_in, T* hh, const T* ln_ih,
              const T* ln_hh, const T* b_ih, const T* b_hh, const T* hprev, T* h, T* gates,
              T* stats);
  // Backward of one row, from the forward's ih, hh, stats (and cprev / hprev); the gates are
  // computed again from ih and hh (bias: LSTM b_ih + b_hh), which the row's gradients read
  // anyway: the LSTM's gates kept by the forward instead (4H more values a row) made training
  // 2-3% slower at T=100 B=32 H=128 and 1% faster at H=256 (bench/RESULTS.md, cellvar session
  // 12).
  // dh: gradient of the state the step produced (in), replaced by the part of the previous
  // state's gradient that does not go through W_hh (out); dc likewise (LSTM). dgx [G*H]: the
  // gradient of the row of x W_ih^T; dgh [G*H]: of h W_hh^T. acc [4 G*H + 2 H] accumulates
  // the row's parameter gradients: b_ih, b_hh, ln_ih, ln_hh (G*H each), ln_c_weight,
  // ln_c_bias (H each, LSTM; the LSTM's b_hh gradient is its b_ih gradient and its slot
  // stays untouched). scratch: 10 H values.
  void (*lstm_grad)(index_t H, const T* cprev, const T* ih, const T* hh, const T* stats,
                    const T* ln_ih, const T* ln_hh, const T* bias, const T* ln_c_weight,
                    const T* ln_c_bias, T* dh, T* dc, T* dgx, T* dgh, T* acc, T* scratch);
  void (*gru_grad)(index_t H, const T* hprev, const T* ih, const T* hh, const T* stats,
                   const T* ln_ih, const T* ln_hh, const T* b_ih, const T* b_hh, T* dh, T* dgx,
                   T* dgh, T* acc, T* scratch);
};

// The kernels of the active instruction set (rnnfast::active_isa()).
template <typename T>
const LayerNormSteps<T>& active_layer_norm_steps();

extern const LayerNormSteps<float> kLayerNormStepsGenericF32;
extern const LayerNormSteps<double> kLayerNormStepsGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const LayerNormSteps<float> kLayerNormStepsAvx2F32;
extern const LayerNormSteps<double> kLayerNormStepsAvx2F64;
extern const LayerNormSteps<float> kLayerNormStepsAvx512F32;
extern const LayerNormSteps<double> kLayerNormStepsAvx512F64;
#endif

}  // namespace cells
}  // namespace rnnfast
