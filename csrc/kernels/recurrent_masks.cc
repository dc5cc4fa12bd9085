// Zoneout and recurrent dropout masks from a counter-based generator (rnnfast/recurrent_masks.h).
#include "rnnfast/recurrent_masks.h"

#include <algorithm>

#include "rnnfast/counter_rng.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Pairs of elements (one 64-bit draw) per work item: enough that an item outweighs its hand-off
// to a thread.
constexpr index_t kPairsPerItem = 1 << 13;

// One mask to draw: out[i] = ((u_i < threshold) != above) ? value : 0 for i < n, u_i drawn from
// seed as counter_rng.h states.
template <typename T>
struct MaskDraw {
  T* out;
  index_t n;
  std::uint64_t seed;
  std::uint32_t threshold;
  bool above;  // value where u >= threshold (recurrent dropout), else where u < threshold
  T value;
};

// Elements 2 * j0 .. min(n, 2 * j1) - 1 of a mask.
template <typename T>
void draw_pairs(const MaskDraw<T>& m, index_t j0, index_t j1) {
  // Blocks of pairs: the draws first, then a branch-free (vectorisable) pass over the elements
  // (each is a coin flip: a branch on it would be mispredicted often).
  constexpr index_t kBlock = 128;
  std::uint32_t bits[2 * kBlock];
  const std::uint32_t flip = m.above ? 1u : 0u;
  for (index_t jb = j0; jb < j1; jb += kBlock) {
    const index_t pairs = std::min(kBlock, j1 - jb);
    for (index_t u = 0; u < pairs; ++u) {  // element 2j the low half, 2j + 1 the high half
      const std::uint64_t z = splitmix64(m.seed, static_cast<std::uint64_t>(jb + u));
      bits[2 * u] = static_cast<std::uint32_t>(z);
      bits[2 * u + 1] = static_cast<std::uint32_t>(z >> 32);
    }
    const index_t e0 = 2 * jb, count = std::min(m.n, 2 * (jb + pairs)) - e0;
    T* __restrict out = m.out + e0;
    const T value = m.value;
    // value * 1 or value * 0: exact, and a multiply vectorises where a select of two floats
    // need not
    for (index_t e = 0; e < count; ++e)
      out[e] = value * static_cast<T>(static_cast<std::uint32_t>(bits[e] < m.threshold) ^ flip);
  }
}

}  // namespace

template <typename T>
void recurrent_masks(std::uint64_t seed, double zoneout, double recurrent_dropout, index_t n_h,
                     T* zoneout_h, index_t n_c, T* zoneout_c, index_t n_r, T* recurrent) {
  const std::uint32_t zoneout_threshold = counter_threshold(zoneout);
  const MaskDraw<T> all[3] = {
      {zoneout_h, n_h, splitmix64(seed, 0), zoneout_threshold, false, T(1)},
      {zoneout_c, n_c, splitmix64(seed, 1), zoneout_threshold, false, T(1)},
      {recurrent, n_r, splitmix64(seed, 2), counter_threshold(recurrent_dropout), true,
       static_cast<T>(1.0 / (1.0 - recurrent_dropout))},
  };
  // The work items of every mask in one list: item i of the call is item i - first[k] of mask k.
  index_t first[4] = {0, 0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    const index_t pairs = all[k].n > 0 ? (all[k].n + 1) / 2 : 0;
    first[k + 1] = first[k] + (pairs + kPairsPerItem - 1) / kPairsPerItem;
  }
  const index_t items = first[3];
  auto run = [&](index_t i0, index_t i1) {
    for (int k = 0; k < 3; ++k) {
      const index_t b = std::max(i0, first[k]), e = std::min(i1, first[k + 1]);
      if (b >= e) continue;
      const index_t pairs = (all[k].n + 1) / 2;
      draw_pairs(all[k], (b - first[k]) * kPairsPerItem,
                 std::min(pairs, (e - first[k]) * kPairsPerItem));
    }
  };
  if (items >= 2)
    parallel_for(items, 1, run);
  else if (items == 1)
    run(0, 1);
}

template void recurrent_masks<float>(std::uint64_t, double, double, index_t, float*, index_t,
                                     float*, index_t, float*);
template void recurrent_masks<double>(std::uint64_t, double, double, index_t, double*, index_t,
                                      double*, index_t, double*);

}  // namespace rnnfast
