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

// y[e - 2 j0] = x[e - 2 j0] * (bits(seed, e) >= threshold ? scale : 0) for the elements e of
// pairs [j0, j1) below n: x and y point at element 2 j0 (y may be x).
template <typename T>
struct DropoutPairs {
  void (*apply)(index_t n, const T* x, std::uint32_t threshold, T scale, std::uint64_t seed,
                index_t j0, index_t j1, T* y);
};

#ifdef RNNFAST_HAVE_X86_KERNELS
extern const DropoutPairs<float> kDropoutAvx512F32;
extern const DropoutPairs<double> kDropoutAvx512F64;
#endif

}  // namespace dropout_kernels
}  // namespace rnnfast
