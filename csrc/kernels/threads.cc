// The executors of parallel_for: the own pool (persistent workers woken by a generation ticket)
// and the threads of a loaded OpenMP runtime.
//
// Own pool. A call publishes its job (fn, n) and then a new ticket (generation << 32 | chunk
// count). With P participants (the caller and P - 1 workers) chunks c, c + P, ... belong to
// participant c % P (worker w is participant w + 1, the caller 0); each participant runs its
// own chunks in order, then every chunk still open, from the last down (so a thread that is late
// and one that helps it meet in the middle). A worker that sleeps, or is descheduled because the
// machine is busy, therefore never delays a call: the caller runs its chunks too, and waits only
// for chunks in progress. Claiming is a compare-and-swap of the chunk's slot from "open in
// generation g" to "taken", so a worker still holding an old ticket can never run a chunk of a
// newer job. The split itself is static; only which thread runs a chunk may vary (the kernels'
// results do not depend on it).
// Idle threads spin on the ticket for kSpin (without yielding their core unless the pool has
// more threads than CPUs), then sleep on a condition variable; whoever changes the state wakes
// sleepers only if there are any, so the hot path makes no system call. A caller whose chunks
// are done waits for those still running elsewhere by spinning for kSpin or a quarter of the
// call's time so far, whichever is longer, before it sleeps too. A worker woken onto the CPU of
// the call that woke it moves itself off that CPU (leave_cpu).
//
// OpenMP. A region is one GOMP_parallel(region, job, nc, 0) of the runtime found loaded in the
// process (looked up by dlopen(RTLD_NOLOAD) + dlsym: nothing links against OpenMP). Thread t of
// the m the runtime gives runs chunks t, t + m, ... (so chunk c stays on one thread from call to
// call, as on the own pool), then claims any chunk still open (a thread that starts late never
// delays the others). The runtime's end-of-region barrier orders everything the chunks wrote
// before the caller goes on. Exceptions never cross GOMP_parallel: each chunk catches its own.
//
// Ownership: one caller thread at a time owns the executor (an atomic flag); any other caller,
// and any call from inside a region, runs serially. The pool object is never destroyed: after
// fork() the child forgets it (its threads do not exist there), makes a new one, and leaves the
// OpenMP runtime alone; at exit the pool is stopped and joined if it is idle, and every later
// call runs serially.
#include "rnnfast/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
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
#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#define RNNFAST_FIND_OPENMP 1
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace rnnfast {

namespace {

using detail::ChunkFn;
using Clock = std::chrono::steady_clock;

// How long an idle thread spins before it sleeps. When the pool has no more threads than the
// process has CPUs it spins without yielding: a thread that yields stays runnable but gives its
// core to another process, so on a busy machine the next job often finds it off the core (the
// caller then runs its chunk too), while a sleeping thread that is woken runs at once (the
// scheduler favours woken sleepers). bench/pool_wake.py, 2 threads on 2 busy cores (load 14-16):
// back-to-back calls whose caller ran the worker's chunk too, 27-28 of 40 yielding, 13 of 40
// not. With more threads than CPUs the pool's own threads share cores, and a spinning thread
// yields after kPauseSpin so that the one it waits for gets the core.
constexpr auto kSpin = std::chrono::microseconds(60);
using detail::cpu_relax;
using detail::kPauseSpin;

// Spins until pred() holds or `limit` has passed (yielding between checks after kPauseSpin when
// `yield`); returns pred()'s last value.
template <class Pred>
bool spin_until(Pred pred, bool yield, Clock::duration limit = kSpin) {
  const auto start = Clock::now();
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    const auto spent = Clock::now() - start;
    if (spent > limit) return pred();
    if (yield && spent > kPauseSpin) std::this_thread::yield();
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
int chunk_count_of(std::uint64_t ticket) { return static_cast<int>(ticket & 0xffffffffu); }

std::atomic<int> g_num_threads{0};  // 0: not set yet, use default_threads()
std::atomic<bool> g_shutdown{false};
std::atomic<bool> g_busy{false};  // a caller thread owns the executor
std::atomic<bool> g_forked_child{false};
thread_local bool t_in_region = false;

bool try_acquire() {
  bool expected = false;
  return g_busy.compare_exchange_strong(expected, true, std::memory_order_acquire);
}
void release() { g_busy.store(false, std::memory_order_release); }

struct InRegion {
  bool saved = t_in_region;
  InRegion() { t_in_region = true; }
  ~InRegion() { t_in_region = saved; }
};

// The first exception of a call's chunks.
class FirstError {
 public:
  void record() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::current_exception();
  }
  void rethrow() {
    if (!error_) return;
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }

 private:
  std::mutex mu_;
  std::exception_ptr error_;
};

// A worker woken onto the CPU its owner runs on (the scheduler puts it there when the other CPUs
// look busy, or halted on an idle virtual machine) preempts the owner at once and then spins there
// while the owner waits for its CPU: the product runs slower than on the owner alone
// (bench/RESULTS.md, gemm session 15: 200 of 201 wake-ups landed on the owner's CPU, a 75 us
// product took 80-120 us at 2 threads). Such a worker moves itself to another CPU it may use: its
// affinity without that CPU, then the same affinity again (the thread stays where the move put
// it; nothing stays pinned). The workers are the pool's own threads: only a change of this
// worker's affinity made by another thread between its read and the restore would be undone.
void leave_cpu(int cpu) {
#if defined(__linux__)
  if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getcpu() != cpu) return;
  cpu_set_t mine;
  if (pthread_getaffinity_np(pthread_self(), sizeof(mine), &mine) != 0) return;
  cpu_set_t others = mine;
  CPU_CLR(cpu, &others);
  if (CPU_COUNT(&others) == 0) return;
  if (pthread_setaffinity_np(pthread_self(), sizeof(others), &others) == 0)
    pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine);
#else
  (void)cpu;
#endif
}

int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

class Pool {
 public:
  // Owner only: makes the pool have exactly `count` workers.
  void resize(int count) {
    if (static_cast<int>(workers_.size()) == count) return;
    stop_workers();
    oversubscribed_ = count + 1 > default_threads();
    participants_ = count + 1;
    slots_ = std::vector<std::atomic<std::uint64_t>>(static_cast<std::size_t>(count + 1) *
                                                     detail::kMaxChunksPerThread);
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

  // Owner only, nc <= (workers + 1) * kMaxChunksPerThread: runs chunks 0..nc-1 of [0, n) (the
  // caller being participant 0), rethrows the first error.
  void run(index_t n, int nc, ChunkFn fn, void* ctx) {
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    const std::uint32_t gen = next_generation();
    for (int c = 0; c < nc; ++c) slots_[c].store(open_slot(gen), std::memory_order_relaxed);
    pending_.store(nc, std::memory_order_relaxed);
    const auto start = Clock::now();
    publish(gen, nc);
    {
      InRegion region;
      take_chunks(0, nc, gen);
    }
    // Every chunk is taken now: the caller waits for chunks other threads are running. It spins
    // for kSpin, or for a quarter of the time the call has taken so far when that is longer, and
    // then sleeps. A worker woken for the call starts 20-60 us after it began (more on an idle
    // machine, whose halted virtual CPUs wake slowly), so in a product of a few ms it ends that
    // much after the caller; a caller asleep by then pays a second wake-up, its own, where
    // OpenMP's caller spins at its barrier (bench/RESULTS.md, session 14). The spin costs at most
    // a quarter of the call's time in CPU, and only while another thread is late.
    const auto patience = std::max<Clock::duration>(kSpin, (Clock::now() - start) / 4);
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; },
                    oversubscribed_, patience)) {
      std::unique_lock<std::mutex> lock(mu_);
      owner_sleeping_.store(true);
      done_cv_.wait(lock, [this] { return pending_.load() == 0; });
      owner_sleeping_.store(false, std::memory_order_relaxed);
    }
    fn_ = nullptr;
    error_.rethrow();
  }

  // Some worker sleeps (any thread may ask).
  bool asleep() const { return sleepers_.load(std::memory_order_relaxed) > 0; }

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
      waker_cpu_.store(current_cpu(), std::memory_order_relaxed);
      std::lock_guard<std::mutex> lock(mu_);
      wake_cv_.notify_all();
    }
  }

  void run_chunk(int c, int nc) {
    try {
      fn_(ctx_, chunk_begin(n_, nc, c), chunk_begin(n_, nc, c + 1));
    } catch (...) {
      error_.record();
    }
  }

  // Participant `self` runs its own chunks of generation gen (self, self + P, ...), then every
  // chunk still open, from the last down; wakes the owner when it ran the last chunk of a call.
  void take_chunks(int self, int nc, std::uint32_t gen) {
    const int stride = participants_;
    auto run_one = [&](int c) {
      run_chunk(c, nc);
      if (pending_.fetch_sub(1) == 1 && owner_sleeping_.load()) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_one();
      }
    };
    for (int c = self; c < nc; c += stride)
      if (claim(c, gen)) run_one(c);
    for (int c = nc - 1; c >= 0; --c)
      if (c % stride != self && claim(c, gen)) run_one(c);
  }

  void worker_main(int w, std::uint32_t seen) {
    t_in_region = true;
    for (;;) {
      std::uint64_t t = 0;
      auto fresh = [&] {
        t = ticket_.load(std::memory_order_acquire);
        return generation(t) != seen;
      };
      if (!spin_until(fresh, oversubscribed_)) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        wake_cv_.wait(lock, [&] {
          t = ticket_.load();
          return generation(t) != seen;
        });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        lock.unlock();
        if (!oversubscribed_) leave_cpu(waker_cpu_.load(std::memory_order_relaxed));
      }
      seen = generation(t);
      if (stop_.load(std::memory_order_relaxed)) return;
      const int nc = chunk_count_of(t);
      if (w + 1 < nc) take_chunks(w + 1, nc, seen);
    }
  }

  std::vector<std::thread> workers_;
  // The job: valid while pending_ > 0 or the owner runs chunks.
  ChunkFn fn_ = nullptr;
  void* ctx_ = nullptr;
  index_t n_ = 0;
  std::atomic<std::uint64_t> ticket_{0};
  std::vector<std::atomic<std::uint64_t>> slots_;  // per chunk: open_slot(gen), | 1 when taken
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> owner_sleeping_{false};
  std::atomic<int> waker_cpu_{-1};  // the CPU of the last call that woke sleeping workers
  std::atomic<bool> stop_{false};
  // More threads (workers and caller) than the process's CPUs: spinning threads yield
  // (spin_until). Written by resize() while no worker runs, as is the participant count.
  bool oversubscribed_ = false;
  int participants_ = 1;
  std::mutex mu_;
  std::condition_variable wake_cv_, done_cv_;
  FirstError error_;
};

std::atomic<Pool*> g_pool{nullptr};
std::atomic<Clock::rep> g_last_ask{0};  // time of the last readiness() call

// ---- The OpenMP runtime's threads ----

// The entry points of a loaded OpenMP runtime (GNU libgomp's ABI). Never freed: the handle
// keeps the library loaded, and a region may still be using it when the executor changes.
struct OpenMPRuntime {
  std::string path;
  void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
  int (*thread_num)();
  int (*num_threads)();
};

std::atomic<const OpenMPRuntime*> g_openmp{nullptr};  // the executor is OpenMP when set
std::mutex g_openmp_mu;                               // guards g_runtimes
std::vector<const OpenMPRuntime*> g_runtimes;         // every runtime resolved so far

#ifdef RNNFAST_FIND_OPENMP
// Names of the loaded libraries that look like GNU libgomp (libgomp.so.1, or a wheel's
// renamed copy such as libgomp-a34b3233.so.1).
std::vector<std::string> libgomp_candidates() {
  std::vector<std::string> names;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        const char* name = info->dlpi_name;
        if (name && *name) {
          const char* base = std::strrchr(name, '/');
          base = base ? base + 1 : name;
          if (std::strncmp(base, "libgomp", 7) == 0 && std::strstr(base, ".so"))
            static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        }
        return 0;
      },
      &names);
  return names;
}

// The runtime at path if it is loaded and has the entry points; nullptr otherwise. With keep,
// the library stays referenced for the rest of the process.
bool resolve(const std::string& path, OpenMPRuntime* rt, bool keep) {
  void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) return false;
  rt->path = path;
  rt->parallel = reinterpret_cast<decltype(rt->parallel)>(dlsym(handle, "GOMP_parallel"));
  rt->thread_num = reinterpret_cast<int (*)()>(dlsym(handle, "omp_get_thread_num"));
  rt->num_threads = reinterpret_cast<int (*)()>(dlsym(handle, "omp_get_num_threads"));
  const bool ok = rt->parallel && rt->thread_num && rt->num_threads;
  if (!ok || !keep) dlclose(handle);
  return ok;
}
#endif

// One call's state on the OpenMP threads.
struct OpenMPJob {
  const OpenMPRuntime* rt;
  index_t n;
  int nc;
  ChunkFn fn;
  void* ctx;
  std::atomic<std::uint64_t>* claims;  // bit c: chunk c taken
  FirstError error;

  bool claim(int c) {
    const std::uint64_t bit = std::uint64_t{1} << (c & 63);
    return (claims[c >> 6].fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
  }
  void run(int c) {
    try {
      fn(ctx, chunk_begin(n, nc, c), chunk_begin(n, nc, c + 1));
    } catch (...) {
      error.record();
    }
  }
};

// The body every OpenMP thread runs (the caller is thread 0): its own chunks, then any still
// open from the last down, as on the own pool.
void openmp_region(void* data) {
  OpenMPJob& job = *static_cast<OpenMPJob*>(data);
  InRegion region;
  const int t = job.rt->thread_num();
  const int m = std::max(job.rt->num_threads(), 1);
  for (int c = t; c < job.nc; c += m)
    if (job.claim(c)) job.run(c);
  for (int c = job.nc - 1; c >= 0; --c)
    if (job.claim(c)) job.run(c);
}

// Owner only: the claim bits of a call, reused from call to call.
// Never freed: a region may still run on a daemon thread while the process exits.
std::atomic<std::uint64_t>* openmp_claims(int nc) {
  static auto* words = new std::vector<std::atomic<std::uint64_t>>;
  const std::size_t need = static_cast<std::size_t>(nc + 63) / 64;
  if (words->size() < need) *words = std::vector<std::atomic<std::uint64_t>>(need);
  for (std::size_t i = 0; i < need; ++i) (*words)[i].store(0, std::memory_order_relaxed);
  return words->data();
}

void run_openmp(const OpenMPRuntime* rt, index_t n, int nc, ChunkFn fn, void* ctx) {
  OpenMPJob job{rt, n, nc, fn, ctx, openmp_claims(nc), {}};
  const int threads = std::min(nc, get_num_threads());  // never more threads than set
  rt->parallel(&openmp_region, &job, static_cast<unsigned>(threads), 0);
  job.error.rethrow();
}

// ---- Process events ----

#ifdef RNNFAST_POSIX_THREADS
// The child of fork() has none of the parent's threads: it forgets the pool (leaking it is the
// only safe thing; its mutexes may be locked forever), makes a new one on first use, and stays
// off the OpenMP runtime, whose threads were the parent's too.
void forget_threads_in_child() {
  g_pool.store(nullptr, std::memory_order_relaxed);
  g_openmp.store(nullptr, std::memory_order_relaxed);
  g_busy.store(false, std::memory_order_relaxed);
  g_forked_child.store(true, std::memory_order_relaxed);
}
#endif

void register_fork_handler() {
#ifdef RNNFAST_POSIX_THREADS
  static const int registered = pthread_atfork(nullptr, nullptr, &forget_threads_in_child);
  (void)registered;
#endif
}

Pool* pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return p;
  register_fork_handler();
  Pool* fresh = new Pool;
  if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return fresh;
  delete fresh;
  return p;
}

// At exit (static destruction) an idle pool is stopped and joined, and the executor kept owned
// so that calls from threads still running afterwards run serially; a busy one is left alone.
struct ExitReaper {
  ~ExitReaper() {
    g_shutdown.store(true);
    if (!try_acquire()) return;
    if (Pool* p = g_pool.load()) p->stop_workers();
  }
} g_exit_reaper;

struct Ownership {
  ~Ownership() { release(); }
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

namespace detail {

Readiness readiness() {
  const Clock::rep now = Clock::now().time_since_epoch().count();
  const Clock::rep last = g_last_ask.exchange(now, std::memory_order_relaxed);
  if (g_openmp.load(std::memory_order_acquire)) return Readiness::kReady;
  const Pool* p = g_pool.load(std::memory_order_acquire);
  if (p && !p->asleep()) return Readiness::kReady;  // no pool yet: its threads start with a call
  return Clock::duration(now - last) < kSpin ? Readiness::kAsleep : Readiness::kAsleepAlone;
}

int chunk_count(index_t n, index_t grain, int per_thread) {
  if (grain < 1) grain = 1;
  per_thread = std::min(std::max(per_thread, 1), kMaxChunksPerThread);
  const int threads = get_num_threads();
  const index_t chunks = n / grain + (n % grain != 0);
  if (chunks <= 1 || threads <= 1 || t_in_region || g_shutdown.load(std::memory_order_relaxed))
    return 1;
  const index_t most = static_cast<index_t>(threads) * per_thread;
  return static_cast<int>(chunks < most ? chunks : most);
}

void run_chunks(index_t n, int nc, ChunkFn fn, void* ctx) {
  if (!try_acquire()) {
    fn(ctx, 0, n);
    return;
  }
  Ownership own;
  if (const OpenMPRuntime* rt = g_openmp.load(std::memory_order_acquire)) {
    run_openmp(rt, n, nc, fn, ctx);
    return;
  }
  Pool* p = pool();
  // nc came from the count of threads then; a set_num_threads since may have lowered it.
  p->resize(std::max(get_num_threads(), (nc + kMaxChunksPerThread - 1) / kMaxChunksPerThread) - 1);
  p->run(n, nc, fn, ctx);
}

}  // namespace detail

Executor active_executor() {
  return g_openmp.load(std::memory_order_acquire) ? Executor::kOpenMP : Executor::kOwnPool;
}

std::string openmp_runtime() {
  const OpenMPRuntime* rt = g_openmp.load(std::memory_order_acquire);
  return rt ? rt->path : std::string();
}

std::vector<std::string> loaded_openmp_runtimes() {
  std::vector<std::string> found;
#ifdef RNNFAST_FIND_OPENMP
  if (g_forked_child.load()) return found;
  for (const std::string& name : libgomp_candidates()) {
    OpenMPRuntime rt;
    if (resolve(name, &rt, false)) found.push_back(name);
  }
#endif
  return found;
}

void use_openmp(const std::string& library) {
  if (g_forked_child.load())
    throw std::runtime_error(
        "this process is a child made by fork(): the OpenMP runtime's threads belong to the "
        "parent (GNU libgomp hangs in such a child), so the kernels run on rnnfast's own pool");
#ifdef RNNFAST_FIND_OPENMP
  register_fork_handler();
  std::lock_guard<std::mutex> lock(g_openmp_mu);
  for (const OpenMPRuntime* rt : g_runtimes)
    if (rt->path == library) {
      g_openmp.store(rt, std::memory_order_release);
      return;
    }
  const std::vector<std::string> loaded = loaded_openmp_runtimes();
  if (std::find(loaded.begin(), loaded.end(), library) != loaded.end()) {
    auto rt = std::make_unique<OpenMPRuntime>();
    if (resolve(library, rt.get(), true)) {
      g_runtimes.push_back(rt.get());
      g_openmp.store(rt.release(), std::memory_order_release);
      return;
    }
  }
  std::string names;
  for (const std::string& name : loaded) names += (names.empty() ? "" : ", ") + name;
  throw std::runtime_error("'" + library + "' is not a loaded OpenMP runtime (GNU libgomp with "
                           "GOMP_parallel); loaded: " + (names.empty() ? "none" : names));
#else
  throw std::runtime_error("'" + library + "': finding loaded OpenMP runtimes is not supported "
                           "on this platform");
#endif
}

void use_own_pool() { g_openmp.store(nullptr, std::memory_order_release); }

}  // namespace rnnfast
