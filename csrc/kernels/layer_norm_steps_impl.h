// The LayerNorm step kernels of layer_norm_steps.h, written once and compiled by each
// instruction-set translation unit. Internal linkage only (as cell_steps_impl.h, whose
// activations and loop annotation they share).
#pragma once
#include <algorithm>
#include <cmath>

#include "cell_steps_impl.h"
#include "layer_norm_steps.h"

namespace rnnfast {
namespace cells {
namespace {

// N sums sum_j term_k(j) for j < n, k < N, in one pass over the row and in a fixed order whatever
// the instruction set: per sum kLanes partial sums (independent chains the compiler keeps in
// vector registers), then a fixed pairwise tree. term(j, v) writes the N terms of j into v.
template <typename T>
constexpr index_t kLanes = 128 / sizeof(T);

template <typename T, int N, typename F>
inline void lane_sums(index_t n, F term, T* out) {
  constexpr index_t L = kLanes<T>;
  T acc[N][L] = {};
  index_t j = 0;
  for (; j + L <= n; j += L)
    for (index_t l = 0; l < L; ++l) {
      T v[N];
      term(j + l, v);
      for (int k = 0; k < N; ++k) acc[k][l] += v[k];
    }
  for (index_t l = 0; j + l < n; ++l) {
    T v[N];
    term(j + l, v);
    for (int k = 0; k < N; ++k) acc[k][l] += v[k];
  }
  for (int k = 0; k < N; ++k) {
    for (index_t w = L / 2; w > 0; w /= 2)
      for (index_t l = 0; l < w; ++l) acc[k][l] += acc[k][l + w];
    out[k] = acc[k][0];
  }
}

// The sum of the kLanes<T> partial sums of lane_sums, in its fixed pairwise tree (the array is
// consumed).
template <typename T>
inline T lane_total(T (&lanes)[kLanes<T>]) {
  for (index_t w = kLanes<T> / 2; w > 0; w /= 2)
    for (index_t l = 0; l < w; ++l) lanes[l] += lanes[l + w];
  return lanes[0];
}

// The moments of N rows of n values each (the rows' mean and 1/std, two passes: the mean, then
// the squared deviations from it), the N rows read together in each pass.
template <typename T, int N>
inline void moments(index_t n, T eps, const T* const (&rows)[N], T (&mean)[N], T (&rstd)[N]) {
  const T inv_n = T(1) / T(n);
  T s[N];
  lane_sums<T, N>(n, [&rows](index_t j, T* v) {
    for (int k = 0; k < N; ++k) v[k] = rows[k][j];
  }, s);
  for (int k = 0; k < N; ++k) mean[k] = s[k] * inv_n;
  lane_sums<T, N>(n, [&rows, &mean](index_t j, T* v) {
    for (int k = 0; k < N; ++k) {
      const T d = rows[k][j] - mean[k];
      v[k] = d * d;
    }
  }, s);
  for (int k = 0; k < N; ++k) rstd[k] = T(1) / std::sqrt(s[k] * inv_n + eps);
}

// The gradients of the two products' rows through their layer norms, from the gradients dx, dh
// of their normalised-and-scaled values (u = d * gain of hat = LN(v), 1/std rstd:
// rstd * (u - mean(u) - hat * mean(u * hat))): the four means in one pass over the rows, the
// two gradients written in a second.
template <typename T>
inline void normalize_grads(index_t n, const T* __restrict stats, const T* __restrict dx,
                            const T* __restrict dh, const T* __restrict ln_ih,
                            const T* __restrict ln_hh, const T* __restrict ih,
                            const T* __restrict hh, T* __restrict dgx, T* __restrict dgh) {
  const T inv_n = T(1) / T(n);
  T m[4];
  lane_sums<T, 4>(n, [=](index_t j, T* v) {
    const T ux = dx[j] * ln_ih[j], uh = dh[j] * ln_hh[j];
    v[0] = ux;
    v[1] = ux * ih[j];
    v[2] = uh;
    v[3] = uh * hh[j];
  }, m);
  const T m1x = m[0] * inv_n, m2x = m[1] * inv_n, m1h = m[2] * inv_n, m2h = m[3] * inv_n;
  const T rx = stats[0], rh = stats[1];
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    dgx[j] = rx * (dx[j] * ln_ih[j] - m1x - ih[j] * m2x);
    dgh[j] = rh * (dh[j] * ln_hh[j] - m1h - hh[j] * m2h);
  }
}

// Training keeps the normalised rows for backward: written in one contiguous pass over both
// (cheaper than eight more store streams in the gate math), which the gate math then reads.
template <typename T>
inline void normalize_rows(index_t n, const T* __restrict a, T ma, T ra, T* __restrict a_hat,
                           const T* __restrict b, T mb, T rb, T* __restrict b_hat) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    a_hat[j] = (a[j] - ma) * ra;
    b_hat[j] = (b[j] - mb) * rb;
  }
}

// The layer norms of a step's two product rows of n values (ih_in: x W_ih^T, hh_in: h W_hh^T),
// the first lines of both cells' epilogues: the moments of both rows (moments<T, 2>), 1/std of
// each into stats[0] and stats[1], and in training (Keep) the normalised rows into ih and hh.
template <typename T>
struct ProductMoments {
  T mx, rx, mh, rh;  // mean and 1/std of the ih row, of the hh row
};

template <typename T, bool Keep>
inline ProductMoments<T> product_moments(index_t n, T eps, const T* __restrict ih_in,
                                         T* __restrict ih, const T* __restrict hh_in,
                                         T* __restrict hh, T* __restrict stats) {
  T mean[2], rstd[2];
  moments<T, 2>(n, eps, {ih_in, hh_in}, mean, rstd);
  const ProductMoments<T> m{mean[0], rstd[0], mean[1], rstd[1]};
  stats[0] = m.rx;
  stats[1] = m.rh;
  if constexpr (Keep) normalize_rows(n, ih_in, m.mx, m.rx, ih, hh_in, m.mh, m.rh, hh);
  return m;
}

// Each step's epilogue reads the two rows of products once for their moments (both rows in the
// same pass, twice: mean, then variance) and once for the gate math, which in inference
// normalises them in registers (nothing of them written). Keep: training (normalize_rows).
template <typename T, bool Keep>
void lstm_ln_step_impl(index_t H, T eps, const T* __restrict ih_in, T* __restrict ih,
                       const T* __restrict hh_in, T* __restrict hh, const T* __restrict ln_ih,
                       const T* __restrict ln_hh, const T* __restrict bias,
                       const T* __restrict ln_c_weight, const T* __restrict ln_c_bias,
                       T* __restrict c, T* __restrict h, T* __restrict gates,
                       T* __restrict stats) {
  const auto [mx, rx, mh, rh] =
      product_moments<T, Keep>(4 * H, eps, ih_in, ih, hh_in, hh, stats);
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    T a[4];
    for (index_t k = 0; k < 4; ++k) {
      const index_t q = k * H + j;
      const T x_hat = Keep ? ih[q] : (ih_in[q] - mx) * rx;
      const T h_hat = Keep ? hh[q] : (hh_in[q] - mh) * rh;
      a[k] = x_hat * ln_ih[q] + h_hat * ln_hh[q] + bias[q];
    }
    const T i = act::sigmoid(a[0]), f = act::sigmoid(a[1]), g = act::tanh(a[2]);
    const T o = act::sigmoid(a[3]);
    c[j] = f * c[j] + i * g;
    gates[j] = i;
    gates[H + j] = f;
    gates[2 * H + j] = g;
    gates[3 * H + j] = o;
  }
  // h = o tanh(LN(c') * gain + bias), LN(c') in registers.
  T cm[1], cr[1];
  moments<T, 1>(H, eps, {c}, cm, cr);
  const T c_mean = cm[0], c_rstd = cr[0];
  stats[2] = c_mean;
  stats[3] = c_rstd;
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j)
    h[j] = gates[3 * H + j] * act::tanh((c[j] - c_mean) * c_rstd * ln_c_weight[j] + ln_c_bias[j]);
}

template <typename T>
void lstm_ln_step(index_t H, T eps, const T* ih_in, T* ih, const T* hh_in, T* hh,
                  const T* ln_ih, const T* ln_hh, const T* bias, const T* ln_c_weight,
                  const T* ln_c_bias, T* c, T* h, T* gates, T* stats) {
  if (ih)
    lstm_ln_step_impl<T, true>(H, eps, ih_in, ih, hh_in, hh, ln_ih, ln_hh, bias, ln_c_weight,
                               ln_c_bias, c, h, gates, stats);
  else
    lstm_ln_step_impl<T, false>(H, eps, ih_in, ih, hh_in, hh, ln_ih, ln_hh, bias, ln_c_weight,
                                ln_c_bias, c, h, gates, stats);
}

template <typename T, bool Keep>
void gru_ln_step_impl(index_t H, T eps, const T* __restrict ih_in, T* __restrict ih,
                      const T* __restrict hh_in, T* __restrict hh, const T* __restrict ln_ih,
                      const T* __restrict ln_hh, const T* __restrict b_ih,
                      const T* __restrict b_hh, const T* __restrict hprev, T* __restrict h,
                      T* __restrict gates, T* __restrict stats) {
  const auto [mx, rx, mh, rh] =
      product_moments<T, Keep>(3 * H, eps, ih_in, ih, hh_in, hh, stats);
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    T gi[3], gh[3];  // the gains' and biases' rows of gate k: r, z, n
    for (index_t k = 0; k < 3; ++k) {
      const index_t q = k * H + j;
      const T x_hat = Keep ? ih[q] : (ih_in[q] - mx) * rx;
      const T h_hat = Keep ? hh[q] : (hh_in[q] - mh) * rh;
      gi[k] = x_hat * ln_ih[q] + b_ih[q];
      gh[k] = h_hat * ln_hh[q] + b_hh[q];
    }
    const T r = act::sigmoid(gi[0] + gh[0]);
    const T z = act::sigmoid(gi[1] + gh[1]);
    const T n = act::tanh(gi[2] + r * gh[2]);
    h[j] = (T(1) - z) * n + z * hprev[j];
    gates[j] = r;
    gates[H + j] = z;
    gates[2 * H + j] = n;
  }
  stats[2] = stats[3] = T(0);
}

template <typename T>
void gru_ln_step(index_t H, T eps, const T* ih_in, T* ih, const T* hh_in, T* hh,
                 const T* ln_ih, const T* ln_hh, const T* b_ih, const T* b_hh, const T* hprev,
                 T* h, T* gates, T* stats) {
  if (ih)
    gru_ln_step_impl<T, true>(H, eps, ih_in, ih, hh_in, hh, ln_ih, ln_hh, b_ih, b_hh, hprev, h,
                              gates, stats);
  else
    gru_ln_step_impl<T, false>(H, eps, ih_in, ih, hh_in, hh, ln_ih, ln_hh, b_ih, b_hh, hprev,
                               h, gates, stats);
}

// The backward of one LSTM row in three passes: (1) over the units, the gates again from the
// saved normalised rows, the gradient of LN(c') and its two means; (2) over the units, every
// gate's pre-activation gradient da, its three parameter sums (b, ln_ih, ln_hh) and the four
// means of the products' layer norms (normalize_grads); (3) over the G*H values, dgx and dgh.
// Sums in kLanes<T> lanes of the unit index (fixed order, every instruction set alike).
template <typename T>
void lstm_ln_grad(index_t H, const T* __restrict cprev, const T* __restrict ih,
                  const T* __restrict hh, const T* __restrict stats, const T* __restrict ln_ih,
                  const T* __restrict ln_hh, const T* __restrict bias,
                  const T* __restrict ln_c_weight, const T* __restrict ln_c_bias,
                  T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh,
                  T* __restrict acc, T* __restrict scratch) {
  constexpr index_t L = kLanes<T>;
  const index_t GH = 4 * H;
  T* __restrict da = scratch;                  // [4H] gradient of the gates' pre-activations a
  T* __restrict c_hat = scratch + GH;          // [H] LN(c') before its gain
  T* __restrict u = scratch + GH + H;          // [H] gradient of LN(c'), times its gain
  T* __restrict gates = scratch + GH + 2 * H;  // [3H] i, f, g as the forward's gate math
  const T c_mean = stats[2], c_rstd = stats[3];
  T* __restrict acc_cw = acc + 4 * GH;
  T* __restrict acc_cb = acc_cw + H;
  T* __restrict acc_gih = acc + 2 * GH;
  T* __restrict acc_ghh = acc + 3 * GH;

  T s1[2][L] = {};
  for (index_t j0 = 0; j0 < H; j0 += L) {
    const index_t n = std::min(L, H - j0);
    RNNFAST_INDEPENDENT_ITERATIONS
    for (index_t l = 0; l < n; ++l) {
      const index_t j = j0 + l;
      T a[4];
      for (index_t k = 0; k < 4; ++k) {
        const index_t q = k * H + j;
        a[k] = ih[q] * ln_ih[q] + hh[q] * ln_hh[q] + bias[q];
      }
      const T i = act::sigmoid(a[0]), f = act::sigmoid(a[1]), g = act::tanh(a[2]);
      const T o = act::sigmoid(a[3]);
      gates[j] = i;
      gates[H + j] = f;
      gates[2 * H + j] = g;
      const T ch = (f * cprev[j] + i * g - c_mean) * c_rstd;
      const T tc = act::tanh(ch * ln_c_weight[j] + ln_c_bias[j]);
      const T d_cn = dh[j] * o * (T(1) - tc * tc);  // gradient of LN(c') * gain + bias
      da[3 * H + j] = dh[j] * tc * o * (T(1) - o);
      c_hat[j] = ch;
      acc_cw[j] += d_cn * ch;
      acc_cb[j] += d_cn;
      const T uj = d_cn * ln_c_weight[j];
      u[j] = uj;
      s1[0][l] += uj;
      s1[1][l] += uj * ch;
    }
  }
  const T inv_h = T(1) / T(H);
  const T m1 = lane_total<T>(s1[0]) * inv_h, m2 = lane_total<T>(s1[1]) * inv_h;

  T s2[4][L] = {};
  for (index_t j0 = 0; j0 < H; j0 += L) {
    const index_t n = std::min(L, H - j0);
    RNNFAST_INDEPENDENT_ITERATIONS
    for (index_t l = 0; l < n; ++l) {
      const index_t j = j0 + l;
      const T i = gates[j], f = gates[H + j], g = gates[2 * H + j];
      const T dct = dc[j] + c_rstd * (u[j] - m1 - c_hat[j] * m2);
      T d[4];
      d[0] = dct * g * i * (T(1) - i);
      d[1] = dct * cprev[j] * f * (T(1) - f);
      d[2] = dct * i * (T(1) - g * g);
      d[3] = da[3 * H + j];
      dc[j] = dct * f;
      dh[j] = T(0);
      // Both products' rows have the gradient da: one bias sum serves b_ih and b_hh.
      for (index_t k = 0; k < 4; ++k) {
        const index_t q = k * H + j;
        da[q] = d[k];
        acc[q] += d[k];
        acc_gih[q] += d[k] * ih[q];
        acc_ghh[q] += d[k] * hh[q];
        const T ux = d[k] * ln_ih[q], uh = d[k] * ln_hh[q];
        s2[0][l] += ux;
        s2[1][l] += ux * ih[q];
        s2[2][l] += uh;
        s2[3][l] += uh * hh[q];
      }
    }
  }
  const T inv_n = T(1) / T(GH);
  const T m1x = lane_total<T>(s2[0]) * inv_n, m2x = lane_total<T>(s2[1]) * inv_n;
  const T m1h = lane_total<T>(s2[2]) * inv_n, m2h = lane_total<T>(s2[3]) * inv_n;
  const T rx = stats[0], rh = stats[1];
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t q = 0; q < GH; ++q) {
    dgx[q] = rx * (da[q] * ln_ih[q] - m1x - ih[q] * m2x);
    dgh[q] = rh * (da[q] * ln_hh[q] - m1h - hh[q] * m2h);
  }
}

template <typename T>
void gru_ln_grad(index_t H, const T* __restrict hprev, const T* __restrict ih,
                 const T* __restrict hh, const T* __restrict stats, const T* __restrict ln_ih,
                 const T* __restrict ln_hh, const T* __restrict b_ih, const T* __restrict b_hh,
                 T* __restrict dh, T* __restrict dgx, T* __restrict dgh, T* __restrict acc,
                 T* __restrict scratch) {
  const index_t GH = 3 * H;
  T* d_gi = scratch;       // [3H] gradient of gi
  T* d_gh = scratch + GH;  // [3H] gradient of gh
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const index_t z_ = H + j, n_ = 2 * H + j;
    T gi[3], gh[3];  // the gates again, as the forward's gate math
    for (index_t k = 0; k < 3; ++k) {
      const index_t q = k * H + j;
      gi[k] = ih[q] * ln_ih[q] + b_ih[q];
      gh[k] = hh[q] * ln_hh[q] + b_hh[q];
    }
    const T r = act::sigmoid(gi[0] + gh[0]);
    const T z = act::sigmoid(gi[1] + gh[1]);
    const T n = act::tanh(gi[2] + r * gh[2]);
    const T gh_n = gh[2];
    const T dn = dh[j] * (T(1) - z) * (T(1) - n * n);
    const T dz = dh[j] * (hprev[j] - n) * z * (T(1) - z);
    const T dr = dn * gh_n * r * (T(1) - r);
    d_gi[j] = d_gh[j] = dr;
    d_gi[z_] = d_gh[z_] = dz;
    d_gi[n_] = dn;
    d_gh[n_] = dn * r;
    dh[j] *= z;
  }
  T* acc_bhh = acc + GH;
  T* acc_gih = acc + 2 * GH;
  T* acc_ghh = acc + 3 * GH;
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t q = 0; q < GH; ++q) {
    acc[q] += d_gi[q];
    acc_bhh[q] += d_gh[q];
    acc_gih[q] += d_gi[q] * ih[q];
    acc_ghh[q] += d_gh[q] * hh[q];
  }
  normalize_grads(GH, stats, d_gi, d_gh, ln_ih, ln_hh, ih, hh, dgx, dgh);
}

template <typename T>
constexpr LayerNormSteps<T> make_layer_norm_steps() {
  return {lstm_ln_step<T>, gru_ln_step<T>, lstm_ln_grad<T>, gru_ln_grad<T>};
}

}  // namespace
}  // namespace cells
}  // namespace rnnfast
