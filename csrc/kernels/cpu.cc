// Instruction-set detection and the forced choice. Only generic kernels exist so far.
#include "rnnfast/cpu.h"

#include <stdexcept>

namespace rnnfast {

namespace {
Isa g_active = Isa::generic;
}

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

std::vector<Isa> supported_isas() { return {Isa::generic}; }

Isa active_isa() { return g_active; }

void set_active_isa(Isa isa) {
  for (Isa s : supported_isas())
    if (s == isa) { g_active = isa; return; }
  throw std::invalid_argument(std::string("instruction set '") + isa_name(isa) +
                              "' is not supported by this CPU or build");
}

}  // namespace rnnfast
