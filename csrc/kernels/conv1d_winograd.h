// Conv1D forward by Winograd's minimal filtering (Lavin & Gray 2015): what conv1d.cc (its hook
// in conv1d_forward) and a caller of its per-sequence runs use; conv1d_winograd.cc has the
// matrices, the products and the threads, conv1d_winograd_kernels.h the transforms compiled
// once per instruction set.
//
// A tile of m output steps of an r-tap correlation reads span = m + r - 1 input steps d and
// takes N < m * r products per (input channel, output channel):
//   V = BT d  [N, C_in]    (input transform, per tile: BT is N x span)
//   M_i = V_i U_i          (i < N: N GEMMs of (tiles x C_in) @ (C_in x C_out), U_i = (G w)_i,
//                           G N x r, the filter transform once per call)
//   y = AT M  [m, C_out]   (output transform, per tile: AT is m x N)
// The matrices are Toom-Cook's for F(m, r) (points 0, 1, -1, 2, -2, 1/2, -1/2, then infinity),
// or the sum of those of consecutive pieces of the taps (F(m, r1) on taps [0, r1), F(m, r2) on
// [r1, r1 + r2), ...: the pieces' products side by side), whichever DECISIONS.md chose per r
// from the measured float32 error.
#pragma once
#include <functional>
#include <vector>

#include "conv1d_winograd_kernels.h"
#include "rnnfast/buffer.h"
#include "rnnfast/common.h"
#include "rnnfast/conv1d.h"
#include "rnnfast/gemm.h"

namespace rnnfast {
namespace winograd {

// Called once per sequence b with its output rows ys [l_out, c_out] (channels last) once the
// convolution's values are in them: the epilogue (bias, add, ReLU).
template <typename T>
using Finish = std::function<void(index_t b, T* ys)>;

// Why s (float64 when `float64`) cannot run on this path ("" when it can): float32 values and
// products, channels last, one group, stride 1, dilation 1, a kernel of 3 to 7 taps.
const char* refusal(const Conv1dShape& s, bool float64);

// Whether s.algorithm == automatic takes this path: supported and large enough that the
// transforms cost less than the products they save (measured crossover, DECISIONS.md).
bool chosen(const Conv1dShape& s);

// Scratch of Filter::run, kept by its caller from call to call (one per thread).
struct Workspace {
  Buffer<float> V, M;
};

// One call's filter transform (U_i packed for gemm_packed) and tiles, for runs over ranges of
// sequences: forward() splits the batch into items of sequences_per_item() sequences between
// threads; a caller that consumes the output per block (a fused convolution and pool) can run its
// own ranges into its own buffer. Requires refusal(s, false) == "" (std::invalid_argument
// otherwise) and float32 w [C_out, C_in, K].
class Filter {
 public:
  Filter(const Conv1dShape& s, const float* w);
  // Sequences [b0, b1) of x (the whole batch's x) into ys (sequence b0's first row: l_out x
  // C_out values per sequence, channels last, only written), then finish(b, its rows) after
  // each sequence (null: none). Serial, in the calling thread (its products are gemm_packed's,
  // the pool's when called outside a parallel region); each sequence's values are the same
  // whatever the range it runs in, when the ranges start at multiples of sequences_per_item().
  void run(index_t b0, index_t b1, const float* x, float* ys, const Finish<float>& finish,
           Workspace& ws) const;
  index_t sequences_per_item() const { return per_item_; }

 private:
  Conv1dShape s_;
  index_t m_ = 0, N_ = 0, tiles_ = 0, per_item_ = 1;
  const float* AT_ = nullptr;  // the matrices of kernel size s_.kernel (static storage)
  const float* BT_ = nullptr;
  std::vector<PackedB<float>> U_;
};

// The forward of s by this path when s.algorithm (and, for automatic, chosen()) says so: y only
// written, finish called per sequence; false (nothing written) when the direct path must run.
// std::invalid_argument when s.algorithm is winograd and refusal() is not "".
bool forward(const Conv1dShape& s, const float* x, const float* w, float* y,
             const Finish<float>& finish);
bool forward(const Conv1dShape& s, const double* x, const double* w, double* y,
             const Finish<double>& finish);

// The same forward with each sequence's output rows [l_out, c_out] handed to consume(b, rows)
// (in a per-thread buffer, overwritten after the call) instead of stored: a caller that only
// reduces them (conv1d_max_pool1d_forward's pool) never writes y. The same values as forward().
bool forward_each(const Conv1dShape& s, const float* x, const float* w,
                  const Finish<float>& consume);
bool forward_each(const Conv1dShape& s, const double* x, const double* w,
                  const Finish<double>& consume);
}  // namespace winograd
}  // namespace rnnfast
