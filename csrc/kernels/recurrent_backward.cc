// Backward pass (back-propagation through time) of the recurrent layers.
//
// The steps run in reverse processing order, each one parallel region over blocks of hidden
// units (the GEMM's panel width): a thread's range of blocks first completes its columns of the
// state gradient, dh += dgh_prev W_hh (dgh_prev: the recurrent-side gate gradients of the step
// processed just before, every unit), then turns them into the gate gradients of its units for
// every active sequence (saved for all rows in dgx [rows, G*H]; the next step's GEMM reads them there when
// every sequence spans every step and they are the recurrent side's too (RNN, LSTM), else from a
// staged copy with zeros for inactive sequences; read in place, with W_ih and W_hh small enough
// to stay in a core's L2, the step's rows of the input gradient come from them there too, beside
// the product). RNN and LSTM over whole sequences of a batch the threads could split take their
// weight and bias gradients inside the loop, by fixed groups of sequences and blocks of steps,
// while the gate gradients are in L2, never written for all rows (LoopWeights). Otherwise, after
// the loop, the input gradient (unless the loop gave it) and the weight
// gradients are a few large GEMMs over all rows, and the bias gradients sums of the gate
// gradients over the rows: the weight GEMM's [x | h_prev] is built and multiplied one depth
// block of rows at a time, while it is in L2, and the block's gate gradients summed by columns
// beside it (RNN, LSTM) or multiplied by a column of ones in [x | 1 | h_prev] (GRU's r and z
// rows, with its n rows' products over the same blocks); with bfloat16 products on a hardware
// path, by the pass that rounds them for the weight products; else column sums after the GEMM.
// GRU with reset before needs dn W_hn of all units before the gradient of r: it keeps the
// two-GEMM step. The large temporaries live in a scratch kept
// between calls (rnnfast/scratch_cache.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cell_steps.h"
#include "recurrent_common.h"
#include "recurrent_dropout.h"
#include "rnnfast/scratch_cache.h"
#include "rnnfast/gemm.h"
#include "rnnfast/recurrent.h"
#include "rnnfast/recurrent_small.h"

namespace rnnfast {

namespace {

// The temporaries of a backward call kept between calls (scratch_cache.h).
template <typename T>
struct BackwardScratch {
  Buffer<T> dgx;   // [rows, G*H] input-side gate gradients
  Buffer<T> dgh_n; // [rows, H] GRU (reset after): recurrent-side n-gate gradients
  Buffer<T> xh;    // [rows, I (+ 1) + H] the shared weight GEMM's [x | 1 | h_prev]
  Buffer<T> dw;    // [shared, I (+ 1) + H] its result
  Buffer<T> rh;    // [rows, H] GRU (reset before): r * h_prev
  Buffer<T> hprev; // [rows, H] h_prev in x's rows when the workspace's are not (time_major)
  Buffer<T> dw_seq;  // [shared, I (+ 1) + H] recurrent dropout: one sequence's product
  Buffer<T> ring;  // [groups, block rows, G*H] LoopWeights: each group's latest gate gradients
  PackedB<T> whh;  // W_hh packed for the blocked loop's products
  PackedB<T> wih;  // W_ih packed for the blocked loop's input gradients (dx by steps)
  PackedBf16 xh_bf16;  // bfloat16 hardware paths: the weight products' [x | h_prev]

  std::size_t bytes() const {
    return detail::bytes_of(dgx) + detail::bytes_of(dgh_n) + detail::bytes_of(xh) +
           detail::bytes_of(dw) + detail::bytes_of(rh) + detail::bytes_of(hprev) +
           detail::bytes_of(dw_seq) + detail::bytes_of(ring) + packed_bytes(whh) +
           packed_bytes(wih) + xh_bf16.bits.size() * sizeof(std::uint16_t);
  }
  static std::size_t packed_bytes(const PackedB<T>& p) {
    const index_t nr = p.panel_width();
    const index_t panels = nr ? (p.cols() + nr - 1) / nr : 0;
    return static_cast<std::size_t>(panels * p.panel_stride()) * sizeof(T);
  }
};

// Two idle scratches at most (two Python threads training at once keep theirs), 128 MiB
// together (larger ones are freed after their call).
template <typename T>
detail::ScratchCache<BackwardScratch<T>>& backward_scratch() {
  static detail::ScratchCache<BackwardScratch<T>> cache(2, std::size_t(128) << 20);
  return cache;
}

// out[j] = sum over rows of m[row * ld + j], j < n (add: out[j] + that sum); rows in order,
// so the sum is reproducible, and sums over consecutive blocks of rows with add after the first
// give the bits of the sum over all rows. The sums of a chunk of columns live in a local array
// (out could alias m for the compiler, which would then keep every addition scalar, through
// memory); a whole chunk (128 bytes: 8 SSE registers) has a loop of fixed length that keeps
// them in registers (a loop of any length kept them in memory, one load and store per add).
template <typename T>
void column_sums_range(index_t rows, index_t j0, index_t j1, const T* m, index_t ld, T* out,
                       bool add) {
  constexpr index_t kChunk = 128 / sizeof(T);
  for (index_t jb = j0; jb < j1; jb += kChunk) {
    const index_t w = std::min(kChunk, j1 - jb);
    T acc[kChunk] = {};
    if (add) std::copy(out + jb, out + jb + w, acc);
    if (w == kChunk) {
      for (index_t r = 0; r < rows; ++r) {
        const T* row = m + r * ld + jb;
        for (index_t j = 0; j < kChunk; ++j) acc[j] += row[j];
      }
    } else {
      for (index_t r = 0; r < rows; ++r) {
        const T* row = m + r * ld + jb;
        for (index_t j = 0; j < w; ++j) acc[j] += row[j];
      }
    }
    std::copy(acc, acc + w, out + jb);
  }
}

template <typename T>
void column_sums(index_t rows, index_t n, const T* m, index_t ld, T* out) {
  parallel_for(n, 64, [&](index_t j0, index_t j1) {
    column_sums_range(rows, j0, j1, m, ld, out, false);
  });
}

// The peephole gradients [3, H]: over the valid rows (in order, so the sums are reproducible),
// sum of di * c_{t-1}, df * c_{t-1} and do * c_t, c_t recomputed from the saved gates.
template <typename T>
void peephole_grads(const SeqShape& s, const RecurrentWorkspace<T>& ws, const T* dgx, T* out) {
  const index_t H = s.H, GH = 4 * H;
  constexpr index_t kChunk = 64;
  parallel_for(H, kChunk, [&](index_t j0, index_t j1) {
    for (index_t jb = j0; jb < j1; jb += kChunk) {
      const index_t w = std::min(kChunk, j1 - jb);
      T pi[kChunk] = {}, pf[kChunk] = {}, po[kChunk] = {};
      for (index_t t = 0; t < s.T; ++t)
        for (index_t b = 0; b < s.B; ++b) {
          if (t >= s.length(b)) continue;
          const index_t row = s.row(t, b), wrow = ws.row(s, t, b);
          const T* d = dgx + row * GH + jb;
          const T* gt = ws.gates.data() + wrow * GH + jb;
          const T* cp = ws.extra.data() + wrow * H + jb;
          for (index_t j = 0; j < w; ++j) {
            const T cn = gt[H + j] * cp[j] + gt[j] * gt[2 * H + j];
            pi[j] += d[j] * cp[j];
            pf[j] += d[H + j] * cp[j];
            po[j] += d[3 * H + j] * cn;
          }
        }
      std::copy(pi, pi + w, out + jb);
      std::copy(pf, pf + w, out + H + jb);
      std::copy(po, po + w, out + 2 * H + jb);
    }
  });
}

// Asks for the lines of [p, p + bytes) in L2 (write: about to be written).
template <bool Write>
inline void prefetch_lines(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(c) & ~std::uintptr_t(63);
  const std::uintptr_t last = reinterpret_cast<std::uintptr_t>(c + bytes - 1);
  for (std::uintptr_t a = first; a <= last; a += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a), Write ? 1 : 0, 2);
}

// The inputs of the gate gradients of units [j0, j0 + n) of row `row` (x's; wrow the
// workspace's: the saved gates, the cell's extra state, h_prev for GRU; dy) and the lines of dgx
// they will write, asked for in L2 a step ahead: the forward wrote them long ago (no longer
// cached), and a block's lines sit G*H apart, a stride the hardware prefetchers do not follow
// (perf: the gate math's time was mostly its first loads; bench/RESULTS.md). dgx null: the
// gate gradients go to a LoopWeights ring, in cache.
template <typename T, Cell C>
inline void prefetch_step_inputs(const SeqShape& s, const RecurrentWorkspace<T>& ws, const T* dy,
                                 T* dgx, index_t row, index_t wrow, index_t j0, index_t n) {
  constexpr index_t G = gate_count(C);
  const index_t H = s.H, GH = G * H;
  const std::size_t bytes = sizeof(T) * n;
  for (index_t k = 0; k < G; ++k) {
    prefetch_lines<false>(ws.gates.data() + wrow * GH + k * H + j0, bytes);
    if (dgx) prefetch_lines<true>(dgx + row * GH + k * H + j0, bytes);
  }
  if constexpr (C == Cell::lstm || C == Cell::gru)
    prefetch_lines<false>(ws.extra.data() + wrow * H + j0, bytes);
  if constexpr (C == Cell::gru) prefetch_lines<false>(ws.hprev.data() + wrow * H + j0, bytes);
  if (dy) prefetch_lines<false>(dy + row * H + j0, bytes);
}

// The weight and bias gradients of RNN and LSTM taken inside the reverse loop (loop_blocked),
// so that the gate gradients never go to memory: the sequences are cut into `groups` fixed by
// the shape alone (never by the thread count: the bits are the same at any count), each group
// runs through every step on one thread, and its gate gradients of `block_steps` consecutive
// steps (rows step by step, the group's sequences in order within a step) go to a ring of its
// own; when a block is complete its rows are summed by columns and multiplied by their rows of
// [x | h_prev] into the group's partial sums (GEMM calls by slabs of columns, beta = 1 after
// the first block), while they are in L2. The caller adds the groups' partial sums in group
// order.
template <typename T>
struct LoopWeights {
  index_t groups = 0;       // 0: dgx over all rows instead, the weight GEMMs after the loop
  index_t block_steps = 0;  // steps per block
  index_t ld = 0;           // of xh and dw: h_col + H rounded up to 16
  index_t h_col = 0;        // h_prev's first column in xh and dw: I, or bf16's pair_offset(I)
  // bfloat16 products on a hardware path: [x | 0 | h_prev] packed straight from the rows of x
  // and h_prev (PackedBf16::pack_pair_rows), no xh; portable: xh and gemm, as float32
  Bf16Isa bf16 = Bf16Isa::portable;
  index_t slab = 0;         // columns of [x | h_prev] per GEMM call (kLoopSlabPanels)
  const T* x = nullptr;     // [rows, I]
  const T* hprev = nullptr; // [rows, H] (the workspace's rows)
  const RecurrentWorkspace<T>* ws = nullptr;  // whose row() places them
  T* ring = nullptr;        // [groups][block_steps * group_max][G*H]
  T* xh = nullptr;          // [groups][block_steps * group_max][ld]
  T* dw = nullptr;          // [groups][G*H][ld] partial sums of dgx^T [x | h_prev]
  T* bias = nullptr;        // [groups][G*H] partial column sums of dgx, or null

  index_t begin(index_t g, index_t B) const { return B * g / groups; }
  index_t group_max(index_t B) const { return (B + groups - 1) / groups; }
};

// The reverse time loop of every cell but GRU with reset before. dh [B, H]: dh_n in, the
// gradient of h0 out (dh0 false: not asked for, and dh is left without the first step's
// product, one product less); dc likewise (LSTM). The threads take disjoint sequences through
// every step (detail::split_batch) or share each step by blocks of hidden units, as in the
// forward. The cell C and its options (Peep: LSTM peepholes; Zone: zoneout; Drop: recurrent
// dropout, one product per gate masked before it is added) are template parameters: no switch
// per row.
// dx (input gradient [rows, I], or null): when the loop reads dgx in place (below) and the
// products are float32, or with LoopWeights (below), each step's rows of dx = dgx W_ih are
// computed beside the step's product, while those rows of dgx are in cache (after the loop they
// are read from memory), with the values of the GEMM over all rows (same depth blocks):
// returns true; else false and the caller computes dx. (bfloat16 products read in place
// without LoopWeights keep the GEMM after the loop: each step's two products would round the
// step's rows twice, where that GEMM rounds every row once.) lw.groups > 0 (RNN, LSTM, every
// sequence active at every step, dx by steps or none): the weight and bias gradients in the
// loop, by groups of sequences (LoopWeights); dgx is not written, and dx is taken by steps
// from the staged copies too.
template <typename T, Cell C, bool Peep, bool Zone, bool Drop>
bool loop_blocked(const SeqShape& s, const T* w_hh, const T* peep, const detail::Zoneout<T>& zone,
                  const detail::RecurrentDropout<T>& drop, const RecurrentWorkspace<T>& ws,
                  const T* dy, T* dgx, T* dgh_n, T* dh, T* dc, PackedB<T>& whh,
                  const T* w_ih, T* dx, PackedB<T>& wih, const LoopWeights<T>& lw, bool dh0,
                  Precision prec) {  // bf16: precision of the products
  constexpr index_t G = gate_count(C);
  const index_t B = s.B, H = s.H, GH = G * H;
  // whh: W_hh [G*H, H], its columns the hidden units
  detail::GatePackedWeights<T> whh_k;  // Drop: W_hh_k [H, H] of each gate apart
  if constexpr (Drop)
    whh_k.pack(false, G, H, H, w_hh, prec);
  else
    whh.pack(false, GH, H, w_hh, H, prec);
  const index_t hb = Drop ? whh_k.gate[0].panel_width() : whh.panel_width();
  const index_t blocks = (H + hb - 1) / hb;
  Buffer<T> tmp(Drop ? B * H : 0);  // Drop: one gate's product
  // Every sequence active at every step (no lengths) and the recurrent-side gradients those of
  // the input side (RNN, LSTM): the next step's product reads this step's rows of dgx in place
  // (equally spaced: G*H apart time-major, T*G*H batch-first) instead of a staged copy, and the
  // step kernels' second output goes to a sink of one row per run (L1; blocks write disjoint
  // columns of it), or nowhere (the plain LSTM's kernel takes none). Else the staged copies
  // (zeros for inactive sequences).
  const bool direct = C != Cell::gru && s.lengths.empty();
  const index_t direct_ld = s.batch_first ? s.T * GH : GH;
  // dx by steps when W_ih and W_hh fit in a core's L2 beside the rest (1 MiB: both are read
  // at every step; larger ones would come from L3 at every step, where the GEMM after the loop
  // keeps its blocks of W_ih in L2: 6-8% more time at I = H = 512; bench/RESULTS.md). Its rows
  // of a step are as far apart as dgx's (T*I batch-first); each thread's share of a step's
  // blocks takes the matching share of dx's panels (a monotone map: the shares cover every
  // panel once).
  const index_t I = s.I;
  const bool step_dx = dx && (direct || lw.groups) && I > 0 &&
                       (prec == Precision::float32 || lw.groups) &&
                       GH * (I + H) * static_cast<index_t>(sizeof(T)) <= (index_t(1) << 20);
  if (step_dx) wih.pack(false, GH, I, w_ih, I, prec);
  const index_t dx_ld = s.batch_first ? s.T * I : I;
  const index_t xw = step_dx ? wih.panel_width() : 1, x_panels = (I + xw - 1) / xw;
  auto dx_col = [&](index_t q) { return q >= blocks ? I : std::min(I, q * x_panels / blocks * xw); };
  Buffer<T> stage_a(direct ? 0 : B * GH), stage_b(direct ? 0 : B * GH);
  // Zone: d * dh and d * dc, the previous state's parts of this step's gradients
  Buffer<T> keep_h(Zone ? B * H : 0), keep_c(Zone && C == Cell::lstm ? B * H : 0);
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  const index_t grain = detail::step_grain(B * GH * hb);

  // Sequences [b0, b1) through every step; share_steps: each step's blocks on the threads;
  // grp: their group (lw.groups > 0).
  auto run = [&](index_t b0, index_t b1, bool share_steps, index_t grp) {
    const T* prev = nullptr;  // row b0 of the gate gradients of the step processed before
    index_t prev_row = 0;     // and its row (step_dx: dx's)
    const index_t lda = direct && !lw.groups ? direct_ld : GH;  // and the distance of its rows
    T* cur = stage_a.data();  // [B, G*H] the staged gate gradients of this step
    Buffer<T> sink(direct ? GH : 0);
    index_t step = s.steps() - 1;
    const index_t nb = b1 - b0;
    // LoopWeights: the group's ring, the slot of this step in its block
    T* const ring = lw.groups ? lw.ring + grp * lw.block_steps * lw.group_max(B) * GH : nullptr;
    index_t slot = 0;
    bool first_block = true;
    // bf16 hardware (lw.bf16): the block's rows of x and of h_prev, and their packing
    std::vector<const T*> x_rows(lw.bf16 != Bf16Isa::portable ? lw.block_steps * nb : 0);
    std::vector<const T*> h_rows(x_rows.size());
    PackedBf16 xh_bf16;
    std::vector<T> block_sums(lw.bf16 != Bf16Isa::portable && lw.bias ? GH : 0);  // of a block
    // The block of `count` steps ending at `step` is complete: its rows of [x | h_prev], then
    // its column sums and its product into the group's partial sums.
    auto block_weights = [&](index_t count) {
      const index_t rows = count * nb, n = s.I + H;
      // bf16 hardware: packed from x and h_prev where they lie (a float32 copy of them side by
      // side, packed from there, ran the backward 1-4% slower at T=100, B=32, I=H=128 and at
      // B=64, I=64, H=256 on one thread; bench/RESULTS.md). The bits of the copy's product: the
      // same rounded values, each element of a product one sum whatever its column. (The bias
      // gradients: float32 sums block by block, below.)
      const bool packs_rows = lw.bf16 != Bf16Isa::portable;
      T* xh = packs_rows ? nullptr : lw.xh + grp * lw.block_steps * lw.group_max(B) * lw.ld;
      for (index_t q = 0; q < count; ++q) {
        const index_t st = step + count - 1 - q;  // slot q: the q-th step processed
        for (index_t b = b0; b < b1; ++b) {
          const index_t t = s.time_of(st, b), k = q * nb + b - b0;
          const T* x_row = lw.x + s.row(t, b) * s.I;
          const T* h_row = lw.hprev + lw.ws->row(s, t, b) * H;
          if (packs_rows) {
            x_rows[k] = x_row;
            h_rows[k] = h_row;
            continue;
          }
          std::memcpy(xh + k * lw.ld, x_row, sizeof(T) * s.I);
          std::memcpy(xh + k * lw.ld + s.I, h_row, sizeof(T) * H);
        }
      }
      T* bias = lw.bias ? lw.bias + grp * GH : nullptr;
      if constexpr (std::is_same_v<T, float>) {
        if (packs_rows) {
          xh_bf16.pack_pair_rows(lw.bf16, rows, s.I, x_rows.data(), H, h_rows.data());
          // the bias gradients: the block's column sums of the gate gradients, taken by the
          // pass that rounds them for the product (a pass of their own took 2% of the training
          // call at T=100, B=32, I=H=128), added to the group's
          gemm_bf16_trans_packed(GH, ring, GH, xh_bf16, 0, lw.h_col + H, first_block ? 0.0f : 1.0f,
                                 lw.dw + grp * GH * lw.ld, lw.ld,
                                 bias ? (first_block ? bias : block_sums.data()) : nullptr);
          if (bias && !first_block)
            for (index_t j = 0; j < GH; ++j) bias[j] += block_sums[j];
          first_block = false;
          return;
        }
      }
      if (bias) column_sums_range(rows, 0, GH, ring, GH, bias, !first_block);
      // By slabs of columns (lw.slab): the same values (the same chain per element).
      for (index_t c0 = 0; c0 < n; c0 += lw.slab)
        gemm<T>(true, false, GH, std::min(lw.slab, n - c0), rows, T(1), ring, GH, xh + c0,
                lw.ld, first_block ? T(0) : T(1), lw.dw + grp * GH * lw.ld + c0, lw.ld, prec);
      first_block = false;
    };

    // The gate gradients of units [j0, j0 + n) for every sequence, from their completed
    // columns of dh: one step-kernel call per row over the thread's whole range of blocks (a
    // call per block and row cost 7-20% more of the backward: short loops with their edges,
    // several passes per row; bench/RESULTS.md). The sizes and arrays are captured by value:
    // one load each after every call of a step kernel, not two (callgrind: bench/RESULTS.md).
    auto grads = [&, H, GH, dy, dgx, dgh_n, dh, dc, ring, nb](index_t j0, index_t n) {
      for (index_t b = b0; b < b1; ++b) {
        T* dhb = dh + b * H + j0;
        T* st = direct ? sink.data() + j0 : cur + b * GH + j0;
        if (!s.active(step, b)) {  // the state passes unchanged: dh stays, nothing to stage
          for (index_t k = 0; k < G; ++k) std::fill_n(st + k * H, n, T(0));
          continue;
        }
        const index_t t = s.time_of(step, b), row = s.row(t, b), wrow = ws.row(s, t, b);
        if (dy)
          for (index_t j = 0; j < n; ++j) dhb[j] += dy[row * H + j0 + j];
        [[maybe_unused]] const index_t zo = Zone ? zone.at(s, t, b, H, j0) : 0;
        if constexpr (Zone) {
          zone.split(zone.h, zo, n, dhb, keep_h.data() + b * H + j0);
          if constexpr (C == Cell::lstm)
            zone.split(zone.c, zo, n, dc + b * H + j0, keep_c.data() + b * H + j0);
        }
        const T* gates = ws.gates.data() + wrow * GH + j0;
        T* dgrow = ring ? ring + (slot * nb + b - b0) * GH + j0 : dgx + row * GH + j0;
        if constexpr (C == Cell::rnn_tanh || C == Cell::rnn_relu) {
          steps.rnn_grad(C == Cell::rnn_relu, n, H, gates, dhb, dgrow, st);
        } else if constexpr (C == Cell::lstm) {
          if constexpr (Peep)
            steps.lstm_peephole_grad(n, H, gates, ws.extra.data() + wrow * H + j0, peep + j0, dhb,
                                     dc + b * H + j0, dgrow, st);
          else  // direct: the recurrent side is dgrow itself, no second copy
            steps.lstm_grad(n, H, gates, ws.extra.data() + wrow * H + j0, dhb, dc + b * H + j0,
                            dgrow, direct ? nullptr : st);
        } else {
          static_assert(C == Cell::gru, "GRU with reset before runs loop_reset_before");
          steps.gru_grad(n, H, gates, ws.extra.data() + wrow * H + j0,
                         ws.hprev.data() + wrow * H + j0, dhb, dgrow, st);
          std::memcpy(dgh_n + row * H + j0, st + 2 * H, sizeof(T) * n);
        }
        if constexpr (Zone) {
          zone.add(n, keep_h.data() + b * H + j0, dhb);
          if constexpr (C == Cell::lstm)
            zone.add(n, keep_c.data() + b * H + j0, dc + b * H + j0);
        }
        if (step > 0 && s.active(step - 1, b)) {
          const index_t tn = s.time_of(step - 1, b);
          prefetch_step_inputs<T, C>(s, ws, dy, ring ? nullptr : dgx, s.row(tn, b),
                                     ws.row(s, tn, b), j0, n);
        }
      }
    };
    // Blocks [q0, q1): one GEMM completes their columns of dh (A, the staged gradients, is read
    // or packed once), then each block's gate gradients.
    auto run_blocks = [&](index_t q0, index_t q1) {
      if (prev) {
        if constexpr (Drop)
          drop.add_products_cols(b0, b1 - b0, prev, lda, H, whh_k.gate, q0 * hb,
                                 std::min(H, q1 * hb), tmp.data(), dh);
        else
          gemm_packed_cols<T>(b1 - b0, prev, lda, whh, q0 * hb, std::min(H, q1 * hb), T(1),
                              dh + b0 * H, H);
        if (step_dx)
          gemm_packed_cols<T>(b1 - b0, prev, lda, wih, dx_col(q0), dx_col(q1), T(0),
                              dx + prev_row * I, dx_ld);
      }
      grads(q0 * hb, std::min(H, q1 * hb) - q0 * hb);
    };
    for (; step >= 0; --step) {
      if (share_steps)
        parallel_for(blocks, grain, run_blocks);
      else
        run_blocks(0, blocks);
      if (direct || ring) prev_row = s.row(s.time_of(step, b0), b0);
      if (direct) {
        prev = ring ? ring + slot * nb * GH : dgx + prev_row * GH;
      } else {
        prev = cur + b0 * GH;
        cur = cur == stage_a.data() ? stage_b.data() : stage_a.data();
      }
      if (ring) {
        if (slot + 1 == lw.block_steps || step == 0) {
          block_weights(slot + 1);
          slot = 0;
        } else {
          ++slot;
        }
      }
    }
    if (prev && dh0) {
      if constexpr (Drop)
        drop.add_products_cols(b0, b1 - b0, prev, lda, H, whh_k.gate, 0, H, tmp.data(), dh);
      else
        gemm_packed<T>(b1 - b0, prev, lda, whh, T(1), dh + b0 * H, H);
    }
    if (prev && step_dx)
      gemm_packed<T>(b1 - b0, prev, lda, wih, T(0), dx + prev_row * I, dx_ld);
  };
  if (lw.groups)
    parallel_for(lw.groups, 1, [&](index_t g0, index_t g1) {
      for (index_t g = g0; g < g1; ++g) run(lw.begin(g, B), lw.begin(g + 1, B), false, g);
    });
  else if (detail::split_batch(s))
    parallel_for(B, detail::kMinSequencesPerThread,
                 [&](index_t b0, index_t b1) { run(b0, b1, false, 0); });
  else
    run(0, B, true, 0);
  return step_dx;
}

// The reverse time loop of GRU with reset before; dh as in loop_blocked. Zone: zoneout; Drop:
// recurrent dropout (the n gate's product took r * (h * m_n): d(r * h) is scaled by m_n).
template <typename T, bool Zone, bool Drop>
void loop_reset_before(const SeqShape& s, const T* w_hh, const detail::Zoneout<T>& zone,
                       const detail::RecurrentDropout<T>& drop, const RecurrentWorkspace<T>& ws,
                       const T* dy, T* dgx, T* dh_io,
                       Precision prec) {  // bf16: precision of the products
  const index_t B = s.B, H = s.H, GH = 3 * H;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  PackedB<T> whh, whh_n;  // W_hh of the r,z gates [2H, H] and of the n gate [H, H]
  detail::GatePackedWeights<T> whh_rz;  // Drop: W_hh_r and W_hh_z [H, H] apart
  if constexpr (Drop)
    whh_rz.pack(false, 2, H, H, w_hh, prec);
  else
    whh.pack(false, 2 * H, H, w_hh, H, prec);
  whh_n.pack(false, H, H, w_hh + 2 * H * H, H, prec);
  Buffer<T> stage(B * GH), back(B * H), drh(B * H), dh_direct(B * H);
  Buffer<T> tmp(Drop ? B * H : 0);
  Buffer<T> keep(Zone ? B * H : 0);  // d * dh, the previous state's part
  T* dh = dh_io;
  for (index_t step = s.steps() - 1; step >= 0; --step) {
    // Gate gradients of every active sequence; inactive ones stage zeros and keep dh.
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      T* dhb = dh_direct.data() + b * H;
      T* st = stage.data() + b * GH;
      std::memcpy(dhb, dh + b * H, sizeof(T) * H);
      if (!s.active(step, b)) {
        std::fill_n(st, GH, T(0));
        return;
      }
      const index_t t = s.time_of(step, b), row = s.row(t, b), wrow = ws.row(s, t, b);
      if (dy)
        for (index_t j = 0; j < H; ++j) dhb[j] += dy[row * H + j];
      if constexpr (Zone) zone.split(zone.h, zone.at(s, t, b, H, 0), H, dhb, keep.data() + b * H);
      // st holds [dr, dz] (2H) for the r,z GEMM and, after them, dn (H) for the W_hn GEMM.
      steps.gru_before_grad_n(H, ws.gates.data() + wrow * GH, ws.hprev.data() + wrow * H, dhb,
                              dgx + row * GH, st + 2 * H);
    });
    gemm_packed<T>(B, stage.data() + 2 * H, GH, whh_n, T(0), drh.data(), H);
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t t = s.time_of(step, b), row = s.row(t, b), wrow = ws.row(s, t, b);
      if constexpr (Drop) {  // d(r * h) = drh * m_n
        T* d = drh.data() + b * H;
        const T* m = drop.at(2, b);
        for (index_t j = 0; j < H; ++j) d[j] *= m[j];
      }
      steps.gru_before_grad_r(H, ws.gates.data() + wrow * GH, ws.hprev.data() + wrow * H,
                              drh.data() + b * H, dh_direct.data() + b * H, dgx + row * GH,
                              stage.data() + b * GH);
      if constexpr (Zone) zone.add(H, keep.data() + b * H, dh_direct.data() + b * H);
    });
    // dh = direct part + staged gate gradients W_hh (zero rows for inactive sequences).
    std::memcpy(back.data(), dh_direct.data(), sizeof(T) * B * H);
    if constexpr (Drop)
      drop.add_products(2, stage.data(), GH, H, whh_rz.gate, tmp.data(), back.data());
    else
      gemm_packed<T>(B, stage.data(), GH, whh, T(1), back.data(), H);
    std::memcpy(dh, back.data(), sizeof(T) * B * H);
  }
}

// The reverse time loop of the LSTM with a projection: dh [B, P] (dh_n in, the gradient of h0
// out), dc [B, H] likewise. Per step, dm = dh W_hr (one GEMM: every unit of dm needs all of dh),
// the gate gradients by rows, then dh = (staged gate gradients) W_hh. dh_rows [rows, P] keeps
// the gradient of every step's h for dW_hr = dh_rows^T m.
template <typename T, bool Peep, bool Zone, bool Drop>
void loop_projected(const SeqShape& s, const T* w_hh, const T* w_hr, const T* peep,
                    const detail::Zoneout<T>& zone, const detail::RecurrentDropout<T>& drop,
                    const RecurrentWorkspace<T>& ws, const T* dy, T* dgx, T* dh_rows, T* dh,
                    T* dc, Precision prec) {  // bf16: precision of the products
  const index_t B = s.B, H = s.H, P = s.P, GH = 4 * H;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  PackedB<T> whh, whr;  // W_hh [4H, P], W_hr [P, H]
  detail::GatePackedWeights<T> whh_k;  // Drop: W_hh_k [H, P] of each gate apart
  if constexpr (Drop)
    whh_k.pack(false, 4, H, P, w_hh, prec);
  else
    whh.pack(false, GH, P, w_hh, P, prec);
  Buffer<T> tmp(Drop ? B * P : 0);
  whr.pack(false, P, H, w_hr, H, prec);
  Buffer<T> stage(B * GH), dm(B * H);
  // Zone: d * dh and d * dc, the previous state's parts of this step's gradients
  Buffer<T> keep_h(Zone ? B * P : 0), keep_c(Zone ? B * H : 0);
  for (index_t step = s.steps() - 1; step >= 0; --step) {
    detail::for_each_batch_row(B, P, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t t = s.time_of(step, b), row = s.row(t, b);
      T* dhb = dh + b * P;
      if (dy)
        for (index_t j = 0; j < P; ++j) dhb[j] += dy[row * P + j];
      if constexpr (Zone) zone.split(zone.h, zone.at(s, t, b, P, 0), P, dhb, keep_h.data() + b * P);
      std::memcpy(dh_rows + row * P, dhb, sizeof(T) * P);
    });
    gemm_packed<T>(B, dh, P, whr, T(0), dm.data(), H);
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      T* st = stage.data() + b * GH;
      if (!s.active(step, b)) {  // the state passes unchanged: dh stays, nothing to stage
        std::fill_n(st, GH, T(0));
        return;
      }
      const index_t t = s.time_of(step, b), row = s.row(t, b), wrow = ws.row(s, t, b);
      const T* gates = ws.gates.data() + wrow * GH;
      const T* cprev = ws.extra.data() + wrow * H;
      if constexpr (Zone)
        zone.split(zone.c, zone.at(s, t, b, H, 0), H, dc + b * H, keep_c.data() + b * H);
      if constexpr (Peep)
        steps.lstm_peephole_grad(H, H, gates, cprev, peep, dm.data() + b * H, dc + b * H,
                                 dgx + row * GH, st);
      else
        steps.lstm_grad(H, H, gates, cprev, dm.data() + b * H, dc + b * H, dgx + row * GH, st);
      if constexpr (Zone) {  // h_{t-1} reaches h_t through W_hh and the zoneout's d
        zone.add(H, keep_c.data() + b * H, dc + b * H);
        std::memcpy(dh + b * P, keep_h.data() + b * P, sizeof(T) * P);
      } else {
        std::fill_n(dh + b * P, P, T(0));  // h_{t-1} reaches h_t through W_hh only
      }
    });
    if constexpr (Drop)
      drop.add_products(4, stage.data(), GH, H, whh_k.gate, tmp.data(), dh);
    else
      gemm_packed<T>(B, stage.data(), GH, whh, T(1), dh, P);
  }
}

// LoopWeights: groups of sequences (the most threads the reverse loop then uses) and rows per
// block (128 and 256 measured alike; a block of 128 rows of 512 gate gradients is 256 KiB,
// beside W_hh, W_ih and the partial sums in a core's L2).
constexpr index_t kLoopGroups = 2;
constexpr index_t kLoopBlockRows = 128;

// A block's weight-gradient product by slabs of this many GEMM panels of columns of
// [x | h_prev]: the GEMM then reads the block's gate gradients (its transposed A) in place
// (gemm.cc, a_reading) instead of packing all of them for one product of a short depth: 1-2%
// less of the backward's time at blocks of 128 to 2048 rows of 512 (AVX2: 3-8%;
// bench/RESULTS.md, bwd session 14).
constexpr index_t kLoopSlabPanels = 4;

}  // namespace

template <typename T>
void recurrent_backward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                        const RecurrentWorkspace<T>& ws, const T* dy, const T* dh_n,
                        const T* dc_n, const RecurrentGrads<T>& g) {
  const index_t B = s.B, H = s.H, I = s.I, G = gate_count(cell), GH = G * H, rows = s.rows();
  const index_t Hs = s.state_size();  // features of h
  const bool is_lstm = cell == Cell::lstm, projected = is_lstm && w.w_hr;
  const bool zoned = w.zoneout_h != nullptr;  // training: the forward's masks
  const detail::Zoneout<T> zone = detail::Zoneout<T>::of(w);
  const bool dropped = w.recurrent_mask != nullptr;
  const detail::RecurrentDropout<T> drop = detail::RecurrentDropout<T>::of(w, G, s);

  typename detail::ScratchCache<BackwardScratch<T>>::Lease scratch(backward_scratch<T>());
  // The weight and bias gradients inside the reverse loop (LoopWeights): RNN and LSTM whose
  // sequences all span every step (no lengths, or all T: the same bits both ways), without
  // projection, peepholes or recurrent dropout, both weight gradients asked for, a shape the
  // threads could split by sequences, and dx (if asked for) taken by steps in the loop (W_ih
  // and W_hh in L2, as loop_blocked decides), W_hh in L2 (the rule before the threads took
  // sequences at any size: larger weights not measured here). bfloat16 products too: the
  // gate gradients then never go to memory either, where the GEMMs after the loop read them
  // back twice, for dx and (transposed) for the weight gradients (LSTM T=100, B=32, I=H=128
  // on one thread: backward 0.3 ms faster of 4; bench/RESULTS.md).
  LoopWeights<T> lw;
  bool whole = true;  // every sequence spans every step
  for (index_t b = 0; b < B && whole; ++b) whole = s.length(b) == s.T;
  const bool no_dx_after =
      !g.x || GH * (I + H) * static_cast<index_t>(sizeof(T)) <= (index_t(1) << 20);
  if ((cell == Cell::lstm || cell == Cell::rnn_tanh || cell == Cell::rnn_relu) && !projected &&
      !w.w_peephole && !dropped && whole && I > 0 && g.w_ih && g.w_hh &&
      no_dx_after && detail::split_batch_shape(s) &&
      detail::recurrent_weights_in_l2<T>(s, G)) {
    lw.groups = kLoopGroups;
    const index_t per = lw.group_max(B);
    lw.block_steps = std::max<index_t>(1, kLoopBlockRows / per);
    if constexpr (std::is_same_v<T, float>)
      if (w.precision == Precision::bfloat16) lw.bf16 = active_bf16_isa();
    lw.h_col = lw.bf16 != Bf16Isa::portable ? PackedBf16::pair_offset(I) : I;
    lw.ld = (lw.h_col + H + 15) / 16 * 16;
    // bfloat16: one product per block (each call packs the block's gate gradients)
    lw.slab = w.precision == Precision::float32 ? kLoopSlabPanels * packed_panel_width<T>() : lw.ld;
    lw.x = x;
    lw.hprev = ws.hprev.data();
    lw.ws = &ws;
    lw.ring = detail::fit(scratch->ring, lw.groups * lw.block_steps * per * GH);
    const bool copies_xh = lw.bf16 == Bf16Isa::portable;  // else packed from x and h_prev
    lw.xh = detail::fit(scratch->xh, copies_xh ? lw.groups * lw.block_steps * per * lw.ld : 0);
    const bool bias = g.b_ih || g.b_hh;
    lw.dw = detail::fit(scratch->dw, lw.groups * GH * (lw.ld + (bias ? 1 : 0)));
    lw.bias = bias ? lw.dw + lw.groups * GH * lw.ld : nullptr;
  }
  // dgx: input-side gate gradients of every row; dgh_n: recurrent-side n-gate gradients of every
  // row (GRU reset after: they differ from the input side by the factor r).
  T* dgx = lw.groups ? nullptr : detail::fit(scratch->dgx, rows * GH);
  T* dgh_n = detail::fit(scratch->dgh_n, cell == Cell::gru ? rows * H : 0);
  if (!s.lengths.empty() && dgx) {
    std::fill_n(dgx, rows * GH, T(0));
    if (cell == Cell::gru) std::fill_n(dgh_n, rows * H, T(0));
  }
  Buffer<T> dh(B * Hs), dc(is_lstm ? B * H : 0), dh_rows(projected ? rows * Hs : 0);
  if (dh_n) std::memcpy(dh.data(), dh_n, sizeof(T) * B * Hs); else dh.zero();
  if (projected && !s.lengths.empty()) dh_rows.zero();
  if (is_lstm) {
    if (dc_n) std::memcpy(dc.data(), dc_n, sizeof(T) * B * H); else dc.zero();
  }
  bool dx_done = false;  // by the blocked loop
  detail::with_flag(dropped, [&](auto drop_c) {
    constexpr bool Drop = decltype(drop_c)::value;
    if (cell == Cell::gru_reset_before)
      detail::with_flag(zoned, [&](auto zone_c) {
        loop_reset_before<T, decltype(zone_c)::value, Drop>(s, w.w_hh, zone, drop, ws, dy, dgx,
                                                            dh.data(), w.precision);
      });
    else if (projected)
      detail::with_flag(w.w_peephole != nullptr, [&](auto peep_c) {
        detail::with_flag(zoned, [&](auto zone_c) {
          loop_projected<T, decltype(peep_c)::value, decltype(zone_c)::value, Drop>(
              s, w.w_hh, w.w_hr, w.w_peephole, zone, drop, ws, dy, dgx, dh_rows.data(),
              dh.data(), dc.data(), w.precision);
        });
      });
    else if (!small_batch_backward(cell, s, w, ws, dy, dgx, dgh_n, dh.data(),
                                   dc.data()))  // batches of 1..8: recurrent_small.cc
      detail::with_blocked_options(
          cell, is_lstm && w.w_peephole, zoned, [&](auto cell_c, auto peep_c, auto zone_c) {
          dx_done = loop_blocked<T, decltype(cell_c)::value, decltype(peep_c)::value,
                                 decltype(zone_c)::value, Drop>(
              s, w.w_hh, w.w_peephole, zone, drop, ws, dy, dgx, dgh_n, dh.data(), dc.data(),
              scratch->whh, w.w_ih, g.x, scratch->wih, lw, g.h0 != nullptr, w.precision);
          });
  });
  if (g.w_peephole && is_lstm && w.w_peephole)
    peephole_grads(s, ws, dgx, g.w_peephole);

  if (g.h0) std::memcpy(g.h0, dh.data(), sizeof(T) * B * Hs);
  if (g.w_hr && projected)  // dW_hr = sum over rows of dh_t^T m_t
    gemm<T>(true, false, Hs, H, rows, T(1), dh_rows.data(), Hs, ws.m.data(), H, T(0), g.w_hr, H,
            w.precision);
  if (g.c0 && is_lstm) std::memcpy(g.c0, dc.data(), sizeof(T) * B * H);

  if (lw.groups) {  // the groups' partial sums, added in group order
    const T* part = lw.dw;
    const index_t part_ld = lw.ld;
    for (index_t i = 0; i < GH; ++i) {
      T* out_ih = g.w_ih + i * I;
      T* out_hh = g.w_hh + i * H;
      const T* p0 = part + i * part_ld;
      std::memcpy(out_ih, p0, sizeof(T) * I);
      std::memcpy(out_hh, p0 + lw.h_col, sizeof(T) * H);
      for (index_t k = 1; k < lw.groups; ++k) {
        const T* pk = part + (k * GH + i) * part_ld;
        for (index_t j = 0; j < I; ++j) out_ih[j] += pk[j];
        for (index_t j = 0; j < H; ++j) out_hh[j] += pk[lw.h_col + j];
      }
    }
    if (lw.bias) {
      T* out = g.b_ih ? g.b_ih : g.b_hh;
      std::memcpy(out, lw.bias, sizeof(T) * GH);
      for (index_t k = 1; k < lw.groups; ++k)
        for (index_t i = 0; i < GH; ++i) out[i] += lw.bias[k * GH + i];
      if (g.b_ih && g.b_hh) std::memcpy(g.b_hh, g.b_ih, sizeof(T) * GH);
    }
    return;
  }

  // Large GEMMs over all rows.
  if (g.x && !dx_done)
    gemm<T>(false, false, rows, I, GH, T(1), dgx, GH, w.w_ih, I, T(0), g.x, I, w.precision);
  // Weight gradients. The rows of W_ih and W_hh whose gradients share dgx (every gate of RNN
  // and LSTM, r and z of GRU) come from one GEMM dgx^T [x | h_prev], wider than either part
  // (narrow GEMMs run at a fraction of the rate; bench/RESULTS.md); each element gets the value
  // the separate GEMMs would give. The n rows of a GRU multiply other inputs on the recurrent
  // side (r * (W_hn h) or W_hn (r * h)).
  // With recurrent dropout each gate's rows of dW_hh multiply h_prev * m_k: one GEMM per gate
  // (recurrent_dropout.h), dW_ih one GEMM of its own.
  // A column of ones between x and h_prev makes these GEMMs sum dgx (and GRU's dgh_n) over the
  // rows too: the bias gradients, without another pass over dgx (which no longer fits in
  // cache: 26 MB at T=100, B=64, H=256). Not with bfloat16 products, which would round dgx:
  // the bias gradients stay float32 column sums.
  const bool gru_like = G == 3;
  const index_t shared = g.w_ih && g.w_hh && !dropped ? (gru_like ? 2 * H : GH) : 0;
  // RNN and LSTM: the bias gradients are the column sums of each depth block's rows of dgx,
  // summed while the block is in cache, before its product reads them (an L2 pass), rather
  // than a column of ones in the product: I + 1 + H columns take a whole panel of the GEMM
  // more than I + H when I + H is a multiple of its width (the usual case), 2-9% of the
  // weight GEMM at the LSTM's benchmark shapes (bench/RESULTS.md). GRU keeps the ones
  // column: its n rows' bias gradients come from the [x | 1] and [1 | h_prev] products.
  const bool bias_blocks = shared && !gru_like && (g.b_ih || g.b_hh) &&
                           w.precision == Precision::float32;
  T* const bias_out = bias_blocks ? (g.b_ih ? g.b_ih : g.b_hh) : nullptr;
  const bool ones = shared && !bias_blocks && (g.b_ih || g.b_hh) &&
                    w.precision == Precision::float32;
  // GRU: the n rows of W_ih multiply x (and their bias gradient is the ones column's), those of
  // W_hh (reset after) h_prev with the recurrent-side gradients dgh_n: two more products over
  // the same blocks of [x | 1 | h_prev], on their column ranges [x | 1] and [1 | h_prev]
  // (one GEMM of all 4H rows would compute dn h_prev and dgh_n x for nothing: 25% more).
  const bool n_ih = gru_like && shared, n_hh = cell == Cell::gru && shared;
  const T* hprev = ws.hprev.data();  // in the workspace's rows
  // h_prev in x's rows, for the products that read it as a matrix beside dgx: gathered once
  // when the workspace is time-major and x batch-first (the LSTM's dW_hh asked for without
  // dW_ih: no other of these products runs on a time-major workspace).
  const T* hprev_x = nullptr;
  auto hprev_rows = [&]() -> const T* {
    if (!hprev_x && ws.time_major && s.batch_first) {
      T* out = detail::fit(scratch->hprev, rows * Hs);
      for (index_t r = 0; r < rows; ++r)
        std::memcpy(out + r * Hs, hprev + ws.row_of(s, r) * Hs, sizeof(T) * Hs);
      hprev_x = out;
    }
    return hprev_x ? hprev_x : hprev;
  };
  // With recurrent dropout (RNN, LSTM), when the sequences are long and the result small: the
  // same [x | 1 | h_prev] product as one product per sequence, its state columns masked as the
  // sequences are summed (RecurrentDropout::weight_grads_by_sequence).
  const index_t seq_ld = (I + 1 + Hs + 15) / 16 * 16;
  const bool by_sequence = dropped && !gru_like && g.w_ih && g.w_hh &&
                           drop.weight_grads_by_sequence_pay(s, GH, seq_ld);
  const bool seq_ones = by_sequence && (g.b_ih || g.b_hh) && w.precision == Precision::float32;
  if (by_sequence) {
    const index_t one = seq_ones ? 1 : 0, n = I + one + Hs, ld = seq_ones ? seq_ld : n;
    T* dw = detail::fit(scratch->dw, GH * ld);
    drop.weight_grads_by_sequence(s, GH, n, H, dgx, GH, x, I, seq_ones, hprev_rows(), ld,
                                  scratch->xh, detail::fit(scratch->dw_seq, GH * ld), dw,
                                  w.precision);
    for (index_t i = 0; i < GH; ++i) {
      std::memcpy(g.w_ih + i * I, dw + i * ld, sizeof(T) * I);
      std::memcpy(g.w_hh + i * Hs, dw + i * ld + I + one, sizeof(T) * Hs);
    }
    if (seq_ones)
      for (T* out : {g.b_ih, g.b_hh})
        if (out)
          for (index_t i = 0; i < GH; ++i) out[i] = dw[i * ld + I];
  }
  // bfloat16 products on a hardware path: [x | h_prev] packed once, from x and h_prev where
  // they lie (no copy of them side by side: 13 MB written and read again at T=50, B=64,
  // I=H=512), for every weight product (GRU: its n rows' products read column ranges of the
  // same packing, not two more packings), and the bias gradients summed by the passes that
  // round the gate gradients for the products (one pass over them less; the bits of the column
  // sums after the products).
  const Bf16Isa bf16_isa = std::is_same_v<T, float> && w.precision == Precision::bfloat16
                               ? active_bf16_isa()
                               : Bf16Isa::portable;
  const bool bf16_packed = shared && bf16_isa != Bf16Isa::portable;
  bool bf16_sums = false;
  if constexpr (std::is_same_v<T, float>) {
    if (bf16_packed) {
      PackedBf16& xh = scratch->xh_bf16;
      xh.pack_pair(bf16_isa, rows, I, x, I, Hs, hprev_rows(), Hs);
      const index_t off = PackedBf16::pair_offset(I), n = off + Hs;  // h_prev from column off
      bf16_sums = g.b_ih || g.b_hh;
      T* dw = detail::fit(scratch->dw, shared * n + (n_ih ? H * I : 0) + (n_hh ? H * Hs : 0) +
                                           (bf16_sums ? GH + H : 0));
      T* dw_ih_n = dw + shared * n;
      T* dw_hh_n = dw_ih_n + (n_ih ? H * I : 0);
      // the column sums of dgx [GH], then of dgh_n [H] (GRU)
      T* sums = bf16_sums ? dw_hh_n + (n_hh ? H * Hs : 0) : nullptr;
      gemm_bf16_trans_packed(shared, dgx, GH, xh, 0, n, 0.0f, dw, n, sums);
      if (n_ih)
        gemm_bf16_trans_packed(H, dgx + 2 * H, GH, xh, 0, I, 0.0f, dw_ih_n, I,
                               sums ? sums + 2 * H : nullptr);
      if (n_hh)
        gemm_bf16_trans_packed(H, dgh_n, H, xh, off, n, 0.0f, dw_hh_n, Hs,
                               sums ? sums + GH : nullptr);
      for (index_t i = 0; i < shared; ++i) {
        std::memcpy(g.w_ih + i * I, dw + i * n, sizeof(T) * I);
        std::memcpy(g.w_hh + i * Hs, dw + i * n + off, sizeof(T) * Hs);
      }
      if (n_ih) std::memcpy(g.w_ih + 2 * H * I, dw_ih_n, sizeof(T) * H * I);
      if (n_hh) std::memcpy(g.w_hh + 2 * H * Hs, dw_hh_n, sizeof(T) * H * Hs);
      if (g.b_ih) std::memcpy(g.b_ih, sums, sizeof(T) * GH);
      if (g.b_hh) {  // b_ih's but for the n gate of GRU with reset after (dgh_n)
        std::memcpy(g.b_hh, sums, sizeof(T) * GH);
        if (n_hh) std::memcpy(g.b_hh + 2 * H, sums + GH, sizeof(T) * H);
      }
    }
  }
  if (shared && !bf16_packed) {
    // A row: x, 1, h_prev; rows 64-byte aligned (an odd stride costs the GEMM more than the
    // column sums it saves).
    const index_t one = ones ? 1 : 0, n = I + one + Hs;
    const index_t ld = ones || bias_blocks ? (n + 15) / 16 * 16 : n;
    // float32/float64 products: [x | 1 | h_prev] is built one depth block of the GEMM at a
    // time (rows [k0, k0 + kc)), each block multiplied while it is in L2 (beta = 1 after the
    // first): the GEMM sums the depth blocks in this order with these depths, so every element
    // gets the bits of the GEMM over all rows, and the copy never goes to memory and back
    // (3.5 MB written and read again at T=100, B=32, I=H=128). bfloat16 products (their own
    // blocking): one GEMM.
    const index_t kc = w.precision == Precision::float32
                           ? gemm_depth_block<T>(rows, true, active_isa())
                           : rows;
    const index_t ld_ih = I + one, ld_hh = one + Hs;  // the GRU's n rows
    T* xh = detail::fit(scratch->xh, std::min(rows, kc) * ld);
    T* dw = detail::fit(scratch->dw, shared * ld + (n_ih ? H * ld_ih : 0) + (n_hh ? H * ld_hh : 0));
    T* dw_ih_n = dw + shared * ld;
    T* dw_hh_n = dw_ih_n + (n_ih ? H * ld_ih : 0);
    for (index_t k0 = 0; k0 < rows; k0 += kc) {
      const index_t k1 = std::min(rows, k0 + kc);
      // one region: each part copies its share of the block's rows into [x | 1 | h_prev]
      // and sums its share of dgx's columns over the block's rows (bias_blocks)
      const index_t kb = k1 - k0;
      constexpr index_t kParts = 8;
      auto col = [&](index_t p) { return p == kParts ? GH : GH * p / kParts / 16 * 16; };
      parallel_for(kParts, 1, [&](index_t p0, index_t p1) {
        for (index_t r = kb * p0 / kParts; r < kb * p1 / kParts; ++r) {
          T* dst = xh + r * ld;
          std::memcpy(dst, x + (k0 + r) * I, sizeof(T) * I);
          if (ones) dst[I] = T(1);
          std::memcpy(dst + I + one, hprev + ws.row_of(s, k0 + r) * Hs, sizeof(T) * Hs);
        }
        if (bias_blocks)
          column_sums_range(kb, col(p0), col(p1), dgx + k0 * GH, GH, bias_out, k0 > 0);
      });
      const T beta = k0 == 0 ? T(0) : T(1);
      gemm<T>(true, false, shared, n, k1 - k0, T(1), dgx + k0 * GH, GH, xh, ld, beta, dw, ld,
              w.precision);
      if (n_ih)
        gemm<T>(true, false, H, ld_ih, k1 - k0, T(1), dgx + k0 * GH + 2 * H, GH, xh, ld, beta,
                dw_ih_n, ld_ih, w.precision);
      if (n_hh)
        gemm<T>(true, false, H, ld_hh, k1 - k0, T(1), dgh_n + k0 * H, H, xh + I, ld, beta,
                dw_hh_n, ld_hh, w.precision);
    }
    for (index_t i = 0; i < shared; ++i) {
      std::memcpy(g.w_ih + i * I, dw + i * ld, sizeof(T) * I);
      std::memcpy(g.w_hh + i * Hs, dw + i * ld + I + one, sizeof(T) * Hs);
    }
    for (index_t i = 0; i < (n_ih ? H : 0); ++i)
      std::memcpy(g.w_ih + (2 * H + i) * I, dw_ih_n + i * ld_ih, sizeof(T) * I);
    for (index_t i = 0; i < (n_hh ? H : 0); ++i)
      std::memcpy(g.w_hh + (2 * H + i) * Hs, dw_hh_n + i * ld_hh + one, sizeof(T) * Hs);
    if (ones) {
      // b_ih: the ones column of every row; b_hh: the same but for the n gate of GRU with
      // reset after (the ones column of the dgh_n product)
      for (T* out : {g.b_ih, g.b_hh})
        if (out)
          for (index_t i = 0; i < shared; ++i) out[i] = dw[i * ld + I];
      for (index_t i = 0; i < (n_ih ? H : 0); ++i) {
        if (g.b_ih) g.b_ih[2 * H + i] = dw_ih_n[i * ld_ih + I];
        if (g.b_hh) g.b_hh[2 * H + i] = n_hh ? dw_hh_n[i * ld_hh] : dw_ih_n[i * ld_ih + I];
      }
    }
  }
  if (g.w_ih && shared < GH && !n_ih && !by_sequence)
    gemm<T>(true, false, GH - shared, I, rows, T(1), dgx + shared, GH, x, I, T(0),
            g.w_ih + shared * I, I, w.precision);
  if (g.w_hh && !shared && dropped && !by_sequence)
    detail::masked_recurrent_weight_grads(s, drop, 0, gru_like ? 2 : G, H, dgx, GH, 0,
                                          hprev_rows(), g.w_hh, w.precision);
  else if (g.w_hh && !shared && !dropped)
    gemm<T>(true, false, gru_like ? 2 * H : GH, Hs, rows, T(1), dgx, GH, hprev_rows(), Hs, T(0),
            g.w_hh, Hs, w.precision);
  if (g.w_hh && cell == Cell::gru && dropped)
    detail::masked_recurrent_weight_grads(s, drop, 2, 3, H, dgh_n, H, 0, hprev_rows(), g.w_hh,
                                          w.precision);
  else if (g.w_hh && cell == Cell::gru && !n_hh)
    gemm<T>(true, false, H, H, rows, T(1), dgh_n, H, hprev_rows(), H, T(0), g.w_hh + 2 * H * H,
            H, w.precision);
  if (g.w_hh && cell == Cell::gru_reset_before) {
    // The n rows of W_hh multiply r * h: rebuild it for every valid row.
    T* rh = detail::fit(scratch->rh, rows * H);
    std::fill_n(rh, rows * H, T(0));
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < s.length(b); ++t) {
        const index_t row = s.row(t, b), wrow = ws.row(s, t, b);
        const T* r = ws.gates.data() + wrow * GH;
        for (index_t j = 0; j < H; ++j) rh[row * H + j] = r[j] * hprev[wrow * H + j];
        if (dropped)  // the product took r * (h * m_n)
          for (index_t j = 0; j < H; ++j) rh[row * H + j] *= drop.at(2, b)[j];
      }
    gemm<T>(true, false, H, H, rows, T(1), dgx + 2 * H, GH, rh, H, T(0),
            g.w_hh + 2 * H * H, H, w.precision);
  }

  // Bias gradients (unless the weight GEMM gave them): column sums of dgx; b_hh's are b_ih's
  // except the n gate of GRU with reset after (dgh_n).
  if (bias_blocks && g.b_ih && g.b_hh) std::memcpy(g.b_hh, g.b_ih, sizeof(T) * GH);
  const bool summed = ones || seq_ones || bias_blocks || bf16_sums;
  if (g.b_ih && !summed) column_sums(rows, GH, dgx, GH, g.b_ih);
  if (g.b_hh && !summed) {
    const index_t same = cell == Cell::gru ? 2 * H : GH;
    if (g.b_ih)
      std::memcpy(g.b_hh, g.b_ih, sizeof(T) * same);
    else
      column_sums(rows, same, dgx, GH, g.b_hh);
    if (cell == Cell::gru) column_sums(rows, H, dgh_n, H, g.b_hh + 2 * H);
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
