// Conv1D forward by Winograd's minimal filtering: the transforms compiled once per instruction
// set (conv1d_winograd_{generic,avx2,avx512}.cc), chosen by rnnfast::active_isa() like the
// pooled backward's kernels; conv1d_winograd.h has the method and the rest of the path.
//
// Included by the instruction-set translation units: plain structs and declarations only.
#pragma once
#include <cstdint>

#include "rnnfast/common.h"

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

// The windows of a max pool over one sequence's rows (conv1d_max_pool1d_forward's pool):
// window t reads steps [max(t * stride - pad_left, 0), min(t * stride - pad_left + size, rows)).
struct PoolWindows {
  index_t size, stride, pad_left, count;
};

// The fused forward's epilogue of one sequence (conv1d_max_pool1d_forward), channels last, for
// rows < 2^31: y [rows, c] += bias (null: none), then the ReLU (relu: NumPy's maximum(v, 0)),
// in place; then py[t * c + ch] = the maximum of window t's rows and, arg not null,
// arg[t * c + ch] = the step of its first maximum (NaN the maximum) for t < pw.count; rel: c
// int32 values of scratch. The values and steps of conv1d.cc's finish_block then pool1d.cc's
// max_pool1d_windows, their loops compiled for each instruction set (the baseline unit's
// SSE2 took 3-4% of an IMDB epoch for them).
using FinishPool = void (*)(const float* bias, bool relu, index_t rows, index_t c,
                            const PoolWindows& pw, float* y, float* py, index_t* arg,
                            std::int32_t* rel);

extern const FinishPool kFinishPoolGeneric;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const FinishPool kFinishPoolAvx2;
extern const FinishPool kFinishPoolAvx512;
#endif

// The epilogue of the active instruction set.
FinishPool active_finish_pool();

}  // namespace winograd
}  // namespace rnnfast
