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
// a: bfloat16 rows, zeros at k >= K; rows up to the kernel's m_align multiple past m are
//    readable (zeros). In the kernel's a layout (Bf16Kernels::tiled_a): rows, element (i, k)
//    at a[i * kp + k]; or tiles, blocks of 16 rows, each kp / 32 tiles of 16 rows x 32 k
//    (1 KiB contiguous): element (i, k) at a[(i / 16) * 16 * kp + (k / 32) * 512 + (i % 16) *
//    32 + k % 32]. Either way rows [16r, 16r + 16) start at a + 16r * kp.
// b: the packed panels of PackedBf16 (panel p at b + p * kp * kNr).
// c: column 0 of row 0. Every sum runs over k in increasing order of pairs of k (the
//    instructions' order), the same whatever the range: results do not depend on n0, n1.
// descending: the panels taken from the last to the first (same values; see
//    gemm_bf16_prepacked_cols).
struct ProductArgs {
  idx m, kp;
  const bf16* a;
  const bf16* b;
  idx n0, n1;
  float* c;
  idx ldc;
  float alpha, beta;
  bool descending = false;
};

struct Bf16Kernels {
  idx m_align;   // rows of a are padded to a multiple of it
  bool tiled_a;  // a in tiles (else rows); see ProductArgs
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
  // The same panels of B (not transposed) with row k of B at rows[k] (its column c at
  // rows[k][c]), k < K: rows gathered from anywhere, with no copy of them side by side first.
  void (*pack_panel_rows)(const float* const* rows, idx K, idx kp, idx n0, idx n, bf16* dst);
  // Rows [m0, m0 + n) of op(A) = A^T (element (i, k) at A[k * lda + i]) as
  // bfloat16 rows of kp at dst, zeros at k >= K: rows (row stride kp), or tiles (ProductArgs'
  // layout, m0 a multiple of 16, rows past n up to the next multiple of 16 written as zeros).
  // sums (or null): sums[i] = the float32 sum of row m0 + i of op(A), unrounded, k in
  // increasing order from 0 (the bits of a sequential column sum of A), i < n.
  void (*pack_rows_trans)(const float* A, idx lda, idx K, idx m0, idx n, idx kp, bool tiled,
                          bf16* dst, float* sums);
  // Rows [0, n) of A (row i at A + i * lda) as tiles (ProductArgs' layout), zeros at k >= K
  // and in rows n up to the next multiple of 16.
  void (*pack_rows_tiled)(const float* A, idx lda, idx K, idx n, idx kp, bf16* dst);
};

#ifdef RNNFAST_HAVE_X86_KERNELS
extern const Bf16Kernels kBf16Avx512;  // gemm_bf16_avx512bf16.cc
extern const Bf16Convert kBf16ConvertAvx512;  // gemm_bf16_avx512bf16.cc
extern const Bf16Kernels kBf16Amx;     // gemm_bf16_amx.cc
#endif

}  // namespace gemm_bf16_detail
}  // namespace rnnfast
