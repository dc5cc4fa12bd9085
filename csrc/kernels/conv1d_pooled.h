// The backward of a convolution whose output only reaches the loss through a max pool: the
// contract between conv1d.cc (validation, threads, the reductions) and the per-sequence kernels
// compiled once per instruction set (conv1d_pooled_{generic,avx2,avx512}.cc), chosen by
// rnnfast::active_isa() like the gated rows.
//
// After Conv1D -> MaxPooling1D(p) only the step that won each window receives a gradient, so dy
// of the convolution is zero but for one entry in p per channel: dw and dx are sums over those
// entries alone, 1/p of the products of the dense backward. When the patch of output step t is
// one contiguous run of KC = kernel * c_in values of the sequence from value t * step (channels
// last, one group, dilation 1, no padding), an entry (t, n) with gradient g adds
//   g * x[t * step, + KC)   to row n of the weight accumulator [Co, KC] (taps, then input
//                           channels: w[n, c, k] is acc[n, k * c_in + c]), and
//   g * wt[n, :]            to dx[t * step, + KC), wt [Co, KC] in the same layout.
// Both are one operation over lists of entries (conv1d.cc builds them per sequence: by channel
// for dw, by step for dx), which these kernels run with a block of each destination row in
// registers while the row's entries add into it:
//   for each block of KC: for r in [0, rows): dst[r * row_stride + block] +=
//       sum over e in [start[r], start[r + 1]) of g[e] * src[off[e] + block]   (in that order).
// Rows of dst may overlap in memory (dx: row_stride < KC); each row's block is read, summed and
// written before the next row's.
//
// Included by the instruction-set translation units: plain structs and declarations only.
#pragma once
#include "rnnfast/common.h"

namespace rnnfast {
namespace pooled {

template <typename T>
struct PooledGrad {
  void (*gather)(index_t rows, index_t KC, index_t row_stride, const index_t* start,
                 const index_t* off, const T* g, const T* src, T* dst);
  // dst[r * to + i] = src[r * n + i] for r < rows, i < n; whether they are all finite.
  bool (*copy_rows)(index_t rows, index_t n, index_t to, const T* src, T* dst);
  // One sequence's list by output step, for the dx gathers, from the pool's winners arg [np, Co]
  // (steps < l_out) and their gradients g [np, Co]: a counting sort of the entries whose g is
  // not zero by their step, start [l_out + 1], off (the channel's row of wt: n * wt_stride) and
  // gl (g), each step's entries in the order of the pool's output (windows, then channels).
  // off and gl hold np * Co entries.
  void (*by_step)(index_t np, index_t Co, index_t l_out, index_t wt_stride, const index_t* arg,
                  const T* g, index_t* start, index_t* off, T* gl);
};

extern const PooledGrad<float> kPooledGenericF32;
extern const PooledGrad<double> kPooledGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const PooledGrad<float> kPooledAvx2F32;
extern const PooledGrad<double> kPooledAvx2F64;
extern const PooledGrad<float> kPooledAvx512F32;
extern const PooledGrad<double> kPooledAvx512F64;
#endif

// The kernels of the active instruction set.
template <typename T>
const PooledGrad<T>& active_pooled_grad();

}  // namespace pooled
}  // namespace rnnfast
