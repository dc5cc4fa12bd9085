// The channels-last running max over rows of pool1d.cc, also compiled by the instruction-set
// units of the fused Conv1D + max pool (conv1d_winograd_impl.h). Internal linkage only: each
// translation unit keeps its own copy, built with its own instruction-set flags.
#pragma once
#include <algorithm>
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {
namespace {

// v replaces the current maximum m: strictly greater, or the first NaN (NaN counts as the
// maximum, as in NumPy's argmax and PyTorch's max pooling).
// (Bitwise operators, not short-circuit ones: no branch, so the loops over channels vectorise.)
template <typename T>
inline bool beats(T v, T m) {
  return (v > m) | ((v != v) & (m == m));
}

// Channels-last max over steps [lo, hi), rows of C values from `first` (step lo's row) on: y[c],
// arg[c] (arg may be null). rel (C values, needed with arg) holds each channel's winning step as
// an offset from lo: 32-bit lanes like float's, so the loop with arg vectorises as the one
// without does (with 64-bit indices selected by float comparisons it did not: ten times slower).
// With arg, hi - lo must fit int32 (pool1d.cc's max_rows takes a 64-bit loop beyond).
template <typename T>
void max_rows_narrow(const T* first, index_t C, index_t lo, index_t hi, T* y, index_t* arg,
                     std::int32_t* rel) {
  std::copy(first, first + C, y);
  // Selects, not branches: the loops over channels vectorise.
  if (!arg) {
    for (index_t i = lo + 1; i < hi; ++i) {
      const T* row = first + (i - lo) * C;
      for (index_t c = 0; c < C; ++c) y[c] = beats(row[c], y[c]) ? row[c] : y[c];
    }
    return;
  }
  std::fill(rel, rel + C, 0);
  T* __restrict ym = y;
  std::int32_t* __restrict r = rel;
  for (index_t i = lo + 1; i < hi; ++i) {
    const T* __restrict row = first + (i - lo) * C;
    const auto offset = static_cast<std::int32_t>(i - lo);
    for (index_t c = 0; c < C; ++c) {
      const T v = row[c], m = ym[c];
      const std::int32_t old = r[c];
      const bool win = beats(v, m);
      r[c] = win ? offset : old;
      ym[c] = win ? v : m;
    }
  }
  for (index_t c = 0; c < C; ++c) arg[c] = lo + rel[c];
}

}  // namespace
}  // namespace rnnfast
