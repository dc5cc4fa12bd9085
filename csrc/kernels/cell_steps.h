// The gate math of one sequence at one time step, per cell, forward and backward: the contract
// between the recurrent drivers (recurrent_forward.cc, recurrent_backward.cc) and the step
// kernels compiled once per instruction set (cell_steps_{generic,avx2,avx512}.cc).
//
// Included by the instruction-set translation units: plain structs and declarations only.
#pragma once
#include "rnnfast/common.h"

namespace rnnfast {
namespace cells {

template <typename T>
struct CellSteps {
  // Forward of hidden units [j0, j0 + n) of one row; every pointer points at unit j0 of gate 0.
  // Gate k of unit j0 + u is at g[k * gs + u], bias[k * gs + u] and hg[k * hs + u]: g holds the
  // step's input projection x W_ih^T (row of [G*H], gs = H) and receives the activated gates; hg
  // is h W_hh^T (gs = H, or a gate-blocked tile with hs = its block width); bias the biases
  // folded into one vector (b_ih + b_hh, but b_in alone for the n gate of a GRU with reset
  // after). h (and c) receive the new state (c is updated in place).
  void (*rnn)(bool relu, index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias,
              T* h);
  void (*lstm)(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias, T* h, T* c);
  // LSTM with peepholes: peep[k * gs + u] is p_i, p_f, p_o (k = 0, 1, 2) of unit j0 + u;
  // i and f see c_{t-1} * p, o sees c_t * p_o.
  void (*lstm_peephole)(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias,
                        const T* peep, T* h, T* c);
  // The LSTM with any of its options: peep (the peepholes as in lstm_peephole, or null);
  // zoneout when hprev (the state before the step, not h) is not null: the step and then, in
  // the same pass, c = d_c c_{t-1} + (1 - d_c) c_t and h = d_h hprev + (1 - d_h) h_t (h_t from
  // the unzoned c_t), with d_h, d_c per unit from mask_h[u], mask_c[u] (training) or both the
  // constant rate when the masks are null (inference). hg may be null: g then holds both
  // products (x W_ih^T + h W_hh^T computed as one), h is also written to h_next (where the
  // next step's product reads it). keep_gates false leaves g as it is (inference: nothing
  // reads the activated gates).
  void (*lstm_general)(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias,
                       const T* peep, const T* hprev, const T* mask_h, const T* mask_c, T rate,
                       T* h, T* c, T* h_next, bool keep_gates);
  // GRU, reset after: n = tanh(g_n + b_in + r * (hg_n + b_hn)), h = (1 - z) n + z hprev;
  // hn_out (if non-null) keeps hg_n + b_hn. b_hn, hprev, h and hn_out are per unit.
  void (*gru)(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias, const T* b_hn,
              const T* hprev, T* h, T* hn_out);
  // GRU, reset before (whole rows, gate stride H): r, z from hg [2H]; rh = r * h for the n GEMM;
  // then n from hn = rh W_hn^T, and h updated in place.
  void (*gru_before_gates)(index_t H, T* g, const T* hg, const T* bias, const T* h, T* rh);
  void (*gru_before_update)(index_t H, T* g, const T* hn, const T* bias, T* h);

  // Backward of hidden units [j0, j0 + n) of one row, every gate array with gate stride ld.
  // dh: gradient of the state the step produced (in), replaced by the part of the previous
  // state's gradient that does not go through W_hh (out). dgx: gate gradients on the input
  // side; dgh: on the recurrent side (the rows of the per-step GEMM with W_hh).
  void (*rnn_grad)(bool relu, index_t n, index_t ld, const T* hnew, T* dh, T* dgx, T* dgh);
  // dc: gradient of the cell state the step produced (in), of the one it started from (out).
  // dgh may be null (not written: the caller reads dgx for both sides).
  void (*lstm_grad)(index_t n, index_t ld, const T* gates, const T* cprev, T* dh, T* dc, T* dgx,
                    T* dgh);
  // LSTM with peepholes (peep as in lstm_peephole, gate stride ld).
  void (*lstm_peephole_grad)(index_t n, index_t ld, const T* gates, const T* cprev,
                             const T* peep, T* dh, T* dc, T* dgx, T* dgh);
  void (*gru_grad)(index_t n, index_t ld, const T* gates, const T* hn, const T* hprev, T* dh,
                   T* dgx, T* dgh);
  // GRU, reset before (whole rows, gate stride H): first dn, dz (dgn [H] stages dn for the GEMM
  // with W_hn), then from drh = dn W_hn the gradient of r and the rest of dh; dgrz [2H] stages
  // dr, dz.
  void (*gru_before_grad_n)(index_t H, const T* gates, const T* hprev, T* dh, T* dgx, T* dgn);
  void (*gru_before_grad_r)(index_t H, const T* gates, const T* hprev, const T* drh, T* dh, T* dgx,
                            T* dgrz);
};

// The step kernels of the active instruction set (rnnfast::active_isa()).
template <typename T>
const CellSteps<T>& active_cell_steps();

extern const CellSteps<float> kStepsGenericF32;
extern const CellSteps<double> kStepsGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const CellSteps<float> kStepsAvx2F32;
extern const CellSteps<double> kStepsAvx2F64;
extern const CellSteps<float> kStepsAvx512F32;
extern const CellSteps<double> kStepsAvx512F64;
#endif

}  // namespace cells
}  // namespace rnnfast
