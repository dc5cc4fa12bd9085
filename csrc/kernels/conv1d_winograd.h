// Conv1D forward by Winograd's minimal filtering (Lavin & Gray 2015): the contract between
// conv1d.cc (its hook in conv1d_forward), conv1d_winograd.cc (the matrices, the products, the
// threads) and the transforms compiled once per instruction set (conv1d_winograd_{generic,avx2,
// avx512}.cc), chosen by rnnfast::active_isa() like the pooled backward's kernels.
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
//
// Included by the instruction-set translation units: plain structs and declarations only.
#pragma once
#include <functional>

#include "rnnfast/common.h"
#include "rnnfast/conv1d.h"

namespace rnnfast {
namespace winograd {

// The tiles of each kernel size (conv1d_winograd.cc: the pieces of the taps and why):
// r taps, m outputs per tile, N products, span = m + r - 1 input steps per tile, and the taps
// of the first piece, r1 (r: one piece; else a second piece of r - r1 taps): the first
// m + r1 - 1 rows of BT read input steps [0, m + r1 - 1) of the tile, the others [r1, span).
struct TileShape {
  index_t r, m, N, span, r1;
};
constexpr index_t kMinTaps = 3, kMaxTaps = 7;
constexpr TileShape kTileShapes[kMaxTaps - kMinTaps + 1] = {
    {3, 2, 4, 4, 3}, {4, 3, 8, 6, 2}, {5, 3, 9, 7, 2}, {6, 2, 8, 7, 3}, {7, 2, 9, 8, 4}};

// The transforms of one tile shape (kTileShapes[r - kMinTaps]), its sizes compiled in: the
// span input rows (or N product rows) of a block of channels in registers, every transformed
// row one chain of fused multiply-adds over the rows its piece reads, in order, zero
// coefficients included (they add exactly zero to finite values; an infinity or NaN in x stays
// in its own tile, so in its own sequence).
struct Transforms {
  // Tiles [0, tiles) of one sequence xs [l_in, c] (channels last): tile t reads input steps
  // t * m - pad_left + j, j < span (zero outside [0, l_in)) and writes
  // V[(t * N + i) * c + ch] = sum_j BT[i * span + j] * d[j][ch] (j over row i's piece).
  void (*input)(const float* BT, index_t tiles, index_t c, const float* xs, index_t l_in,
                index_t pad_left, float* V);
  // y[(t * m + j) * c + ch] = sum_i AT[j * N + i] * M[(t * N + i) * c + ch] for the first `rows`
  // output steps of tiles [0, tiles) (the last tile may be ragged).
  void (*output)(const float* AT, index_t tiles, index_t c, const float* M, index_t rows,
                 float* y);
};

// Per instruction set: the transforms of kTileShapes[0], [1], ...
using TransformSet = Transforms[kMaxTaps - kMinTaps + 1];

extern const TransformSet kWinogradGeneric;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const TransformSet kWinogradAvx2;
extern const TransformSet kWinogradAvx512;
#endif

// The transforms of the active instruction set for an r-tap kernel.
const Transforms& active_transforms(index_t r);

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

// The forward of s by this path when s.algorithm (and, for automatic, chosen()) says so: y only
// written, finish called per sequence; false (nothing written) when the direct path must run.
// std::invalid_argument when s.algorithm is winograd and refusal() is not "".
bool forward(const Conv1dShape& s, const float* x, const float* w, float* y,
             const Finish<float>& finish);
bool forward(const Conv1dShape& s, const double* x, const double* w, double* y,
             const Finish<double>& finish);

}  // namespace winograd
}  // namespace rnnfast
