// The pooled convolution backward's kernels for AVX-512 (compiled with -mavx512f/bw/dq/vl):
// blocks of 8 vectors (128 floats) of one row in registers; float32's list by step 16 channels
// at a time.
#include <immintrin.h>

#include <algorithm>

#include "conv1d_pooled_impl.h"
#include "simd_avx512.h"

namespace rnnfast {
namespace pooled {
namespace {

struct F32 : simd::Avx512F32 {
  static constexpr int kAcc = 8;
};
struct F64 : simd::Avx512F64 {
  static constexpr int kAcc = 8;
};

// A window whose winners span more steps than this is listed one entry at a time (each step
// costs a pass over the window's channels).
constexpr index_t kMaxVectorSteps = 8;

// Channels [c0, c0 + 16) of a window (valid: those below Co) whose winner is step t and whose
// gradient (gv, loaded here) is not zero (NaN included, as `v != 0`).
inline __mmask16 winners_at(const index_t* a, const float* gj, index_t c0, __mmask16 valid,
                            __m512i t, __m512* gv) {
  const auto v0 = static_cast<__mmask8>(valid), v1 = static_cast<__mmask8>(valid >> 8);
  const __mmask8 e0 =
      _mm512_mask_cmpeq_epi64_mask(v0, _mm512_maskz_loadu_epi64(v0, a + c0), t);
  const __mmask8 e1 =
      _mm512_mask_cmpeq_epi64_mask(v1, _mm512_maskz_loadu_epi64(v1, a + c0 + 8), t);
  *gv = _mm512_maskz_loadu_ps(valid, gj + c0);
  const __mmask16 nz = _mm512_mask_cmp_ps_mask(valid, *gv, _mm512_setzero_ps(), _CMP_NEQ_UQ);
  return static_cast<__mmask16>((e0 | (unsigned(e1) << 8)) & nz);
}

// conv1d_pooled.h's by_step, window by window: a window's winners between steps lo and hi
// (at most kMaxVectorSteps apart), for each of those steps in order, compressed 16 channels at a
// time in channel order onto the end of the step's list. Windows in order, so each step's
// entries are by_step_scan's (windows, then channels), overlapping windows included; the
// counting pass runs over the same masks.
void by_step_f32(index_t np, index_t Co, index_t l_out, index_t wt_stride,
                 const index_t* __restrict arg, const float* __restrict g,
                 index_t* __restrict start, index_t* __restrict off, float* __restrict gl) {
  std::fill(start, start + l_out + 1, index_t(0));
  const __m512i lanes = _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi64(wt_stride));
  const __m512i eight = _mm512_set1_epi64(8 * wt_stride);
  // each(window, listed one by one?, per_block(t, c0, mask, gv), per_entry(n))
  auto each = [&](auto&& per_block, auto&& per_entry) {
    for (index_t j = 0; j < np; ++j) {
      const index_t* a = arg + j * Co;
      const float* gj = g + j * Co;
      index_t lo = a[0], hi = a[0];
      for (index_t n = 1; n < Co; ++n) {
        lo = std::min(lo, a[n]);
        hi = std::max(hi, a[n]);
      }
      if (hi - lo >= kMaxVectorSteps) {
        for (index_t n = 0; n < Co; ++n)
          if (gj[n] != 0.0f) per_entry(a[n], n, gj[n]);
        continue;
      }
      for (index_t t = lo; t <= hi; ++t) {
        const __m512i tv = _mm512_set1_epi64(t);
        for (index_t c0 = 0; c0 < Co; c0 += 16) {
          const index_t w = std::min<index_t>(16, Co - c0);
          const auto valid = static_cast<__mmask16>((1u << w) - 1u);
          __m512 gv;
          const __mmask16 m = winners_at(a, gj, c0, valid, tv, &gv);
          per_block(t, c0, m, gv);
        }
      }
    }
  };
  each([&](index_t t, index_t, __mmask16 m, __m512) { start[t + 1] += __builtin_popcount(m); },
       [&](index_t t, index_t, float) { ++start[t + 1]; });
  for (index_t t = 0; t < l_out; ++t) start[t + 1] += start[t];
  // start[t]: the next free entry of step t, then the start of step t + 1 (shifted back below)
  each(
      [&](index_t t, index_t c0, __mmask16 m, __m512 gv) {
        const index_t at = start[t];
        const auto m0 = static_cast<__mmask8>(m), m1 = static_cast<__mmask8>(m >> 8);
        const unsigned k0 = __builtin_popcount(m0), k = __builtin_popcount(m);
        _mm512_mask_storeu_ps(gl + at, static_cast<__mmask16>((1u << k) - 1u),
                              _mm512_maskz_compress_ps(m, gv));
        const __m512i o0 = _mm512_add_epi64(_mm512_set1_epi64(c0 * wt_stride), lanes);
        _mm512_mask_storeu_epi64(off + at, static_cast<__mmask8>((1u << k0) - 1u),
                                 _mm512_maskz_compress_epi64(m0, o0));
        _mm512_mask_storeu_epi64(off + at + k0, static_cast<__mmask8>((1u << (k - k0)) - 1u),
                                 _mm512_maskz_compress_epi64(m1, _mm512_add_epi64(o0, eight)));
        start[t] = at + k;
      },
      [&](index_t t, index_t n, float v) {
        const index_t at = start[t]++;
        off[at] = n * wt_stride;
        gl[at] = v;
      });
  for (index_t t = l_out; t > 0; --t) start[t] = start[t - 1];
  start[0] = 0;
}

}  // namespace

const PooledGrad<float> kPooledAvx512F32 = {&gather_rows<F32>, &copy_rows<F32>, &by_step_f32};
const PooledGrad<double> kPooledAvx512F64 = make_pooled<F64>();

}  // namespace pooled
}  // namespace rnnfast
