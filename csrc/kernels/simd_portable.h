// Vector shims for the baseline instruction set: the operations of simd_avx512.h (zero, load,
// load_n, store, store_n, set1, fma, mul) over a small fixed-size array, which the compiler keeps
// in registers and vectorises (SSE2 on x86-64, NEON on arm64). fma is a * b + c as written (the
// portable kernels' multiply-add); internal linkage (unnamed namespace).
#pragma once
#include <cstdint>

namespace rnnfast {
namespace simd {
namespace {

template <typename Scalar, int Lanes>
struct Portable {
  using T = Scalar;
  struct vec {
    T v[Lanes];
  };
  static constexpr int W = Lanes;
  static vec zero() {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = T(0);
    return r;
  }
  static vec load(const T* p) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = p[l];
    return r;
  }
  static vec load_n(const T* p, std::int64_t n) {
    vec r = zero();
    for (std::int64_t l = 0; l < n; ++l) r.v[l] = p[l];
    return r;
  }
  static void store(T* p, vec v) {
    for (int l = 0; l < W; ++l) p[l] = v.v[l];
  }
  static void store_n(T* p, vec v, std::int64_t n) {
    for (std::int64_t l = 0; l < n; ++l) p[l] = v.v[l];
  }
  static vec set1(T x) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = x;
    return r;
  }
  static vec fma(vec a, vec b, vec c) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
    return r;
  }
  static vec mul(vec a, vec b) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = a.v[l] * b.v[l];
    return r;
  }
};

}  // namespace
}  // namespace simd
}  // namespace rnnfast
