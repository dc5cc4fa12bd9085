// Instruction sets the kernels can use, detected once from CPUID; one can be forced for testing.
#pragma once
#include <string>
#include <vector>

namespace rnnfast {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// Parses "generic" | "avx2" | "avx512"; throws std::invalid_argument otherwise.
Isa isa_from_name(const std::string& name);
// Every Isa this CPU (and this build) supports, best last. Always contains generic.
std::vector<Isa> supported_isas();
// The Isa the kernels dispatch to now (the best supported, unless forced).
Isa active_isa();
// Forces an Isa; throws std::invalid_argument if this CPU or build lacks it.
void set_active_isa(Isa isa);

// What CPUID and XCR0 report, detected once (all false off x86 or in a build without the x86
// kernels). The bfloat16 paths (gemm_bf16.cc) build on these; whether Linux grants the AMX tile
// data state is asked there, not here.
struct CpuFeatures {
  bool avx2 = false;         // AVX2 + FMA, XMM and YMM state enabled
  bool avx512 = false;       // + AVX-512 F/BW/DQ/VL, opmask and ZMM state enabled
  bool avx512_bf16 = false;  // avx512 + AVX512-BF16 (vdpbf16ps)
  bool amx_bf16 = false;     // avx512_bf16 + AMX-TILE + AMX-BF16, XTILECFG/XTILEDATA enabled
};
const CpuFeatures& cpu_features();

}  // namespace rnnfast
