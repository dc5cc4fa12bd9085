// Forward pass of the recurrent layers over a whole sequence.
//
// 1. One GEMM projects the inputs of every step: xg[rows, G*H] = x W_ih^T (into the training
//    workspace's gates, or a temporary when inferring).
// 2. W_hh^T is packed once; each step does one GEMM hg[B, G*H] = h W_hh^T (two for GRU with
//    reset before) and then the fused gate math of every active sequence, in place on the state.
#include <algorithm>
#include <cstring>

#include "cell_steps.h"
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

// The biases of every step folded into one vector: b_ih + b_hh, except the n gate of a GRU
// with reset after, whose b_hn sits inside r * (...) and is added in the step.
template <typename T>
void fold_biases(Cell cell, index_t GH, index_t H, const T* b_ih, const T* b_hh, T* out) {
  for (index_t j = 0; j < GH; ++j) {
    const bool inside_reset = cell == Cell::gru && j >= 2 * H;
    out[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh && !inside_reset ? b_hh[j] : T(0));
  }
}

}  // namespace

template <typename T>
void recurrent_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                       const T* h0, const T* c0, T* y, T* h_n, T* c_n, RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, G = gate_count(cell), GH = G * H, rows = s.rows();
  const bool is_lstm = cell == Cell::lstm;
  const bool reset_before = cell == Cell::gru_reset_before;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();

  // Workspace and constants, all allocated before the time loop.
  Buffer<T> xg_temp;
  T* xg;  // [rows, G*H] input projections, turned into activated gates step by step
  if (ws) {
    ws->gates.resize(rows * GH);
    ws->hprev.resize(rows * H);
    ws->extra.resize(is_lstm || cell == Cell::gru ? rows * H : 0);
    xg = ws->gates.data();
  } else {
    xg_temp.resize(rows * GH);
    xg = xg_temp.data();
  }
  Buffer<T> bias(GH), b_hn(H);
  fold_biases(cell, GH, H, w.b_ih, w.b_hh, bias.data());
  for (index_t j = 0; j < H; ++j) b_hn[j] = w.b_hh && cell == Cell::gru ? w.b_hh[2 * H + j] : T(0);

  // Packed recurrent weights: W_hh^T [H, G*H], or its r,z and n parts for GRU reset before.
  PackedB<T> whh, whh_n;
  if (reset_before) {
    whh.pack(true, H, 2 * H, w.w_hh, H);
    whh_n.pack(true, H, H, w.w_hh + 2 * H * H, H);
  } else {
    whh.pack(true, H, GH, w.w_hh, H);
  }

  Buffer<T> h(B * H), c(is_lstm ? B * H : 0), hg(B * whh.cols()), rh(reset_before ? B * H : 0),
      hn(reset_before ? B * H : 0);
  if (h0) std::memcpy(h.data(), h0, sizeof(T) * B * H); else h.zero();
  if (is_lstm) {
    if (c0) std::memcpy(c.data(), c0, sizeof(T) * B * H); else c.zero();
  }
  if (reset_before) rh.zero();

  // xg = x W_ih^T for every row at once (the biases are added in the steps).
  gemm<T>(false, true, rows, GH, s.I, T(1), x, s.I, w.w_ih, s.I, T(0), xg, GH);
  detail::zero_padded_rows(s, H, y);
  if (ws) detail::zero_padded_rows(s, H, ws->hprev.data());

  for (index_t step = 0, n_steps = s.steps(); step < n_steps; ++step) {
    gemm_packed<T>(B, h.data(), H, whh, T(0), hg.data(), whh.cols());
    if (reset_before) {
      detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
        if (!s.active(step, b)) return;
        const index_t row = s.row(s.time_of(step, b), b);
        steps.gru_before_gates(H, xg + row * GH, hg.data() + b * 2 * H, bias.data(), h.data() + b * H,
                         rh.data() + b * H);
      });
      gemm_packed<T>(B, rh.data(), H, whh_n, T(0), hn.data(), H);
    }
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t row = s.row(s.time_of(step, b), b);
      T* hb = h.data() + b * H;
      T* g = xg + row * GH;
      if (ws) std::memcpy(ws->hprev.data() + row * H, hb, sizeof(T) * H);
      switch (cell) {
        case Cell::rnn_tanh:
        case Cell::rnn_relu:
          steps.rnn(cell == Cell::rnn_relu, H, g, hg.data() + b * GH, bias.data(), hb);
          break;
        case Cell::lstm:
          if (ws) std::memcpy(ws->extra.data() + row * H, c.data() + b * H, sizeof(T) * H);
          steps.lstm(H, g, hg.data() + b * GH, bias.data(), hb, c.data() + b * H);
          break;
        case Cell::gru:
          steps.gru(H, g, hg.data() + b * GH, bias.data(), b_hn.data(), hb,
                   ws ? ws->extra.data() + row * H : nullptr);
          break;
        case Cell::gru_reset_before:
          steps.gru_before_update(H, g, hn.data() + b * H, bias.data(), hb);
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
