// The Adam update and the sum of squares of gradient clipping in one pass each (see
// rnnfast/optimizer.h for the exact expressions). Built with the generic flags (no FMA: every
// product and sum is rounded on its own, as the array expressions they replace round them).
#include "rnnfast/optimizer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Elements per parallel chunk of the update: below it one thread does the whole update.
constexpr index_t kUpdateGrain = 1 << 15;
// Elements per block of the sum of squares (its order of summation depends on this only).
constexpr index_t kSumBlock = 1 << 12;

// NumPy's maximum: a when a >= b or a is NaN, else b (a NaN in either gives NaN).
template <typename T>
inline T nan_max(T a, T b) {
  return (a >= b || a != a) ? a : b;
}

template <typename T, AdamRule kRule, bool kScale, bool kAmsgrad>
void adam_range(index_t i0, index_t i1, const AdamStep<T>& s, T* __restrict w,
                const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict v_max) {
  const T b1 = s.beta1, c1 = s.one_minus_beta1, b2 = s.beta2, c2 = s.one_minus_beta2;
  const T lr = s.lr, eps = s.eps, bc2 = s.bias2_sqrt, mul = s.grad_mul, div = s.grad_div;
  for (index_t i = i0; i < i1; ++i) {
    T gi = g[i];
    if (kScale) gi = (gi * mul) / div;
    T mi, vi;
    if (kRule == AdamRule::keras) {
      mi = m[i] * b1 + c1 * gi;
      vi = v[i] * b2 + c2 * (gi * gi);
    } else {
      mi = m[i] + (gi - m[i]) * c1;
      vi = v[i] * b2 + (c2 * gi) * gi;
    }
    m[i] = mi;
    v[i] = vi;
    if (kAmsgrad) {
      vi = nan_max(v_max[i], vi);
      v_max[i] = vi;
    }
    if (kRule == AdamRule::keras)
      w[i] = w[i] - (mi * lr) / (std::sqrt(vi) + eps);
    else
      w[i] = w[i] - (lr * mi) / (std::sqrt(vi) / bc2 + eps);
  }
}

template <typename T, AdamRule kRule, bool kScale, bool kAmsgrad>
void adam_run(index_t n, const AdamStep<T>& s, T* w, const T* g, T* m, T* v, T* v_max) {
  parallel_for(n, kUpdateGrain, [&](index_t i0, index_t i1) {
    adam_range<T, kRule, kScale, kAmsgrad>(i0, i1, s, w, g, m, v, v_max);
  });
}

template <typename T, AdamRule kRule>
void adam_dispatch(index_t n, const AdamStep<T>& s, T* w, const T* g, T* m, T* v, T* v_max) {
  if (s.scale_grad) {
    if (v_max) adam_run<T, kRule, true, true>(n, s, w, g, m, v, v_max);
    else adam_run<T, kRule, true, false>(n, s, w, g, m, v, v_max);
  } else {
    if (v_max) adam_run<T, kRule, false, true>(n, s, w, g, m, v, v_max);
    else adam_run<T, kRule, false, false>(n, s, w, g, m, v, v_max);
  }
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
  if (s.rule == AdamRule::keras)
    adam_dispatch<T, AdamRule::keras>(n, s, w, g, m, v, v_max);
  else
    adam_dispatch<T, AdamRule::torch>(n, s, w, g, m, v, v_max);
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
template double sum_squares<float>(index_t, const float*);
template double sum_squares<double>(index_t, const double*);

}  // namespace rnnfast
