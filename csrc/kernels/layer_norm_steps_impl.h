// The LayerNorm step kernels of layer_norm_steps.h, written once and compiled by each
// instruction-set translation unit. Internal linkage only (as cell_steps_impl.h, whose
// activations and loop annotation they share).
#pragma once
#include <cmath>

#include "cell_steps_impl.h"
#include "layer_norm_steps.h"

namespace rnnfast {
namespace cells {
namespace {

// sum_j term(j) for j < n in a fixed order whatever the instruction set: kLanes partial sums
// (independent chains the compiler keeps in vector registers), then a fixed pairwise tree.
template <typename T>
constexpr index_t kLanes = 128 / sizeof(T);

template <typename T, typename F>
inline T lane_sum(index_t n, F term) {
  constexpr index_t L = kLanes<T>;
  T acc[L] = {};
  index_t j = 0;
  for (; j + L <= n; j += L)
    for (index_t l = 0; l < L; ++l) acc[l] += term(j + l);
  for (index_t l = 0; j + l < n; ++l) acc[l] += term(j + l);
  for (index_t w = L / 2; w > 0; w /= 2)
    for (index_t l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// dst = LN(src) (no gain), two passes for the moments; returns 1/std, the mean in *mean.
// dst may be src.
template <typename T>
inline T normalize(index_t n, T eps, const T* src, T* dst, T* mean_out) {
  const T inv_n = T(1) / T(n);
  const T mean = lane_sum<T>(n, [src](index_t j) { return src[j]; }) * inv_n;
  const T var = lane_sum<T>(n, [src, mean](index_t j) {
                  const T d = src[j] - mean;
                  return d * d;
                }) * inv_n;
  const T rstd = T(1) / std::sqrt(var + eps);
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) dst[j] = (src[j] - mean) * rstd;
  if (mean_out) *mean_out = mean;
  return rstd;
}

// out = gradient of v for the gradient u = d * gain of LN(v) = hat, 1/std rstd:
// rstd * (u - mean(u) - hat * mean(u * hat)).
template <typename T>
inline void normalize_grad(index_t n, T rstd, const T* __restrict d, const T* __restrict gain,
                           const T* __restrict hat, T* __restrict out) {
  const T inv_n = T(1) / T(n);
  const T m1 = lane_sum<T>(n, [d, gain](index_t j) { return d[j] * gain[j]; }) * inv_n;
  const T m2 = lane_sum<T>(n, [d, gain, hat](index_t j) { return d[j] * gain[j] * hat[j]; }) *
               inv_n;
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) out[j] = rstd * (d[j] * gain[j] - m1 - hat[j] * m2);
}

// acc_b += d, acc_gain += d * hat over n values.
template <typename T>
inline void accumulate(index_t n, const T* __restrict d, const T* __restrict hat,
                       T* __restrict acc_b, T* __restrict acc_gain) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    acc_b[j] += d[j];
    acc_gain[j] += d[j] * hat[j];
  }
}

template <typename T>
void lstm_ln_step(index_t H, T eps, const T* ih_in, T* ih, const T* hh_in, T* hh,
                  const T* __restrict ln_ih, const T* __restrict ln_hh, const T* __restrict bias,
                  const T* __restrict ln_c_weight, const T* __restrict ln_c_bias,
                  T* __restrict c, T* __restrict h, T* __restrict gates, T* __restrict stats) {
  const index_t GH = 4 * H;
  stats[0] = normalize(GH, eps, ih_in, ih, static_cast<T*>(nullptr));
  stats[1] = normalize(GH, eps, hh_in, hh, static_cast<T*>(nullptr));
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    T a[4];
    for (index_t k = 0; k < 4; ++k) {
      const index_t q = k * H + j;
      a[k] = ih[q] * ln_ih[q] + hh[q] * ln_hh[q] + bias[q];
    }
    const T i = act::sigmoid(a[0]), f = act::sigmoid(a[1]), g = act::tanh(a[2]);
    const T o = act::sigmoid(a[3]);
    c[j] = f * c[j] + i * g;
    gates[j] = i;
    gates[H + j] = f;
    gates[2 * H + j] = g;
    gates[3 * H + j] = o;
  }
  // LN(c') into h, then h = o tanh(LN(c') * gain + bias).
  stats[3] = normalize(H, eps, c, h, stats + 2);
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j)
    h[j] = gates[3 * H + j] * act::tanh(h[j] * ln_c_weight[j] + ln_c_bias[j]);
}

template <typename T>
void gru_ln_step(index_t H, T eps, const T* ih_in, T* ih, const T* hh_in, T* hh,
                 const T* __restrict ln_ih, const T* __restrict ln_hh, const T* __restrict b_ih,
                 const T* __restrict b_hh, const T* __restrict hprev, T* __restrict h,
                 T* __restrict gates, T* __restrict stats) {
  const index_t GH = 3 * H;
  stats[0] = normalize(GH, eps, ih_in, ih, static_cast<T*>(nullptr));
  stats[1] = normalize(GH, eps, hh_in, hh, static_cast<T*>(nullptr));
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const index_t z_ = H + j, n_ = 2 * H + j;
    const T r = act::sigmoid(ih[j] * ln_ih[j] + b_ih[j] + hh[j] * ln_hh[j] + b_hh[j]);
    const T z = act::sigmoid(ih[z_] * ln_ih[z_] + b_ih[z_] + hh[z_] * ln_hh[z_] + b_hh[z_]);
    const T gh_n = hh[n_] * ln_hh[n_] + b_hh[n_];
    const T n = act::tanh(ih[n_] * ln_ih[n_] + b_ih[n_] + r * gh_n);
    h[j] = (T(1) - z) * n + z * hprev[j];
    gates[j] = r;
    gates[z_] = z;
    gates[n_] = n;
  }
  stats[2] = stats[3] = T(0);
}

template <typename T>
void lstm_ln_grad(index_t H, const T* __restrict gates, const T* __restrict cprev,
                  const T* __restrict ih, const T* __restrict hh, const T* __restrict stats,
                  const T* __restrict ln_ih, const T* __restrict ln_hh,
                  const T* __restrict ln_c_weight, const T* __restrict ln_c_bias,
                  T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh,
                  T* __restrict acc, T* __restrict scratch) {
  const index_t GH = 4 * H;
  T* da = scratch;               // [4H] gradient of the gates' pre-activations a
  T* c_hat = scratch + GH;       // [H]
  T* d_chat = scratch + GH + H;  // [H] gradient of LN(c') (times its gain)
  const T c_mean = stats[2], c_rstd = stats[3];
  T* acc_cw = acc + 4 * GH;
  T* acc_cb = acc_cw + H;
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
    const T ch = (f * cprev[j] + i * g - c_mean) * c_rstd;
    const T tc = act::tanh(ch * ln_c_weight[j] + ln_c_bias[j]);
    const T d_cn = dh[j] * o * (T(1) - tc * tc);  // gradient of LN(c') * gain + bias
    da[3 * H + j] = dh[j] * tc * o * (T(1) - o);
    c_hat[j] = ch;
    d_chat[j] = d_cn;
    acc_cw[j] += d_cn * ch;
    acc_cb[j] += d_cn;
  }
  const T inv_h = T(1) / T(H);
  const T m1 = lane_sum<T>(H, [&](index_t j) { return d_chat[j] * ln_c_weight[j]; }) * inv_h;
  const T m2 = lane_sum<T>(H, [&](index_t j) {
                 return d_chat[j] * ln_c_weight[j] * c_hat[j];
               }) * inv_h;
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const T i = gates[j], f = gates[H + j], g = gates[2 * H + j];
    const T dct = dc[j] + c_rstd * (d_chat[j] * ln_c_weight[j] - m1 - c_hat[j] * m2);
    da[j] = dct * g * i * (T(1) - i);
    da[H + j] = dct * cprev[j] * f * (T(1) - f);
    da[2 * H + j] = dct * i * (T(1) - g * g);
    dc[j] = dct * f;
    dh[j] = T(0);
  }
  accumulate(GH, da, ih, acc, acc + 2 * GH);
  accumulate(GH, da, hh, acc + GH, acc + 3 * GH);
  normalize_grad(GH, stats[0], da, ln_ih, ih, dgx);
  normalize_grad(GH, stats[1], da, ln_hh, hh, dgh);
}

template <typename T>
void gru_ln_grad(index_t H, const T* __restrict gates, const T* __restrict hprev,
                 const T* __restrict ih, const T* __restrict hh, const T* __restrict stats,
                 const T* __restrict ln_ih, const T* __restrict ln_hh, const T* __restrict b_hh,
                 T* __restrict dh, T* __restrict dgx, T* __restrict dgh, T* __restrict acc,
                 T* __restrict scratch) {
  const index_t GH = 3 * H;
  T* d_gi = scratch;       // [3H] gradient of gi
  T* d_gh = scratch + GH;  // [3H] gradient of gh
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const index_t z_ = H + j, n_ = 2 * H + j;
    const T r = gates[j], z = gates[z_], n = gates[n_];
    const T gh_n = hh[n_] * ln_hh[n_] + b_hh[n_];
    const T dn = dh[j] * (T(1) - z) * (T(1) - n * n);
    const T dz = dh[j] * (hprev[j] - n) * z * (T(1) - z);
    const T dr = dn * gh_n * r * (T(1) - r);
    d_gi[j] = d_gh[j] = dr;
    d_gi[z_] = d_gh[z_] = dz;
    d_gi[n_] = dn;
    d_gh[n_] = dn * r;
    dh[j] *= z;
  }
  accumulate(GH, d_gi, ih, acc, acc + 2 * GH);
  accumulate(GH, d_gh, hh, acc + GH, acc + 3 * GH);
  normalize_grad(GH, stats[0], d_gi, ln_ih, ih, dgx);
  normalize_grad(GH, stats[1], d_gh, ln_hh, hh, dgh);
}

template <typename T>
constexpr LayerNormSteps<T> make_layer_norm_steps() {
  return {lstm_ln_step<T>, gru_ln_step<T>, lstm_ln_grad<T>, gru_ln_grad<T>};
}

}  // namespace
}  // namespace cells
}  // namespace rnnfast
