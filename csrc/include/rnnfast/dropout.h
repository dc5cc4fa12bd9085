// Inverted dropout with a counter-based mask, float and double:
//   y[i] = x[i] * (keep(i) ? 1 / (1 - p) : 0),   keep(i) = bits(seed, i) >= threshold
// where threshold = ceil(p * 2^32) (at most 2^32 - 1) and bits(seed, i) is 32 bits of the
// SplitMix64 sequence started at seed: output j = mix(seed + (j + 1) * 0x9E3779B97F4A7C15)
// (Steele, Lea and Flood's finaliser) gives element 2j its low and element 2j + 1 its high
// 32 bits. A mask is a function of (seed, i) only: the same for any thread count, and the
// backward recomputes it instead of keeping it (dx = the same operation on dy); the fused
// embedding lookup may store it as bits for its backward instead (dropout_gather). The scale is
// T(1) / T(1 - p) (1 - p in double, then rounded to T) and multiplied, so a dropped NaN or infinity stays NaN.
// Requires 0 <= p < 1 (p = 1, every element dropped, is the caller's zeros).
#pragma once
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {

// The 32-bit drop threshold of rate p in [0, 1): ceil(p * 2^32), at most 2^32 - 1.
std::uint32_t dropout_threshold(double p);

// y (n values, may be x itself) from x as above. Elements are split between the threads.
template <typename T>
void dropout_apply(index_t n, const T* x, double p, std::uint64_t seed, T* y);

// Parts of one dropout, dropped one at a time on the calling thread (e.g. row by row): the
// rate's threshold and scale and the active instruction set's kernels, found once.
// apply(n, x, seed, j0, j1, y) gives the values of elements [2 j0, min(n, 2 j1)) (pairs j0..j1)
// of dropout_apply(n, x, p, seed, .), x and y pointing at element 2 j0 (y may be x).
// add_kept(count, x, keep, bit, g): g[c] += x[c] * (kept ? scale : 0) for c < count, kept
// the keep bit bit + c of a mask stored by dropout_gather (bit b: bit b % 8 of keep[b / 8]);
// the product rounded, then added: bitwise apply's values added.
template <typename T>
struct DropoutParts {
  std::uint32_t threshold;
  T scale;
  void (*pairs)(index_t n, const T* x, std::uint32_t threshold, T scale, std::uint64_t seed,
                index_t j0, index_t j1, T* y, std::uint8_t* keep);
  void (*kept)(index_t count, const T* x, const std::uint8_t* keep, index_t bit, T scale, T* g);

  void apply(index_t n, const T* x, std::uint64_t seed, index_t j0, index_t j1, T* y) const {
    pairs(n, x, threshold, scale, seed, j0, j1, y, nullptr);
  }
  void add_kept(index_t count, const T* x, const std::uint8_t* keep, index_t bit, T* g) const {
    kept(count, x, keep, bit, scale, g);
  }
};

template <typename T>
DropoutParts<T> dropout_parts(double p);

// The same on the rows of a lookup (an embedding and the dropout after it, in one pass): y
// [rows, dim] holds table[ids[r], :] at row r, then dropped as dropout_apply(rows * dim, y, p,
// seed, y) would drop it (element r * dim + c has mask bit r * dim + c); p = 0: the rows only,
// copied. ids must be row indices of table (the binding checks). Elements are split between the
// threads, each part gathered and dropped while it is in cache. keep non-null (p > 0): the mask
// stored as well, (rows * dim + 7) / 8 bytes, element e kept when bit e % 8 of keep[e / 8] is
// set (NumPy's packbits(kept, bitorder="little"); the bits past the last element zero), for
// a backward that reads it instead of drawing it again (embedding_backward_dropped).
template <typename T>
void dropout_gather(index_t rows, index_t dim, const std::int64_t* ids, const T* table, double p,
                    std::uint64_t seed, T* y, std::uint8_t* keep = nullptr);

}  // namespace rnnfast
