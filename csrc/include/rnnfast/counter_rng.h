// The counter-based generator of rnnfast's random masks (dropout, rnnfast/dropout.h; zoneout and
// recurrent dropout, rnnfast/recurrent_masks.h): a random number is a pure function of a 64-bit
// seed and its index, so a mask is the same whichever thread draws which part of it.
//
//   output j (from 0) of the sequence started at seed: mix(seed + (j + 1) * 0x9E3779B97F4A7C15)
//
// with mix SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
// generators", 2014). Element i of a mask takes 32 bits of output i / 2: the low half for even i,
// the high half for odd i. A 32-bit draw u falls below ceil(p * 2^32) with probability p (to
// 2^-32), the rule every mask states its rate by.
//
// Baseline code only: the instruction-set units (*_avx2.cc, *_avx512.cc) must not include this
// header (an inline function compiled with AVX flags could replace the baseline copy at link).
#pragma once
#include <cmath>
#include <cstdint>

namespace rnnfast {

// SplitMix64's output number j (from 0) of the sequence started at seed.
inline std::uint64_t splitmix64(std::uint64_t seed, std::uint64_t j) {
  constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  std::uint64_t z = seed + (j + 1) * kGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The 32-bit threshold of rate p in [0, 1): ceil(p * 2^32) (exact in double), at most 2^32 - 1.
inline std::uint32_t counter_threshold(double p) {
  const double t = std::ceil(p * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(t);
}

}  // namespace rnnfast
