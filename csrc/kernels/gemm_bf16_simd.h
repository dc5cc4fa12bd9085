// AVX-512 helpers shared by the bfloat16 kernels of the hardware paths (gemm_bf16_amx.cc,
// gemm_bf16_avx512bf16.cc). Included only by translation units compiled with AVX-512 F/BW/DQ/VL,
// after <immintrin.h> and gemm_bf16_kernels.h.
#pragma once

namespace rnnfast {
namespace gemm_bf16_detail {
namespace {

// The low n lanes of 16 (n clamped to 0..16).
inline __mmask16 mask16(idx n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff)
                 : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u);
}

// The lanes m of C at c = alpha * acc + beta * C (beta == 0: C only written).
inline void store_c(float* c, __mmask16 m, __m512 acc, float alpha, float beta) {
  if (alpha != 1.0f) acc = _mm512_mul_ps(_mm512_set1_ps(alpha), acc);
  if (beta != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, c), acc);
  _mm512_mask_storeu_ps(c, m, acc);
}

}  // namespace
}  // namespace gemm_bf16_detail
}  // namespace rnnfast
