// Instruction-set detection (CPUID + XGETBV) and the process-wide choice of kernels.
//
// An Isa is supported when the CPU implements it, the operating system saves its register
// state on context switches (XCR0), and this build contains its kernels (the x86 kernels exist
// only when setup.py defines RNNFAST_HAVE_X86_KERNELS):
//   avx2   = AVX2 + FMA, with XMM and YMM state enabled;
//   avx512 = AVX-512 F + BW + DQ + VL, with XMM, YMM, opmask and ZMM state enabled.
// The same detection reports the bfloat16 features (CpuFeatures) for gemm_bf16.cc.
#include "rnnfast/cpu.h"

#include <atomic>
#include <cstdint>
#include <stdexcept>

#if defined(RNNFAST_HAVE_X86_KERNELS) && (defined(__x86_64__) || defined(__i386__))
#define RNNFAST_DETECT_X86 1
#include <cpuid.h>
#endif

namespace rnnfast {

namespace {

using Features = CpuFeatures;

#ifdef RNNFAST_DETECT_X86
std::uint64_t read_xcr0() {
  std::uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

bool bit(std::uint32_t reg, int b) { return (reg >> b) & 1u; }

Features detect() {
  Features f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return f;
  const unsigned max_leaf = eax;
  if (max_leaf < 7) return f;
  __get_cpuid(1, &eax, &ebx, &ecx, &edx);
  const bool osxsave = bit(ecx, 27), avx = bit(ecx, 28), fma = bit(ecx, 12);
  if (!osxsave || !avx) return f;
  const std::uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = bit(ebx, 5);
  const bool avx512f = bit(ebx, 16), avx512dq = bit(ebx, 17), avx512bw = bit(ebx, 30),
             avx512vl = bit(ebx, 31);
  f.avx2 = ymm_state && avx2 && fma;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  const unsigned max_subleaf = eax;
  const bool amx_bf16 = bit(edx, 22), amx_tile = bit(edx, 24);
  if (max_subleaf >= 1) {
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512_bf16 = f.avx512 && bit(a1, 5);
  }
  const bool tile_state = ((xcr0 >> 17) & 3u) == 3u;  // XTILECFG and XTILEDATA
  f.amx_bf16 = f.avx512_bf16 && amx_bf16 && amx_tile && tile_state;
  return f;
}
#else
Features detect() { return Features{}; }
#endif

const Features& features() {
  static const Features f = detect();
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() { return features(); }

namespace {

Isa best_isa() {
  if (features().avx512) return Isa::avx512;
  if (features().avx2) return Isa::avx2;
  return Isa::generic;
}

constexpr int kUnset = -1;
std::atomic<int> g_active{kUnset};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  if (name == "generic") return Isa::generic;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("unknown instruction set '" + name +
                              "' (expected generic, avx2 or avx512)");
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas{Isa::generic};
  if (features().avx2) isas.push_back(Isa::avx2);
  if (features().avx512) isas.push_back(Isa::avx512);
  return isas;
}

Isa active_isa() {
  int a = g_active.load(std::memory_order_relaxed);
  if (a == kUnset) {
    int expected = kUnset;
    g_active.compare_exchange_strong(expected, static_cast<int>(best_isa()));
    a = g_active.load(std::memory_order_relaxed);
  }
  return static_cast<Isa>(a);
}

void set_active_isa(Isa isa) {
  for (Isa s : supported_isas())
    if (s == isa) {
      g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
      return;
    }
  throw std::invalid_argument(std::string("instruction set '") + isa_name(isa) +
                              "' is not supported by this CPU or build");
}

}  // namespace rnnfast
