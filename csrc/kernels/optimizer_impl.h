// The Adam range kernel of optimizer_kernels.h, written once and compiled by each
// instruction-set translation unit (the compiler vectorises the loop for that set). Internal
// linkage only.
//
// Bitwise at every width: the loop's operations are IEEE operations rounded one at a time
// (sqrt and division included), so a vector lane computes what the scalar loop does, provided
// no product and sum are fused into one multiply-add. The units with FMA in their flags would
// fuse them (GCC contracts by default, also under -std=c++17), hence contraction is turned off
// here for the functions below.
#pragma once
#include <cmath>

#include "optimizer_kernels.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace rnnfast {
namespace optimizer_kernels {
namespace {

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

template <typename T, AdamRule kRule>
void adam_rule(index_t i0, index_t i1, const AdamStep<T>& s, T* w, const T* g, T* m, T* v,
               T* v_max) {
  if (s.scale_grad) {
    if (v_max) adam_range<T, kRule, true, true>(i0, i1, s, w, g, m, v, v_max);
    else adam_range<T, kRule, true, false>(i0, i1, s, w, g, m, v, v_max);
  } else {
    if (v_max) adam_range<T, kRule, false, true>(i0, i1, s, w, g, m, v, v_max);
    else adam_range<T, kRule, false, false>(i0, i1, s, w, g, m, v, v_max);
  }
}

template <typename T>
void adam_any(index_t i0, index_t i1, const AdamStep<T>& s, T* w, const T* g, T* m, T* v,
              T* v_max) {
  if (s.rule == AdamRule::keras)
    adam_rule<T, AdamRule::keras>(i0, i1, s, w, g, m, v, v_max);
  else
    adam_rule<T, AdamRule::torch>(i0, i1, s, w, g, m, v, v_max);
}

template <typename T>
constexpr AdamRange<T> make_adam_range() {
  return AdamRange<T>{&adam_any<T>};
}

}  // namespace
}  // namespace optimizer_kernels
}  // namespace rnnfast

#if !defined(__clang__) && defined(__GNUC__)
#pragma GCC pop_options
#endif
