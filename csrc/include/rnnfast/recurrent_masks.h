// The zoneout and recurrent dropout masks of a training forward (docs/DESIGN.md "Zoneout",
// "Recurrent dropout"), drawn with the counter-based generator of rnnfast/counter_rng.h from one
// 64-bit seed:
//
//   mask k (0: zoneout_h, 1: zoneout_c, 2: recurrent) has its own seed s_k = splitmix64(seed, k)
//   (output k of the sequence started at seed, whether or not the other masks are drawn);
//   element i (C order) of mask k draws u = 32 bits of splitmix64(s_k, i / 2), the low half for
//   even i, the high half for odd i (as Dropout draws its mask from s_k);
//   zoneout_h, zoneout_c:  1 where u <  ceil(zoneout * 2^32), else 0 (1: the unit keeps its
//                          previous value, probability zoneout);
//   recurrent:             1 / (1 - p) where u >= ceil(p * 2^32), else 0, p = recurrent_dropout
//                          (1 / (1 - p) computed in double, then rounded to T).
//
// Every element is a function of (seed, k, i) only: the masks are the same at any thread count.
// rnnfast.reference.recurrent_masks computes the same masks in NumPy.
#pragma once
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {

// Fills the masks: zoneout_h (n_h values), zoneout_c (n_c), recurrent (n_r), each C-contiguous
// in T (float or double); a mask with n = 0 is not drawn (its pointer may be null). Requires
// 0 <= zoneout < 1 and 0 <= recurrent_dropout < 1. The elements of all three masks are split
// between the threads of the pool (threads.h).
template <typename T>
void recurrent_masks(std::uint64_t seed, double zoneout, double recurrent_dropout, index_t n_h,
                     T* zoneout_h, index_t n_c, T* zoneout_c, index_t n_r, T* recurrent);

}  // namespace rnnfast
