// Gate nonlinearities: overflow-safe for any input (±1e30 gives 0/1/±1, never inf or NaN),
// NaN in gives NaN out. float uses a branchless polynomial exp the compiler can vectorise
// (max error ~2 ulp); double uses the C library (accurate to the last bits).
//
// Included by the instruction-set translation units: everything here has internal linkage
// (anonymous namespace), so no copy compiled with AVX flags can be picked for another TU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace rnnfast {
namespace {
namespace act {

inline float abs_(float x) { return __builtin_fabsf(x); }
inline double abs_(double x) { return __builtin_fabs(x); }

// e^x for x <= 0 (the only range the gates need), float, branchless.
inline float exp_neg(float x) {
  x = x < -87.0f ? -87.0f : x;  // NaN compares false and passes through
  const float log2e = 1.44269504088896341f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * log2e + shifter;
  const float n = t - shifter;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  // e^r on [-ln2/2, ln2/2], degree 6.
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n from the bits of t, whose low mantissa bits hold n + bits(shifter). Unsigned, so a NaN
  // x (garbage bits, NaN result anyway) is no float-to-int conversion or shift of a negative.
  std::uint32_t t_bits;
  std::memcpy(&t_bits, &t, sizeof(t_bits));
  const std::uint32_t bits = (t_bits - 0x4B400000u + 127u) << 23;  // 0x4B400000 = bits(shifter)
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline double exp_neg(double x) { return std::exp(x); }

// sigmoid(x) = 1 / (1 + e^-x), from e^-|x| so nothing overflows.
template <typename T>
inline T sigmoid(T x) {
  const T e = exp_neg(-abs_(x));
  const T r = T(1) / (T(1) + e);
  const T m = x >= T(0) ? T(1) : e;  // a select, not a branch: the loop vectorises
  return m * r;
}

inline float tanh(float x) {
  const float e = exp_neg(-2.0f * abs_(x));
  const float t = (1.0f - e) / (1.0f + e);
  return __builtin_copysignf(t, x);
}

inline double tanh(double x) { return std::tanh(x); }

template <typename T>
inline T relu(T x) {
  return x > T(0) ? x : (x == x ? T(0) : x);  // keeps NaN
}

}  // namespace act
}  // namespace
}  // namespace rnnfast
