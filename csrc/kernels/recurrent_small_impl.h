// The small-batch step product of recurrent_small.h, written once over a vector-traits type V
// (V::T, V::vec, V::W lanes, V::zero(), V::load(p), V::store(p, v), V::set1(x),
// V::fma(a, b, c) = a * b + c as the GEMM's micro-kernel computes it) and compiled by each
// instruction-set translation unit. Internal linkage only (unnamed namespace).
#pragma once
#include "recurrent_small.h"

namespace rnnfast {
namespace small {
namespace {

// Rows R of A against P panels (2 vectors each): R x 2P accumulators, one chain over k each.
template <class V, int R, int P>
void tile(index_t kc, const typename V::T* a, index_t lda, const typename V::T* b, index_t ps,
          typename V::T* out, index_t ldo) {
  using vec = typename V::vec;
  constexpr int W = V::W, NT = 2 * P;
  vec acc[R][NT];
#pragma GCC unroll 64
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 64
    for (int j = 0; j < NT; ++j) acc[i][j] = V::zero();
  for (index_t k = 0; k < kc; ++k) {
    vec bv[NT];
#pragma GCC unroll 64
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) bv[2 * p + v] = V::load(b + p * ps + k * 2 * W + v * W);
#pragma GCC unroll 64
    for (int i = 0; i < R; ++i) {
      const vec ai = V::set1(a[i * lda + k]);
#pragma GCC unroll 64
      for (int j = 0; j < NT; ++j) acc[i][j] = V::fma(ai, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 64
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 64
    for (int j = 0; j < NT; ++j) V::store(out + i * ldo + j * W, acc[i][j]);
}

// The last n < P panels of R rows in one tile (all their chains interleaved: with few panels,
// as the backward's H columns, separate tiles would each wait on the latency of their chains).
template <class V, int R, int P>
void rest(index_t n, index_t kc, const typename V::T* a, index_t lda, const typename V::T* b,
          index_t ps, typename V::T* out, index_t ldo) {
  if constexpr (P > 1) {
    if (n == P - 1) {
      tile<V, R, P - 1>(kc, a, lda, b, ps, out, ldo);
      return;
    }
    rest<V, R, P - 1>(n, kc, a, lda, b, ps, out, ldo);
  }
}

// The panels of R rows: tiles of P panels, then one tile of the rest; backwards in reverse
// order.
template <class V, int R, int P>
void rows(index_t kc, const typename V::T* a, index_t lda, const typename V::T* b, index_t ps,
          index_t panels, typename V::T* out, index_t ldo, bool backwards) {
  constexpr index_t NR = 2 * V::W;
  const index_t full = panels / P * P;
  if (!backwards) {
    for (index_t p = 0; p < full; p += P) tile<V, R, P>(kc, a, lda, b + p * ps, ps, out + p * NR, ldo);
    rest<V, R, P>(panels - full, kc, a, lda, b + full * ps, ps, out + full * NR, ldo);
  } else {
    rest<V, R, P>(panels - full, kc, a, lda, b + full * ps, ps, out + full * NR, ldo);
    for (index_t p = full - P; p >= 0; p -= P)
      tile<V, R, P>(kc, a, lda, b + p * ps, ps, out + p * NR, ldo);
  }
}

// Panels per tile for R rows: about V::kAcc accumulators (2 per panel and row), at least one.
template <class V, int R>
constexpr int panels_per_tile() {
  constexpr int p = V::kAcc / (2 * R);
  return p < 1 ? 1 : (p > 4 ? 4 : p);
}

template <class V, int R>
void rows_of(index_t kc, const typename V::T* a, index_t lda, const typename V::T* b, index_t ps,
             index_t panels, typename V::T* out, index_t ldo, bool backwards) {
  rows<V, R, panels_per_tile<V, R>()>(kc, a, lda, b, ps, panels, out, ldo, backwards);
}

// m rows (1..8) in groups of at most V::kRows.
template <class V>
void product(index_t m, index_t kc, const typename V::T* a, index_t lda, const typename V::T* b,
             index_t ps, index_t panels, typename V::T* out, index_t ldo, bool backwards) {
  for (index_t i0 = 0; i0 < m; i0 += V::kRows) {
    const index_t r = m - i0 < V::kRows ? m - i0 : V::kRows;
    const typename V::T* ai = a + i0 * lda;
    typename V::T* oi = out + i0 * ldo;
    switch (r) {
      case 1: rows_of<V, 1>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 2: rows_of<V, 2>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 3: rows_of<V, 3>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 4: rows_of<V, 4>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 5: if constexpr (V::kRows >= 5) rows_of<V, 5>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 6: if constexpr (V::kRows >= 6) rows_of<V, 6>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 7: if constexpr (V::kRows >= 7) rows_of<V, 7>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      case 8: if constexpr (V::kRows >= 8) rows_of<V, 8>(kc, ai, lda, b, ps, panels, oi, ldo, backwards); break;
      default: break;
    }
  }
}

template <class V>
constexpr SmallKernels<typename V::T> make_kernels() {
  return {V::W, &product<V>};
}

}  // namespace
}  // namespace small
}  // namespace rnnfast
