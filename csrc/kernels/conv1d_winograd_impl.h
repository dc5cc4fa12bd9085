// The transforms of conv1d_winograd_kernels.h, written once over a vector shim S (simd_*.h:
// zero, load, load_n, store, store_n, set1, fma) and compiled by each instruction-set translation
// unit, one instance per tile shape: a block of W channels of every input (output) row of a tile
// in registers. Internal linkage only.
#pragma once
#include <algorithm>

#include "conv1d_winograd_kernels.h"
#include "max_rows.h"

namespace rnnfast {
namespace winograd {
namespace {

// One vector of W channels from c0 on (fewer, zero-filled, at the end of the row).
template <typename S>
typename S::vec load_block(const float* p, index_t w) {
  return w == S::W ? S::load(p) : S::load_n(p, w);
}

template <typename S>
void store_block(float* p, typename S::vec v, index_t w) {
  if (w == S::W) {
    S::store(p, v);
  } else {
    S::store_n(p, v, w);
  }
}

template <typename S, int Shape>
void input_transform(const float* BT, index_t tiles, index_t c, const float* xs, index_t l_in,
                     index_t pad_left, float* V) {
  using vec = typename S::vec;
  constexpr int W = S::W;
  constexpr index_t m = kTileShapes[Shape].m, N = kTileShapes[Shape].N;
  constexpr index_t span = kTileShapes[Shape].span, r1 = kTileShapes[Shape].r1;
  constexpr index_t n1 = m + r1 - 1;  // the first piece's products and input steps
  for (index_t t = 0; t < tiles; ++t) {
    const index_t s0 = t * m - pad_left;
    const index_t j0 = std::clamp<index_t>(-s0, 0, span);
    const index_t j1 = std::clamp<index_t>(l_in - s0, j0, span);
    float* vt = V + t * N * c;
    for (index_t c0 = 0; c0 < c; c0 += W) {
      const index_t w = std::min<index_t>(W, c - c0);
      vec d[span];
      for (index_t j = 0; j < span; ++j)
        d[j] = j < j0 || j >= j1 ? S::zero() : load_block<S>(xs + (s0 + j) * c + c0, w);
      for (index_t i = 0; i < n1; ++i) {  // the first piece
        vec acc = S::zero();
        for (index_t j = 0; j < n1; ++j) acc = S::fma(S::set1(BT[i * span + j]), d[j], acc);
        store_block<S>(vt + i * c + c0, acc, w);
      }
      for (index_t i = n1; i < N; ++i) {  // the second piece
        vec acc = S::zero();
        for (index_t j = r1; j < span; ++j) acc = S::fma(S::set1(BT[i * span + j]), d[j], acc);
        store_block<S>(vt + i * c + c0, acc, w);
      }
    }
  }
}

template <typename S, int Shape>
void output_transform(const float* AT, index_t tiles, index_t c, const float* M, index_t rows,
                      float* y) {
  using vec = typename S::vec;
  constexpr int W = S::W;
  constexpr index_t m = kTileShapes[Shape].m, N = kTileShapes[Shape].N;
  for (index_t t = 0; t < tiles; ++t) {
    const index_t mt = std::min(m, rows - t * m);
    const float* mrows = M + t * N * c;
    for (index_t c0 = 0; c0 < c; c0 += W) {
      const index_t w = std::min<index_t>(W, c - c0);
      vec v[N];
      for (index_t i = 0; i < N; ++i) v[i] = load_block<S>(mrows + i * c + c0, w);
      for (index_t j = 0; j < m; ++j) {
        if (j >= mt) break;
        vec acc = S::zero();
        for (index_t i = 0; i < N; ++i) acc = S::fma(S::set1(AT[j * N + i]), v[i], acc);
        store_block<S>(y + (t * m + j) * c + c0, acc, w);
      }
    }
  }
}

// NumPy's maximum(v, 0) (NaN stays NaN, -0 becomes +0): conv1d.cc's relu, a select that
// vectorises.
inline float relu_of(float v) { return v > 0.0f ? v : (v == v ? 0.0f : v); }

void finish_pool(const float* bias, bool relu, index_t rows, index_t c, const PoolWindows& pw,
                 float* y, float* py, index_t* arg, std::int32_t* rel) {
  if (bias || relu) {
    for (index_t t = 0; t < rows; ++t) {
      float* __restrict row = y + t * c;
      if (bias)
        for (index_t ch = 0; ch < c; ++ch) row[ch] += bias[ch];
      if (relu)
        for (index_t ch = 0; ch < c; ++ch) row[ch] = relu_of(row[ch]);
    }
  }
  for (index_t t = 0; t < pw.count; ++t) {
    const index_t start = t * pw.stride - pw.pad_left;
    const index_t lo = std::max<index_t>(start, 0), hi = std::min(start + pw.size, rows);
    // int32 offsets suffice: 2^31 rows of one item (C_out >= 48 here) would be >= 384 GiB
    max_rows_narrow(y + lo * c, c, lo, hi, py + t * c, arg ? arg + t * c : nullptr, rel);
  }
}

// The transforms of kTileShapes[Shape] (the translation units list them all in a TransformSet).
template <typename S, int Shape>
constexpr Transforms transforms_of() {
  return {&input_transform<S, Shape>, &output_transform<S, Shape>};
}

}  // namespace
}  // namespace winograd
}  // namespace rnnfast
