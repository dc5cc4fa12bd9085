// Embedding gradient (rnnfast/embedding.h): a scatter-add of dy's rows, columns split between
// the threads; after a dropout, rows of grad split between them. With zero, each thread first
// clears the part of grad it then adds to (its columns, or its rows).
#include "rnnfast/embedding.h"

#include <algorithm>
#include <vector>

#include "rnnfast/dropout.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Columns per block: a 64-byte cache line of float32 (so two threads never write one line).
constexpr index_t kColumnBlock = 16;
// Below this many added values one thread does it all (a hand-off costs more).
constexpr index_t kSerialBelow = 1 << 15;

template <typename T>
void add_columns(index_t n, index_t dim, index_t rows, const std::int64_t* ids, const T* dy,
                 std::int64_t skip, bool zero, T* grad, index_t c0, index_t c1) {
  const index_t w = c1 - c0;
  if (zero) {
    if (w == dim)
      std::fill(grad, grad + rows * dim, T(0));
    else
      for (index_t r = 0; r < rows; ++r) std::fill(grad + r * dim + c0, grad + r * dim + c1, T(0));
  }
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
void embedding_backward(index_t n, index_t dim, index_t rows, const std::int64_t* ids,
                        const T* dy, std::int64_t skip, bool zero, T* grad) {
  if (dim <= 0) return;
  if (n <= 0) {
    if (zero) std::fill(grad, grad + rows * dim, T(0));
    return;
  }
  const index_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  if ((n + (zero ? rows : 0)) * dim < kSerialBelow || blocks == 1) {
    add_columns(n, dim, rows, ids, dy, skip, zero, grad, 0, dim);
    return;
  }
  parallel_for(blocks, 1, [&](index_t b0, index_t b1) {
    add_columns(n, dim, rows, ids, dy, skip, zero, grad, b0 * kColumnBlock,
                std::min(dim, b1 * kColumnBlock));
  });
}

template <typename T>
void embedding_backward_dropped(index_t n, index_t dim, index_t rows, const std::int64_t* ids,
                                const T* dy, std::int64_t skip, double p, std::uint64_t seed,
                                bool zero, T* grad, const std::uint8_t* keep) {
  if (dim <= 0) return;
  if (n <= 0) {
    if (zero) std::fill(grad, grad + rows * dim, T(0));
    return;
  }
  const index_t total = n * dim;
  const index_t want = total + (zero ? rows * dim : 0) < kSerialBelow
                           ? 1
                           : std::max<index_t>(1, get_num_threads());
  // bounds[k]..bounds[k + 1]: the ids of range k, cut where the tokens so far reach k / want of
  // them (a histogram of the ids; equal id ranges for a vocabulary much larger than the batch)
  std::vector<std::int64_t> bounds{0};
  if (want > 1 && rows <= 4 * n + 4096) {
    std::vector<index_t> count(static_cast<std::size_t>(rows), 0);
    for (index_t i = 0; i < n; ++i) ++count[ids[i]];
    index_t seen = 0;
    for (index_t id = 0; id < rows && static_cast<index_t>(bounds.size()) < want; ++id) {
      seen += count[id];
      if (seen * want >= static_cast<index_t>(bounds.size()) * n) bounds.push_back(id + 1);
    }
  } else {
    for (index_t k = 1; k < want; ++k) bounds.push_back(rows * k / want);
  }
  bounds.push_back(rows);
  const index_t ranges = static_cast<index_t>(bounds.size()) - 1;
  const DropoutParts<T> drop = dropout_parts<T>(p);
  auto run = [&](index_t k0, index_t k1) {
    std::vector<T> row(keep ? 0 : static_cast<std::size_t>(dim + 2));  // from its first pair on
    const std::int64_t lo = bounds[k0], hi = bounds[k1];
    if (zero) std::fill(grad + lo * dim, grad + hi * dim, T(0));  // this range's rows
    for (index_t i = 0; i < n; ++i) {
      const std::int64_t id = ids[i];
      if (id < lo || id >= hi || id == skip) continue;
      const index_t e = i * dim;
      if (keep) {  // the forward's mask bits
        drop.add_kept(dim, dy + e, keep, e, grad + id * dim);
        continue;
      }
      const index_t j0 = e / 2, j1 = (e + dim + 1) / 2;
      drop.apply(total, dy + 2 * j0, seed, j0, j1, row.data());
      const T* __restrict d = row.data() + (e - 2 * j0);
      T* __restrict g = grad + id * dim;
      for (index_t c = 0; c < dim; ++c) g[c] += d[c];
    }
  };
  if (ranges >= 2)
    parallel_for(ranges, 1, run);
  else
    run(0, ranges);
}

template void embedding_backward<float>(index_t, index_t, index_t, const std::int64_t*,
                                        const float*, std::int64_t, bool, float*);
template void embedding_backward<double>(index_t, index_t, index_t, const std::int64_t*,
                                         const double*, std::int64_t, bool, double*);

template void embedding_backward_dropped<float>(index_t, index_t, index_t, const std::int64_t*,
                                                const float*, std::int64_t, double, std::uint64_t,
                                                bool, float*, const std::uint8_t*);
template void embedding_backward_dropped<double>(index_t, index_t, index_t, const std::int64_t*,
                                                 const double*, std::int64_t, double,
                                                 std::uint64_t, bool, double*,
                                                 const std::uint8_t*);

}  // namespace rnnfast
