// The dropout pairs (dropout_kernels.h) with AVX-512: eight SplitMix64 outputs per vector
// (AVX512DQ's 64-bit multiply), read as sixteen 32-bit draws in element order (the low half of
// output j is element 2j: little-endian), compared with the threshold into a mask register. The
// same bits as counter_rng.h's splitmix64 (which this unit must not include: see there); the
// tests compare every instruction set with the reference bit for bit.
#include <immintrin.h>

#include <algorithm>

#include "dropout_kernels.h"

namespace rnnfast {
namespace dropout_kernels {

namespace {

constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// z >> n per lane (the zero-masked form: GCC 12's plain one reads an undefined vector, and warns).
inline __m512i shift_right(__m512i z, unsigned n) { return _mm512_maskz_srli_epi64(0xFF, z, n); }

// SplitMix64's finaliser on eight states.
inline __m512i mix(__m512i z) {
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, shift_right(z, 30)),
                         _mm512_set1_epi64(static_cast<long long>(0xBF58476D1CE4E5B9ull)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, shift_right(z, 27)),
                         _mm512_set1_epi64(static_cast<long long>(0x94D049BB133111EBull)));
  return _mm512_xor_si512(z, shift_right(z, 31));
}

// Sixteen elements' keep mask per step of eight pairs; body(e0, count, keep) applies it to the
// elements [2 j0 + e0, 2 j0 + e0 + count) (count < 16 only at the end of n): e0 counts from the
// first pair's first element, where x and y point.
template <typename Body>
void over_pairs(index_t n, std::uint32_t threshold, std::uint64_t seed, index_t j0, index_t j1,
                Body&& body) {
  // state of pair j: seed + (j + 1) * gamma (mod 2^64), eight consecutive pairs per vector
  __m512i state = _mm512_add_epi64(
      _mm512_set1_epi64(static_cast<long long>(seed + static_cast<std::uint64_t>(j0 + 1) * kGamma)),
      _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi64(static_cast<long long>(kGamma))));
  const __m512i step = _mm512_set1_epi64(static_cast<long long>(8 * kGamma));
  const __m512i thr = _mm512_set1_epi32(static_cast<int>(threshold));
  for (index_t j = j0; j < j1; j += 8) {
    const __m512i bits = mix(state);
    state = _mm512_add_epi64(state, step);
    const __mmask16 keep = _mm512_cmpge_epu32_mask(bits, thr);
    const index_t e0 = 2 * j;
    const index_t count = std::min<index_t>(16, std::min(n, 2 * j1) - e0);
    body(e0 - 2 * j0, count, keep);
  }
}

inline __mmask16 first16(index_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << count) - 1u);
}

inline __mmask8 first8(index_t count) {
  if (count <= 0) return __mmask8(0);
  return count >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << count) - 1u);
}

// x times scale where kept and times zero where dropped (a dropped NaN or infinity is NaN, as in
// the generic loop).
void apply_pairs_f32(index_t n, const float* x, std::uint32_t threshold, float scale,
                     std::uint64_t seed, index_t j0, index_t j1, float* y) {
  const __m512 s = _mm512_set1_ps(scale);
  over_pairs(n, threshold, seed, j0, j1, [&](index_t e0, index_t count, __mmask16 keep) {
    const __m512 factor = _mm512_maskz_mov_ps(keep, s);
    if (count == 16) {
      _mm512_storeu_ps(y + e0, _mm512_mul_ps(_mm512_loadu_ps(x + e0), factor));
    } else {
      const __mmask16 m = first16(count);
      _mm512_mask_storeu_ps(y + e0, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + e0), factor));
    }
  });
}

void apply_pairs_f64(index_t n, const double* x, std::uint32_t threshold, double scale,
                     std::uint64_t seed, index_t j0, index_t j1, double* y) {
  const __m512d s = _mm512_set1_pd(scale);
  over_pairs(n, threshold, seed, j0, j1, [&](index_t e0, index_t count, __mmask16 keep) {
    const __m512d lo = _mm512_maskz_mov_pd(static_cast<__mmask8>(keep), s);
    const __m512d hi = _mm512_maskz_mov_pd(static_cast<__mmask8>(keep >> 8), s);
    if (count == 16) {
      _mm512_storeu_pd(y + e0, _mm512_mul_pd(_mm512_loadu_pd(x + e0), lo));
      _mm512_storeu_pd(y + e0 + 8, _mm512_mul_pd(_mm512_loadu_pd(x + e0 + 8), hi));
    } else {
      const __mmask8 m0 = first8(count), m1 = first8(count - 8);
      _mm512_mask_storeu_pd(y + e0, m0, _mm512_mul_pd(_mm512_maskz_loadu_pd(m0, x + e0), lo));
      _mm512_mask_storeu_pd(y + e0 + 8, m1,
                            _mm512_mul_pd(_mm512_maskz_loadu_pd(m1, x + e0 + 8), hi));
    }
  });
}

}  // namespace

const DropoutPairs<float> kDropoutAvx512F32 = {&apply_pairs_f32};
const DropoutPairs<double> kDropoutAvx512F64 = {&apply_pairs_f64};

}  // namespace dropout_kernels
}  // namespace rnnfast
