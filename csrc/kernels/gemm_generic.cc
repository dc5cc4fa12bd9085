// Portable micro-kernels: plain C++ over small fixed-size arrays, which the compiler keeps in
// registers and vectorises for the baseline instruction set (SSE2 on x86-64, NEON on arm64).
// Float 4 x 8 and double 4 x 4 tiles. Also the kernels of every non-x86 build.
#include <cstdint>

#include "gemm_kernels.h"

namespace rnnfast {
namespace gemm_detail {

namespace {

template <typename Scalar, int Lanes, int Rows>
struct Portable {
  using T = Scalar;
  struct vec {
    T v[Lanes];
  };
  static constexpr int W = Lanes, NV = 2, MR = Rows;
  static vec zero() {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = T(0);
    return r;
  }
  static vec load(const T* p) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = p[l];
    return r;
  }
  static vec load_n(const T* p, idx n) {
    vec r = zero();
    for (idx l = 0; l < n; ++l) r.v[l] = p[l];
    return r;
  }
  static void store(T* p, vec v) {
    for (int l = 0; l < W; ++l) p[l] = v.v[l];
  }
  static void store_n(T* p, vec v, idx n) {
    for (idx l = 0; l < n; ++l) p[l] = v.v[l];
  }
  static vec set1(T x) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = x;
    return r;
  }
  static vec fma(vec a, vec b, vec c) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
    return r;
  }
  static vec mul(vec a, vec b) {
    vec r;
    for (int l = 0; l < W; ++l) r.v[l] = a.v[l] * b.v[l];
    return r;
  }
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
