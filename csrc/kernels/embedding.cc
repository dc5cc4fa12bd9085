// Embedding gradient (rnnfast/embedding.h): a scatter-add of dy's rows, columns split between
// the threads.
#include "rnnfast/embedding.h"

#include <algorithm>

#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Columns per block: a 64-byte cache line of float32 (so two threads never write one line).
constexpr index_t kColumnBlock = 16;
// Below this many added values one thread does it all (a hand-off costs more).
constexpr index_t kSerialBelow = 1 << 15;

template <typename T>
void add_columns(index_t n, index_t dim, const std::int64_t* ids, const T* dy, std::int64_t skip,
                 T* grad, index_t c0, index_t c1) {
  const index_t w = c1 - c0;
  for (index_t i = 0; i < n; ++i) {
    const std::int64_t id = ids[i];
    if (id == skip) continue;
    T* __restrict g = grad + id * dim + c0;
    const T* __restrict d = dy + i * dim + c0;
    for (index_t c = 0; c < w; ++c) g[c] += d[c];
  }
}

}  // namespace

template <typename T>
void embedding_backward(index_t n, index_t dim, const std::int64_t* ids, const T* dy,
                        std::int64_t skip, T* grad) {
  if (n <= 0 || dim <= 0) return;
  const index_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  if (n * dim < kSerialBelow || blocks == 1) {
    add_columns(n, dim, ids, dy, skip, grad, 0, dim);
    return;
  }
  parallel_for(blocks, 1, [&](index_t b0, index_t b1) {
    add_columns(n, dim, ids, dy, skip, grad, b0 * kColumnBlock,
                std::min(dim, b1 * kColumnBlock));
  });
}

template void embedding_backward<float>(index_t, index_t, const std::int64_t*, const float*,
                                        std::int64_t, float*);
template void embedding_backward<double>(index_t, index_t, const std::int64_t*, const double*,
                                         std::int64_t, double*);

}  // namespace rnnfast
