// Forward pass of the recurrent layers over a whole sequence.
//
// 1. The input projections xg = x W_ih^T: when training, one GEMM over every row into the
//    workspace's gates (backward needs them all); when inferring, one GEMM per window of steps
//    (W_ih^T packed once), so the temporary is O(max(B, kWindowRows) * G*H) whatever T is.
// 2. W_hh^T is packed once, its columns grouped by blocks of hidden units (all G gates of a
//    block side by side). Each step is one parallel region over those blocks: a thread's GEMM
//    h W_hh^T for its blocks is followed at once, in the same thread and while the product is
//    in cache, by the fused gate math of their units for every active sequence. The new state goes to a second
//    buffer (every block's GEMM reads all of the previous one), so a step needs no barrier
//    inside it. GRU with reset before needs r * h of all units before its n GEMM: it keeps two
//    GEMMs and two row passes per step.
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


// Fewest multiply-adds a thread gets in one step's parallel region: below it, waking a second
// thread costs more than it saves.
constexpr index_t kMinStepWork = 1 << 16;

// Grain (blocks per chunk) of a per-step parallel_for over blocks of work_per_block each.
inline index_t step_grain(index_t work_per_block) {
  return std::max<index_t>(1, kMinStepWork / std::max<index_t>(1, work_per_block));
}

// Products with at most this many rows (steps x batch: a single step of a small batch, as in
// generation) read the weights in place: packing them would cost more than the product.
constexpr index_t kDirectRows = 4;

// Rows of input projection one inference window holds (at least one step): enough for the GEMM
// to run at full speed.
constexpr index_t kWindowRows = 256;

// The input projections x W_ih^T, each row turned into activated gates by its step: every row
// at once (window == 0: training, whose workspace keeps them, or a reversed ragged batch whose
// steps do not cover one time range), or a window of steps at a time.
template <typename T>
struct InputProjection {
  const SeqShape* s;
  index_t GH;
  T* xg;               // [rows, G*H], or [window * B, G*H] for the current window
  index_t window = 0;  // steps per window, 0 = every row
  index_t t_lo = 0;    // first time step of the current window
  const T* x = nullptr;
  PackedB<T> wih;
  Buffer<T> own, xt;  // the window's projections and (batch first) its inputs, time-major

  // g of time step t of sequence b.
  T* at(index_t t, index_t b) const {
    return window ? xg + ((t - t_lo) * s->B + b) * GH : xg + s->row(t, b) * GH;
  }

  // Projects every row into xg, or sets up windows (inference) when they save memory.
  void start(const T* x_, const T* w_ih, T* all, bool keep_all) {
    const index_t B = s->B, I = s->I, n_steps = s->steps();
    const index_t steps_per_window = std::max<index_t>(1, kWindowRows / std::max<index_t>(1, B));
    if (keep_all || (s->reverse && !s->lengths.empty()) || steps_per_window >= n_steps) {
      xg = all ? all : (own.resize(s->rows() * GH), own.data());
      if (s->rows() <= kDirectRows)
        gemm_rows_nt<T>(s->rows(), GH, I, x_, I, w_ih, I, xg, GH);
      else
        gemm<T>(false, true, s->rows(), GH, I, T(1), x_, I, w_ih, I, T(0), xg, GH);
      return;
    }
    window = steps_per_window;
    x = x_;
    wih.pack(true, I, GH, w_ih, I);
    own.resize(window * B * GH);
    xg = own.data();
    if (s->batch_first) xt.resize(window * B * I);
  }

  // Before step `step`: projects the window that starts there, if any.
  void prepare(index_t step) {
    if (!window || step % window) return;
    const index_t B = s->B, I = s->I, T_ = s->T;
    const index_t n = std::min(window, s->steps() - step);
    t_lo = s->reverse ? T_ - step - n : step;  // reversed windows: no lengths, time T-1-step
    const T* a = x + t_lo * B * I;
    if (s->batch_first) {
      for (index_t t = 0; t < n; ++t)
        for (index_t b = 0; b < B; ++b)
          std::memcpy(xt.data() + (t * B + b) * I, x + s->row(t_lo + t, b) * I, sizeof(T) * I);
      a = xt.data();
    }
    gemm_packed<T>(n * B, a, I, wih, T(0), xg, GH);
  }
};

// W_hh^T [H, G*H] with its columns grouped by blocks of hb hidden units: block q holds gate k of
// units [q*hb, q*hb + hb) at its columns [k*hb, k*hb + hb), columns past H are zero. hb is a
// multiple of the GEMM's panel width (a block is whole panels): all of H when one thread does
// the step, else small enough for two blocks per thread. Every element gets the same value
// whatever hb is (the GEMM computes each output element alone), so results do not depend on
// the thread count.
template <typename T>
struct GateBlockedWeights {
  index_t G = 0, H = 0, hb = 0, blocks = 0, width = 0;  // width = G * hb columns per block
  PackedB<T> packed;
  const T* direct = nullptr;  // W_hh read in place instead (kDirectRows), or null

  // direct: read w_hh in place at every product instead of packing it.
  void pack(index_t G_, index_t H_, index_t B, const T* w_hh, bool use_direct) {
    G = G_;
    H = H_;
    const index_t nr = packed_panel_width<T>(), panels = (H + nr - 1) / nr;
    const index_t threads = get_num_threads();
    index_t m = panels;
    if (threads > 1 && B * G * H * H >= 2 * kMinStepWork)
      m = std::max<index_t>(1, panels / (2 * threads));
    hb = std::min(panels, m) * nr;
    blocks = (H + hb - 1) / hb;
    width = G * hb;
    if (use_direct) {
      direct = w_hh;
      return;
    }
    const index_t N = blocks * width;
    Buffer<T> rows(N * H);  // row n of (W_hh^T)^T in blocked column order
    rows.zero();
    for (index_t q = 0; q < blocks; ++q)
      for (index_t k = 0; k < G; ++k)
        for (index_t u = 0; u < hb && q * hb + u < H; ++u)
          std::memcpy(rows.data() + (q * width + k * hb + u) * H, w_hh + (k * H + q * hb + u) * H,
                      sizeof(T) * H);
    packed.pack(true, H, N, rows.data(), H);
  }

  // hg [M, blocks * width] columns of blocks [q0, q1) = h [M, H] times those of W_hh^T.
  void product(index_t M, const T* h, index_t q0, index_t q1, T* hg) const {
    const index_t N = blocks * width;
    if (!direct) {
      gemm_packed_cols<T>(M, h, H, packed, q0 * width, q1 * width, T(0), hg, N);
      return;
    }
    for (index_t q = q0; q < q1; ++q) {
      const index_t j0 = q * hb, n = std::min(hb, H - j0);
      for (index_t k = 0; k < G; ++k)
        gemm_rows_nt<T>(M, n, H, h, H, direct + (k * H + j0) * H, H, hg + q * width + k * hb, N);
    }
  }
};

// Everything one step of the gate-blocked loop reads; the parallel_for captures only a pointer
// to it (no allocation per step).
template <typename T>
struct BlockedStep {
  Cell cell;
  const SeqShape* s;
  const cells::CellSteps<T>* steps;
  const GateBlockedWeights<T>* w;
  const T* bias;
  const T* b_hn;
  const InputProjection<T>* xg;
  T* hg;  // [B, blocks * width]
  T* c;
  T* y;
  RecurrentWorkspace<T>* ws;
  T* hp;  // state before the step [B, H]
  T* hn;  // state after it [B, H]
  index_t step;

  // Blocks [q0, q1): one GEMM for all of them (A, the state, is read or packed once), then the
  // gate math of each block while its part of the product is still in cache.
  void run_blocks(index_t q0, index_t q1) const {
    w->product(s->B, hp, q0, q1, hg);
    for (index_t q = q0; q < q1; ++q) gates(q);
  }

  // The gate math of block q for every sequence, from its GEMM tile in hg.
  void gates(index_t q) const {
    const index_t B = s->B, H = s->H, N = w->blocks * w->width;
    const index_t j0 = q * w->hb, n = std::min(w->hb, H - j0), size = sizeof(T) * n;
    for (index_t b = 0; b < B; ++b) {
      const T* hpb = hp + b * H + j0;
      T* hnb = hn + b * H + j0;
      if (!s->active(step, b)) {
        std::memcpy(hnb, hpb, size);
        continue;
      }
      const index_t t = s->time_of(step, b), row = s->row(t, b);
      T* g = xg->at(t, b) + j0;
      const T* hgb = hg + b * N + q * w->width;
      if (ws) std::memcpy(ws->hprev.data() + row * H + j0, hpb, size);
      switch (cell) {
        case Cell::rnn_tanh:
        case Cell::rnn_relu:
          steps->rnn(cell == Cell::rnn_relu, n, H, w->hb, g, hgb, bias + j0, hnb);
          break;
        case Cell::lstm:
          if (ws) std::memcpy(ws->extra.data() + row * H + j0, c + b * H + j0, size);
          steps->lstm(n, H, w->hb, g, hgb, bias + j0, hnb, c + b * H + j0);
          break;
        case Cell::gru:
          steps->gru(n, H, w->hb, g, hgb, bias + j0, b_hn + j0, hpb, hnb,
                     ws ? ws->extra.data() + row * H + j0 : nullptr);
          break;
        case Cell::gru_reset_before:
          break;  // never here: recurrent_forward sends it to loop_reset_before
      }
      std::memcpy(y + row * H + j0, hnb, size);
    }
  }
};

// The time loop of every cell but GRU with reset before. h [B, H]: the initial state in, the
// final one out; c [B, H] (LSTM) likewise.
template <typename T>
void loop_gate_blocked(Cell cell, const SeqShape& s, const T* w_hh, const T* bias, const T* b_hn,
                       InputProjection<T>& xg, T* h, T* c, T* y, RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, G = gate_count(cell);
  GateBlockedWeights<T> w;
  w.pack(G, H, B, w_hh, s.steps() * B <= kDirectRows);
  Buffer<T> hg(B * w.blocks * w.width), other(B * H);
  BlockedStep<T> st{cell, &s, &cells::active_cell_steps<T>(), &w, bias, b_hn, &xg, hg.data(), c,
                    y, ws, h, other.data(), 0};
  const index_t grain = step_grain(B * w.width * H);
  const BlockedStep<T>* sp = &st;
  for (index_t n_steps = s.steps(); st.step < n_steps; ++st.step) {
    xg.prepare(st.step);
    parallel_for(w.blocks, grain, [sp](index_t q0, index_t q1) {
      sp->run_blocks(q0, q1);
    });
    std::swap(st.hp, st.hn);
  }
  if (st.hp != h) std::memcpy(h, st.hp, sizeof(T) * B * H);
}

// The time loop of GRU with reset before: h and the rows of xg as in loop_gate_blocked.
template <typename T>
void loop_reset_before(const SeqShape& s, const T* w_hh, const T* bias, InputProjection<T>& xg,
                       T* h, T* y,
                       RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, GH = 3 * H;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  PackedB<T> whh, whh_n;  // W_hh^T of the r,z gates [H, 2H] and of the n gate [H, H]
  whh.pack(true, H, 2 * H, w_hh, H);
  whh_n.pack(true, H, H, w_hh + 2 * H * H, H);
  Buffer<T> hg(B * 2 * H), rh(B * H), hn(B * H);
  rh.zero();
  for (index_t step = 0, n_steps = s.steps(); step < n_steps; ++step) {
    xg.prepare(step);
    gemm_packed<T>(B, h, H, whh, T(0), hg.data(), 2 * H);
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t t = s.time_of(step, b);
      steps.gru_before_gates(H, xg.at(t, b), hg.data() + b * 2 * H, bias, h + b * H,
                             rh.data() + b * H);
    });
    gemm_packed<T>(B, rh.data(), H, whh_n, T(0), hn.data(), H);
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t t = s.time_of(step, b), row = s.row(t, b);
      T* hb = h + b * H;
      if (ws) std::memcpy(ws->hprev.data() + row * H, hb, sizeof(T) * H);
      steps.gru_before_update(H, xg.at(t, b), hn.data() + b * H, bias, hb);
      std::memcpy(y + row * H, hb, sizeof(T) * H);
    });
  }
}

}  // namespace

template <typename T>
void recurrent_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                       const T* h0, const T* c0, T* y, T* h_n, T* c_n, RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, G = gate_count(cell), GH = G * H, rows = s.rows();
  const bool is_lstm = cell == Cell::lstm;

  // Workspace and constants, all allocated before the time loop.
  if (ws) {
    ws->gates.resize(rows * GH);
    ws->hprev.resize(rows * H);
    ws->extra.resize(is_lstm || cell == Cell::gru ? rows * H : 0);
  }
  Buffer<T> bias(GH), b_hn(H);
  fold_biases(cell, GH, H, w.b_ih, w.b_hh, bias.data());
  for (index_t j = 0; j < H; ++j) b_hn[j] = w.b_hh && cell == Cell::gru ? w.b_hh[2 * H + j] : T(0);

  // The state: h_n and c_n are the loop's state buffers.
  if (h0) std::memcpy(h_n, h0, sizeof(T) * B * H); else std::fill_n(h_n, B * H, T(0));
  Buffer<T> c_temp;
  T* c = c_n;
  if (is_lstm && !c) {
    c_temp.resize(B * H);
    c = c_temp.data();
  }
  if (is_lstm) {
    if (c0) std::memcpy(c, c0, sizeof(T) * B * H); else std::fill_n(c, B * H, T(0));
  }

  // xg = x W_ih^T (the biases are added in the steps).
  InputProjection<T> xg{&s, GH, nullptr};
  xg.start(x, w.w_ih, ws ? ws->gates.data() : nullptr, ws != nullptr);
  detail::zero_padded_rows(s, H, y);
  if (ws) detail::zero_padded_rows(s, H, ws->hprev.data());

  if (cell == Cell::gru_reset_before)
    loop_reset_before(s, w.w_hh, bias.data(), xg, h_n, y, ws);
  else
    loop_gate_blocked(cell, s, w.w_hh, bias.data(), b_hn.data(), xg, h_n, is_lstm ? c : nullptr,
                      y, ws);
}

template void recurrent_forward<float>(Cell, const SeqShape&, const RecurrentWeights<float>&,
                                       const float*, const float*, const float*, float*, float*,
                                       float*, RecurrentWorkspace<float>*);
template void recurrent_forward<double>(Cell, const SeqShape&, const RecurrentWeights<double>&,
                                        const double*, const double*, const double*, double*,
                                        double*, double*, RecurrentWorkspace<double>*);

}  // namespace rnnfast
