// The dropout pairs (dropout_kernels.h) with AVX-512: eight SplitMix64 outputs per vector
// (AVX512DQ's 64-bit multiply), read as sixteen 32-bit draws in element order (the low half of
// output j is element 2j: little-endian), compared with the threshold into a mask register. The
// same bits as counter_rng.h's splitmix64 (which this unit must not include: see there); the
// tests compare every instruction set with the reference bit for bit.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "dropout_kernels.h"

// add_kept's product and sum are two roundings, as the generic loop's: no multiply-add (GCC
// contracts the intrinsics' a * b + c by default, and this unit is built with -mfma).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

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

// Stores the keep bits of sixteen elements from element e0 (a multiple of 16) of keep's bytes,
// count of them (the bits above count zero, the bytes past them untouched).
inline void store_keep(std::uint8_t* keep, index_t e0, index_t count, __mmask16 kept) {
  const std::uint16_t bits = static_cast<std::uint16_t>(kept & first16(count));
  std::uint8_t* to = keep + e0 / 8;
  to[0] = static_cast<std::uint8_t>(bits);
  if (count > 8) to[1] = static_cast<std::uint8_t>(bits >> 8);
}

// The keep bits [bit, bit + len) (len <= 16) of keep as a mask, reading no byte past bit +
// limit - 1 (limit >= len).
inline __mmask16 load_keep(const std::uint8_t* keep, index_t bit, index_t len, index_t limit) {
  const std::uint8_t* from = keep + (bit >> 3);
  const unsigned shift = static_cast<unsigned>(bit & 7);
  std::uint32_t word;
  if (shift + limit >= 25) {  // the four bytes from bit / 8 hold no bit past the limit
    std::memcpy(&word, from, 4);
  } else {
    word = 0;
    const index_t bytes = (shift + len + 7) >> 3;
    for (index_t k = 0; k < bytes; ++k) word |= static_cast<std::uint32_t>(from[k]) << (8 * k);
  }
  return static_cast<__mmask16>((word >> shift) & ((len >= 16 ? 0x10000u : 1u << len) - 1u));
}

// x times scale where kept and times zero where dropped (a dropped NaN or infinity is NaN, as in
// the generic loop).
void apply_pairs_f32(index_t n, const float* x, std::uint32_t threshold, float scale,
                     std::uint64_t seed, index_t j0, index_t j1, float* y, std::uint8_t* bits) {
  const __m512 s = _mm512_set1_ps(scale);
  over_pairs(n, threshold, seed, j0, j1, [&](index_t e0, index_t count, __mmask16 keep) {
    if (bits) store_keep(bits, e0, count, keep);
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
                     std::uint64_t seed, index_t j0, index_t j1, double* y, std::uint8_t* bits) {
  const __m512d s = _mm512_set1_pd(scale);
  over_pairs(n, threshold, seed, j0, j1, [&](index_t e0, index_t count, __mmask16 keep) {
    if (bits) store_keep(bits, e0, count, keep);
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

// g += x * (kept ? scale : 0), sixteen elements per step (the last step masked).
void add_kept_f32(index_t count, const float* x, const std::uint8_t* keep, index_t bit,
                  float scale, float* g) {
  const __m512 s = _mm512_set1_ps(scale);
  for (index_t c = 0; c < count; c += 16) {
    const index_t len = std::min<index_t>(16, count - c);
    const __m512 factor = _mm512_maskz_mov_ps(load_keep(keep, bit + c, len, count - c), s);
    const __mmask16 m = first16(len);
    const __m512 product = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), factor);
    _mm512_mask_storeu_ps(g + c, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, g + c), product));
  }
}

void add_kept_f64(index_t count, const double* x, const std::uint8_t* keep, index_t bit,
                  double scale, double* g) {
  const __m512d s = _mm512_set1_pd(scale);
  for (index_t c = 0; c < count; c += 16) {
    const index_t len = std::min<index_t>(16, count - c);
    const __mmask16 kept = load_keep(keep, bit + c, len, count - c);
    for (index_t h = 0; h < 2; ++h) {
      const __mmask8 m = first8(len - 8 * h);
      if (!m) break;
      const __m512d factor = _mm512_maskz_mov_pd(static_cast<__mmask8>(kept >> (8 * h)), s);
      const __m512d product = _mm512_mul_pd(_mm512_maskz_loadu_pd(m, x + c + 8 * h), factor);
      _mm512_mask_storeu_pd(g + c + 8 * h, m,
                            _mm512_add_pd(_mm512_maskz_loadu_pd(m, g + c + 8 * h), product));
    }
  }
}

}  // namespace

const DropoutPairs<float> kDropoutAvx512F32 = {&apply_pairs_f32, &add_kept_f32};
const DropoutPairs<double> kDropoutAvx512F64 = {&apply_pairs_f64, &add_kept_f64};

}  // namespace dropout_kernels
}  // namespace rnnfast
