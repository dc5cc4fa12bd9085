// Portable micro-kernels: plain C++ over small fixed-size arrays, which the compiler keeps in
// registers and vectorises for the baseline instruction set (SSE2 on x86-64, NEON on arm64).
// Float 4 x 8 and double 4 x 4 tiles. Also the kernels of every non-x86 build.
#include <cstdint>

#include "gemm_kernels.h"
#include "simd_portable.h"

namespace rnnfast {
namespace gemm_detail {

namespace {

// The baseline vector shims (simd_portable.h) with the tile shape and the transpose the GEMM
// body needs.
template <typename Scalar, int Lanes, int Rows>
struct Portable : simd::Portable<Scalar, Lanes> {
  using T = Scalar;
  using vec = typename simd::Portable<Scalar, Lanes>::vec;
  static constexpr int W = Lanes, NV = 2, MR = Rows;
  static void transpose(const T* src, idx ld, idx rows, T* dst, idx ldd, idx lanes) {
    for (int j = 0; j < W; ++j)
      for (idx r = 0; r < lanes; ++r) dst[j * ldd + r] = r < rows ? src[r * ld + j] : T(0);
  }
};

using GenericF32 = Portable<float, 4, 4>;
using GenericF64 = Portable<double, 2, 4>;

}  // namespace
}  // namespace gemm_detail
}  // namespace rnnfast

#include "gemm_body.h"

namespace rnnfast {
namespace gemm_detail {

extern const KernelSet<float> kGenericF32 = body::kernel_set<GenericF32, 256, 256>();
extern const KernelSet<double> kGenericF64 = body::kernel_set<GenericF64, 256, 128>();

}  // namespace gemm_detail
}  // namespace rnnfast
