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

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
// lstm_cell (below) in float on 16 lanes (act::v16), software-pipelined by vectors of 16
// units: the iteration of vector q computes the gates i, f, g (and o) of vector q and tanh(c)
// (and, with peepholes, o) of vector q - 1, five independent nonlinearities in flight together
// where one vector alone has a chain of two (the gates, then tanh of the c they give); the
// first iteration has no vector q - 1, the last (q = vectors) no vector q. The last n % 16
// units are masked lanes; every unit gets the same operations wherever it sits, so the values
// do not depend on how the units are split (threads, blocks). The AVX2 and portable builds
// vectorise lstm_cell's loop as written.
struct LstmV16 {
  index_t n, gs, hs;
  float* __restrict g;
  const float* __restrict hg;
  const float* __restrict bias;
  const float* __restrict peep;
  const float* __restrict hprev;
  const float* __restrict mask_h;
  const float* __restrict mask_c;
  float rate;
  float* __restrict h;
  float* __restrict c;
  float* __restrict h_next;
  // carried from vector q - 1 to the next iteration: c_t and o (with peepholes, its
  // pre-activation)
  act::v16::vec c_prev, o_prev;

  __mmask16 lanes(index_t q) const {
    const index_t left = n - 16 * q;
    return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
  }

  template <bool Cur, bool Prev, bool Peep, bool Zone, bool Mask, bool Hg, bool Keep>
  [[gnu::always_inline]] inline void iteration(index_t q) {
    using act::v16::vec;
    // slots: vector q's i, f, g (and o without peepholes), then vector q - 1's o (peepholes)
    // and c_t, whose tanh
    constexpr int NC = Cur ? (Peep ? 3 : 4) : 0, NP = Prev ? (Peep ? 2 : 1) : 0;
    constexpr int N = NC + NP;
    constexpr unsigned tanh_bits = (Cur ? 1u << 2 : 0u) | (Prev ? 1u << (N - 1) : 0u);
    const index_t j = 16 * q;
    const __mmask16 m = Cur ? lanes(q) : 0;
    vec x[N];
    vec cp = _mm512_setzero_ps(), o_pre = _mm512_setzero_ps();
    if constexpr (Cur) {
      auto ld = [&](const float* p) { return _mm512_maskz_loadu_ps(m, p + j); };
      auto pre = [&](index_t k) {  // (g + hg) + bias, or g + bias, of gate k
        const vec a = ld(g + k * gs);
        return _mm512_add_ps(Hg ? _mm512_add_ps(a, ld(hg + k * hs)) : a, ld(bias + k * gs));
      };
      cp = ld(c);
      x[0] = pre(0);
      x[1] = pre(1);
      x[2] = pre(2);
      if constexpr (Peep) {
        x[0] = _mm512_fmadd_ps(ld(peep), cp, x[0]);
        x[1] = _mm512_fmadd_ps(ld(peep + gs), cp, x[1]);
        o_pre = pre(3);
      } else {
        x[3] = pre(3);
      }
    }
    if constexpr (Prev) {
      if constexpr (Peep) x[NC] = o_prev;
      x[N - 1] = c_prev;
    }
    act::v16::activate<N, tanh_bits>(x);
    if constexpr (Prev) {  // vector q - 1: h = o tanh(c_t), zoneout's blend, o kept
      const index_t jp = j - 16;
      const __mmask16 mp = lanes(q - 1);
      const vec o = Peep ? x[NC] : o_prev;
      const vec hn = _mm512_mul_ps(o, x[N - 1]);
      vec hz = hn;
      if constexpr (Zone) {
        const vec dh = Mask ? _mm512_maskz_loadu_ps(mp, mask_h + jp) : act::v16::set1(rate);
        hz = _mm512_fmadd_ps(dh, _mm512_maskz_loadu_ps(mp, hprev + jp),
                             _mm512_mul_ps(_mm512_sub_ps(act::v16::set1(1.0f), dh), hn));
      }
      _mm512_mask_storeu_ps(h + jp, mp, hz);
      if constexpr (!Hg) _mm512_mask_storeu_ps(h_next + jp, mp, hz);
      if constexpr (Keep) _mm512_mask_storeu_ps(g + 3 * gs + jp, mp, o);
    }
    if constexpr (Cur) {  // vector q: c_t, zoneout's blend of c, the gates kept
      const vec i = x[0], f = x[1], gg = x[2];
      const vec cn = _mm512_fmadd_ps(f, cp, _mm512_mul_ps(i, gg));
      if constexpr (Zone) {
        const vec dc = Mask ? _mm512_maskz_loadu_ps(m, mask_c + j) : act::v16::set1(rate);
        _mm512_mask_storeu_ps(
            c + j, m,
            _mm512_fmadd_ps(dc, cp, _mm512_mul_ps(_mm512_sub_ps(act::v16::set1(1.0f), dc), cn)));
      } else {
        _mm512_mask_storeu_ps(c + j, m, cn);
      }
      if constexpr (Keep) {
        _mm512_mask_storeu_ps(g + j, m, i);
        _mm512_mask_storeu_ps(g + gs + j, m, f);
        _mm512_mask_storeu_ps(g + 2 * gs + j, m, gg);
      }
      c_prev = cn;
      if constexpr (Peep)
        o_prev = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, peep + 2 * gs + j), cn, o_pre);
      else
        o_prev = x[3];
    }
  }

  // Inlined into lstm_cell, so that the struct lives in registers: as a call on `this`, c_prev
  // and o_prev went through memory at every vector and the pointers were reloaded (2-3% of
  // the kernel; bench/RESULTS.md).
  template <bool Peep, bool Zone, bool Mask, bool Hg, bool Keep>
  [[gnu::always_inline]] inline void run() {
    const index_t vectors = (n + 15) / 16;
    if (vectors == 0) return;
    iteration<true, false, Peep, Zone, Mask, Hg, Keep>(0);
    for (index_t q = 1; q < vectors; ++q) iteration<true, true, Peep, Zone, Mask, Hg, Keep>(q);
    iteration<false, true, Peep, Zone, Mask, Hg, Keep>(vectors);
  }
};
#endif

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
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float>) {
    LstmV16 cell{n, gs, hs, g, hg, bias, peep, hprev, mask_h, mask_c, rate, h, c, h_next,
                 _mm512_setzero_ps(), _mm512_setzero_ps()};
    cell.run<Peep, Zone, Mask, Hg, Keep>();
    return;
  }
#endif
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
// masks (mask_h and mask_c both or neither), hg, and keep_gates.
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
    if (hg && keep_gates) run(peep_c, zone_c, mask_c_, Y{}, Y{});
    else if (hg) run(peep_c, zone_c, mask_c_, Y{}, N{});
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

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
// lstm_grad (below) in float on 16 lanes, V = 1 or 2 vectors of 16 units from unit j (their tanh
// chains in flight together); Tail: the last of them holds the units up to n, masked lanes, the
// others are whole (plain loads and stores: a masked store cannot forward its data to a later
// load, and the small-batch loops' next product reads these gradients at once: 4% more of
// their LSTM training at B = 1, H = 64 with every store masked). Every unit gets the same
// operations wherever it sits (the values do not depend on how the units are split), and the
// last n % 16 units are not left to a scalar loop: the compiler's vectorisation of the loop
// below ran them one by one, 37% of the kernel's time at H = 55 for 7 units of 55
// (bench/RESULTS.md). c_t = f c_{t-1} + i g as the forward's kernel computes it (LstmV16).
template <int V, bool Tail, bool Dgh>
[[gnu::always_inline]] inline void lstm_grad_v16(index_t j, index_t n, index_t ld,
                                                 const float* __restrict gates,
                                                 const float* __restrict cprev,
                                                 float* __restrict dh, float* __restrict dc,
                                                 float* __restrict dgx, float* __restrict dgh) {
  using act::v16::vec;
  const vec one = act::v16::set1(1.0f);
  const index_t left = n - (j + 16 * (V - 1));  // units of the last vector
  const __mmask16 tail = Tail ? static_cast<__mmask16>((1u << left) - 1u) : __mmask16(0xFFFF);
  vec i[V], f[V], g[V], o[V], cp[V], tc[V];
  auto load = [&](int v, const float* p) {
    return Tail && v == V - 1 ? _mm512_maskz_loadu_ps(tail, p) : _mm512_loadu_ps(p);
  };
  auto store = [&](int v, float* p, vec a) {
    if (Tail && v == V - 1)
      _mm512_mask_storeu_ps(p, tail, a);
    else
      _mm512_storeu_ps(p, a);
  };
#pragma GCC unroll 2
  for (int v = 0; v < V; ++v) {
    const index_t jv = j + 16 * v;
    i[v] = load(v, gates + jv);
    f[v] = load(v, gates + ld + jv);
    g[v] = load(v, gates + 2 * ld + jv);
    o[v] = load(v, gates + 3 * ld + jv);
    cp[v] = load(v, cprev + jv);
    tc[v] = _mm512_fmadd_ps(f[v], cp[v], _mm512_mul_ps(i[v], g[v]));
  }
  act::v16::activate<V, (1u << V) - 1u>(tc);
#pragma GCC unroll 2
  for (int v = 0; v < V; ++v) {
    const index_t jv = j + 16 * v;
    const vec dhv = load(v, dh + jv);
    const vec dcv = load(v, dc + jv);
    // dc_t = dc + dh o (1 - tanh(c_t)^2)
    const vec dct =
        _mm512_fmadd_ps(_mm512_mul_ps(dhv, o[v]), _mm512_fnmadd_ps(tc[v], tc[v], one), dcv);
    const vec di = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dct, g[v]), i[v]),
                                 _mm512_sub_ps(one, i[v]));
    const vec df = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dct, cp[v]), f[v]),
                                 _mm512_sub_ps(one, f[v]));
    const vec dg = _mm512_mul_ps(_mm512_mul_ps(dct, i[v]), _mm512_fnmadd_ps(g[v], g[v], one));
    const vec d_o = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dhv, tc[v]), o[v]),
                                  _mm512_sub_ps(one, o[v]));
    store(v, dgx + jv, di);
    store(v, dgx + ld + jv, df);
    store(v, dgx + 2 * ld + jv, dg);
    store(v, dgx + 3 * ld + jv, d_o);
    if constexpr (Dgh) {
      store(v, dgh + jv, di);
      store(v, dgh + ld + jv, df);
      store(v, dgh + 2 * ld + jv, dg);
      store(v, dgh + 3 * ld + jv, d_o);
    }
    store(v, dc + jv, _mm512_mul_ps(dct, f[v]));
    store(v, dh + jv, _mm512_setzero_ps());
  }
}

// Units [0, n): pairs of whole vectors, then what is left (1 to 31 units) as one or two vectors.
template <bool Dgh>
void lstm_grad_avx512(index_t n, index_t ld, const float* __restrict gates,
                      const float* __restrict cprev, float* __restrict dh, float* __restrict dc,
                      float* __restrict dgx, float* __restrict dgh) {
  index_t j = 0;
  for (; j + 32 <= n; j += 32)
    lstm_grad_v16<2, false, Dgh>(j, n, ld, gates, cprev, dh, dc, dgx, dgh);
  const index_t left = n - j;
  if (left > 16)
    lstm_grad_v16<2, true, Dgh>(j, n, ld, gates, cprev, dh, dc, dgx, dgh);
  else if (left == 16)
    lstm_grad_v16<1, false, Dgh>(j, n, ld, gates, cprev, dh, dc, dgx, dgh);
  else if (left > 0)
    lstm_grad_v16<1, true, Dgh>(j, n, ld, gates, cprev, dh, dc, dgx, dgh);
}
#endif

// lstm_grad's loop, as the compiler vectorises it; Dgh: dgh written too.
template <typename T, bool Dgh>
void lstm_grad_loop(index_t n, index_t ld, const T* __restrict gates, const T* __restrict cprev,
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
    dgx[j] = di;
    dgx[ld + j] = df;
    dgx[2 * ld + j] = dg;
    dgx[3 * ld + j] = d_o;
    if constexpr (Dgh) {
      dgh[j] = di;
      dgh[ld + j] = df;
      dgh[2 * ld + j] = dg;
      dgh[3 * ld + j] = d_o;
    }
    dc[j] = dct * f;
    dh[j] = T(0);
  }
}

template <typename T>
void lstm_grad(index_t n, index_t ld, const T* __restrict gates, const T* __restrict cprev,
               T* __restrict dh, T* __restrict dc, T* __restrict dgx, T* __restrict dgh) {
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float>) {
    if (dgh)
      lstm_grad_avx512<true>(n, ld, gates, cprev, dh, dc, dgx, dgh);
    else
      lstm_grad_avx512<false>(n, ld, gates, cprev, dh, dc, dgx, nullptr);
    return;
  }
#endif
  if (dgh)
    lstm_grad_loop<T, true>(n, ld, gates, cprev, dh, dc, dgx, dgh);
  else
    lstm_grad_loop<T, false>(n, ld, gates, cprev, dh, dc, dgx, nullptr);
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
