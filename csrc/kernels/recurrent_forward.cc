// Forward pass of the recurrent layers over a whole sequence.
//
// 1. One GEMM projects the inputs of every step: xg[rows, G*H] = x W_ih^T (into the training
//    workspace's gates, or a temporary when inferring).
// 2. W_hh^T is packed once; each step does one GEMM hg[B, G*H] = h W_hh^T (two for GRU with
//    reset before) and then the fused gate math of every active sequence, in place on the state.
#include <algorithm>
#include <cstring>

#include "activations.h"
#include "recurrent_common.h"
#include "rnnfast/gemm.h"
#include "rnnfast/recurrent.h"

namespace rnnfast {

int gate_count(Cell cell) {
  switch (cell) {
    case Cell::rnn_tanh:
    case Cell::rnn_relu: return 1;
    case Cell::lstm: return 4;
    case Cell::gru:
    case Cell::gru_reset_before: return 3;
  }
  return 0;
}

index_t SeqShape::steps() const {
  if (lengths.empty()) return T;
  return *std::max_element(lengths.begin(), lengths.end());
}

namespace {

// The gate math of one sequence at one step. xg: input projection of that step (no bias);
// hg: recurrent projection (no bias); h (and c) in/out. Gates and extra are saved when non-null.
template <typename T>
void rnn_step(bool relu, index_t H, const T* xg, const T* hg, const T* bx, const T* bh, T* h,
              T* gates) {
  for (index_t j = 0; j < H; ++j) {
    const T pre = xg[j] + bx[j] + hg[j] + bh[j];
    h[j] = relu ? act::relu(pre) : act::tanh(pre);
  }
  if (gates) std::memcpy(gates, h, sizeof(T) * H);
}

template <typename T>
void lstm_step(index_t H, const T* xg, const T* hg, const T* bx, const T* bh, T* h, T* c,
               T* gates) {
  for (index_t j = 0; j < H; ++j) {
    const T i = act::sigmoid(xg[j] + bx[j] + hg[j] + bh[j]);
    const T f = act::sigmoid(xg[H + j] + bx[H + j] + hg[H + j] + bh[H + j]);
    const T g = act::tanh(xg[2 * H + j] + bx[2 * H + j] + hg[2 * H + j] + bh[2 * H + j]);
    const T o = act::sigmoid(xg[3 * H + j] + bx[3 * H + j] + hg[3 * H + j] + bh[3 * H + j]);
    const T cn = f * c[j] + i * g;
    c[j] = cn;
    h[j] = o * act::tanh(cn);
    if (gates) {
      gates[j] = i;
      gates[H + j] = f;
      gates[2 * H + j] = g;
      gates[3 * H + j] = o;
    }
  }
}

// GRU, reset after: n = tanh(xn + b_in + r * (hn + b_hn)). extra keeps hn + b_hn.
template <typename T>
void gru_step(index_t H, const T* xg, const T* hg, const T* bx, const T* bh, T* h, T* gates,
              T* extra) {
  for (index_t j = 0; j < H; ++j) {
    const T r = act::sigmoid(xg[j] + bx[j] + hg[j] + bh[j]);
    const T z = act::sigmoid(xg[H + j] + bx[H + j] + hg[H + j] + bh[H + j]);
    const T hn = hg[2 * H + j] + bh[2 * H + j];
    const T n = act::tanh(xg[2 * H + j] + bx[2 * H + j] + r * hn);
    h[j] = (T(1) - z) * n + z * h[j];
    if (gates) {
      gates[j] = r;
      gates[H + j] = z;
      gates[2 * H + j] = n;
      extra[j] = hn;
    }
  }
}

// GRU, reset before, first half: r and z from h; rh = r * h for the second GEMM.
template <typename T>
void gru_before_gates(index_t H, const T* xg, const T* hg, const T* bx, const T* bh, const T* h,
                      T* rz, T* rh) {
  for (index_t j = 0; j < H; ++j) {
    const T r = act::sigmoid(xg[j] + bx[j] + hg[j] + bh[j]);
    rz[j] = r;
    rz[H + j] = act::sigmoid(xg[H + j] + bx[H + j] + hg[H + j] + bh[H + j]);
    rh[j] = r * h[j];
  }
}

// Second half: n = tanh(xn + b_in + (r*h) W_hn^T + b_hn); h' = (1 - z) n + z h.
template <typename T>
void gru_before_update(index_t H, const T* xg, const T* hn, const T* bx, const T* bh,
                       const T* rz, T* h, T* gates) {
  for (index_t j = 0; j < H; ++j) {
    const T z = rz[H + j];
    const T n = act::tanh(xg[2 * H + j] + bx[2 * H + j] + hn[j] + bh[2 * H + j]);
    h[j] = (T(1) - z) * n + z * h[j];
    if (gates) {
      gates[j] = rz[j];
      gates[H + j] = z;
      gates[2 * H + j] = n;
    }
  }
}

}  // namespace

template <typename T>
void recurrent_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                       const T* h0, const T* c0, T* y, T* h_n, T* c_n, RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, G = gate_count(cell), GH = G * H, rows = s.rows();
  const bool is_lstm = cell == Cell::lstm;
  const bool reset_before = cell == Cell::gru_reset_before;

  // Workspace and constants, all allocated before the time loop.
  Buffer<T> xg_temp, zeros_x, zeros_h;
  T* xg;
  if (ws) {
    ws->gates.resize(rows * GH);
    ws->hprev.resize(rows * H);
    ws->extra.resize(is_lstm || cell == Cell::gru ? rows * H : 0);
    xg = ws->gates.data();
  } else {
    xg_temp.resize(rows * GH);
    xg = xg_temp.data();
  }
  const T* bx = detail::bias_or_zeros(w.b_ih, GH, zeros_x);
  const T* bh = detail::bias_or_zeros(w.b_hh, GH, zeros_h);

  // Packed recurrent weights: W_hh^T [H, G*H], or its r,z and n parts for GRU reset before.
  PackedB<T> whh, whh_n;
  if (reset_before) {
    whh.pack(true, H, 2 * H, w.w_hh, H);
    whh_n.pack(true, H, H, w.w_hh + 2 * H * H, H);
  } else {
    whh.pack(true, H, GH, w.w_hh, H);
  }

  Buffer<T> h(B * H), c(is_lstm ? B * H : 0), hg(B * GH), rz(reset_before ? B * 2 * H : 0),
      rh(reset_before ? B * H : 0), hn(reset_before ? B * H : 0);
  if (h0) std::memcpy(h.data(), h0, sizeof(T) * B * H); else h.zero();
  if (is_lstm) {
    if (c0) std::memcpy(c.data(), c0, sizeof(T) * B * H); else c.zero();
  }
  if (reset_before) rh.zero();

  gemm<T>(false, true, rows, GH, s.I, T(1), x, s.I, w.w_ih, s.I, T(0), xg, GH);
  detail::zero_padded_rows(s, H, y);
  if (ws) detail::zero_padded_rows(s, H, ws->hprev.data());

  const index_t steps = s.steps();
  for (index_t step = 0; step < steps; ++step) {
    gemm_packed<T>(B, h.data(), H, whh, T(0), hg.data(), whh.cols());
    if (reset_before) {
      detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
        if (!s.active(step, b)) return;
        const index_t row = s.row(s.time_of(step, b), b);
        gru_before_gates(H, xg + row * GH, hg.data() + b * 2 * H, bx, bh, h.data() + b * H,
                         rz.data() + b * 2 * H, rh.data() + b * H);
      });
      gemm_packed<T>(B, rh.data(), H, whh_n, T(0), hn.data(), H);
    }
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t row = s.row(s.time_of(step, b), b);
      T* hb = h.data() + b * H;
      T* gates = ws ? xg + row * GH : nullptr;  // in place: the projection is read first
      if (ws) std::memcpy(ws->hprev.data() + row * H, hb, sizeof(T) * H);
      const T* xrow = xg + row * GH;
      switch (cell) {
        case Cell::rnn_tanh:
        case Cell::rnn_relu:
          rnn_step(cell == Cell::rnn_relu, H, xrow, hg.data() + b * GH, bx, bh, hb, gates);
          break;
        case Cell::lstm:
          if (ws) std::memcpy(ws->extra.data() + row * H, c.data() + b * H, sizeof(T) * H);
          lstm_step(H, xrow, hg.data() + b * GH, bx, bh, hb, c.data() + b * H, gates);
          break;
        case Cell::gru:
          gru_step(H, xrow, hg.data() + b * GH, bx, bh, hb, gates,
                   ws ? ws->extra.data() + row * H : nullptr);
          break;
        case Cell::gru_reset_before:
          gru_before_update(H, xrow, hn.data() + b * H, bx, bh, rz.data() + b * 2 * H, hb, gates);
          break;
      }
      std::memcpy(y + row * H, hb, sizeof(T) * H);
    });
  }
  std::memcpy(h_n, h.data(), sizeof(T) * B * H);
  if (is_lstm && c_n) std::memcpy(c_n, c.data(), sizeof(T) * B * H);
}

template void recurrent_forward<float>(Cell, const SeqShape&, const RecurrentWeights<float>&,
                                       const float*, const float*, const float*, float*, float*,
                                       float*, RecurrentWorkspace<float>*);
template void recurrent_forward<double>(Cell, const SeqShape&, const RecurrentWeights<double>&,
                                        const double*, const double*, const double*, double*,
                                        double*, double*, RecurrentWorkspace<double>*);

}  // namespace rnnfast
