// The contract between the bfloat16 GEMM driver (gemm_bf16.cc) and the kernels of the hardware
// paths (gemm_bf16_avx512bf16.cc, gemm_bf16_amx.cc).
//
// Included by instruction-set translation units: plain structs only (no inline code, no std
// templates), as gemm_kernels.h.
#pragma once
#include <cstdint>

namespace rnnfast {
namespace gemm_bf16_detail {

using idx = std::int64_t;
using bf16 = std::uint16_t;

constexpr idx kNr = 32;      // columns per packed panel (two AMX tiles / two zmm of floats)
constexpr idx kKAlign = 32;  // K padded with zeros to a multiple of it (an AMX tile's depth)

// One product over rows [0, m) and columns [n0, n1) of C:
//   C[i, j] = alpha * sum_k a[i, k] b[k, j] + beta * C[i, j]    (beta == 0: C only written)
// a: bfloat16 rows, row i at a + i * kp, zeros at k >= K; rows up to the kernel's m_align
//    multiple past m are readable (zeros).
// b: the packed panels of PackedBf16 (panel p at b + p * kp * kNr).
// c: column 0 of row 0. Every sum runs over k in increasing order of pairs of k (the
//    instructions' order), the same whatever the range: results do not depend on n0, n1.
struct ProductArgs {
  idx m, kp;
  const bf16* a;
  const bf16* b;
  idx n0, n1;
  float* c;
  idx ldc;
  float alpha, beta;
};

struct Bf16Kernels {
  idx m_align;  // rows of a are padded to a multiple of it
  void (*product)(const ProductArgs&);
};

// Conversions (AVX-512 F/BW; every hardware path has them), rounding as bf16_bits in
// rnnfast/gemm_bf16.h.
struct Bf16Convert {
  // dst[i] = bits of src[i] rounded, i < n.
  void (*round)(idx n, const float* src, bf16* dst);
  // Panels of op(B) (trans: B[n * ldb + k], else B[k * ldb + n]) for columns [n0, n0 + n)
  // (n0 a multiple of kNr) at dst (panel p at dst + p * kp * kNr), K padded with zeros to kp.
  void (*pack_panel)(bool trans, const float* B, idx ldb, idx K, idx kp, idx n0, idx n, bf16* dst);
  // Rows [m0, m0 + n) of op(A) = A^T (element (i, k) at A[k * lda + i]) as
  // bfloat16 rows of kp at dst (row stride kp), zeros at k >= K.
  void (*pack_rows_trans)(const float* A, idx lda, idx K, idx m0, idx n, idx kp, bf16* dst);
};

#ifdef RNNFAST_HAVE_X86_KERNELS
extern const Bf16Kernels kBf16Avx512;  // gemm_bf16_avx512bf16.cc
extern const Bf16Convert kBf16ConvertAvx512;  // gemm_bf16_avx512bf16.cc
extern const Bf16Kernels kBf16Amx;     // gemm_bf16_amx.cc
#endif

}  // namespace gemm_bf16_detail
}  // namespace rnnfast
