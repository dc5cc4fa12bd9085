// Backward pass (back-propagation through time) of the recurrent layers.
//
// The steps run in reverse processing order. Each step turns the state gradient of every active
// sequence into gate gradients (saved for all rows in dgx [rows, G*H]) and carries the state
// gradient back through one GEMM with the packed W_hh. After the loop, the input gradient and the
// weight gradients are a few large GEMMs over all rows, and the bias gradients column sums.
#include <algorithm>
#include <cstring>

#include "cell_steps.h"
#include "recurrent_common.h"
#include "rnnfast/gemm.h"
#include "rnnfast/recurrent.h"

namespace rnnfast {

namespace {

// out[j] = sum over rows of m[row * ld + j], j < n; rows in order, so the sum is reproducible.
template <typename T>
void column_sums(index_t rows, index_t n, const T* m, index_t ld, T* out) {
  parallel_for(n, 64, [&](index_t j0, index_t j1) {
    std::fill(out + j0, out + j1, T(0));
    for (index_t r = 0; r < rows; ++r)
      for (index_t j = j0; j < j1; ++j) out[j] += m[r * ld + j];
  });
}

}  // namespace

template <typename T>
void recurrent_backward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                        const RecurrentWorkspace<T>& ws, const T* dy, const T* dh_n,
                        const T* dc_n, const RecurrentGrads<T>& g) {
  const index_t B = s.B, H = s.H, I = s.I, G = gate_count(cell), GH = G * H, rows = s.rows();
  const bool is_lstm = cell == Cell::lstm;
  const bool reset_before = cell == Cell::gru_reset_before;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();

  // dgx: input-side gate gradients of every row; dgh_n: recurrent-side n-gate gradients of every
  // row (GRU reset after: they differ from the input side by the factor r).
  Buffer<T> dgx(rows * GH), dgh_n(cell == Cell::gru ? rows * H : 0);
  if (!s.lengths.empty()) {
    dgx.zero();
    dgh_n.zero();
  }

  // Packed W_hh [G*H, H] (not transposed), or its r,z and n parts for GRU reset before.
  PackedB<T> whh, whh_n;
  if (reset_before) {
    whh.pack(false, 2 * H, H, w.w_hh, H);
    whh_n.pack(false, H, H, w.w_hh + 2 * H * H, H);
  } else {
    whh.pack(false, GH, H, w.w_hh, H);
  }

  Buffer<T> dh(B * H), dc(is_lstm ? B * H : 0), stage(B * GH), back(B * H),
      drh(reset_before ? B * H : 0);
  if (dh_n) std::memcpy(dh.data(), dh_n, sizeof(T) * B * H); else dh.zero();
  if (is_lstm) {
    if (dc_n) std::memcpy(dc.data(), dc_n, sizeof(T) * B * H); else dc.zero();
  }
  // The direct part of the previous state's gradient, kept for inactive sequences (dh itself).
  Buffer<T> dh_direct(B * H);

  for (index_t step = s.steps() - 1; step >= 0; --step) {
    // Gate gradients of every active sequence; inactive ones stage zeros and keep dh.
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      T* db = dh_direct.data() + b * H;
      T* st = stage.data() + b * GH;
      if (!s.active(step, b)) {
        std::memcpy(db, dh.data() + b * H, sizeof(T) * H);
        std::fill_n(st, GH, T(0));
        return;
      }
      const index_t row = s.row(s.time_of(step, b), b);
      std::memcpy(db, dh.data() + b * H, sizeof(T) * H);
      if (dy)
        for (index_t j = 0; j < H; ++j) db[j] += dy[row * H + j];
      const T* gates = ws.gates.data() + row * GH;
      const T* hprev = ws.hprev.data() + row * H;
      T* dgrow = dgx.data() + row * GH;
      switch (cell) {
        case Cell::rnn_tanh:
        case Cell::rnn_relu:
          steps.rnn_grad(cell == Cell::rnn_relu, H, gates, db, dgrow, st);
          break;
        case Cell::lstm:
          steps.lstm_grad(H, gates, ws.extra.data() + row * H, db, dc.data() + b * H, dgrow, st);
          break;
        case Cell::gru:
          steps.gru_grad(H, gates, ws.extra.data() + row * H, hprev, db, dgrow, st);
          std::memcpy(dgh_n.data() + row * H, st + 2 * H, sizeof(T) * H);
          break;
        case Cell::gru_reset_before:
          // st holds [dr, dz] (2H) for the r,z GEMM and, after them, dn (H) for the W_hn GEMM.
          steps.gru_before_grad_n(H, gates, hprev, db, dgrow, st + 2 * H);
          break;
      }
    });
    if (reset_before) {
      gemm_packed<T>(B, stage.data() + 2 * H, GH, whh_n, T(0), drh.data(), H);
      detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
        if (!s.active(step, b)) return;
        const index_t row = s.row(s.time_of(step, b), b);
        steps.gru_before_grad_r(H, ws.gates.data() + row * GH, ws.hprev.data() + row * H,
                          drh.data() + b * H, dh_direct.data() + b * H, dgx.data() + row * GH,
                          stage.data() + b * GH);
      });
    }
    // dh = direct part + staged gate gradients W_hh (zero rows for inactive sequences).
    std::memcpy(back.data(), dh_direct.data(), sizeof(T) * B * H);
    gemm_packed<T>(B, stage.data(), GH, whh, T(1), back.data(), H);
    std::swap(dh, back);
  }
  if (g.h0) std::memcpy(g.h0, dh.data(), sizeof(T) * B * H);
  if (g.c0 && is_lstm) std::memcpy(g.c0, dc.data(), sizeof(T) * B * H);

  // Large GEMMs over all rows.
  if (g.x) gemm<T>(false, false, rows, I, GH, T(1), dgx.data(), GH, w.w_ih, I, T(0), g.x, I);
  if (g.w_ih) gemm<T>(true, false, GH, I, rows, T(1), dgx.data(), GH, x, I, T(0), g.w_ih, I);
  if (g.b_ih) column_sums(rows, GH, dgx.data(), GH, g.b_ih);
  if (g.w_hh || g.b_hh) {
    const T* hprev = ws.hprev.data();
    switch (cell) {
      case Cell::rnn_tanh:
      case Cell::rnn_relu:
      case Cell::lstm:
        if (g.w_hh) gemm<T>(true, false, GH, H, rows, T(1), dgx.data(), GH, hprev, H, T(0), g.w_hh, H);
        if (g.b_hh) column_sums(rows, GH, dgx.data(), GH, g.b_hh);
        break;
      case Cell::gru:
        if (g.w_hh) {
          gemm<T>(true, false, 2 * H, H, rows, T(1), dgx.data(), GH, hprev, H, T(0), g.w_hh, H);
          gemm<T>(true, false, H, H, rows, T(1), dgh_n.data(), H, hprev, H, T(0),
                  g.w_hh + 2 * H * H, H);
        }
        if (g.b_hh) {
          column_sums(rows, 2 * H, dgx.data(), GH, g.b_hh);
          column_sums(rows, H, dgh_n.data(), H, g.b_hh + 2 * H);
        }
        break;
      case Cell::gru_reset_before:
        if (g.w_hh) {
          // The n rows of W_hh multiply r * h: rebuild it for every valid row.
          Buffer<T> rh(rows * H);
          rh.zero();
          for (index_t b = 0; b < B; ++b)
            for (index_t t = 0; t < s.length(b); ++t) {
              const index_t row = s.row(t, b);
              const T* r = ws.gates.data() + row * GH;
              for (index_t j = 0; j < H; ++j) rh[row * H + j] = r[j] * hprev[row * H + j];
            }
          gemm<T>(true, false, 2 * H, H, rows, T(1), dgx.data(), GH, hprev, H, T(0), g.w_hh, H);
          gemm<T>(true, false, H, H, rows, T(1), dgx.data() + 2 * H, GH, rh.data(), H, T(0),
                  g.w_hh + 2 * H * H, H);
        }
        if (g.b_hh) column_sums(rows, GH, dgx.data(), GH, g.b_hh);
        break;
    }
  }
}

template void recurrent_backward<float>(Cell, const SeqShape&, const RecurrentWeights<float>&,
                                        const float*, const RecurrentWorkspace<float>&,
                                        const float*, const float*, const float*,
                                        const RecurrentGrads<float>&);
template void recurrent_backward<double>(Cell, const SeqShape&, const RecurrentWeights<double>&,
                                         const double*, const RecurrentWorkspace<double>&,
                                         const double*, const double*, const double*,
                                         const RecurrentGrads<double>&);

}  // namespace rnnfast
