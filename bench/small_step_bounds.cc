// The bounds of one small-batch step (csrc/kernels/recurrent_small*), measured on this machine in
// TSC ticks (rdtscp): the core clock against the TSC (a chain of dependent imuls, 3 cycles each,
// and of zmm FMAs, 4 cycles each), the zmm FMA throughput (8 independent chains), the read
// bandwidth of buffers of 16 KiB..512 KiB (L1, then L2), the small product of one step
// (recurrent_small_impl.h, float32, AVX-512) for 1..8 rows against the LSTM H = 64 forward's
// W_hh^T [64, 256], the backward's W_hh [256, 64] and half of the forward's [64, 128] (the split's
// share of one core), reading the panels forwards and backwards at alternate steps as the loops
// do, and the round trip of one cache line between two threads pinned to cores 0 and 1. Fewest
// ticks over the repetitions (medians for the round trip).
// Build from the repository root (one line), then run (the round trip wants both cores free:
// `chrt -f 1` on a busy machine):
//   g++ -O3 -std=c++17 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -pthread
//       -Icsrc/kernels -Icsrc/include bench/small_step_bounds.cc -o small_step_bounds
//   ./small_step_bounds
#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "recurrent_small_impl.h"
#include "simd_avx512.h"

namespace rnnfast {
namespace small {
namespace {
struct F32 : simd::Avx512F32 {  // as recurrent_small_avx512.cc
  static constexpr int kAcc = 16, kRows = 8;
};
}  // namespace
}  // namespace small
}  // namespace rnnfast

namespace {

using rnnfast::index_t;

unsigned long long ticks() {
  unsigned aux;
  return __rdtscp(&aux);
}

void pin(int cpu) {  // -1: cores 0 and 1
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    CPU_SET(0, &set);
    CPU_SET(1, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void clock_and_fma() {
  double imul = 1e30, lat = 1e30, tput = 1e30;
  for (int r = 0; r < 30; ++r) {
    long z = 1;
    auto t0 = ticks();
    for (int i = 0; i < 1000000; ++i)
      asm volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(z));
    imul = std::min(imul, (ticks() - t0) / 4e6);
    __m512 y = _mm512_set1_ps(0.999f), x = y, a0 = y, a1 = y, a2 = y, a3 = y, a4 = y, a5 = y,
           a6 = y, a7 = y;
    t0 = ticks();
    for (int i = 0; i < 1000000; ++i)
      asm volatile("vfmadd213ps %1, %1, %0\n\tvfmadd213ps %1, %1, %0\n\t"
                   "vfmadd213ps %1, %1, %0\n\tvfmadd213ps %1, %1, %0" : "+v"(x) : "v"(y));
    lat = std::min(lat, (ticks() - t0) / 4e6);
    t0 = ticks();
    for (int i = 0; i < 1000000; ++i)
      asm volatile("vfmadd213ps %8,%8,%0\n\tvfmadd213ps %8,%8,%1\n\tvfmadd213ps %8,%8,%2\n\t"
                   "vfmadd213ps %8,%8,%3\n\tvfmadd213ps %8,%8,%4\n\tvfmadd213ps %8,%8,%5\n\t"
                   "vfmadd213ps %8,%8,%6\n\tvfmadd213ps %8,%8,%7"
                   : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),
                     "+v"(a7) : "v"(y));
    tput = std::min(tput, (ticks() - t0) / 8e6);
  }
  std::printf("imul latency %.3f ticks (3 cycles: core %.3f cycles per tick); zmm FMA latency "
              "%.3f ticks (4 cycles: %.3f); zmm FMA throughput %.3f ticks each\n",
              imul, 3 / imul, lat, 4 / lat, tput);
}

__attribute__((noinline)) float sum(const float* p, index_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (index_t i = 0; i < n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  return lanes[0] + lanes[15];
}

void bandwidth() {
  for (index_t kib : {16, 24, 32, 40, 48, 64, 128, 512}) {
    const index_t n = kib * 256;
    float* p = static_cast<float*>(std::aligned_alloc(64, n * 4));
    for (index_t i = 0; i < n; ++i) p[i] = 1e-6f * i;
    double best = 1e30;
    volatile float s = 0;
    for (int r = 0; r < 200; ++r) {
      auto t0 = ticks();
      for (int j = 0; j < 20; ++j) s = s + sum(p, n);
      best = std::min(best, (ticks() - t0) / 20.0);
    }
    std::printf("read %4ld KiB: %6.0f ticks, %.1f bytes per tick\n", long(kib), best,
                kib * 1024 / best);
    std::free(p);
  }
}

double product_ticks(int m, index_t K, index_t N) {
  using V = rnnfast::small::F32;
  const index_t nr = 32, panels = N / nr, ps = K * nr;
  std::vector<float> b(panels * ps), a(8 * K, 0.5f), out(8 * N);
  for (size_t i = 0; i < b.size(); ++i) b[i] = float((i * 7919) % 1000) * 1e-6f;
  double best = 1e30;
  for (int r = 0; r < 40; ++r) {
    auto t0 = ticks();
    for (int s = 0; s < 200; ++s) {
      rnnfast::small::product<V>(m, K, a.data(), K, b.data(), ps, panels, out.data(), N, s & 1);
      a[s % K] = out[s % N] * 1e-3f;  // the next step depends on this one
    }
    best = std::min(best, (ticks() - t0) / 200.0);
  }
  return best;
}

void products() {
  const struct { const char* name; index_t K, N; } shapes[] = {
      {"forward W_hh^T [64, 256]", 64, 256},
      {"backward W_hh [256, 64]", 256, 64},
      {"split half [64, 128]", 64, 128}};
  for (const auto& sh : shapes) {
    std::printf("small product, %s, ticks per step:", sh.name);
    for (int m : {1, 2, 4, 8}) std::printf("  %d rows %.0f", m, product_ticks(m, sh.K, sh.N));
    std::printf("\n");
  }
}

void round_trip() {
  alignas(64) static std::atomic<long> line{0};
  std::atomic<int> ready{0};
  const long n = 400000;
  std::vector<unsigned long long> rt;
  rt.reserve(n / 2);
  pin(-1);  // a thread starts on its creator's cores: at real-time priority, pinned to a core
            // the creator spins on, it would never run
  std::thread other([&] {
    pin(1);
    ready.store(1);
    for (long i = 1; i < n; i += 2) {
      while (line.load(std::memory_order_acquire) != i) {
      }
      line.store(i + 1, std::memory_order_release);
    }
  });
  pin(0);
  while (!ready.load()) {
  }
  for (long i = 0; i < n; i += 2) {
    auto t0 = ticks();
    line.store(i + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != i + 2) {
    }
    rt.push_back(ticks() - t0);
  }
  other.join();
  std::sort(rt.begin(), rt.end());
  std::printf("cache-line round trip core 0 -> 1 -> 0: p10 %llu, p50 %llu, p90 %llu ticks\n",
              rt[rt.size() / 10], rt[rt.size() / 2], rt[rt.size() * 9 / 10]);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  pin(0);
  clock_and_fma();
  bandwidth();
  products();
  round_trip();
}
