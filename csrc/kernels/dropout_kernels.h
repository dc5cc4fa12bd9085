// Inverted dropout over a range of element pairs: the contract between dropout.cc (the generic
// loop, the thread split) and the AVX-512 unit (dropout_avx512.cc), chosen by
// rnnfast::active_isa(). Pair j holds elements 2j (the low 32 bits of SplitMix64 output j) and
// 2j + 1 (the high 32 bits); see rnnfast/dropout.h.
//
// Included by the instruction-set translation units: declarations only.
#pragma once
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {
namespace dropout_kernels {

// apply: y[e - 2 j0] = x[e - 2 j0] * (bits(seed, e) >= threshold ? scale : 0) for the elements
// e of pairs [j0, j1) below n: x and y point at element 2 j0 (y may be x). keep non-null (then
// j0 is a multiple of 8): the same keep bits stored too, element e's as bit (e - 2 j0) % 8 of
// byte (e - 2 j0) / 8 from keep (which points at element 2 j0's byte); the bits of the last
// byte above n are zero.
// add_kept: g[c] += x[c] * (kept(bit + c) ? scale : 0) for c in [0, count), kept(b) bit b % 8 of
// keep[b / 8] as apply stores them, the product rounded before the sum (no fused multiply-add):
// reads only the bytes of bits [bit, bit + count).
template <typename T>
struct DropoutPairs {
  void (*apply)(index_t n, const T* x, std::uint32_t threshold, T scale, std::uint64_t seed,
                index_t j0, index_t j1, T* y, std::uint8_t* keep);
  void (*add_kept)(index_t count, const T* x, const std::uint8_t* keep, index_t bit, T scale,
                   T* g);
};

#ifdef RNNFAST_HAVE_X86_KERNELS
extern const DropoutPairs<float> kDropoutAvx512F32;
extern const DropoutPairs<double> kDropoutAvx512F64;
#endif

}  // namespace dropout_kernels
}  // namespace rnnfast
