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

}  // namespace rnnfast
