// Forward and backward of the LayerNorm LSTM and GRU over a whole sequence
// (rnnfast/layer_norm_recurrent.h).
//
// Forward: W_ih^T and W_hh^T are packed once. x W_ih^T is projected a window of steps at a time
// (one GEMM per window of each thread's sequences, at most kWindowBytes, so the rows are still
// in cache when their steps read them); its layer norm is not a pass of its own but part of
// each step's epilogue, which reads that row anyway (training writes the normalised row to the
// workspace). The epilogue reads each product's row three times (its mean, its variance, the
// gate math, which normalises in registers) and writes nothing of it in inference. Each step
// computes h W_hh^T for a range of
// sequences (one GEMM), then, per sequence and in the same thread, the epilogue: the moments of
// both rows of G*H values, their normalisation, the gate math, and for the LSTM the layer norm
// of c'. A layer norm needs the whole row, so threads never split a step by hidden units as
// the plain cells do: with enough sequences they take disjoint sequences through every step
// (no synchronisation at all); otherwise each step's GEMM is shared by columns (inside
// gemm_packed) and the rows' epilogues by sequences.
//
// Backward: the same split. Per step and sequence, the epilogue turns the state gradients into
// the gradients of the two products' rows (through both layer norms, from the saved 1/std and
// normalised rows), saved for every row; the parameter gradients of the gains and biases are
// summed per sequence (each sequence's sums belong to one thread, so the result does not depend
// on the thread count) and then over sequences. The recurrent product dh += dgh W_hh is the one
// GEMM per step; dx, dW_ih and dW_hh are GEMMs over a chunk of steps' rows after the chunk
// (time-major, every sequence of full length: the rows of dgx and dgh are still in cache) or
// over all rows after the loop.
//
// Zoneout (LayerNormWeights::zoneout_h): the plain cells' rule and helpers (detail::Zoneout in
// recurrent_common.h). Forward: after a row's epilogue its new h (and c) are blended with the
// state the step started from (training: the workspace's hprev and cprev; inference: the LSTM's
// c copied before the step), per the mask or the rate. Backward: before a row's epilogue the
// state gradients are split into the cell's part (1 - d) g and the previous state's d g, which
// is added back after it (the recomputed gates read the blended state the step started from).
//
// Memory: the training workspace (given by the caller) and the backward's two [rows, G*H]
// gradient buffers (a chunk's rows when chunked) are sized with detail::fit and kept between
// calls (rnnfast/scratch_cache.h),
// as the plain cells' are: a training loop's calls then touch no fresh pages.
#include "rnnfast/layer_norm_recurrent.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "layer_norm_steps.h"
#include "recurrent_common.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"
#include "rnnfast/scratch_cache.h"

namespace rnnfast {

namespace {

// Fewest sequences a thread takes through a whole layer when the threads split the batch.
constexpr index_t kMinSequences = 4;

// Bytes of input projection a loop holds: a window of steps of its sequences (at least one).
constexpr index_t kWindowBytes = index_t(256) << 10;

// Bytes of the backward's gradient rows of one product a chunk of steps holds (dgx and dgh:
// twice this, in L2 with the chunk's GEMMs), the chunk at most one depth block of the
// weight-gradient GEMMs. At T=100, B=32, H=256 (3 steps a chunk) the LayerNorm LSTM's backward
// took 2-3% less time than with the GEMMs over all rows after the loop; 7 steps (a whole depth
// block) and 1 step a chunk took 1-8% more (bench/RESULTS.md, cellvar session 11).
constexpr index_t kChunkBytes = index_t(384) << 10;

// The backward's large temporaries, kept between calls (rnnfast/scratch_cache.h).
template <typename T>
struct BackwardScratch {
  Buffer<T> dgx, dgh;  // [rows, G*H] gradients of the two products' rows

  std::size_t bytes() const { return detail::bytes_of(dgx) + detail::bytes_of(dgh); }
};

// As the plain cells' backward: two idle scratches at most, 128 MiB together.
template <typename T>
detail::ScratchCache<BackwardScratch<T>>& backward_scratch() {
  static detail::ScratchCache<BackwardScratch<T>> cache(2, std::size_t(128) << 20);
  return cache;
}

bool by_sequences(const SeqShape& s) {
  return get_num_threads() > 1 && !in_parallel_region() && s.B >= 2 * kMinSequences &&
         s.steps() > 1;
}

// The per-call constants: every optional vector made whole (zeros or ones), biases folded.
template <typename T>
struct Constants {
  Buffer<T> b_ih, b_hh, bias, ln_ih, ln_hh, ln_c_weight, ln_c_bias;

  Constants(LayerNormCell cell, index_t H, const LayerNormWeights<T>& w) {
    const index_t GH = gate_count(cell) * H;
    auto fill = [](Buffer<T>& b, index_t n, const T* src, T value) {
      b.resize(n);
      if (src) std::memcpy(b.data(), src, sizeof(T) * n); else std::fill_n(b.data(), n, value);
    };
    fill(b_ih, GH, w.b_ih, T(0));
    fill(b_hh, GH, w.b_hh, T(0));
    fill(ln_ih, GH, w.ln_ih, T(1));
    fill(ln_hh, GH, w.ln_hh, T(1));
    fill(ln_c_weight, H, w.ln_c_weight, T(1));
    fill(ln_c_bias, H, w.ln_c_bias, T(0));
    bias.resize(GH);
    for (index_t j = 0; j < GH; ++j) bias[j] = b_ih[j] + b_hh[j];
  }
};

// Runs run(b0, b1, share) over the batch: disjoint ranges of sequences on the threads
// (share = false), or all of them in the caller, which shares each step's work (share = true).
template <typename F>
void split_sequences(const SeqShape& s, F&& run) {
  if (by_sequences(s))
    parallel_for(s.B, kMinSequences, [&](index_t b0, index_t b1) { run(b0, b1, false); });
  else
    run(0, s.B, true);
}

// fn(b) for b in [b0, b1): on the threads when share, else serially.
template <typename F>
void rows_of(index_t b0, index_t b1, bool share, index_t work, F&& fn) {
  if (share)
    detail::for_each_batch_row(b1 - b0, work, [&](index_t i) { fn(b0 + i); });
  else
    for (index_t b = b0; b < b1; ++b) fn(b);
}

}  // namespace

template <typename T>
void layer_norm_recurrent_forward(LayerNormCell cell, const SeqShape& s,
                                  const LayerNormWeights<T>& w, const T* x, const T* h0,
                                  const T* c0, T* y, T* h_n, T* c_n, LayerNormWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, I = s.I, GH = gate_count(cell) * H, rows = s.rows();
  const bool is_lstm = cell == LayerNormCell::lstm;
  const Constants<T> k(cell, H, w);
  if (ws) {  // (a reused workspace keeps its larger buffers: fit)
    const std::pair<Buffer<T>*, index_t> parts[] = {
        {&ws->ih, rows * GH}, {&ws->hh, rows * GH}, {&ws->hprev, rows * H},
        {&ws->cprev, is_lstm ? rows * H : 0}, {&ws->stats, rows * 4}};
    for (const auto& [b, n] : parts) {
      T* p = detail::fit(*b, n);
      if (!s.lengths.empty()) std::fill_n(p, n, T(0));  // the padded rows
    }
  }
  if (h0) std::memcpy(h_n, h0, sizeof(T) * B * H); else std::fill_n(h_n, B * H, T(0));
  Buffer<T> c_own;
  T* c = c_n;
  if (is_lstm) {
    if (!c) c = (c_own.resize(B * H), c_own.data());
    if (c0) std::memcpy(c, c0, sizeof(T) * B * H); else std::fill_n(c, B * H, T(0));
  }
  detail::zero_padded_rows(s, H, y);

  PackedB<T> wih, whh;  // W_ih^T [I, G*H], W_hh^T [H, G*H]
  wih.pack(true, I, GH, w.w_ih, I);
  whh.pack(true, H, GH, w.w_hh, H);
  Buffer<T> hg(B * GH), other(B * H), gates(B * GH), stats_own(ws ? 0 : B * 4);
  const cells::LayerNormSteps<T>& steps = cells::active_layer_norm_steps<T>();
  const T eps = w.eps;
  // Zoneout blends each row's new state with the one it started from, as the plain cells do
  // (detail::Zoneout); inference keeps the LSTM's c before the step here (training: in cprev).
  using Zone = detail::Zoneout<T>;
  const bool zoned = w.has_zoneout();
  Buffer<T> c_before(zoned && !ws && is_lstm ? B * H : 0);

  // Training (ws keeps what backward needs) as a template parameter: no row tests it.
  detail::with_flag(ws != nullptr, [&](auto train_c) {
    constexpr bool Train = decltype(train_c)::value;
    split_sequences(s, [&](index_t b0, index_t b1, bool share) {
      // x W_ih^T of the sequences [b0, b1), a window of steps at a time: small enough to stay
      // in the core's cache from its GEMM to its steps.
      const index_t nb = b1 - b0, n_steps = s.steps();
      const index_t window = std::min(
          n_steps,
          std::max<index_t>(1, kWindowBytes / (nb * GH * static_cast<index_t>(sizeof(T)))));
      // Time-major, every sequence of this loop, all of the same length, forwards: the rows
      // of a window are consecutive rows of x, read in place (else copied, padded with zeros).
      const bool in_place = !s.batch_first && !s.reverse && s.lengths.empty() && nb == B;
      Buffer<T> xw(window * nb * GH), xt(in_place ? 0 : window * nb * I);
      T* hp = h_n;
      T* hn = other.data();
      for (index_t step = 0; step < n_steps; ++step) {
        const index_t slot = step % window;
        if (slot == 0) {  // the inputs of the window's rows (zeros for padded ones), one GEMM
          const index_t n = std::min(window, n_steps - step);
          const T* a = x + step * B * I;  // in place when the window's rows are x's
          if (!in_place) {
            for (index_t i = 0; i < n; ++i)
              for (index_t b = b0; b < b1; ++b) {
                T* dst = xt.data() + (i * nb + b - b0) * I;
                if (s.active(step + i, b))
                  std::memcpy(dst, x + s.row(s.time_of(step + i, b), b) * I, sizeof(T) * I);
                else
                  std::fill_n(dst, I, T(0));
              }
            a = xt.data();
          }
          gemm_packed<T>(n * nb, a, I, wih, T(0), xw.data(), GH);
        }
        gemm_packed<T>(nb, hp + b0 * H, H, whh, T(0), hg.data() + b0 * GH, GH);
        rows_of(b0, b1, share, 8 * GH, [&](index_t b) {
          if (!s.active(step, b)) {
            std::memcpy(hn + b * H, hp + b * H, sizeof(T) * H);
            return;
          }
          const index_t row = s.row(s.time_of(step, b), b);
          // Training keeps the normalised rows and the moments in the workspace.
          T* xw_row = xw.data() + (slot * nb + b - b0) * GH;
          T* hg_row = hg.data() + b * GH;
          T* ih_row = Train ? ws->ih.data() + row * GH : nullptr;
          T* hh_row = Train ? ws->hh.data() + row * GH : nullptr;
          T* gates_b = gates.data() + b * GH;
          T* stats = Train ? ws->stats.data() + row * 4 : stats_own.data() + b * 4;
          if constexpr (Train) std::memcpy(ws->hprev.data() + row * H, hp + b * H, sizeof(T) * H);
          T* c_start = !is_lstm ? nullptr
                       : Train  ? ws->cprev.data() + row * H
                       : zoned  ? c_before.data() + b * H
                                : nullptr;
          if (is_lstm) {
            if (Train || zoned) std::memcpy(c_start, c + b * H, sizeof(T) * H);
            steps.lstm(H, eps, xw_row, ih_row, hg_row, hh_row, k.ln_ih.data(), k.ln_hh.data(),
                       k.bias.data(), k.ln_c_weight.data(), k.ln_c_bias.data(), c + b * H,
                       hn + b * H, gates_b, stats);
          } else {
            steps.gru(H, eps, xw_row, ih_row, hg_row, hh_row, k.ln_ih.data(), k.ln_hh.data(),
                      k.b_ih.data(), k.b_hh.data(), hp + b * H, hn + b * H, gates_b, stats);
          }
          if (zoned) {
            const index_t at = Zone::at(s, s.time_of(step, b), b, H, 0);
            Zone::apply(w.zoneout_h, w.zoneout, at, H, hp + b * H, hn + b * H);
            if (is_lstm) Zone::apply(w.zoneout_c, w.zoneout, at, H, c_start, c + b * H);
          }
          std::memcpy(y + row * H, hn + b * H, sizeof(T) * H);
        });
        std::swap(hp, hn);
      }
      if (hp != h_n) std::memcpy(h_n + b0 * H, hp + b0 * H, sizeof(T) * (b1 - b0) * H);
    });
  });
}

template <typename T>
void layer_norm_recurrent_backward(LayerNormCell cell, const SeqShape& s,
                                   const LayerNormWeights<T>& w, const T* x,
                                   const LayerNormWorkspace<T>& ws, const T* dy, const T* dh_n,
                                   const T* dc_n, const LayerNormGrads<T>& g) {
  const index_t B = s.B, H = s.H, I = s.I, GH = gate_count(cell) * H, rows = s.rows();
  const bool is_lstm = cell == LayerNormCell::lstm;
  const Constants<T> k(cell, H, w);
  typename detail::ScratchCache<BackwardScratch<T>>::Lease kept(backward_scratch<T>());
  // Time-major with every sequence of full length: the steps run a chunk at a time (kChunkBytes,
  // at most one depth block of the weight-gradient GEMMs, gemm_depth_block), the chunk's rows
  // are contiguous, and dx and the chunk's share of dW_ih and dW_hh are multiplied right after
  // the chunk's steps, while its rows of dgx and dgh are in cache: these two are never whole
  // (2 x 13 MB at T=100, B=32, H=256). Else one chunk of every step and the GEMMs after it.
  const bool chunked = !s.batch_first && s.lengths.empty();
  const index_t n_steps = s.steps();
  const index_t chunk_steps =
      chunked ? std::clamp<index_t>(std::min(gemm_depth_block<T>(rows, true, active_isa()),
                                             kChunkBytes / (GH * static_cast<index_t>(sizeof(T)))) /
                                        B,
                                    1, n_steps)
              : n_steps;
  const index_t chunk_rows = chunked ? chunk_steps * B : rows;
  // dgx, dgh: gradients of the chunk's rows of x W_ih^T and h W_hh^T (zero at padded rows).
  T* dgx = detail::fit(kept->dgx, chunk_rows * GH);
  T* dgh = detail::fit(kept->dgh, chunk_rows * GH);
  if (!s.lengths.empty()) {
    std::fill_n(dgx, rows * GH, T(0));
    std::fill_n(dgh, rows * GH, T(0));
  }
  Buffer<T> dh(B * H), dc(is_lstm ? B * H : 0);
  if (dh_n) std::memcpy(dh.data(), dh_n, sizeof(T) * B * H); else dh.zero();
  if (is_lstm) {
    if (dc_n) std::memcpy(dc.data(), dc_n, sizeof(T) * B * H); else dc.zero();
  }
  // Per sequence: the sums of its rows' parameter gradients (layer_norm_steps.h's acc).
  const index_t acc_width = 4 * GH + 2 * H;
  Buffer<T> acc(B * acc_width), stage(s.lengths.empty() ? 0 : B * GH), scratch(B * 10 * H);
  acc.zero();
  // Zoneout (the forward's masks): the state gradients split into the cell's part and the
  // previous state's (kept: h's, then the LSTM's c's), as the plain cells do (detail::Zoneout).
  using Zone = detail::Zoneout<T>;
  const bool zoned = w.zoneout_h != nullptr;
  Buffer<T> kept_grads(zoned ? B * 2 * H : 0);
  PackedB<T> whh, wih;  // W_hh [G*H, H]; W_ih [G*H, I] for dx, a chunk of rows at a time
  whh.pack(false, GH, H, w.w_hh, H);
  if (g.x) wih.pack(false, GH, I, w.w_ih, I);
  const cells::LayerNormSteps<T>& steps = cells::active_layer_norm_steps<T>();

  // Every sequence of full length: a step's rows of dgh are evenly spaced (row_stride rows
  // apart), and the kernels write them in place for the step's product to read (no staging).
  const bool in_place = s.lengths.empty();
  const index_t row_stride = s.batch_first ? s.T : 1;
  bool first_chunk = true;
  for (index_t c1 = n_steps; c1 > 0; c1 -= chunk_steps) {  // steps [c0, c1), backwards
    const index_t c0 = std::max<index_t>(0, c1 - chunk_steps);
    // The chunk's first row (its earliest time) and row count; rows r of dgx, dgh at r - r0.
    const index_t r0 = chunked ? s.row(std::min(s.time_of(c0, 0), s.time_of(c1 - 1, 0)), 0) : 0;
    const index_t nr = chunked ? (c1 - c0) * B : rows;
    split_sequences(s, [&](index_t b0, index_t b1, bool share) {
      for (index_t step = c1 - 1; step >= c0; --step) {
        rows_of(b0, b1, share, 16 * GH, [&](index_t b) {
          const index_t row = s.row(s.time_of(step, b), b);
          T* st = in_place ? dgh + (row - r0) * GH : stage.data() + b * GH;
          if (!s.active(step, b)) {  // the state passes unchanged: nothing to stage
            std::fill_n(st, GH, T(0));
            return;
          }
          T* dhb = dh.data() + b * H;
          if (dy)
            for (index_t j = 0; j < H; ++j) dhb[j] += dy[row * H + j];
          T* dcb = is_lstm ? dc.data() + b * H : nullptr;
          T* kept_b = zoned ? kept_grads.data() + b * 2 * H : nullptr;
          if (zoned) {
            const index_t at = Zone::at(s, s.time_of(step, b), b, H, 0);
            Zone::split(w.zoneout_h, at, H, dhb, kept_b);
            if (is_lstm) Zone::split(w.zoneout_c, at, H, dcb, kept_b + H);
          }
          const T* ih = ws.ih.data() + row * GH;
          const T* hh = ws.hh.data() + row * GH;
          const T* stats = ws.stats.data() + row * 4;
          T* a = acc.data() + b * acc_width;
          T* sc = scratch.data() + b * 10 * H;
          T* dgx_row = dgx + (row - r0) * GH;
          if (is_lstm)
            steps.lstm_grad(H, ws.cprev.data() + row * H, ih, hh, stats, k.ln_ih.data(),
                            k.ln_hh.data(), k.bias.data(), k.ln_c_weight.data(),
                            k.ln_c_bias.data(), dhb, dcb, dgx_row, st, a, sc);
          else
            steps.gru_grad(H, ws.hprev.data() + row * H, ih, hh, stats, k.ln_ih.data(),
                           k.ln_hh.data(), k.b_ih.data(), k.b_hh.data(), dhb, dgx_row, st, a,
                           sc);
          if (zoned) {
            Zone::add(H, kept_b, dhb);
            if (is_lstm) Zone::add(H, kept_b + H, dcb);
          }
          if (!in_place) std::memcpy(dgh + row * GH, st, sizeof(T) * GH);
        });
        if (in_place)
          gemm_packed<T>(b1 - b0, dgh + (s.row(s.time_of(step, b0), b0) - r0) * GH,
                         row_stride * GH, whh, T(1), dh.data() + b0 * H, H);
        else
          gemm_packed<T>(b1 - b0, stage.data() + b0 * GH, GH, whh, T(1), dh.data() + b0 * H, H);
      }
    });
    // The chunk's (or every row's) share of dx, dW_ih and dW_hh: the chunks' sums in this
    // (backward) order, whatever the thread count.
    const T beta = first_chunk ? T(0) : T(1);
    if (g.x) gemm_packed<T>(nr, dgx, GH, wih, T(0), g.x + r0 * I, I);
    if (g.w_ih) gemm<T>(true, false, GH, I, nr, T(1), dgx, GH, x + r0 * I, I, beta, g.w_ih, I);
    if (g.w_hh)
      gemm<T>(true, false, GH, H, nr, T(1), dgh, GH, ws.hprev.data() + r0 * H, H, beta, g.w_hh,
              H);
    first_chunk = false;
  }

  if (g.h0) std::memcpy(g.h0, dh.data(), sizeof(T) * B * H);
  if (g.c0 && is_lstm) std::memcpy(g.c0, dc.data(), sizeof(T) * B * H);
  // The sums over sequences, in order.
  auto total = [&](T* out, index_t offset, index_t n) {
    if (!out) return;
    std::fill_n(out, n, T(0));
    for (index_t b = 0; b < B; ++b) {
      const T* a = acc.data() + b * acc_width + offset;
      for (index_t j = 0; j < n; ++j) out[j] += a[j];
    }
  };
  total(g.b_ih, 0, GH);
  total(g.b_hh, is_lstm ? 0 : GH, GH);  // the LSTM's two bias gradients are one sum
  total(g.ln_ih, 2 * GH, GH);
  total(g.ln_hh, 3 * GH, GH);
  if (is_lstm) {
    total(g.ln_c_weight, 4 * GH, H);
    total(g.ln_c_bias, 4 * GH + H, H);
  }
}

#define RNNFAST_INSTANTIATE(T)                                                                  \
  template void layer_norm_recurrent_forward<T>(LayerNormCell, const SeqShape&,                \
                                                const LayerNormWeights<T>&, const T*, const T*, \
                                                const T*, T*, T*, T*, LayerNormWorkspace<T>*);  \
  template void layer_norm_recurrent_backward<T>(LayerNormCell, const SeqShape&,               \
                                                 const LayerNormWeights<T>&, const T*,          \
                                                 const LayerNormWorkspace<T>&, const T*,        \
                                                 const T*, const T*, const LayerNormGrads<T>&);
RNNFAST_INSTANTIATE(float)
RNNFAST_INSTANTIATE(double)
#undef RNNFAST_INSTANTIATE

}  // namespace rnnfast
