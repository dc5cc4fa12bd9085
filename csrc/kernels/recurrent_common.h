// Pieces shared by the recurrent forward and backward drivers.
#pragma once
#include <algorithm>
#include <type_traits>

#include "rnnfast/buffer.h"
#include "rnnfast/recurrent.h"
#include "rnnfast/threads.h"

namespace rnnfast::detail {

// Calls fn(std::integral_constant<Cell, c>{}) for the run-time cell c, so that the per-row loops
// of the blocked drivers take the cell as a template parameter (no switch inside them). GRU with
// reset before is not dispatched: it has loops of its own.
template <typename F>
void with_blocked_cell(Cell cell, F&& fn) {
  switch (cell) {
    case Cell::rnn_tanh: fn(std::integral_constant<Cell, Cell::rnn_tanh>{}); break;
    case Cell::rnn_relu: fn(std::integral_constant<Cell, Cell::rnn_relu>{}); break;
    case Cell::lstm: fn(std::integral_constant<Cell, Cell::lstm>{}); break;
    case Cell::gru: fn(std::integral_constant<Cell, Cell::gru>{}); break;
    case Cell::gru_reset_before: break;
  }
}

// Calls fn(std::true_type{}) or fn(std::false_type{}): a run-time option as a template one.
template <typename F>
void with_flag(bool flag, F&& fn) {
  if (flag) fn(std::true_type{});
  else fn(std::false_type{});
}

// with_blocked_cell with the cell's options as template parameters too:
// fn(cell_c, peep_c, zone_c), each a std::integral_constant (peepholes: LSTM only). A cell
// without options runs the instantiation without them.
template <typename F>
void with_blocked_options(Cell cell, bool peephole, bool zoneout, F&& fn) {
  with_blocked_cell(cell, [&](auto cell_c) {
    using Yes = std::true_type;
    using No = std::false_type;
    if constexpr (decltype(cell_c)::value == Cell::lstm) {
      if (peephole && zoneout) fn(cell_c, Yes{}, Yes{});
      else if (peephole) fn(cell_c, Yes{}, No{});
      else if (zoneout) fn(cell_c, No{}, Yes{});
      else fn(cell_c, No{}, No{});
    } else {
      if (zoneout) fn(cell_c, No{}, Yes{});
      else fn(cell_c, No{}, No{});
    }
  });
}

// Runs fn(b) for every batch row, in parallel chunks of rows when there is enough work per row.
template <typename F>
void for_each_batch_row(index_t B, index_t work_per_row, F&& fn) {
  const index_t grain = std::max<index_t>(1, 8192 / std::max<index_t>(1, work_per_row));
  parallel_for(B, grain, [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) fn(b);
  });
}

// Fewest multiply-adds a thread gets in one step's parallel region: below it, waking a second
// thread costs more than it saves.
constexpr index_t kMinStepWork = 1 << 16;

// Grain (blocks per chunk) of a per-step parallel_for over blocks of work_per_block each.
inline index_t step_grain(index_t work_per_block) {
  return std::max<index_t>(1, kMinStepWork / std::max<index_t>(1, work_per_block));
}

// Products with at most this many rows in the whole call (steps x batch: a single step of a small
// batch, as in generation) read the weights in place in the general forward: packing them would
// cost more than the product. A different summation, so the small-batch loops leave these calls
// to it (recurrent_small.cc) and the forward's merged product too (recurrent_forward.cc).
constexpr index_t kDirectRows = 4;

// Largest batch the small-batch loops take (recurrent_small.cc: 1..8 sequences).
constexpr index_t kSmallBatchMaxRows = 8;

// Fewest sequences a thread takes through a whole layer when split_batch says so.
constexpr index_t kMinSequencesPerThread = 8;

// Whether the recurrent weights (G*H x H) fit in a core's L2 beside the rest (1 MiB).
template <typename T>
bool recurrent_weights_in_l2(const SeqShape& s, index_t G) {
  return G * s.H * s.H * static_cast<index_t>(sizeof(T)) <= (index_t(1) << 20);
}

// Whether the threads of a layer take disjoint sequences through every step (no
// synchronisation at all, each thread's state stays in its core) rather than sharing every
// step by blocks of hidden units: when each gets kMinSequencesPerThread sequences or more,
// whatever the weights' size, in the forward (training and inference) and the backward alike.
// When W_hh^T does not fit in a core's L2 every thread then streams all of it from L3 at every
// step instead of its blocks' share, but a step shared by blocks needs every thread's new state
// before the next step's product: each step ends at a barrier and reads half of its state from
// the other core's cache, which this host's slow state (bench/RESULTS.md, sessions 12-16) makes
// costly. In-process A/Bs at 2 threads on AMD EPYC Zen 4 (family 25 model 17), busy machine,
// blocks / sequences, ms: inference, LSTM T=50 I=H=512 B=64 68.6-68.9 / 63.3-63.6 in the slow
// state, 62.2 / 62.0 in the fast one; B=32 35.0 / 32.7, B=16 18.0 / 17.1; I=H=1024 B=64
// 136.4 / 131.0 (fwd, session 16). Training (forward with workspace + backward), B=64, minima
// of 16 (LSTM) or 8-10 rounds: LSTM T=50 I=H=512 677 / 636 (CPU 420 / 412), LSTM T=25
// I=H=1024 792 / 773 (CPU 829 / 800), GRU T=50 I=H=512 317 / 297, GRU T=25 I=H=1024
// 692 / 623, RNN T=25 I=H=1024 218 / 208 (split, session 16). Results are the same either
// way, bit for bit (every element is computed alone).
inline bool split_batch_shape(const SeqShape& s) {  // split_batch but for the threads
  return s.B >= kMinSequencesPerThread * 2 && s.steps() > 1;
}

inline bool split_batch(const SeqShape& s) {
  return get_num_threads() > 1 && !in_parallel_region() && split_batch_shape(s);
}

// Sets to zero the padded rows (t >= lengths[b]) of a [rows, width] matrix.
template <typename T>
void zero_padded_rows(const SeqShape& s, index_t width, T* m) {
  if (s.lengths.empty()) return;
  for (index_t b = 0; b < s.B; ++b)
    for (index_t t = s.length(b); t < s.T; ++t) std::fill_n(m + s.row(t, b) * width, width, T(0));
}

// Zoneout (RecurrentWeights::zoneout_h/_c/zoneout) of the units [j0, j0 + n) of sequence b at
// time t: masks are time-major [T, B, width] (width: the state's features), null for inference,
// whose d is the constant rate.
template <typename T>
struct Zoneout {
  const T* h = nullptr;  // [T, B, state_size]
  const T* c = nullptr;  // [T, B, H] (LSTM)
  T rate = T(0);

  static Zoneout of(const RecurrentWeights<T>& w) { return {w.zoneout_h, w.zoneout_c, w.zoneout}; }

  // Offset of unit j0 of (t, b) in a mask of width features.
  static index_t at(const SeqShape& s, index_t t, index_t b, index_t width, index_t j0) {
    return (t * s.B + b) * width + j0;
  }

  // out = d * prev + (1 - d) * out, d from mask[offset + u] or the rate when mask is null.
  static void apply(const T* mask, T rate, index_t offset, index_t n, const T* prev, T* out) {
    if (mask) {
      const T* d = mask + offset;
      for (index_t u = 0; u < n; ++u) out[u] = d[u] * prev[u] + (T(1) - d[u]) * out[u];
    } else {
      for (index_t u = 0; u < n; ++u) out[u] = rate * prev[u] + (T(1) - rate) * out[u];
    }
  }

  // Backward: g (the gradient of the zoned state) becomes (1 - d) g, the cell's part, and keep
  // gets d g, the previous state's part (training masks only).
  static void split(const T* mask, index_t offset, index_t n, T* g, T* keep) {
    const T* d = mask + offset;
    for (index_t u = 0; u < n; ++u) {
      keep[u] = d[u] * g[u];
      g[u] = (T(1) - d[u]) * g[u];
    }
  }

  static void add(index_t n, const T* keep, T* g) {
    for (index_t u = 0; u < n; ++u) g[u] += keep[u];
  }
};

}  // namespace rnnfast::detail
