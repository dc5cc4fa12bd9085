// Basic types shared by every kernel. The C++ kernels know nothing of Python.
#pragma once
#include <cstdint>

namespace rnnfast {

using index_t = std::int64_t;

}  // namespace rnnfast
