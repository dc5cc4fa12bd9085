// The step kernels of cell_steps.h, written once and compiled by each instruction-set
// translation unit (the compiler vectorises the loops for that set). Internal linkage only.
#pragma once
#include <type_traits>

#include "activations.h"
#include "cell_steps.h"

// The gate blocks of one row (g[j], g[H + j], ...) never overlap, so no iteration of a loop over
// j depends on another: say so, or the compiler needs more run-time alias checks than it allows
// and leaves the loop scalar.
#if defined(__clang__)
#define RNNFAST_INDEPENDENT_ITERATIONS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define RNNFAST_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define RNNFAST_INDEPENDENT_ITERATIONS
#endif

namespace rnnfast {
namespace cells {
namespace {

template <typename T>
void rnn_step(bool relu, index_t n, index_t, index_t, T* __restrict g, const T* __restrict hg,
              const T* __restrict bias, T* __restrict h) {
  if (relu) {
    RNNFAST_INDEPENDENT_ITERATIONS
    for (index_t j = 0; j < n; ++j) h[j] = g[j] = act::relu(g[j] + hg[j] + bias[j]);
  } else {
    RNNFAST_INDEPENDENT_ITERATIONS
    for (index_t j = 0; j < n; ++j) h[j] = g[j] = act::tanh(g[j] + hg[j] + bias[j]);
  }
}

// The LSTM step of every option: Peep (peepholes: i and f see c_{t-1} * p, o sees c_t * p_o),
// Zone (zoneout after the step, Mask: its d per unit from the masks, else the constant rate),
// Hg (the recurrent product apart in hg, else merged into g, and h also written to h_next),
// Keep (the activated gates written to g).
template <typename T, bool Peep, bool Zone, bool Mask, bool Hg, bool Keep = true>
inline void lstm_cell(index_t n, index_t gs, index_t hs, T* __restrict g, const T* __restrict hg,
                      const T* __restrict bias, const T* __restrict peep,
                      const T* __restrict hprev, const T* __restrict mask_h,
                      const T* __restrict mask_c, T rate, T* __restrict h, T* __restrict c,
                      T* __restrict h_next) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    const T cp = c[j];
    // the pre-activations: (g + hg) + bias, or g + bias when g holds both products
    T ai = Hg ? g[j] + hg[j] + bias[j] : g[j] + bias[j];
    T af = Hg ? g[gs + j] + hg[hs + j] + bias[gs + j] : g[gs + j] + bias[gs + j];
    const T ag = Hg ? g[2 * gs + j] + hg[2 * hs + j] + bias[2 * gs + j]
                    : g[2 * gs + j] + bias[2 * gs + j];
    T ao = Hg ? g[3 * gs + j] + hg[3 * hs + j] + bias[3 * gs + j]
              : g[3 * gs + j] + bias[3 * gs + j];
    if constexpr (Peep) {
      ai += peep[j] * cp;
      af += peep[gs + j] * cp;
    }
    const T i = act::sigmoid(ai);
    const T f = act::sigmoid(af);
    const T gg = act::tanh(ag);
    const T cn = f * cp + i * gg;
    if constexpr (Peep) ao += peep[2 * gs + j] * cn;
    const T o = act::sigmoid(ao);
    const T hn = o * act::tanh(cn);
    T hz = hn;
    if constexpr (Zone) {
      const T dc = Mask ? mask_c[j] : rate;
      const T dh = Mask ? mask_h[j] : rate;
      c[j] = dc * cp + (T(1) - dc) * cn;
      hz = dh * hprev[j] + (T(1) - dh) * hn;
    } else {
      c[j] = cn;
    }
    h[j] = hz;
    if constexpr (!Hg) h_next[j] = hz;
    if constexpr (Keep) {
      g[j] = i;
      g[gs + j] = f;
      g[2 * gs + j] = gg;
      g[3 * gs + j] = o;
    }
  }
}

// lstm_cell with the run-time options as template ones: peep, zoneout (hprev not null), its
// masks (mask_h and mask_c both or neither), hg, and (hg null only) keep_gates.
template <typename T>
void lstm_general(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias,
                  const T* peep, const T* hprev, const T* mask_h, const T* mask_c, T rate, T* h,
                  T* c, T* h_next, bool keep_gates) {
  auto run = [&](auto peep_c, auto zone_c, auto mask_c_, auto hg_c, auto keep_c) {
    constexpr bool Zone = decltype(zone_c)::value;
    lstm_cell<T, decltype(peep_c)::value, Zone, Zone && decltype(mask_c_)::value,
              decltype(hg_c)::value, decltype(keep_c)::value>(
        n, gs, hs, g, hg, bias, peep, hprev, mask_h, mask_c, rate, h, c, h_next);
  };
  using Y = std::true_type;
  using N = std::false_type;
  auto with_hg = [&](auto peep_c, auto zone_c, auto mask_c_) {
    if (hg) run(peep_c, zone_c, mask_c_, Y{}, Y{});
    else if (keep_gates) run(peep_c, zone_c, mask_c_, N{}, Y{});
    else run(peep_c, zone_c, mask_c_, N{}, N{});
  };
  auto with_zone = [&](auto peep_c) {
    if (hprev && mask_h) with_hg(peep_c, Y{}, Y{});
    else if (hprev) with_hg(peep_c, Y{}, N{});
    else with_hg(peep_c, N{}, N{});
  };
  if (peep) with_zone(Y{});
  else with_zone(N{});
}

template <typename T>
void lstm_step(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias, T* h, T* c) {
  lstm_cell<T, false, false, false, true>(n, gs, hs, g, hg, bias, nullptr, nullptr, nullptr,
                                          nullptr, T(0), h, c, nullptr);
}

template <typename T>
void lstm_peephole_step(index_t n, index_t gs, index_t hs, T* g, const T* hg, const T* bias,
                        const T* peep, T* h, T* c) {
  lstm_cell<T, true, false, false, true>(n, gs, hs, g, hg, bias, peep, nullptr, nullptr,
                                         nullptr, T(0), h, c, nullptr);
}

template <typename T>
void gru_step(index_t n, index_t gs, index_t hs, T* __restrict g, const T* __restrict hg,
              const T* __restrict bias, const T* __restrict b_hn, const T* __restrict hprev,
              T* __restrict h, T* __restrict hn_out) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    const T r = act::sigmoid(g[j] + hg[j] + bias[j]);
    const T z = act::sigmoid(g[gs + j] + hg[hs + j] + bias[gs + j]);
    const T hn = hg[2 * hs + j] + b_hn[j];
    const T nn = act::tanh(g[2 * gs + j] + bias[2 * gs + j] + r * hn);
    h[j] = (T(1) - z) * nn + z * hprev[j];
    g[j] = r;
    g[gs + j] = z;
    g[2 * gs + j] = nn;
    if (hn_out) hn_out[j] = hn;
  }
}

template <typename T>
void gru_before_gates(index_t H, T* __restrict g, const T* __restrict hg,
                      const T* __restrict bias, const T* __restrict h, T* __restrict rh) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const T r = act::sigmoid(g[j] + hg[j] + bias[j]);
    g[j] = r;
    g[H + j] = act::sigmoid(g[H + j] + hg[H + j] + bias[H + j]);
    rh[j] = r * h[j];
  }
}

template <typename T>
void gru_before_update(index_t H, T* __restrict g, const T* __restrict hn,
                       const T* __restrict bias, T* __restrict h) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const T z = g[H + j];
    const T n = act::tanh(g[2 * H + j] + hn[j] + bias[2 * H + j]);
    h[j] = (T(1) - z) * n + z * h[j];
    g[2 * H + j] = n;
  }
}

template <typename T>
void rnn_grad(bool relu, index_t n, index_t, const T* __restrict hnew, T* __restrict dh,
              T* __restrict dgx, T* __restrict dgh) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    const T d = relu ? (hnew[j] > T(0) ? dh[j] : T(0)) : dh[j] * (T(1) - hnew[j] * hnew[j]);
    dgx[j] = d;
    dgh[j] = d;
    dh[j] = T(0);
  }
}

template <typename T>
void lstm_grad(index_t n, index_t ld, const T* __restrict gates, const T* __restrict cprev,
               T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    const T i = gates[j], f = gates[ld + j], g = gates[2 * ld + j], o = gates[3 * ld + j];
    const T tc = act::tanh(f * cprev[j] + i * g);
    const T dct = dc[j] + dh[j] * o * (T(1) - tc * tc);
    const T di = dct * g * i * (T(1) - i);
    const T df = dct * cprev[j] * f * (T(1) - f);
    const T dg = dct * i * (T(1) - g * g);
    const T d_o = dh[j] * tc * o * (T(1) - o);
    dgx[j] = dgh[j] = di;
    dgx[ld + j] = dgh[ld + j] = df;
    dgx[2 * ld + j] = dgh[2 * ld + j] = dg;
    dgx[3 * ld + j] = dgh[3 * ld + j] = d_o;
    dc[j] = dct * f;
    dh[j] = T(0);
  }
}

template <typename T>
void lstm_peephole_grad(index_t n, index_t ld, const T* __restrict gates,
                        const T* __restrict cprev, const T* __restrict peep, T* __restrict dh,
                        T* __restrict dc, T* __restrict dgx, T* __restrict dgh) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    const T i = gates[j], f = gates[ld + j], g = gates[2 * ld + j], o = gates[3 * ld + j];
    const T tc = act::tanh(f * cprev[j] + i * g);
    const T d_o = dh[j] * tc * o * (T(1) - o);
    const T dct = dc[j] + dh[j] * o * (T(1) - tc * tc) + d_o * peep[2 * ld + j];
    const T di = dct * g * i * (T(1) - i);
    const T df = dct * cprev[j] * f * (T(1) - f);
    const T dg = dct * i * (T(1) - g * g);
    dgx[j] = dgh[j] = di;
    dgx[ld + j] = dgh[ld + j] = df;
    dgx[2 * ld + j] = dgh[2 * ld + j] = dg;
    dgx[3 * ld + j] = dgh[3 * ld + j] = d_o;
    dc[j] = dct * f + di * peep[j] + df * peep[ld + j];
    dh[j] = T(0);
  }
}

template <typename T>
void gru_grad(index_t n, index_t ld, const T* __restrict gates, const T* __restrict hn,
              const T* __restrict hprev, T* __restrict dh, T* __restrict dgx, T* __restrict dgh) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < n; ++j) {
    const T r = gates[j], z = gates[ld + j], nn = gates[2 * ld + j];
    const T dn = dh[j] * (T(1) - z) * (T(1) - nn * nn);
    const T dz = dh[j] * (hprev[j] - nn) * z * (T(1) - z);
    const T dr = dn * hn[j] * r * (T(1) - r);
    dgx[j] = dgh[j] = dr;
    dgx[ld + j] = dgh[ld + j] = dz;
    dgx[2 * ld + j] = dn;
    dgh[2 * ld + j] = dn * r;
    dh[j] = dh[j] * z;
  }
}

template <typename T>
void gru_before_grad_n(index_t H, const T* __restrict gates, const T* __restrict hprev,
                       T* __restrict dh, T* __restrict dgx, T* __restrict dgn) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const T z = gates[H + j], n = gates[2 * H + j];
    const T dn = dh[j] * (T(1) - z) * (T(1) - n * n);
    dgx[H + j] = dh[j] * (hprev[j] - n) * z * (T(1) - z);
    dgx[2 * H + j] = dn;
    dgn[j] = dn;
    dh[j] = dh[j] * z;
  }
}

template <typename T>
void gru_before_grad_r(index_t H, const T* __restrict gates, const T* __restrict hprev,
                       const T* __restrict drh, T* __restrict dh, T* __restrict dgx,
                       T* __restrict dgrz) {
  RNNFAST_INDEPENDENT_ITERATIONS
  for (index_t j = 0; j < H; ++j) {
    const T r = gates[j];
    const T dr = drh[j] * hprev[j] * r * (T(1) - r);
    dgx[j] = dr;
    dgrz[j] = dr;
    dgrz[H + j] = dgx[H + j];
    dh[j] += drh[j] * r;
  }
}

template <typename T>
constexpr CellSteps<T> make_steps() {
  return {rnn_step<T>,          lstm_step<T>,         lstm_peephole_step<T>, lstm_general<T>,
          gru_step<T>,
          gru_before_gates<T>,  gru_before_update<T>, rnn_grad<T>,           lstm_grad<T>,
          lstm_peephole_grad<T>, gru_grad<T>,         gru_before_grad_n<T>,  gru_before_grad_r<T>};
}

}  // namespace
}  // namespace cells
}  // namespace rnnfast
