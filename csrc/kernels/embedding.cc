// Embedding gradient (rnnfast/embedding.h): a scatter-add of dy's rows (after a dropout, each
// row dropped as it is added), the rows of grad split between the threads by ranges of ids.
// With zero, each thread first clears the rows it then adds to.
#include "rnnfast/embedding.h"

#include <algorithm>
#include <vector>

#include "rnnfast/dropout.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Below this many added values one thread does it all (a hand-off costs more).
constexpr index_t kSerialBelow = 1 << 15;

// grad[ids[i]] += the row of token i (row(i, buffer): a pointer to its dim values, buffer
// room for dim + 2 of them), in token order, skipping skip; with zero, grad cleared first.
// Threads split the rows of grad into ranges of ids holding about as many tokens each (two
// threads write at most the one cache line where their ranges meet).
template <typename T, typename Row>
void add_by_ranges(index_t n, index_t dim, index_t rows, const std::int64_t* ids,
                   std::int64_t skip, bool zero, T* grad, Row&& row) {
  const index_t want = (n + (zero ? rows : 0)) * dim < kSerialBelow
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
  auto run = [&](index_t k0, index_t k1) {
    std::vector<T> buffer(static_cast<std::size_t>(dim + 2));
    const std::int64_t lo = bounds[k0], hi = bounds[k1];
    if (zero) std::fill(grad + lo * dim, grad + hi * dim, T(0));  // this range's rows
    for (index_t i = 0; i < n; ++i) {
      const std::int64_t id = ids[i];
      if (id < lo || id >= hi || id == skip) continue;
      const T* __restrict d = row(i, buffer.data());
      T* __restrict g = grad + id * dim;
      for (index_t c = 0; c < dim; ++c) g[c] += d[c];
    }
  };
  if (ranges >= 2)
    parallel_for(ranges, 1, run);
  else
    run(0, ranges);
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
  add_by_ranges(n, dim, rows, ids, skip, zero, grad,
                [&](index_t i, T*) { return dy + i * dim; });
}

template <typename T>
void embedding_backward_dropped(index_t n, index_t dim, index_t rows, const std::int64_t* ids,
                                const T* dy, std::int64_t skip, double p, std::uint64_t seed,
                                bool zero, T* grad) {
  if (dim <= 0) return;
  if (n <= 0) {
    if (zero) std::fill(grad, grad + rows * dim, T(0));
    return;
  }
  const index_t total = n * dim;
  const DropoutParts<T> drop = dropout_parts<T>(p);
  add_by_ranges(n, dim, rows, ids, skip, zero, grad, [&](index_t i, T* buffer) {
    // the row from its first pair on: dropped as element i * dim + c of the whole (n, dim)
    const index_t e = i * dim, j0 = e / 2, j1 = (e + dim + 1) / 2;
    drop.apply(total, dy + 2 * j0, seed, j0, j1, buffer);
    return static_cast<const T*>(buffer + (e - 2 * j0));
  });
}

template void embedding_backward<float>(index_t, index_t, index_t, const std::int64_t*,
                                        const float*, std::int64_t, bool, float*);
template void embedding_backward<double>(index_t, index_t, index_t, const std::int64_t*,
                                         const double*, std::int64_t, bool, double*);

template void embedding_backward_dropped<float>(index_t, index_t, index_t, const std::int64_t*,
                                                const float*, std::int64_t, double, std::uint64_t,
                                                bool, float*);
template void embedding_backward_dropped<double>(index_t, index_t, index_t, const std::int64_t*,
                                                 const double*, std::int64_t, double,
                                                 std::uint64_t, bool, double*);

}  // namespace rnnfast
