// The row kernels of gated_rows.h, written once and compiled by each instruction-set translation
// unit (the compiler vectorises the loops over channels for that set). Internal linkage only.
#pragma once
#include "activations.h"
#include "gated_rows.h"

namespace rnnfast {
namespace gated {
namespace {

template <typename T>
void forward_rows(index_t n, index_t C, const T* __restrict a, T* __restrict z) {
  for (index_t r = 0; r < n; ++r) {
    const T* __restrict af = a + r * 2 * C;
    const T* __restrict ag = af + C;
    T* __restrict zr = z + r * C;
    for (index_t c = 0; c < C; ++c) zr[c] = act::tanh(af[c]) * act::sigmoid(ag[c]);
  }
}

template <typename T>
void backward_rows(index_t n, index_t C, const T* __restrict a, const T* __restrict dz,
                   T* __restrict da) {
  for (index_t r = 0; r < n; ++r) {
    const T* __restrict af = a + r * 2 * C;
    const T* __restrict ag = af + C;
    const T* __restrict dzr = dz + r * C;
    T* __restrict df = da + r * 2 * C;
    T* __restrict dg = df + C;
    for (index_t c = 0; c < C; ++c) {
      const T f = act::tanh(af[c]);
      const T g = act::sigmoid(ag[c]);
      const T dzg = dzr[c] * g;
      df[c] = dzg * (T(1) - f * f);
      dg[c] = dzg * f * (T(1) - g);
    }
  }
}

template <typename T>
constexpr GatedRows<T> make_rows() {
  return {&forward_rows<T>, &backward_rows<T>};
}

}  // namespace
}  // namespace gated
}  // namespace rnnfast
