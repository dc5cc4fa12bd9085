// The kernels of conv1d_pooled.h, written once over a vector shim S (simd_*.h: load, load_n,
// store, store_n, set1, fma; S::kAcc vectors per block) and compiled by each instruction-set
// translation unit. A block of up to kAcc vectors of one row (of acc, or of wt) stays in
// registers while the entries of its channel run over it. Internal linkage only.
#pragma once
#include <algorithm>

#include "conv1d_pooled.h"

namespace rnnfast {
namespace pooled {
namespace {

// dst_row[k0, k0 + (NV - 1) * W + last) += the row's entries at k0. Always inlined: compiled
// out of line (which GCC chose once the unit held more instantiations), the block `a` lived on
// the stack, stored after every entry, and the backward ran 40% slower (bench/RESULTS.md).
template <typename S, int NV>
[[gnu::always_inline]] inline void gather_block(index_t e0, index_t e1, const index_t* off,
                                                const typename S::T* g, const typename S::T* src,
                                                typename S::T* dst_row, index_t k0,
                                                index_t last) {
  using vec = typename S::vec;
  constexpr int W = S::W;
  vec a[NV];
  for (int r = 0; r < NV - 1; ++r) a[r] = S::load(dst_row + k0 + r * W);
  a[NV - 1] = S::load_n(dst_row + k0 + (NV - 1) * W, last);
  for (index_t e = e0; e < e1; ++e) {
    const typename S::T* sr = src + off[e] + k0;
    const vec gg = S::set1(g[e]);
    for (int r = 0; r < NV - 1; ++r) a[r] = S::fma(gg, S::load(sr + r * W), a[r]);
    a[NV - 1] = S::fma(gg, S::load_n(sr + (NV - 1) * W, last), a[NV - 1]);
  }
  for (int r = 0; r < NV - 1; ++r) S::store(dst_row + k0 + r * W, a[r]);
  S::store_n(dst_row + k0 + (NV - 1) * W, a[NV - 1], last);
}

// The rows' last block of vectors may hold this many more than S::kAcc: a patch of 4 * kAcc + 1
// vectors is 4 blocks, not 5 (the fifth would run every entry again for one vector).
constexpr int kLonger = 2;

// Calls f(integral_constant<nv>) for nv in [1, NV] (a runtime count of vectors in the block).
template <typename S, int NV>
struct Blocks {
  template <typename F>
  static void run(int nv, F&& f) {
    if constexpr (NV >= 1) {
      if (nv == NV) {
        f(std::integral_constant<int, NV>{});
      } else {
        Blocks<S, NV - 1>::run(nv, f);
      }
    }
  }
};

template <typename S>
void gather_rows(index_t rows, index_t KC, index_t row_stride, const index_t* start,
                 const index_t* off, const typename S::T* g, const typename S::T* src,
                 typename S::T* dst) {
  constexpr int W = S::W, V = S::kAcc;
  const index_t nvec = (KC + W - 1) / W;
  for (index_t v0 = 0, nv = 0; v0 < nvec; v0 += nv) {  // a block of src's rows stays in cache
    // blocks of V vectors; the last one or two more when the rows do not overlap (dx: the
    // order in which neighbouring rows add into a value stays that of blocks of V)
    const index_t rest = nvec - v0;
    nv = row_stride >= KC && rest <= V + kLonger ? rest : std::min<index_t>(V, rest);
    const index_t k0 = v0 * W;
    const index_t last = std::min<index_t>(W, KC - (k0 + (nv - 1) * W));
    Blocks<S, V + kLonger>::run(static_cast<int>(nv), [&](auto NV) {
      for (index_t r = 0; r < rows; ++r) {
        if (start[r] == start[r + 1]) continue;
        gather_block<S, decltype(NV)::value>(start[r], start[r + 1], off, g, src,
                                             dst + r * row_stride, k0, last);
      }
    });
  }
}

// dst[r * to + i] = src[r * n + i] for r < rows, i < n; whether all are finite: v * -1 + v is 0
// for a finite v, NaN otherwise, and the sums of those stay 0 only when every one is 0.
template <typename S>
bool copy_rows(index_t rows, index_t n, index_t to, const typename S::T* src,
               typename S::T* dst) {
  using T = typename S::T;
  using vec = typename S::vec;
  constexpr int W = S::W;
  const vec minus = S::set1(T(-1)), one = S::set1(T(1));
  vec bad = S::set1(T(0));
  for (index_t r = 0; r < rows; ++r) {
    const T* sr = src + r * n;
    T* dr = dst + r * to;
    index_t i = 0;
    for (; i + W <= n; i += W) {
      const vec v = S::load(sr + i);
      bad = S::fma(S::fma(v, minus, v), one, bad);
      S::store(dr + i, v);
    }
    if (i < n) {
      const vec v = S::load_n(sr + i, n - i);
      bad = S::fma(S::fma(v, minus, v), one, bad);
      S::store_n(dr + i, v, n - i);
    }
  }
  T lanes[W];
  S::store(lanes, bad);
  for (int l = 0; l < W; ++l)
    if (!(lanes[l] == T(0))) return false;
  return true;
}

// conv1d_pooled.h's by_step one entry at a time: counted, then each placed after the entries
// of its step placed before it. With restrict pointers (conv1d.cc's lists: inlined into the
// backward's loop without them, the compiler kept the lists' pointers and counters in memory).
template <typename T>
void by_step_scan(index_t np, index_t Co, index_t l_out, index_t wt_stride,
                  const index_t* __restrict arg, const T* __restrict g, index_t* __restrict start,
                  index_t* __restrict off, T* __restrict gl) {
  std::fill(start, start + l_out + 1, index_t(0));
  for (index_t i = 0; i < np * Co; ++i) start[arg[i] + 1] += g[i] != T(0);
  for (index_t t = 0; t < l_out; ++t) start[t + 1] += start[t];
  // start[t]: the next free entry of step t, then the start of step t + 1 (shifted back below)
  for (index_t j = 0; j < np; ++j)
    for (index_t n = 0; n < Co; ++n) {
      const T v = g[j * Co + n];
      if (v == T(0)) continue;
      const index_t at = start[arg[j * Co + n]]++;
      off[at] = n * wt_stride;
      gl[at] = v;
    }
  for (index_t t = l_out; t > 0; --t) start[t] = start[t - 1];
  start[0] = 0;
}

template <typename S>
constexpr PooledGrad<typename S::T> make_pooled() {
  return {&gather_rows<S>, &copy_rows<S>, &by_step_scan<typename S::T>};
}

}  // namespace
}  // namespace pooled
}  // namespace rnnfast
