// The optimisers' per-element work in one pass each, float and double: the Adam update (the
// rule of Keras and the rule of PyTorch) and the sum of squares behind gradient-norm clipping.
//
// An array library runs such an update as a dozen passes over memory, each with a temporary;
// these read and write every array once. Every operation is the one of the array expressions
// they replace, in the same order and rounding (one IEEE operation at a time in T, the
// constants given already rounded to T; the loops are built without contraction into fused
// multiply-adds, at every vector width), so the results are bitwise those of
// with, under either rule, g = (g * grad_mul) / grad_div first when scale_grad (clipping),
//   Keras  (rnnfast.models.optimizers.Adam):
//     m  = m * beta1;  m = m + one_minus_beta1 * g
//     v  = v * beta2;  v = v + one_minus_beta2 * (g * g)
//     vh = max(vh, v) (NaN-propagating; amsgrad: v_max given), then vh is the v below
//     w  = w - (m * lr) / (sqrt(v) + eps)                (lr: Keras' alpha)
//   PyTorch (rnnfast.optim.Adam):
//     m  = m + (g - m) * one_minus_beta1
//     v  = v * beta2;  v = v + (one_minus_beta2 * g) * g
//     vh = max(vh, v) as above
//     w  = w - (lr * m) / (sqrt(v) / bias2_sqrt + eps)   (lr: step size lr / (1 - beta1^t))
// Elements are independent: the result does not depend on the thread count.
#pragma once
#include "rnnfast/common.h"

namespace rnnfast {

enum class AdamRule { keras, torch };

template <typename T>
struct AdamStep {
  AdamRule rule = AdamRule::keras;
  T beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0;
  T lr = 0;          // Keras: alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t); PyTorch: the step size
  T eps = 0;
  T bias2_sqrt = 1;  // PyTorch only: sqrt(1 - beta2^t)
  bool scale_grad = false;  // g = (g * grad_mul) / grad_div first
  T grad_mul = 1, grad_div = 1;
};

// One Adam step over n elements: w, m, v (and v_max, or null without amsgrad) updated in place
// from g. No two of the arrays may overlap.
template <typename T>
void adam_update(index_t n, const AdamStep<T>& s, T* w, const T* g, T* m, T* v, T* v_max);

// One parameter's update for adam_update_many: adam_update's arguments.
template <typename T>
struct AdamParameter {
  index_t n = 0;
  AdamStep<T> step;
  T* w = nullptr;
  const T* g = nullptr;
  T* m = nullptr;
  T* v = nullptr;
  T* v_max = nullptr;  // null without amsgrad
};

// adam_update of each of count parameters, in one parallel pass over all their elements (the
// threads split the parameters' elements end to end, so a small parameter runs beside a
// large one's part): every element updated as its parameter's adam_update updates it. No
// array of one parameter may overlap an array of another (nor, within one, as adam_update).
template <typename T>
void adam_update_many(index_t count, const AdamParameter<T>* params);

// sum(x[i]^2) accumulated in double: fixed blocks of elements, each summed over eight
// interleaved partial sums, and the blocks' sums added in order. The order depends on n only
// (not on the thread count). For float x every square is exact in double.
template <typename T>
double sum_squares(index_t n, const T* x);

}  // namespace rnnfast
