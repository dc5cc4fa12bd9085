// The gradient of an embedding lookup (y[i] = weight[ids[i]]), float and double:
//   grad[ids[i], :] += dy[i, :]   for every i in [0, n) in order, skipping ids[i] == skip
// (skip < 0: none; PyTorch's padding_idx row gets no gradient).
//
// Threads split the columns, never the tokens: every element of grad receives its terms in
// token order whatever the thread count, so the result is bitwise that of a serial loop (and of
// NumPy's np.add.at(grad, ids, dy)). ids must be in [0, rows of grad) (the binding checks).
#pragma once
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {

// grad has rows rows; zero: its contents are ignored and taken as zeros (each thread clears
// the part it adds to first: the scatter-add into a new gradient without a separate pass).
template <typename T>
void embedding_backward(index_t n, index_t dim, index_t rows, const std::int64_t* ids,
                        const T* dy, std::int64_t skip, bool zero, T* grad);

// The gradient of the lookup when a dropout of rate p (0 < p < 1) and seed followed it
// (rnnfast/dropout.h): grad[ids[i], :] += dropout(dy)[i, :], dy dropped as the whole (n, dim)
// array (element i * dim + c with mask bit i * dim + c), in token order, skipping ids[i] ==
// skip: bitwise dropout_apply on dy followed by embedding_backward, without the dropped copy.
// Threads split the rows of grad (rows of them: ids in [0, rows)) into ranges of ids holding
// about as many tokens each; each range drops and adds its tokens' rows in token order (with
// zero, after clearing its rows). keep non-null: the mask's bits as dropout_gather stored them
// ((n * dim + 7) / 8 bytes), read instead of drawn from seed (the same values when they are
// that seed's).
template <typename T>
void embedding_backward_dropped(index_t n, index_t dim, index_t rows, const std::int64_t* ids,
                                const T* dy, std::int64_t skip, double p, std::uint64_t seed,
                                bool zero, T* grad, const std::uint8_t* keep = nullptr);

}  // namespace rnnfast
