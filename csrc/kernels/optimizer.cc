// The Adam update and the sum of squares of gradient clipping in one pass each (see
// rnnfast/optimizer.h for the exact expressions): the update's thread split here, its loop in
// the instruction sets' units (optimizer_kernels.h); the sum of squares built with the generic
// flags (no FMA: every product and sum is rounded on its own).
#include "rnnfast/optimizer.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "optimizer_kernels.h"
#include "rnnfast/cpu.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Elements per parallel chunk of the update: below it one thread does the whole update.
constexpr index_t kUpdateGrain = 1 << 15;
// Elements per block of the sum of squares (its order of summation depends on this only).
constexpr index_t kSumBlock = 1 << 12;

// The range kernel of the active instruction set.
template <typename T>
const optimizer_kernels::AdamRange<T>& active_adam_range() {
  constexpr bool kFloat = std::is_same_v<T, float>;
#ifdef RNNFAST_HAVE_X86_KERNELS
  if (active_isa() != Isa::generic) {
    if constexpr (kFloat) return optimizer_kernels::kAdamAvx2F32;
    else return optimizer_kernels::kAdamAvx2F64;
  }
#endif
  if constexpr (kFloat) return optimizer_kernels::kAdamGenericF32;
  else return optimizer_kernels::kAdamGenericF64;
}

template <typename T>
double block_sum_squares(const T* x, index_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double xi = static_cast<double>(x[i + j]);
      acc[j] += xi * xi;
    }
  for (int j = 0; i + j < n; ++j) {
    const double xi = static_cast<double>(x[i + j]);
    acc[j] += xi * xi;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

template <typename T>
void adam_update(index_t n, const AdamStep<T>& s, T* w, const T* g, T* m, T* v, T* v_max) {
  if (n <= 0) return;
  const auto update = active_adam_range<T>().update;
  parallel_for(n, kUpdateGrain, [&](index_t i0, index_t i1) {
    update(i0, i1, s, w, g, m, v, v_max);
  });
}

template <typename T>
void adam_update_many(index_t count, const AdamParameter<T>* params) {
  // start[k]..start[k + 1]: parameter k's elements in the concatenation
  std::vector<index_t> start(static_cast<std::size_t>(count) + 1, 0);
  for (index_t k = 0; k < count; ++k) start[k + 1] = start[k] + std::max<index_t>(0, params[k].n);
  const index_t total = start[count];
  if (total <= 0) return;
  const auto update = active_adam_range<T>().update;
  parallel_for(total, kUpdateGrain, [&](index_t i0, index_t i1) {
    // the first parameter ending after i0, then each one that starts before i1
    index_t k = static_cast<index_t>(std::upper_bound(start.begin() + 1, start.end(), i0) -
                                     (start.begin() + 1));
    for (; k < count && start[k] < i1; ++k) {
      const AdamParameter<T>& p = params[k];
      const index_t a = std::max(i0, start[k]) - start[k];
      const index_t b = std::min(i1, start[k + 1]) - start[k];
      if (a < b) update(a, b, p.step, p.w, p.g, p.m, p.v, p.v_max);
    }
  });
}

template <typename T>
double sum_squares(index_t n, const T* x) {
  if (n <= 0) return 0.0;
  const index_t blocks = (n + kSumBlock - 1) / kSumBlock;
  if (blocks == 1) return block_sum_squares(x, n);
  std::vector<double> sums(static_cast<std::size_t>(blocks));
  parallel_for(blocks, std::max<index_t>(1, kUpdateGrain / kSumBlock), [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      const index_t start = b * kSumBlock;
      sums[static_cast<std::size_t>(b)] = block_sum_squares(x + start, std::min(kSumBlock, n - start));
    }
  });
  double total = 0.0;
  for (double s : sums) total += s;
  return total;
}

template void adam_update<float>(index_t, const AdamStep<float>&, float*, const float*, float*,
                                 float*, float*);
template void adam_update<double>(index_t, const AdamStep<double>&, double*, const double*,
                                  double*, double*, double*);
template void adam_update_many<float>(index_t, const AdamParameter<float>*);
template void adam_update_many<double>(index_t, const AdamParameter<double>*);
template double sum_squares<float>(index_t, const float*);
template double sum_squares<double>(index_t, const double*);

}  // namespace rnnfast
