// The thread pool: persistent workers woken by a generation ticket.
//
// A call publishes its job (fn, n) and then a new ticket (generation << 32 | chunk count).
// Chunk c > 0 belongs to worker c - 1, the caller runs chunk 0; then the caller also runs
// every chunk whose worker has not claimed it yet (a worker that sleeps, or is descheduled
// because the machine is busy, never delays a call), and waits for the chunks in progress.
// Claiming is a compare-and-swap of the chunk's slot from "open in generation g" to "taken", so
// a worker still holding an old ticket can never run a chunk of a newer job. The split itself
// is static; only which thread runs a chunk may vary (the kernels' results do not depend on it).
// Idle threads spin on the ticket for kSpin, then sleep on a condition variable; whoever
// changes the state wakes sleepers only if there are any, so the hot path makes no system call.
//
// Ownership: one caller thread at a time owns the pool (an atomic flag); any other caller, and
// any call from inside a region, runs serially. The pool object is never destroyed: after
// fork() the child forgets it (its threads do not exist there) and makes a new one; at exit
// the pool is stopped and joined if it is idle, and every later call runs serially.
#include "rnnfast/threads.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <signal.h>
#define RNNFAST_POSIX_THREADS 1
#endif
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace rnnfast {

namespace {

using Fn = std::function<void(index_t, index_t)>;
using Clock = std::chrono::steady_clock;

// How long an idle thread spins before it sleeps; after kPauseSpin it yields its core between
// checks, so a spinning thread costs little when the machine has more threads than cores.
constexpr auto kSpin = std::chrono::microseconds(60);
constexpr auto kPauseSpin = std::chrono::microseconds(4);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// Spins until pred() holds or kSpin has passed; returns pred()'s last value.
template <class Pred>
bool spin_until(Pred pred) {
  const auto start = Clock::now();
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    const auto spent = Clock::now() - start;
    if (spent > kSpin) return pred();
    if (spent > kPauseSpin) std::this_thread::yield();
  }
}

int default_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

// First index of chunk c of nc over [0, n): floor(c * n / nc) without overflow.
index_t chunk_begin(index_t n, index_t nc, index_t c) {
  const index_t q = n / nc, r = n % nc;
  return c * q + c * r / nc;
}

std::uint32_t generation(std::uint64_t ticket) { return static_cast<std::uint32_t>(ticket >> 32); }
int chunk_count(std::uint64_t ticket) { return static_cast<int>(ticket & 0xffffffffu); }

std::atomic<int> g_num_threads{0};  // 0: not set yet, use default_threads()
std::atomic<bool> g_shutdown{false};
thread_local bool t_in_region = false;

class Pool {
 public:
  bool try_acquire() {
    bool expected = false;
    return busy_.compare_exchange_strong(expected, true, std::memory_order_acquire);
  }
  void release() { busy_.store(false, std::memory_order_release); }

  // Owner only: makes the pool have exactly `count` workers.
  void resize(int count) {
    if (static_cast<int>(workers_.size()) == count) return;
    stop_workers();
    slots_ = std::vector<std::atomic<std::uint64_t>>(static_cast<std::size_t>(count) + 1);
    const std::uint32_t seen = generation(ticket_.load(std::memory_order_relaxed));
#ifdef RNNFAST_POSIX_THREADS
    // Workers never handle signals: they inherit a fully blocked mask.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
#endif
    try {
      for (int w = 0; w < count; ++w) workers_.emplace_back([this, w, seen] { worker_main(w, seen); });
    } catch (...) {
#ifdef RNNFAST_POSIX_THREADS
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
#endif
      stop_workers();
      throw;
    }
#ifdef RNNFAST_POSIX_THREADS
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
#endif
  }

  // Owner only: runs chunks 0..nc-1 of [0, n) (chunk 0 in the caller), rethrows the first error.
  void run(index_t n, int nc, const Fn& fn) {
    fn_ = &fn;
    n_ = n;
    error_ = nullptr;
    const std::uint32_t gen = next_generation();
    for (int c = 1; c < nc; ++c) slots_[c].store(open_slot(gen), std::memory_order_relaxed);
    pending_.store(nc - 1, std::memory_order_relaxed);
    publish(gen, nc);
    {
      InRegion region;
      run_chunk(0, nc);
      for (int c = 1; c < nc; ++c)
        if (claim(c, gen)) {
          run_chunk(c, nc);
          pending_.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      owner_sleeping_.store(true);
      done_cv_.wait(lock, [this] { return pending_.load() == 0; });
      owner_sleeping_.store(false, std::memory_order_relaxed);
    }
    fn_ = nullptr;
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  // Owner only: stops and joins every worker.
  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_relaxed);
    publish(next_generation(), 0);
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_.store(false, std::memory_order_relaxed);
  }

 private:
  struct InRegion {
    bool saved = t_in_region;
    InRegion() { t_in_region = true; }
    ~InRegion() { t_in_region = saved; }
  };

  std::uint32_t next_generation() const {
    return generation(ticket_.load(std::memory_order_relaxed)) + 1;
  }
  static std::uint64_t open_slot(std::uint32_t gen) { return static_cast<std::uint64_t>(gen) << 1; }
  // Takes chunk c of generation gen for the calling thread; false if it is not open (any more).
  bool claim(int c, std::uint32_t gen) {
    std::uint64_t expected = open_slot(gen);
    return slots_[c].compare_exchange_strong(expected, expected | 1u, std::memory_order_acq_rel);
  }

  void publish(std::uint32_t gen, int nc) {
    ticket_.store((static_cast<std::uint64_t>(gen) << 32) | static_cast<std::uint32_t>(nc));
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      wake_cv_.notify_all();
    }
  }

  void run_chunk(int c, int nc) {
    try {
      (*fn_)(chunk_begin(n_, nc, c), chunk_begin(n_, nc, c + 1));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void worker_main(int w, std::uint32_t seen) {
    t_in_region = true;
    for (;;) {
      std::uint64_t t = 0;
      auto fresh = [&] {
        t = ticket_.load(std::memory_order_acquire);
        return generation(t) != seen;
      };
      if (!spin_until(fresh)) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        wake_cv_.wait(lock, [&] {
          t = ticket_.load();
          return generation(t) != seen;
        });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = generation(t);
      if (stop_.load(std::memory_order_relaxed)) return;
      const int nc = chunk_count(t);
      if (w + 1 >= nc || !claim(w + 1, seen)) continue;
      run_chunk(w + 1, nc);
      if (pending_.fetch_sub(1) == 1 && owner_sleeping_.load()) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_one();
      }
    }
  }

  std::atomic<bool> busy_{false};
  std::vector<std::thread> workers_;
  const Fn* fn_ = nullptr;  // the job: valid while pending_ > 0 or the owner runs chunk 0
  index_t n_ = 0;
  std::atomic<std::uint64_t> ticket_{0};
  std::vector<std::atomic<std::uint64_t>> slots_;  // per chunk: open_slot(gen), | 1 when taken
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> owner_sleeping_{false};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_cv_, done_cv_;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

std::atomic<Pool*> g_pool{nullptr};

#ifdef RNNFAST_POSIX_THREADS
// The child of fork() has none of the parent's workers: it forgets the pool (leaking it is the
// only safe thing; its mutexes may be locked forever) and makes a new one on first use.
void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }
#endif

Pool* pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return p;
#ifdef RNNFAST_POSIX_THREADS
  static const int registered = pthread_atfork(nullptr, nullptr, &forget_pool_in_child);
  (void)registered;
#endif
  Pool* fresh = new Pool;
  if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return fresh;
  delete fresh;
  return p;
}

// At exit (static destruction) an idle pool is stopped and joined, and kept owned so that
// calls from threads still running afterwards run serially; a busy pool is left alone.
struct ExitReaper {
  ~ExitReaper() {
    g_shutdown.store(true);
    Pool* p = g_pool.load();
    if (p && p->try_acquire()) p->stop_workers();
  }
} g_exit_reaper;

struct Ownership {
  Pool* p;
  ~Ownership() { p->release(); }
};

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    int expected = 0;
    g_num_threads.compare_exchange_strong(expected, default_threads());
    n = g_num_threads.load(std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("number of threads must be >= 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
}

bool in_parallel_region() { return t_in_region; }

void parallel_for(index_t n, index_t grain, const Fn& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int threads = get_num_threads();
  const index_t chunks = n / grain + (n % grain != 0);
  const int nc = static_cast<int>(chunks < threads ? chunks : threads);
  if (nc <= 1 || t_in_region || g_shutdown.load(std::memory_order_relaxed)) {
    fn(0, n);
    return;
  }
  Pool* p = pool();
  if (!p->try_acquire()) {
    fn(0, n);
    return;
  }
  Ownership own{p};
  p->resize(threads - 1);
  p->run(n, nc, fn);
}

}  // namespace rnnfast
