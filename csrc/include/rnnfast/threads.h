// The package's own thread pool. One pool per process, never nested.
//
// The pool keeps get_num_threads() - 1 persistent workers; the calling thread is the last
// participant. Idle workers spin for a short while before they sleep, so back-to-back calls
// (the recurrent kernels make one or two per time step) wake them in well under a microsecond.
// After fork() the child starts with a fresh pool (created on first use); at process exit an
// idle pool is stopped and joined, and later calls run serially.
#pragma once
#include <functional>

#include "rnnfast/common.h"

namespace rnnfast {

// Number of threads the kernels use (>= 1). Default: the cores this process may use.
int get_num_threads();
// Sets the number of threads (n >= 1; throws std::invalid_argument otherwise). The pool is
// resized at its next use; a call running now keeps its threads.
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel on the pool, and
// returns when all chunks are done. The split is static: chunk c of nc covers
// [c*n/nc, (c+1)*n/nc), nc = min(threads, ceil(n / grain)). A call made from inside a
// parallel region, or while another caller thread owns the pool, runs serially in the caller.
// Exceptions thrown by fn are rethrown in the caller (the first one).
void parallel_for(index_t n, index_t grain, const std::function<void(index_t, index_t)>& fn);

// True inside fn of a parallel_for that runs on the pool (on a worker, or on the caller while
// it runs its own chunk); nested parallel_for calls there run serially.
bool in_parallel_region();

}  // namespace rnnfast
