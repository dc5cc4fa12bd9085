// Gate nonlinearities: overflow-safe for any input (±1e30 gives 0/1/±1, never inf or NaN),
// NaN in gives NaN out. float uses a branchless polynomial exp the compiler can vectorise
// (against float64, over every float of [-100, 100]: sigmoid within 3e-7 relative for
// |x| <= 20 and 4e-7 down to x = -87, past which it is 0; tanh within 1.2e-7 absolute); double
// uses the C library (accurate to the last bits). Translation units built for AVX-512 also get
// act::v16::activate, the same float functions on 16 lanes written with intrinsics (the LSTM
// step's), several at once, with the same values bit for bit (tests/test_lstm_gate_accuracy.py,
// bench/RESULTS.md).
//
// Included by the instruction-set translation units: everything here has internal linkage
// (anonymous namespace), so no copy compiled with AVX flags can be picked for another TU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace rnnfast {
namespace {
namespace act {

inline float abs_(float x) { return __builtin_fabsf(x); }
inline double abs_(double x) { return __builtin_fabs(x); }

// Coefficients of v, v^2, ..., v^5 in e^v = 1 + v q(v) on |v| <= ln2/2 (exp_neg_k).
constexpr float kExpPoly[5] = {9.999997020e-01f, 4.999915063e-01f, 1.666763574e-01f,
                               4.189793020e-02f, 8.290315047e-03f};

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
  // relative error of the whole on |v| <= ln2/2 (9.2e-8 before rounding): kExpPoly. The
  // constants are its coefficients times (-k)^j, exact in float (powers of two and signs).
  constexpr float s = -static_cast<float>(k);
  float p = kExpPoly[4] * (s * s * s * s * s);
  p = p * u + kExpPoly[3] * (s * s * s * s);
  p = p * u + kExpPoly[2] * (s * s * s);
  p = p * u + kExpPoly[1] * (s * s);
  p = p * u + kExpPoly[0] * s;
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

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
// The float sigmoid and tanh above on 16 lanes, several at once (see the header comment),
// always inlined into the loop that calls them.
namespace v16 {

using vec = __m512;

[[gnu::always_inline]] inline vec set1(float x) { return _mm512_set1_ps(x); }

// x[s] replaced by sigmoid(x[s]), or by tanh(x[s]) where bit s of TanhBits is set: N
// independent nonlinearities computed stage by stage, each stage over all N before the next, so
// that their chains (some 50 cycles each) are in flight together. The operations of the scalar
// functions above as the compiler vectorises them, in the same order and roundings, so that the
// values are theirs bit for bit: e^(-k a) as exp_neg_k<k> (k = 2 for tanh), its p 2^n in one
// vscalefps (n is an integer: the same product as p times the float 2^n); then one division
// (the divider is a unit of its own; vrcp14ps and a Newton step would load the FMA pipes that
// bound this code: bench/RESULTS.md).
template <int N, unsigned TanhBits>
[[gnu::always_inline]] inline void activate(vec (&x)[N]) {
  constexpr auto is_tanh = [](int s) { return ((TanhBits >> s) & 1u) != 0; };
  // exp_neg_k's constants for k = 1 (sigmoid) or 2 (tanh)
  constexpr auto k_of = [](int s) { return ((TanhBits >> s) & 1u) != 0 ? 2 : 1; };
  constexpr auto coef = [](int k, int j) {  // kExpPoly[j - 1] times (-k)^j, exact
    float c = j == 0 ? 1.0f : kExpPoly[j - 1];
    for (int i = 0; i < j; ++i) c *= -static_cast<float>(k);
    return c;
  };
  const vec one = set1(1.0f), shifter = set1(12582912.0f);
  vec a[N], n[N], u[N], p[N], e[N];
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) a[s] = _mm512_abs_ps(x[s]);
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s)
    n[s] = _mm512_fmadd_ps(a[s], set1(-1.44269504088896341f * k_of(s)), shifter);
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) n[s] = _mm512_sub_ps(n[s], shifter);
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s)
    u[s] = _mm512_fmadd_ps(n[s], set1(0.693147180559945309f / k_of(s)), a[s]);
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s)
    p[s] = _mm512_fmadd_ps(set1(coef(k_of(s), 5)), u[s], set1(coef(k_of(s), 4)));
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) p[s] = _mm512_fmadd_ps(p[s], u[s], set1(coef(k_of(s), 3)));
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) p[s] = _mm512_fmadd_ps(p[s], u[s], set1(coef(k_of(s), 2)));
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) p[s] = _mm512_fmadd_ps(p[s], u[s], set1(coef(k_of(s), 1)));
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) p[s] = _mm512_fmadd_ps(p[s], u[s], one);
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) {  // 0 past k a = 87 (NaN compares unordered: kept)
    const __mmask16 below =
        _mm512_cmp_ps_mask(a[s], set1(87.0f / static_cast<float>(k_of(s))), _CMP_NGT_UQ);
    e[s] = _mm512_maskz_scalef_ps(below, p[s], n[s]);
  }
  vec t[N];
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s)  // tanh |x| = (1 - e) / (1 + e); sigmoid's 1 / (1 + e)
    t[s] = _mm512_div_ps(is_tanh(s) ? _mm512_sub_ps(one, e[s]) : one, _mm512_add_ps(one, e[s]));
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
#pragma GCC unroll 16
  for (int s = 0; s < N; ++s) {
    if (is_tanh(s)) {  // the sign bit from x, the rest from t (0xD8: C ? B : A)
      x[s] = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(t[s]),
                                                           _mm512_castps_si512(x[s]), sign, 0xD8));
    } else {  // sigmoid: (x >= 0 ? 1 : e) / (1 + e)
      const __mmask16 nonneg = _mm512_cmp_ps_mask(x[s], _mm512_setzero_ps(), _CMP_GE_OQ);
      x[s] = _mm512_mul_ps(_mm512_mask_mov_ps(e[s], nonneg, one), t[s]);
    }
  }
}

}  // namespace v16
#endif

}  // namespace act
}  // namespace
}  // namespace rnnfast
