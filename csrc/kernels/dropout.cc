// Inverted dropout with a counter-based mask (rnnfast/dropout.h).
#include "rnnfast/dropout.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <type_traits>

#include "dropout_kernels.h"
#include "rnnfast/counter_rng.h"
#include "rnnfast/cpu.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// The bits of `from` as a To of the same size.
template <typename To, typename From>
inline To as(From from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

// Pairs per work item: enough values that an item outweighs the hand-off to a thread.
constexpr index_t kPairsPerItem = 1 << 13;

template <typename T>
void apply_pairs(index_t n, const T* x, std::uint32_t threshold, T scale, std::uint64_t seed,
                 index_t j0, index_t j1, T* y, std::uint8_t* keep) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  const U scale_bits = as<U>(scale);
  // Blocks of pairs: the draws first, then a branch-free (vectorisable) pass over the values
  // (a kept or dropped element is a coin flip: a branch on it would be mispredicted half the
  // time).
  constexpr index_t kBlock = 128;
  std::uint64_t z[kBlock];
  std::uint32_t bits[2 * kBlock];
  for (index_t jb = j0; jb < j1; jb += kBlock) {
    const index_t m = std::min(kBlock, j1 - jb);
    for (index_t u = 0; u < m; ++u) {
      const std::uint64_t r = splitmix64(seed, static_cast<std::uint64_t>(jb + u));
      z[u] = r;
    }
    for (index_t u = 0; u < m; ++u) {  // element 2j the low half, 2j + 1 the high half
      bits[2 * u] = static_cast<std::uint32_t>(z[u]);
      bits[2 * u + 1] = static_cast<std::uint32_t>(z[u] >> 32);
    }
    const index_t e0 = 2 * jb, count = std::min(n, 2 * (jb + m)) - e0;
    const T* __restrict xs = x + (e0 - 2 * j0);  // x and y point at element 2 j0
    T* __restrict ys = y + (e0 - 2 * j0);
    // the multiplier's bits: scale's where kept, zero's where dropped (integer masks: the
    // compilers turn a select of floats into a branch)
    for (index_t e = 0; e < count; ++e) {
      const U kept = U(0) - static_cast<U>(bits[e] >= threshold);
      ys[e] = xs[e] * as<T>(static_cast<U>(kept & scale_bits));
    }
    if (keep) {  // (e0 - 2 j0 is a multiple of 2 * kBlock: whole bytes)
      std::uint8_t* to = keep + (e0 - 2 * j0) / 8;
      for (index_t b = 0; b < count; b += 8) {
        unsigned byte = 0;
        for (index_t k = 0; k < 8 && b + k < count; ++k)
          byte |= static_cast<unsigned>(bits[b + k] >= threshold) << k;
        to[b / 8] = static_cast<std::uint8_t>(byte);
      }
    }
  }
}

// g[c] += x[c] * (kept ? scale : 0) (dropout_kernels.h): the product rounded, then added (no
// multiply-add, which a compiler may otherwise contract them into on targets that have one).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
template <typename T>
void add_kept(index_t count, const T* x, const std::uint8_t* keep, index_t bit, T scale, T* g) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  const U scale_bits = as<U>(scale);
  for (index_t c = 0; c < count; ++c) {
    const index_t b = bit + c;
    const U kept = U(0) - static_cast<U>((keep[b >> 3] >> (b & 7)) & 1u);
    const T product = x[c] * as<T>(static_cast<U>(kept & scale_bits));
    g[c] += product;
  }
}
#if defined(__clang__)
#pragma clang fp contract(on)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

// The kernels of the active instruction set.
template <typename T>
dropout_kernels::DropoutPairs<T> active_pairs() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  if (active_isa() == Isa::avx512) {
    if constexpr (std::is_same_v<T, float>)
      return dropout_kernels::kDropoutAvx512F32;
    else
      return dropout_kernels::kDropoutAvx512F64;
  }
#endif
  return {&apply_pairs<T>, &add_kept<T>};
}

// Calls run(j0, j1) over [0, pairs) in items of kPairsPerItem pairs, on the threads when there
// are two items or more.
template <typename F>
void over_items(index_t pairs, F&& run) {
  const index_t items = (pairs + kPairsPerItem - 1) / kPairsPerItem;
  auto items_of = [&](index_t i0, index_t i1) {
    run(i0 * kPairsPerItem, std::min(pairs, i1 * kPairsPerItem));
  };
  if (items >= 2)
    parallel_for(items, 1, items_of);
  else
    items_of(0, items);
}

// Pairs gathered and dropped at a time: their values stay in L1 between the two passes.
constexpr index_t kGatherPairs = 1 << 10;

}  // namespace

std::uint32_t dropout_threshold(double p) { return counter_threshold(p); }

template <typename T>
void dropout_apply(index_t n, const T* x, double p, std::uint64_t seed, T* y) {
  if (n <= 0) return;
  const std::uint32_t threshold = dropout_threshold(p);
  const T scale = T(1) / static_cast<T>(1.0 - p);  // 1 - p in double, as Python computes it
  const auto pairs_of = active_pairs<T>().apply;
  over_items((n + 1) / 2, [&](index_t j0, index_t j1) {
    pairs_of(n, x + 2 * j0, threshold, scale, seed, j0, j1, y + 2 * j0, nullptr);
  });
}

template <typename T>
void dropout_gather(index_t rows, index_t dim, const std::int64_t* ids, const T* table, double p,
                    std::uint64_t seed, T* y, std::uint8_t* keep) {
  const index_t n = rows * dim;
  if (n <= 0) return;
  const std::uint32_t threshold = dropout_threshold(p);
  const T scale = T(1) / static_cast<T>(1.0 - p);
  const auto pairs_of = active_pairs<T>().apply;
  over_items((n + 1) / 2, [&](index_t j0, index_t j1) {
    for (index_t jb = j0; jb < j1; jb += kGatherPairs) {
      const index_t je = std::min(j1, jb + kGatherPairs);
      const index_t e1 = std::min(n, 2 * je);
      for (index_t e = 2 * jb; e < e1;) {  // the values of elements [2 jb, e1): parts of rows
        const index_t r = e / dim, c = e - r * dim, len = std::min(dim - c, e1 - e);
        std::memcpy(y + e, table + ids[r] * dim + c, static_cast<std::size_t>(len) * sizeof(T));
        e += len;
      }
      if (p > 0.0)  // (jb a multiple of kGatherPairs: the keep bits from a whole byte)
        pairs_of(n, y + 2 * jb, threshold, scale, seed, jb, je, y + 2 * jb,
                 keep ? keep + 2 * jb / 8 : nullptr);
    }
  });
}

template <typename T>
DropoutParts<T> dropout_parts(double p) {
  const auto kernels = active_pairs<T>();
  return {dropout_threshold(p), T(1) / static_cast<T>(1.0 - p), kernels.apply, kernels.add_kept};
}

template void dropout_apply<float>(index_t, const float*, double, std::uint64_t, float*);
template void dropout_apply<double>(index_t, const double*, double, std::uint64_t, double*);
template DropoutParts<float> dropout_parts<float>(double);
template DropoutParts<double> dropout_parts<double>(double);
template void dropout_gather<float>(index_t, index_t, const std::int64_t*, const float*, double,
                                    std::uint64_t, float*, std::uint8_t*);
template void dropout_gather<double>(index_t, index_t, const std::int64_t*, const double*, double,
                                     std::uint64_t, double*, std::uint8_t*);

}  // namespace rnnfast
