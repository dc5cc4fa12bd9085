// Where the kernels' parallel regions run. One executor per process, never nested.
//
// Two executors, one at a time for the whole process:
//  - rnnfast's own pool (the default): get_num_threads() - 1 persistent workers, the calling
//    thread being the last participant. Idle workers spin for a short while before they sleep,
//    so back-to-back calls (the recurrent kernels make one or two per time step) wake them in
//    well under a microsecond.
//  - the threads of an OpenMP runtime already loaded in the process (GNU libgomp, as PyTorch
//    brings it): a region is one GOMP_parallel call, resolved at run time from the loaded
//    library (no link-time dependency on OpenMP). Inside a program whose own OpenMP threads
//    spin after each of its operations, those threads then run our chunks instead of taking the
//    cores from ours.
// Either way chunk c normally runs on the same thread from call to call (thread c % threads,
// chunk 0 on the caller), but once a thread is done with its own chunks it also runs every chunk
// no other thread has started yet, and a runtime may give fewer threads than asked: fn must not
// depend on which thread runs a chunk. A call may ask for more chunks than threads
// (parallel_for's per_thread): a thread that starts late (a worker waking from sleep, or off its
// core on a busy machine) then leaves only some of its chunks to the others, instead of all or
// none. After fork() the child runs on a fresh own pool (the parent's threads do not exist
// there); at process exit an idle pool is stopped and joined, and later calls run serially.
#pragma once
#include <chrono>
#include <functional>  // call sites may pass a std::function
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "rnnfast/common.h"

namespace rnnfast {

// Number of threads the kernels use (>= 1). Default: the cores this process may use.
int get_num_threads();
// Sets the number of threads (n >= 1; throws std::invalid_argument otherwise). The pool is
// resized at its next use; a call running now keeps its threads.
void set_num_threads(int n);

namespace detail {
using ChunkFn = void (*)(void* ctx, index_t begin, index_t end);
// Most chunks per thread a call may ask for (parallel_for's per_thread is clamped to it).
constexpr int kMaxChunksPerThread = 8;
// Chunks of a parallel_for over [0, n) in grain-sized pieces: min(threads * per_thread,
// ceil(n / grain)), or 1 when the call must run serially (one thread, inside a region, at exit).
int chunk_count(index_t n, index_t grain, int per_thread = 1);
// Runs fn(ctx, begin, end) over the nc >= 2 chunks of [0, n) on the executor, or serially when
// another thread owns it; rethrows the first exception of a chunk.
void run_chunks(index_t n, int nc, ChunkFn fn, void* ctx);
template <class F>
void call_chunk(void* ctx, index_t begin, index_t end) {
  (*static_cast<F*>(ctx))(begin, end);
}

// How the other threads of a parallel region started now would join it.
//  - kReady: they are spinning for work (the own pool's workers spin for a while after each
//    region), or run on the OpenMP runtime, whose state is its own;
//  - kAsleep: the own pool's workers sleep: a region wakes them, a system call that costs the
//    caller 8-14 us on the AMD KVM guest, and they join 20-40 us later (bench/RESULTS.md,
//    session 13), but another call asked within the last kSpin (a run of calls: waking them
//    pays for the calls after this one);
//  - kAsleepAlone: they sleep and no call asked within the last kSpin.
// Each call counts as the last ask. A kernel may decide from it how to split its work (not
// what it computes: the values must not depend on it).
enum class Readiness { kReady, kAsleep, kAsleepAlone };
Readiness readiness();

// A pause for a thread that waits on memory another core writes.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// After this long a waiting thread yields its core between checks, so a waiter costs little when
// the machine has more threads than cores (and the thread it waits for gets a core back).
constexpr auto kPauseSpin = std::chrono::microseconds(4);

// Busy-waits until pred() holds (no sleep, no time limit): for a hand-off inside a region whose
// other side is already running and will make pred() true (never for work no thread has started:
// a chunk may run late, or after the caller's, see parallel_for).
template <class Pred>
void wait_until(Pred pred) {
  for (int i = 0; i < 64; ++i) {
    if (pred()) return;
    cpu_relax();
  }
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (pred()) return;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() - start > kPauseSpin) std::this_thread::yield();
  }
}
}  // namespace detail

// Calls fn(begin, end) on disjoint chunks covering [0, n), in parallel on the executor, and
// returns when all chunks are done. The split is static: chunk c of nc covers
// [c*n/nc, (c+1)*n/nc), nc = min(threads * per_thread, ceil(n / grain)), per_thread clamped to
// 1..kMaxChunksPerThread; thread t runs chunks t, t + threads, ... unless it is late (see the
// top of this file). A call made from inside a parallel region, or while another caller thread
// owns the executor, runs serially in the caller (fn(0, n) called directly). Exceptions thrown
// by fn are rethrown in the caller (the first one). fn is called through a plain function
// pointer: no std::function, no allocation.
template <class F>
void parallel_for(index_t n, index_t grain, F&& fn, int per_thread = 1) {
  if (n <= 0) return;
  const int nc = detail::chunk_count(n, grain, per_thread);
  if (nc <= 1) {
    fn(index_t{0}, n);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  detail::run_chunks(n, nc, &detail::call_chunk<Fn>,
                     const_cast<void*>(static_cast<const volatile void*>(std::addressof(fn))));
}

// True inside fn of a parallel_for that runs on the executor (on any of its threads, or on the
// caller while it runs chunks); nested parallel_for calls there run serially.
bool in_parallel_region();

// The executor. kOpenMP runs regions on the threads of openmp_runtime().
enum class Executor { kOwnPool, kOpenMP };
Executor active_executor();
// Path of the OpenMP runtime whose threads run the regions ("" on the own pool).
std::string openmp_runtime();
// Paths of the OpenMP runtimes this process has loaded that can run the regions (GNU libgomp:
// GOMP_parallel, omp_get_thread_num, omp_get_num_threads), in load order. Empty where the
// platform cannot list loaded libraries, and in a child made by fork() (see use_openmp).
std::vector<std::string> loaded_openmp_runtimes();
// Runs every later region on the threads of the loaded OpenMP runtime at `library` (one of
// loaded_openmp_runtimes()). Throws std::runtime_error, naming the reason, when it is not
// loaded, lacks the entry points, or this process is a child made by fork() (the runtime's
// threads belong to the parent, and GNU libgomp hangs in such a child). A region running now
// finishes where it started.
void use_openmp(const std::string& library);
// Runs every later region on the own pool (the default).
void use_own_pool();

}  // namespace rnnfast
