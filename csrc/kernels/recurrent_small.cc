// Small batches of the recurrent forward and backward (rnnfast/recurrent_small.h).
//
// At B = 1..8 the general loops spend most of a step outside its arithmetic: a GEMM driver
// call (plan, tiles of one row), a parallel region, and a recurrent weight matrix that (LSTM,
// H = 64: 64 KiB) does not fit in L1 and streams from L2 at every step. Here a step is one call
// of the instruction set's small product (recurrent_small_impl.h) for all rows, then the gate
// math of each row, on the calling thread (as is the input projection when W_ih is small:
// project_rows). The product reads the packed panels forward at even steps and backward at odd
// ones: a step begins with the panels the previous one ended with, which are still in L1, so
// only the rest comes from L2. Every element is the GEMM micro-kernel's chain of multiply-adds
// (depth blocks as the GEMM driver splits them, each added to the sum of the blocks before it)
// and the gate math the same step kernels, so the results are those of the general loops bit
// for bit, at any thread count.
#include "rnnfast/recurrent_small.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "rnnfast/threads.h"

#include "cell_steps.h"
#include "recurrent_common.h"
#include "recurrent_small.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"

namespace rnnfast {

namespace {

std::atomic<bool> g_enabled{true};
std::atomic<bool> g_split{false};

// Recurrent weights up to this size (they stay in a core's L2 from step to step).
constexpr index_t kMaxWeightBytes = index_t(1) << 20;
// Inference holds the input projection of every row: up to this size (recurrent_forward.cc's
// window), beyond it the general loop projects windows.
constexpr index_t kMaxProjectionBytes = index_t(32) << 20;
// Packed W_ih^T up to this size: the calling thread projects the inputs with the small product
// (project_rows; W_ih^T stays in L1 from one group of rows to the next), beyond it the GEMM.
constexpr index_t kMaxLocalProjectionBytes = index_t(16) << 10;
// Rows per call of the small product in project_rows.
constexpr index_t kProjectionRows = 64;

template <typename T>
const small::SmallKernels<T>& kernels_for(Isa isa);

template <>
const small::SmallKernels<float>& kernels_for<float>(Isa isa) {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (isa) {
    case Isa::avx512: return small::kSmallAvx512F32;
    case Isa::avx2: return small::kSmallAvx2F32;
    case Isa::generic: break;
  }
#endif
  (void)isa;
  return small::kSmallGenericF32;
}

template <>
const small::SmallKernels<double>& kernels_for<double>(Isa isa) {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (isa) {
    case Isa::avx512: return small::kSmallAvx512F64;
    case Isa::avx2: return small::kSmallAvx2F64;
    case Isa::generic: break;
  }
#endif
  (void)isa;
  return small::kSmallGenericF64;
}

// Whether the small loops take a call: a batch of 1..8 with more than kDirectRows rows of steps,
// a plain cell (RNN, LSTM with or without peepholes, GRU with reset after: no projection, zoneout
// or recurrent dropout), float32 products, weights that fit kMaxWeightBytes, and one thread or a
// step too small to share.
template <typename T>
bool small_batch_applies(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w) {
  if (!g_enabled.load(std::memory_order_relaxed)) return false;
  if (s.B < 1 || s.B > detail::kSmallBatchMaxRows || s.steps() * s.B <= detail::kDirectRows)
    return false;
  if (cell == Cell::gru_reset_before || w.w_hr || s.P) return false;
  if (w.has_zoneout() || w.zoneout_h || w.zoneout_c || w.recurrent_mask) return false;
  if (w.precision != Precision::float32) return false;
  const index_t G = gate_count(cell), macs = s.B * G * s.H * s.H;
  if (macs * static_cast<index_t>(sizeof(T)) / s.B > kMaxWeightBytes) return false;
  // With more threads, steps with the work of two threads' regions (recurrent_forward.cc's
  // GateBlockedWeights::pack) stay with the general loops, which share each step by blocks.
  return get_num_threads() == 1 || in_parallel_region() || macs < 2 * detail::kMinStepWork;
}

// Whether the forward's steps are shared by two threads (forward_loop_split): when switched on
// (set_small_batch_split), for a call the small loops take, with more than one thread, outside
// a parallel region, and at least two panels (nr columns each) of hidden units, so that each
// half gets whole panels.
bool split_applies(const SeqShape& s, index_t nr) {
  return g_split.load(std::memory_order_relaxed) && get_num_threads() > 1 &&
         !in_parallel_region() && s.H > nr;
}

// Columns [0, N) of out [m, N] (row stride ldo) = a [m, K] (row stride lda) times packed
// [K, N], by depth blocks as the GEMM driver takes them, each block's chain added to what the
// blocks before it left (C + chain, the GEMM's beta = 1); accumulate: to what out holds (beta =
// 1 from the first block). The kernel writes whole panels: straight into out when it is the
// first block of a product that does not accumulate (ldo >= the panels' width), else into tmp
// [m, padded columns].
template <typename T>
void product(const small::SmallKernels<T>& ks, const PackedB<T>& packed, index_t m, const T* a,
             index_t lda, T* out, index_t ldo, bool accumulate, bool backwards, T* tmp) {
  const index_t K = packed.rows(), N = packed.cols(), nr = packed.panel_width();
  const index_t panels = (N + nr - 1) / nr, ldt = panels * nr, kc = gemm_depth_block<T>(K, false, packed.isa());
  for (index_t k0 = 0; k0 < K; k0 += kc) {
    const index_t kb = std::min(kc, K - k0);
    const bool add = accumulate || k0 > 0;
    const T* b = packed.panels() + k0 * nr;
    if (!add) {
      ks.product(m, kb, a + k0, lda, b, packed.panel_stride(), panels, out, ldo, backwards);
      continue;
    }
    ks.product(m, kb, a + k0, lda, b, packed.panel_stride(), panels, tmp, ldt, backwards);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < N; ++j) out[i * ldo + j] += tmp[i * ldt + j];
  }
}

template <typename T>
index_t padded_cols(const PackedB<T>& p) {
  const index_t nr = p.panel_width();
  return (p.cols() + nr - 1) / nr * nr;
}

// xg [rows, GH] = x [rows, I] times packed W_ih^T [I, GH], every element the value the GEMM gives
// it (product: the micro-kernel's chain per depth block), on the calling thread: no GEMM plan,
// no copy of x and no hand-off to a pool thread for a product this small (LSTM T=100 B=4 I=16
// H=32: 4-5% of the call; bench/RESULTS.md, fwd session 10). Groups of kProjectionRows rows,
// straight into xg when its rows are whole panels wide, else through a buffer of padded rows.
template <typename T>
void project_rows(const small::SmallKernels<T>& ks, const PackedB<T>& wih, index_t rows,
                  const T* x, T* xg) {
  const index_t I = wih.rows(), GH = wih.cols(), N = padded_cols(wih);
  const bool direct = N == GH;
  const bool deep = I > gemm_depth_block<T>(I, false, wih.isa());
  Buffer<T> padded(direct ? 0 : kProjectionRows * N), tmp(deep ? kProjectionRows * N : 0);
  for (index_t r0 = 0; r0 < rows; r0 += kProjectionRows) {
    const index_t m = std::min(kProjectionRows, rows - r0);
    T* dst = direct ? xg + r0 * GH : padded.data();
    product(ks, wih, m, x + r0 * I, I, dst, direct ? GH : N, false, false, tmp.data());
    if (!direct)
      for (index_t i = 0; i < m; ++i)
        std::memcpy(xg + (r0 + i) * GH, padded.data() + i * N, sizeof(T) * GH);
  }
}

// The gate math of one step for units [u0, u0 + n) of every row: hg [B, ldh] holds the step's
// recurrent product, gate k of unit u0 + j at hg[b * ldh + k * hs + j]; hp the previous state
// [B, H], hn receives the new one (units [u0, u0 + n) only, as do c, y and the workspace).
template <typename T, Cell C, bool Train, bool Peep>
void gate_rows(const SeqShape& s, const cells::CellSteps<T>& steps, index_t step, index_t u0,
               index_t n, const T* hg, index_t ldh, index_t hs, const T* hp, T* hn, T* xg,
               const T* bias, const T* peep, const T* b_hn, T* c, T* y,
               RecurrentWorkspace<T>* ws) {
  const index_t H = s.H, GH = gate_count(C) * H;
  const size_t size = sizeof(T) * n;
  for (index_t b = 0; b < s.B; ++b) {
    const T* hpb = hp + b * H + u0;
    T* hnb = hn + b * H + u0;
    if (!s.active(step, b)) {
      std::memcpy(hnb, hpb, size);
      continue;
    }
    const index_t t = s.time_of(step, b), row = s.row(t, b);
    T* g = xg + row * GH + u0;
    const T* hgb = hg + b * ldh;
    if constexpr (Train) std::memcpy(ws->hprev.data() + row * H + u0, hpb, size);
    if constexpr (C == Cell::rnn_tanh || C == Cell::rnn_relu) {
      steps.rnn(C == Cell::rnn_relu, n, H, hs, g, hgb, bias + u0, hnb);
    } else if constexpr (C == Cell::lstm) {
      T* cb = c + b * H + u0;
      if constexpr (Train) std::memcpy(ws->extra.data() + row * H + u0, cb, size);
      if constexpr (Peep)
        steps.lstm_peephole(n, H, hs, g, hgb, bias + u0, peep + u0, hnb, cb);
      else
        steps.lstm(n, H, hs, g, hgb, bias + u0, hnb, cb);
    } else {
      static_assert(C == Cell::gru, "GRU with reset before is not taken");
      steps.gru(n, H, hs, g, hgb, bias + u0, b_hn + u0, hpb, hnb,
                Train ? ws->extra.data() + row * H + u0 : nullptr);
    }
    std::memcpy(y + row * H + u0, hnb, size);
  }
}

template <typename T, Cell C, bool Train, bool Peep>
void forward_loop(const SeqShape& s, const small::SmallKernels<T>& ks, const PackedB<T>& whh,
                  const T* xg_all, const T* bias, const T* peep, const T* b_hn, T* h, T* c, T* y,
                  RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, N = padded_cols(whh);
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  Buffer<T> hg(B * N), tmp(H > gemm_depth_block<T>(H, false, whh.isa()) ? B * N : 0), other(B * H);
  T* xg = const_cast<T*>(xg_all);  // the steps write the activated gates over the projection
  T* hp = h;
  T* hn = other.data();
  for (index_t step = 0, n_steps = s.steps(); step < n_steps; ++step) {
    product(ks, whh, B, hp, H, hg.data(), N, false, step & 1, tmp.data());
    gate_rows<T, C, Train, Peep>(s, steps, step, 0, H, hg.data(), N, H, hp, hn, xg, bias, peep,
                                 b_hn, c, y, ws);
    std::swap(hp, hn);
  }
  if (hp != h) std::memcpy(h, hp, sizeof(T) * B * H);
}

// The forward's steps shared by two threads: each half of the hidden units has its own packed
// columns of W_hh^T (all G gates of its units: 32 KiB each for an LSTM of H = 64 in float32,
// which stay in that core's L1) and its own product buffers, and a step of a half is its product
// (of all of h) and its units' gate math. Each element is computed as in forward_loop (the same
// chain over k, the same step kernel on units split at a panel boundary), so the values are the
// same bit for bit whoever computes which half.
//
// Hand-off: the first participant to arrive leads and runs whole steps (both halves) alone; the
// second, if it arrives before the last step, announces itself, and the leader hands it the
// state at the next step boundary (h and c: each participant keeps its own copy of both, as a
// line of c shared by the halves would cross between the cores at every step; y, the gates and
// the workspace are shared, each half writing its own units). From there each computes its half
// of every step into its own copy of h and sends its new units to the other in message lines:
// cache lines of values that carry the step they belong to, written after the values, so that
// the receiver spins on each line alone and the transfer is one cache-line trip per line (two
// mailboxes per half, by step parity: a half writes step t + 2's only after it has the other's
// step t + 1, which the other sends after reading step t's). A participant never waits for one
// that has not arrived (one that never starts, or an executor that runs both chunks on one
// thread, leaves all the steps to the leader).
template <typename T>
struct SplitHalf {
  index_t u0 = 0, n = 0, N = 0;  // first unit, units, padded columns of the product
  PackedB<T> whh;
  Buffer<T> hg, tmp;
};

template <typename T>
struct alignas(64) MessageLine {
  static constexpr index_t kValues = (64 - sizeof(index_t)) / sizeof(T);
  T v[kValues];
  std::atomic<index_t> step{0};  // 1 + the step whose values v holds
};

// Waits for a value another core stores: a short spin without pauses (the store normally
// arrives within a cache-line trip), then the pool's wait.
template <class Pred>
void wait_for(Pred pred) {
  for (int i = 0; i < 512; ++i)
    if (pred()) return;
  detail::wait_until(pred);
}

template <typename T, Cell C, bool Train, bool Peep>
void forward_loop_split(const SeqShape& s, const small::SmallKernels<T>& ks,
                        SplitHalf<T> (&halves)[2], const T* xg_all, const T* bias,
                        const T* peep, const T* b_hn, T* h, T* c, T* y,
                        RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, n_steps = s.steps();
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  T* xg = const_cast<T*>(xg_all);
  constexpr index_t kLine = MessageLine<T>::kValues;
  // state: 0 before anyone arrives, kLeading while the leader runs alone, kJoined once the
  // second has arrived, kStart + t when the split starts at step t, kAlone when the leader ran
  // every step alone.
  constexpr index_t kAlone = -1, kLeading = 1, kJoined = 2, kStart = 3;
  struct alignas(64) Control {
    std::atomic<index_t> state{0};
  } control;
  index_t lines[2];
  for (int q = 0; q < 2; ++q) lines[q] = (B * halves[q].n + kLine - 1) / kLine;
  std::vector<MessageLine<T>> mail(2 * (lines[0] + lines[1]));
  auto mailbox = [&](int q, index_t t) {  // half q's lines of step t
    return mail.data() + (q ? 2 * lines[0] : 0) + (t & 1) * lines[q];
  };
  Buffer<T> handover(2 * B * H);  // h and c before the split's first step
  // Units [u0, u0 + n) of every row of hn, row after row, kLine values a line; each line's step
  // is stored after its values.
  auto send = [&](MessageLine<T>* out, index_t t, const T* hn, const SplitHalf<T>& hf) {
    index_t k = 0;
    for (index_t b = 0; b < B; ++b)
      for (index_t j = 0; j < hf.n; ++j) {
        out->v[k] = hn[b * H + hf.u0 + j];
        if (++k == kLine) {
          (out++)->step.store(t + 1, std::memory_order_release);
          k = 0;
        }
      }
    if (k) out->step.store(t + 1, std::memory_order_release);
  };
  auto receive = [&](const MessageLine<T>* in, index_t t, T* hn, const SplitHalf<T>& hf) {
    index_t k = kLine;
    for (index_t b = 0; b < B; ++b)
      for (index_t j = 0; j < hf.n; ++j) {
        if (k == kLine) {
          wait_for([&] { return in->step.load(std::memory_order_acquire) == t + 1; });
          k = 0;
        }
        hn[b * H + hf.u0 + j] = in->v[k];
        if (++k == kLine) ++in;
      }
  };
  // cs: the participant's own copy of c (a line of c shared by the halves would cross between
  // the cores at every step).
  auto half_step = [&](int q, index_t t, const T* hp, T* hn, T* cs) {
    SplitHalf<T>& hf = halves[q];
    product(ks, hf.whh, B, hp, H, hf.hg.data(), hf.N, false, t & 1, hf.tmp.data());
    gate_rows<T, C, Train, Peep>(s, steps, t, hf.u0, hf.n, hf.hg.data(), hf.N, hf.n, hp, hn, xg,
                                 bias, peep, b_hn, cs, y, ws);
  };
  // Steps [t0, n_steps) of half q, exchanging units with the other; hp holds h of step t0 - 1,
  // and on return (hp or hn, by the parity of the steps run) the last step's h.
  auto run_half = [&](int q, index_t t0, T* hp, T* hn, T* cs) {
    const SplitHalf<T>& mine = halves[q];
    const SplitHalf<T>& theirs = halves[1 - q];
    for (index_t t = t0; t < n_steps; ++t) {
      half_step(q, t, hp, hn, cs);
      send(mailbox(q, t), t, hn, mine);
      receive(mailbox(1 - q, t), t, hn, theirs);
      std::swap(hp, hn);
    }
    return hp;
  };
  const size_t h_bytes = sizeof(T) * B * H;
  // Units [u0, u0 + n) of every row of c from cs.
  auto store_c = [&](const T* cs, index_t u0, index_t n) {
    for (index_t b = 0; b < B; ++b)
      std::memcpy(c + b * H + u0, cs + b * H + u0, sizeof(T) * n);
  };
  auto participant = [&] {
    Buffer<T> local(3 * B * H);  // h of the step before, h of this step, c
    T* hp = local.data();
    T* hn = hp + B * H;
    T* cs = c ? hn + B * H : nullptr;
    index_t expected = 0;
    if (control.state.compare_exchange_strong(expected, kLeading, std::memory_order_acq_rel)) {
      std::memcpy(hp, h, h_bytes);
      if (c) std::memcpy(cs, c, h_bytes);
      for (index_t t = 0; t < n_steps; ++t) {
        if (control.state.load(std::memory_order_acquire) == kJoined) {
          std::memcpy(handover.data(), hp, h_bytes);
          if (c) std::memcpy(handover.data() + B * H, cs, h_bytes);
          control.state.store(kStart + t, std::memory_order_release);
          std::memcpy(h, run_half(0, t, hp, hn, cs), h_bytes);
          if (c) store_c(cs, halves[0].u0, halves[0].n);
          return;
        }
        half_step(0, t, hp, hn, cs);
        half_step(1, t, hp, hn, cs);
        std::swap(hp, hn);
      }
      std::memcpy(h, hp, h_bytes);
      if (c) std::memcpy(c, cs, h_bytes);
      expected = kLeading;
      if (!control.state.compare_exchange_strong(expected, kAlone, std::memory_order_acq_rel))
        control.state.store(kStart + n_steps, std::memory_order_release);  // it joined late
      return;
    }
    expected = kLeading;
    if (!control.state.compare_exchange_strong(expected, kJoined, std::memory_order_acq_rel))
      return;  // the leader has run every step
    index_t state = kJoined;
    wait_for([&] { return (state = control.state.load(std::memory_order_acquire)) >= kStart; });
    const index_t t0 = state - kStart;
    if (t0 >= n_steps) return;
    std::memcpy(hp, handover.data(), h_bytes);
    if (c) std::memcpy(cs, handover.data() + B * H, h_bytes);
    run_half(1, t0, hp, hn, cs);
    if (c) store_c(cs, halves[1].u0, halves[1].n);
  };
  parallel_for(2, 1, [&](index_t begin, index_t end) {
    for (index_t p = begin; p < end; ++p) participant();
  });
}

template <typename T, Cell C, bool Peep>
void backward_loop(const SeqShape& s, const small::SmallKernels<T>& ks, const PackedB<T>& whh,
                   const T* peep, const RecurrentWorkspace<T>& ws, const T* dy, T* dgx, T* dgh_n,
                   T* dh, T* dc) {
  const index_t B = s.B, H = s.H, GH = gate_count(C) * H, N = padded_cols(whh);
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  Buffer<T> stage_a(B * GH), stage_b(B * GH), tmp(B * N);
  const T* prev = nullptr;  // staged gate gradients of the step processed before
  T* cur = stage_a.data();
  // dh += prev W_hh (the recurrent part of the previous state's gradient).
  auto add_product = [&](index_t step) {
    product(ks, whh, B, prev, GH, dh, H, true, step & 1, tmp.data());
  };
  for (index_t step = s.steps() - 1; step >= 0; --step) {
    if (prev) add_product(step);
    for (index_t b = 0; b < B; ++b) {
      T* dhb = dh + b * H;
      T* st = cur + b * GH;
      if (!s.active(step, b)) {
        std::fill_n(st, GH, T(0));
        continue;
      }
      const index_t t = s.time_of(step, b), row = s.row(t, b);
      if (dy)
        for (index_t j = 0; j < H; ++j) dhb[j] += dy[row * H + j];
      const T* gates = ws.gates.data() + row * GH;
      T* dgrow = dgx + row * GH;
      if constexpr (C == Cell::rnn_tanh || C == Cell::rnn_relu) {
        steps.rnn_grad(C == Cell::rnn_relu, H, H, gates, dhb, dgrow, st);
      } else if constexpr (C == Cell::lstm) {
        if constexpr (Peep)
          steps.lstm_peephole_grad(H, H, gates, ws.extra.data() + row * H, peep, dhb, dc + b * H,
                                   dgrow, st);
        else
          steps.lstm_grad(H, H, gates, ws.extra.data() + row * H, dhb, dc + b * H, dgrow, st);
      } else {
        static_assert(C == Cell::gru, "GRU with reset before is not taken");
        steps.gru_grad(H, H, gates, ws.extra.data() + row * H, ws.hprev.data() + row * H, dhb,
                       dgrow, st);
        std::memcpy(dgh_n + row * H, st + 2 * H, sizeof(T) * H);
      }
    }
    prev = cur;
    cur = cur == stage_a.data() ? stage_b.data() : stage_a.data();
  }
  if (prev) add_product(-1);
}

// The kernels for the packed weights' instruction set, or null when its panels are not the two
// vectors wide the small product reads.
template <typename T>
const small::SmallKernels<T>* kernels_of(const PackedB<T>& p) {
  const small::SmallKernels<T>& ks = kernels_for<T>(p.isa());
  return p.panel_width() == 2 * ks.lanes ? &ks : nullptr;
}

}  // namespace

void set_small_batch_enabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

void set_small_batch_split(bool enabled) { g_split.store(enabled, std::memory_order_relaxed); }

template <typename T>
bool small_batch_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                         const T* bias, const T* b_hn, T* h, T* c, T* y,
                         RecurrentWorkspace<T>* ws) {
  if (!small_batch_applies(cell, s, w)) return false;
  const index_t H = s.H, I = s.I, GH = gate_count(cell) * H, rows = s.rows();
  if (!ws && rows * GH * static_cast<index_t>(sizeof(T)) > kMaxProjectionBytes) return false;
  const small::SmallKernels<T>& isa_ks = kernels_for<T>(active_isa());
  const index_t nr = 2 * isa_ks.lanes;
  const bool split = split_applies(s, nr);
  PackedB<T> whh;  // W_hh^T [H, G*H], or each half's columns
  SplitHalf<T> halves[2];
  if (split) {
    const index_t G = gate_count(cell), cut = (H + nr - 1) / nr / 2 * nr;
    Buffer<T> rows(G * (H - cut) * H > G * cut * H ? G * (H - cut) * H : G * cut * H);
    for (int q = 0; q < 2; ++q) {
      SplitHalf<T>& hf = halves[q];
      hf.u0 = q ? cut : 0;
      hf.n = q ? H - cut : cut;
      for (index_t k = 0; k < G; ++k)  // the rows of W_hh of the half's units, gate by gate
        std::memcpy(rows.data() + k * hf.n * H, w.w_hh + (k * H + hf.u0) * H,
                    sizeof(T) * hf.n * H);
      hf.whh.pack(true, H, G * hf.n, rows.data(), H);
      hf.N = padded_cols(hf.whh);
      hf.hg = Buffer<T>(s.B * hf.N);
      if (H > gemm_depth_block<T>(H, false, hf.whh.isa())) hf.tmp = Buffer<T>(s.B * hf.N);
    }
  } else {
    whh.pack(true, H, GH, w.w_hh, H);
  }
  const small::SmallKernels<T>* ks = kernels_of(split ? halves[0].whh : whh);
  if (!ks) return false;
  // x W_ih^T of every row (the biases are added in the steps), as the general loop's GEMM
  // computes each element; training: into the workspace, which keeps the activated gates.
  Buffer<T> own(ws ? 0 : rows * GH);
  T* xg = ws ? ws->gates.data() : own.data();
  PackedB<T> wih;  // W_ih^T [I, G*H], when the calling thread projects
  const index_t wih_bytes = I * ((GH + nr - 1) / nr * nr) * static_cast<index_t>(sizeof(T));
  if (I > 0 && wih_bytes <= kMaxLocalProjectionBytes) wih.pack(true, I, GH, w.w_ih, I);
  const small::SmallKernels<T>* wih_ks = wih.cols() ? kernels_of(wih) : nullptr;
  if (wih_ks)
    project_rows(*wih_ks, wih, rows, x, xg);
  else
    gemm<T>(false, true, rows, GH, I, T(1), x, I, w.w_ih, I, T(0), xg, GH);
  detail::zero_padded_rows(s, H, y);
  if (ws) detail::zero_padded_rows(s, H, ws->hprev.data());
  detail::with_flag(ws != nullptr, [&](auto train_c) {
    constexpr bool Train = decltype(train_c)::value;
    detail::with_blocked_options(
        cell, cell == Cell::lstm && w.w_peephole, false, [&](auto cell_c, auto peep_c, auto) {
          constexpr Cell C = decltype(cell_c)::value;
          constexpr bool Peep = decltype(peep_c)::value;
          if (split)
            forward_loop_split<T, C, Train, Peep>(s, *ks, halves, xg, bias, w.w_peephole, b_hn,
                                                  h, c, y, ws);
          else
            forward_loop<T, C, Train, Peep>(s, *ks, whh, xg, bias, w.w_peephole, b_hn, h, c, y,
                                            ws);
        });
  });
  return true;
}

template <typename T>
bool small_batch_backward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w,
                          const RecurrentWorkspace<T>& ws, const T* dy, T* dgx, T* dgh_n, T* dh,
                          T* dc) {
  if (!small_batch_applies(cell, s, w)) return false;
  const index_t H = s.H, GH = gate_count(cell) * H;
  PackedB<T> whh;  // W_hh [G*H, H]: its columns are the hidden units
  whh.pack(false, GH, H, w.w_hh, H);
  const small::SmallKernels<T>* ks = kernels_of(whh);
  if (!ks) return false;
  detail::with_blocked_options(
      cell, cell == Cell::lstm && w.w_peephole, false, [&](auto cell_c, auto peep_c, auto) {
        backward_loop<T, decltype(cell_c)::value, decltype(peep_c)::value>(
            s, *ks, whh, w.w_peephole, ws, dy, dgx, dgh_n, dh, dc);
      });
  return true;
}

template bool small_batch_forward<float>(Cell, const SeqShape&, const RecurrentWeights<float>&,
                                         const float*, const float*, const float*, float*, float*,
                                         float*, RecurrentWorkspace<float>*);
template bool small_batch_forward<double>(Cell, const SeqShape&, const RecurrentWeights<double>&,
                                          const double*, const double*, const double*, double*,
                                          double*, double*, RecurrentWorkspace<double>*);
template bool small_batch_backward<float>(Cell, const SeqShape&, const RecurrentWeights<float>&,
                                          const RecurrentWorkspace<float>&, const float*, float*,
                                          float*, float*, float*);
template bool small_batch_backward<double>(Cell, const SeqShape&,
                                           const RecurrentWeights<double>&,
                                           const RecurrentWorkspace<double>&, const double*,
                                           double*, double*, double*, double*);

}  // namespace rnnfast
