// Gate nonlinearities: overflow-safe for any input (±1e30 gives 0/1/±1, never inf or NaN),
// NaN in gives NaN out. float uses a branchless polynomial exp the compiler can vectorise
// (against float64: sigmoid within 3e-7 relative, tanh within 1.2e-7 absolute); double uses
// the C library (accurate to the last bits).
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

// e^(-k a) for float a >= 0 (or NaN), k = 1 or 2, branchless, as 2^n e^(-k u) with
// n = round(-k a log2 e) and u = a + n ln2 / k, |k u| <= ln2 / 2. Past k a = 87 the result is
// 0 (e^-87 is 1.6e-38; the gates saturate long before). NaN in gives NaN out.
template <int k>
inline float exp_neg_k(float a) {
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = a * (-1.44269504088896341f * k) + shifter;
  const float n = t - shifter;
#ifdef __FMA__
  // One fused step: n * ln2 is exact inside the FMA and |n| <= 126, so u is off by at most
  // 126 * |ln2 - float(ln2)| / k < 2.4e-7 / k, the relative error it adds to the result.
  const float u = __builtin_fmaf(n, 0.693147180559945309f / k, a);
#else
  // Without FMA, ln2 in two parts; the first has 16 bits so n times it is exact.
  const float u = (a + n * (0.693145751953125f / k)) + n * (1.428606765330187045e-06f / k);
#endif
  // e^(-k u) = 1 + v q(v), v = -k u, with q the degree-4 polynomial that minimises the
  // relative error of the whole on |v| <= ln2/2 (9.2e-8 before rounding). The constants are its
  // coefficients times (-k)^j, exact in float (powers of two and signs).
  constexpr float s = -static_cast<float>(k);
  float p = 8.290315047e-03f * (s * s * s * s * s);
  p = p * u + 4.189793020e-02f * (s * s * s * s);
  p = p * u + 1.666763574e-01f * (s * s * s);
  p = p * u + 4.999915063e-01f * (s * s);
  p = p * u + 9.999997020e-01f * s;
  p = p * u + 1.0f;
  // 2^n from the bits of t, whose low mantissa bits hold n + bits(shifter). Unsigned, so a NaN
  // a (garbage bits, NaN result anyway) is no float-to-int conversion or shift of a negative.
  std::uint32_t t_bits;
  std::memcpy(&t_bits, &t, sizeof(t_bits));
  const std::uint32_t bits = (t_bits - 0x4B400000u + 127u) << 23;  // 0x4B400000 = bits(shifter)
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  // Past k a = 87 (where n would leave the normal exponents, and for a = inf or 1e30 where
  // everything above is garbage) the answer is 0: a select of the result, so the compiler does
  // not push a clamp of a into every operation above. NaN compares false and passes through.
  return a > 87.0f / k ? 0.0f : p * scale;
}

inline float exp_neg_abs(float x) { return exp_neg_k<1>(abs_(x)); }
inline double exp_neg_abs(double x) { return std::exp(-abs_(x)); }

// sigmoid(x) = 1 / (1 + e^-x), from e^-|x| so nothing overflows.
template <typename T>
inline T sigmoid(T x) {
  const T e = exp_neg_abs(x);
  const T r = T(1) / (T(1) + e);
  const T m = x >= T(0) ? T(1) : e;  // a select, not a branch: the loop vectorises
  return m * r;
}

inline float tanh(float x) {
  const float e = exp_neg_k<2>(abs_(x));
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
