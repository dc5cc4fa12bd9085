// Forward pass of the recurrent layers over a whole sequence.
//
// 1. The input projections xg = x W_ih^T. When inferring, one GEMM per window of steps (W_ih^T
//    packed once), so the temporary is at most kWindowBytes (or one step) whatever T is, and a
//    window small enough to stay in the core's L2 when the weights fit there too. When the
//    threads share each step by blocks of hidden units and windows pay (projects_by_blocks),
//    inference packs W_ih^T in the same blocked column order as W_hh^T, and each thread
//    projects its blocks' columns of a window at the window's first step, inside the step's
//    parallel region: the window (about 1 MiB per core) is then read back by that thread's gate
//    math from its core's L2 (BlockedWindows). When training, the workspace's gates keep every
//    row (backward needs them): one GEMM over every row, or, when the weights fit in L2,
//    windows projected by each loop straight into the workspace, so that a step finds its rows
//    in cache. The LSTM of more than 8 sequences whose weights fit in L2 projects nothing
//    apart: each step's product is [x_t, h] [W_ih, W_hh]^T (merges_input), in inference and
//    training alike.
// 2. W_hh^T is packed once, its columns grouped by blocks of hidden units (all G gates of a
//    block side by side). Each step is one parallel region over those blocks: a thread's GEMM
//    h W_hh^T for its blocks is followed at once, in the same thread and while the product is
//    in cache, by the fused gate math of their units for every active sequence. The new state
//    goes to a second buffer (every block's GEMM reads all of the previous one), so a step
//    needs no barrier inside it; time-major sequences all active at every step use y's rows of
//    the step as that buffer (the state of step t is y[t]). GRU with reset before needs r * h
//    of all units before its n GEMM: it keeps two GEMMs and two row passes per step.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cell_steps.h"
#include "recurrent_common.h"
#include "recurrent_dropout.h"
#include "rnnfast/gemm.h"
#include "rnnfast/recurrent.h"
#include "rnnfast/recurrent_small.h"

namespace rnnfast {

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

// Elements of a packed matrix up to which PackedB::pack packs it in one chunk (one thread).
constexpr index_t kPackChunk = index_t(1) << 16;

// Whether products at precision prec run on a bfloat16 hardware path (AMX or AVX512-BF16, whose
// packings hold bfloat16 panels and whose left operands can be rounded ahead: PackedRowsBf16),
// and whether packed weights are that path's.
inline bool bf16_hardware(Precision prec) {
  return prec == Precision::bfloat16 && active_bf16_isa() != Bf16Isa::portable;
}
template <typename T>
bool bf16_hardware(const PackedB<T>& p) {
  if constexpr (std::is_same_v<T, float>)
    return p.precision() == Precision::bfloat16 && p.bf16().isa != Bf16Isa::portable;
  else
    return false;
}

// Bytes of input projection inference holds: the projection of every row when it fits, else a
// window of steps at a time (at least one step). A bound that does not grow with T, and large
// enough that the benchmark shapes project every row in one GEMM (small windows cost time at
// I=H=1024: bench/RESULTS.md).
constexpr index_t kWindowBytes = index_t(32) << 20;
std::atomic<index_t> g_window_bytes{kWindowBytes};

// When W_ih and W_hh together fit in a core's L2 (kL2Weights), inference projects windows of at
// most kL2WindowBytes instead: a window then stays in that core's L2 from its GEMM to its steps
// rather than streaming through memory as the projection of every row does (measured in
// bench/RESULTS.md). Larger W_ih would be read from memory once per window.
constexpr index_t kL2WindowBytes = index_t(256) << 10;
constexpr index_t kL2Weights = index_t(3) << 19;  // 1.5 MiB

// On a bfloat16 hardware path, inference projects windows of kBf16WindowBytes per loop (per
// thread when the threads take disjoint sequences), or of kBf16WindowRows rows where those are
// more, where they pay: a window of M rows saves writing its projection to memory and reading
// it back (8 bytes per row and column, the reads in the gate math's short runs) and costs one
// more read of W_ih^T (I values of 2 bytes per column, streamed ahead of the tiles: the AMX
// kernel brings the next panel into L2 from 128 rows), so when 8 M >= I. LSTM inference at
// T=50, B=64, I=H=512 on two threads 16-21% faster than every row at once, the GRU 10-15%
// (session 19); at I=H=1024 windows of 64 rows were slower, of 128 rows (4 steps of 32
// sequences per thread) 3-6% faster on two threads and 6-8% on one (LSTM; GRU 5-9%), of 192
// rows or more no better than 128 (session 20; bench/RESULTS.md).
constexpr index_t kBf16WindowBytes = index_t(1) << 20;
constexpr index_t kBf16WindowRows = 128;

// The input projections x W_ih^T, each row turned into activated gates by its step: every row
// at once (a reversed ragged batch, whose steps do not cover one time range, or training when
// the weights do not fit in L2), or, for sequences [b0, b1), a window of steps at a time: into a
// buffer of the window (inference) or straight into the workspace's rows (training).
template <typename T>
struct InputProjection {
  const SeqShape* s = nullptr;
  index_t GH = 0;
  T* xg = nullptr;     // [rows, G*H], or [window * (b1 - b0), G*H] for the current window
  T* into = nullptr;   // [rows, G*H]: the workspace the windows are projected into, or null
  index_t window = 0;  // steps per window, 0 = every row
  index_t t_lo = 0;    // first time step of the current window
  index_t b0 = 0, b1 = 0;
  const T* x = nullptr;
  const PackedB<T>* wih = nullptr;  // W_ih^T, packed once for all windows
  Buffer<T> own, xt;  // the projections (unless the workspace holds them); a window's inputs
  // bf16 hardware path, windows into own: the window's inputs rounded straight from x's rows
  // (gemm_bf16_prepacked_cols, the same values as gemm_packed's rounding of a copy of them; the
  // copy took 3% of LSTM inference at T=50, B=64, I=H=512 on two threads)
  PackedRowsBf16 xr;
  bool ahead = false;

  // Whether the loops project a window at a time (for nb sequences): when the steps cover one
  // time range for every sequence, and a window holds fewer steps than the sequence
  // (inference) or the weights fit in L2 (training: the workspace keeps every row anyway, but
  // each is then written while it is in the core's cache; bench/RESULTS.md). Up to kDirectRows
  // rows, all_rows reads the weights in place, in training as in inference, so that both give
  // the same values.
  // bf16_hw: bfloat16 products on a hardware path.
  static bool windowed(const SeqShape& s, index_t GH, index_t nb, bool training, bool bf16_hw) {
    if (s.reverse && !s.lengths.empty()) return false;
    if (training) return weights_in_l2(s, GH) && s.steps() > 1 && s.rows() > detail::kDirectRows;
    return window_steps(s, GH, nb, bf16_hw) < s.steps();
  }

  static bool weights_in_l2(const SeqShape& s, index_t GH) {
    return GH * (s.I + s.state_size()) * static_cast<index_t>(sizeof(T)) <= kL2Weights;
  }

  // Steps per window for nb sequences (bf16_hw as in windowed; a budget set by
  // set_projection_window_bytes holds for every precision).
  static index_t window_steps(const SeqShape& s, index_t GH, index_t nb, bool bf16_hw) {
    index_t bytes = g_window_bytes.load(std::memory_order_relaxed);
    nb = std::max<index_t>(1, nb);
    const index_t row_bytes = GH * static_cast<index_t>(sizeof(T));
    if (bf16_hw && bytes == kWindowBytes) {
      const index_t steps = std::max({index_t(1), kBf16WindowBytes / row_bytes / nb,
                                      (kBf16WindowRows + nb - 1) / nb});
      if (8 * steps * nb >= s.I) bytes = steps * nb * row_bytes;
    }
    if (weights_in_l2(s, GH)) bytes = std::min(bytes, kL2WindowBytes);
    return std::max<index_t>(1, bytes / row_bytes / nb);
  }

  // g of time step t of sequence b.
  T* at(index_t t, index_t b) const {
    if (into) return into + s->row(t, b) * GH;
    return window ? xg + ((t - t_lo) * (b1 - b0) + (b - b0)) * GH : xg + s->row(t, b) * GH;
  }

  // Every row at once, into dst (or a buffer of its own when dst is null).
  void all_rows(const SeqShape& s_, index_t GH_, const T* x_, const T* w_ih, T* dst,
                Precision prec,              // bf16: precision of the products
                std::uint64_t token = 0) {   // bf16: RecurrentWeights::weights_token
    s = &s_;
    GH = GH_;
    const index_t rows = s->rows(), I = s->I;
    xg = dst ? dst : (own.resize(rows * GH), own.data());
    if (rows <= detail::kDirectRows) {
      gemm_rows_nt<T>(rows, GH, I, x_, I, w_ih, I, xg, GH, prec);
    } else if (std::is_same_v<T, float> && token != 0 && bf16_hardware(prec)) {
      // bf16: W_ih^T packed once for calls with this token (gemm's values: its bfloat16
      // product packs B the same way and runs the same threaded product)
      PackedB<T> wih;
      wih.pack(true, I, GH, w_ih, I, prec, token);
      gemm_packed<T>(rows, x_, I, wih, T(0), xg, GH);
    } else {
      gemm<T>(false, true, rows, GH, I, T(1), x_, I, w_ih, I, T(0), xg, GH, prec);
    }
  }

  // A window at a time for sequences [b0_, b1_), into the rows of into_ if not null;
  // prepare() projects each window.
  void windows(const SeqShape& s_, index_t GH_, const T* x_, const PackedB<T>* wih_, index_t b0_,
               index_t b1_, T* into_) {
    s = &s_;
    GH = GH_;
    x = x_;
    wih = wih_;
    b0 = b0_;
    b1 = b1_;
    into = into_;
    const index_t nb = b1 - b0;
    const bool bf16_hw = bf16_hardware(*wih);
    window = window_steps(s_, GH, nb, bf16_hw);
    if (into) return;
    own.resize(window * nb * GH);
    xg = own.data();
    ahead = bf16_hw;
    if constexpr (std::is_same_v<T, float>)
      if (ahead) xr.shape(wih->bf16(), window * nb);
    if (!ahead && (s->batch_first || nb != s->B)) xt.resize(window * nb * s->I);
  }

  // Before step `step`: projects the window that starts there, if any.
  void prepare(index_t step) {
    if (!window || step % window) return;
    const index_t B = s->B, I = s->I, nb = b1 - b0;
    const index_t n = std::min(window, s->steps() - step);
    t_lo = s->reverse ? s->T - step - n : step;  // reversed windows: no lengths, time T-1-step
    if (into) {
      if (!s->batch_first && nb == B) {  // the window's rows are contiguous
        gemm_packed<T>(n * B, x + t_lo * B * I, I, *wih, T(0), into + t_lo * B * GH, GH);
        return;
      }
      const index_t stride = s->batch_first ? s->T : 1;  // rows from sequence b to b + 1
      for (index_t t = t_lo; t < t_lo + n; ++t) {
        const index_t row = s->row(t, b0);
        gemm_packed<T>(nb, x + row * I, stride * I, *wih, T(0), into + row * GH, stride * GH);
      }
      return;
    }
    if constexpr (std::is_same_v<T, float>) {
      if (ahead) {
        for (index_t t = 0; t < n; ++t) {
          if (!s->batch_first) {  // the step's sequences b0..b1: consecutive rows of x
            xr.set(t * nb, (t + 1) * nb, 0, I, x + s->row(t_lo + t, b0) * I, I);
            continue;
          }
          for (index_t b = b0; b < b1; ++b)
            xr.set(t * nb + b - b0, t * nb + b - b0 + 1, 0, I, x + s->row(t_lo + t, b) * I, I);
        }
        xr.clear(n * nb, std::min(xr.M, (n * nb + 15) / 16 * 16));  // a last, shorter window
        gemm_bf16_prepacked_cols(n * nb, xr, wih->bf16(), 0, GH, 0.0f, xg, GH);
        return;
      }
    }
    const T* a = x + t_lo * B * I;
    if (s->batch_first || nb != B) {
      for (index_t t = 0; t < n; ++t)
        for (index_t b = b0; b < b1; ++b)
          std::memcpy(xt.data() + (t * nb + b - b0) * I, x + s->row(t_lo + t, b) * I,
                      sizeof(T) * I);
      a = xt.data();
    }
    gemm_packed<T>(n * nb, a, I, *wih, T(0), xg, GH);
  }
};

// How the loops get the input projections: all rows projected before them (shared), or
// windows that each loop projects itself from x with the packed W_ih^T.
template <typename T>
struct Projections {
  const InputProjection<T>* shared = nullptr;
  const T* x = nullptr;
  const PackedB<T>* wih = nullptr;
  T* into = nullptr;  // training: the workspace's gates, which the windows are projected into
  // Inference of loop_gate_blocked sharing each step between threads: W_ih in place (w_ih),
  // which the loop packs in its blocked column order and projects in windows (BlockedWindows).
  const T* w_ih = nullptr;
  // Windows of loop_gate_blocked in float32: W_ih [G*H, I], which the loop packs into
  // *wih_to_fill itself (with its W_hh^T, both at once when they are small).
  const T* w_ih_to_pack = nullptr;
  PackedB<T>* wih_to_fill = nullptr;
  // The LSTM merging the input projection into the step product (merges_input): W_ih [G*H, I].
  const T* w_ih_merged = nullptr;
};

// Whether the LSTM's steps each run one product [x_t, h] [W_ih, W_hh]^T (depth I + H) instead of
// projecting the inputs apart (every row or windows) and adding that to h W_hh^T: when the
// weights fit in a core's L2 together (the step's product then reads them from there as it
// reads W_hh^T alone), with one product per step (no recurrent dropout, which has one per gate)
// and more than kDirectRows rows. The values differ from the projection apart in the last bits
// (one sum of I + H terms instead of two sums added), so the choice depends on nothing that may
// change between calls of the same shape: training, inference, every thread count and window
// budget give the same values. And batches of more than kSmallBatchMaxRows only: smaller ones
// may run the small-batch loops (recurrent_small.h, which project apart) or these, by thread
// count and options, and the two must give the same values. Saves the projection's copies of x
// and its writes and reads of x W_ih^T, and halves the products' calls: T=100 B=32 I=H=64 on
// one thread 2-3% faster (bench/RESULTS.md). In bfloat16 too (the same rule: x, W_ih, W_hh and
// h rounded as apart, one float32 sum): on AMX a projection apart of depth I = 64-128 stored
// each tile after two to four tile products, and merged inference ran 12-13% faster at T=100,
// B=64, I=64, H=256 and 8-14% at T=100, B=32, I=H=128 on one thread.
template <typename T>
bool merges_input(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, bool projected) {
  return cell == Cell::lstm && !projected && w.recurrent_mask == nullptr &&
         InputProjection<T>::weights_in_l2(s, 4 * s.H) && s.B > detail::kSmallBatchMaxRows &&
         s.steps() * s.B > detail::kDirectRows;
}

// W_hh^T [H, G*H] with its columns grouped by blocks of hb hidden units: block q holds gate k of
// units [q*hb, q*hb + hb) at its columns [k*hb, k*hb + hb), columns past H are zero. hb is a
// multiple of the GEMM's panel width (a block is whole panels), small enough for two blocks
// per thread; or, when one thread does the step, hb = H and the one block is W_hh^T itself
// (gate k at columns k*H: no padding between gates, no reordering). Every element gets the same
// value whatever hb is (the GEMM computes each output element alone), so results do not depend
// on the thread count.
template <typename T>
struct GateBlockedWeights {
  index_t G = 0, H = 0, hb = 0, blocks = 0, width = 0;  // width = G * hb columns per block
  index_t K = 0;  // depth of the product: H, or I + H for [W_ih, W_hh] (merges_input)
  PackedB<T> packed;
  const T* direct = nullptr;  // W_hh read in place instead (kDirectRows), or null
  Precision precision = Precision::float32;  // bf16: of the products
  std::uint64_t token = 0;  // bf16: RecurrentWeights::weights_token

  // Units per block (hb) for G gates of H units and B sequences.
  static index_t block_units(index_t G, index_t H, index_t B, bool one_block, Precision prec) {
    const index_t nr = packed_panel_width<T>(prec), panels = (H + nr - 1) / nr;
    const index_t threads = get_num_threads();
    index_t m = panels;
    if (!one_block && threads > 1 && B * G * H * H >= 2 * detail::kMinStepWork)
      m = std::max<index_t>(1, panels / (2 * threads));
    return m >= panels ? H : m * nr;
  }

  // w_hh [G*H, K_] (W_hh, K_ = H, or [W_ih, W_hh] row by row); direct: read w_hh in place at
  // every product instead of packing it (K_ = H); one_block: all of H in one block (a single
  // thread per step).
  void pack(index_t G_, index_t H_, index_t K_, index_t B, const T* w_hh, bool use_direct,
            bool one_block, Precision prec, std::uint64_t token_) {
    G = G_;
    H = H_;
    K = K_;
    precision = prec;  // bf16
    token = token_;    // bf16
    hb = block_units(G, H, B, one_block, prec);
    blocks = (H + hb - 1) / hb;
    width = G * hb;
    if (use_direct) {
      direct = w_hh;
      return;
    }
    pack_blocked(K, w_hh, packed);
  }

  // Packs w [G*H, K] (gate-major rows, as W_ih and W_hh) transposed, its columns in this
  // blocked order (the W_ih^T of the inference windows, whose columns then sit where the
  // product's do).
  void pack_blocked(index_t K, const T* w, PackedB<T>& out) const {
    if (blocks == 1) {
      out.pack(true, K, width, w, K, precision, token);
      return;
    }
    const index_t N = blocks * width;
    std::vector<index_t> src(N);  // column n of the blocked W^T: row src[n] of w (-1: zero)
    for (index_t q = 0; q < blocks; ++q)
      for (index_t k = 0; k < G; ++k)
        for (index_t u = 0; u < hb; ++u)
          src[q * width + k * hb + u] = q * hb + u < H ? k * H + q * hb + u : -1;
    out.pack_gathered(K, N, w, K, src.data(), precision, token);
  }

  // v [gates * H] (per gate and unit: the folded biases, the peepholes) in the blocked column
  // order, into out [blocks * width] (columns past H zero).
  void blocked_vector(index_t gates, const T* v, T* out) const {
    std::fill_n(out, blocks * width, T(0));
    for (index_t q = 0; q < blocks; ++q)
      for (index_t k = 0; k < gates; ++k)
        for (index_t u = 0; u < hb && q * hb + u < H; ++u)
          out[q * width + k * hb + u] = v[k * H + q * hb + u];
  }

  // hg [M, blocks * width] columns of blocks [q0, q1) = h [M, K] times those of W_hh^T.
  void product(index_t M, const T* h, index_t q0, index_t q1, T* hg) const {
    const index_t N = blocks * width;
    if (!direct) {
      gemm_packed_cols<T>(M, h, K, packed, q0 * width, q1 * width, T(0), hg, N);
      return;
    }
    for (index_t q = q0; q < q1; ++q) {
      const index_t j0 = q * hb, n = std::min(hb, H - j0);
      for (index_t k = 0; k < G; ++k)
        gemm_rows_nt<T>(M, n, H, h, H, direct + (k * H + j0) * H, H, hg + q * width + k * hb, N,
                        precision);
    }
  }

  // bf16: whether the products take their left operand rounded ahead (PackedRowsBf16: W_hh^T
  // packed for a hardware path), so that each element of the state is rounded once per step,
  // by the thread that computed it, instead of by every thread that multiplies it.
  bool rounds_ahead() const { return !direct && bf16_hardware(packed); }
  // bf16: rows [r0, r1) and columns [k0, k1) of the product's left operand into rows, from a
  // (row r0, column k0; row stride ld).
  void round_ahead(PackedRowsBf16& rows, index_t r0, index_t r1, index_t k0, index_t k1,
                   const T* a, index_t ld) const {
    if constexpr (std::is_same_v<T, float>) rows.set(r0, r1, k0, k1, a, ld);
  }
  // bf16: product() with h rounded ahead (rows shaped against packed.bf16()); descending: the
  // panels of W_hh^T from the last to the first. The steps alternate the order, so that each
  // starts with the panels the step before left in L2 (gemm_bf16_prepacked_cols): LSTM
  // inference on two threads at T=50, B=64, I=H=512 6% faster, GRU 3.5%, LSTM at I=H=1024 2%
  // (bench/RESULTS.md).
  void product(index_t M, const PackedRowsBf16& h, index_t q0, index_t q1, T* hg,
               bool descending) const {
    if constexpr (std::is_same_v<T, float>)
      gemm_bf16_prepacked_cols(M, h, packed.bf16(), q0 * width, q1 * width, 0.0f, hg,
                               blocks * width, descending);
  }

  // The same with a left operand per gate (recurrent dropout): gate k's columns (contiguous in
  // each block) times hm + k * gate_stride [M, H].
  void product_gated(index_t M, const T* hm, index_t gate_stride, index_t q0, index_t q1,
                     T* hg) const {
    const index_t N = blocks * width;
    for (index_t q = q0; q < q1; ++q) {
      const index_t j0 = q * hb, n = std::min(hb, H - j0);
      for (index_t k = 0; k < G; ++k) {
        const T* a = hm + k * gate_stride;
        const index_t c0 = q * width + k * hb;
        if (direct)
          gemm_rows_nt<T>(M, n, H, a, H, direct + (k * H + j0) * H, H, hg + c0, N, precision);
        else
          gemm_packed_cols<T>(M, a, H, packed, c0, c0 + hb, T(0), hg, N);
      }
    }
  }
};

// Per core, bytes of input projection that a window of BlockedWindows gives each thread: the
// window's rows of its columns, written by its GEMM and read back by its steps while they are
// in the core's L2 (2 MiB here; the rest holds the window's inputs and streams the weights).
constexpr index_t kBlockedWindowBytes = index_t(1) << 20;

// The input projections of inference when the threads share each step by blocks of hidden
// units: W_ih^T packed in the same blocked column order as W_hh^T, so that the columns a thread
// needs for its blocks' gate math are the columns of its blocks. At the first step of each
// window of steps, each thread projects the window's rows for its own blocks (inside the step's
// parallel region, before the step's product), and the steps of the window read them back from
// that core's cache. The buffer [window * B, blocks * width] is reused by every window. Each
// element has the value gemm_packed gives it whatever the column range and number of rows, so
// the results are those of projecting every row at once.
template <typename T>
struct BlockedWindows {
  const SeqShape* s = nullptr;
  const GateBlockedWeights<T>* w = nullptr;
  const T* x = nullptr;
  PackedB<T> wih;        // W_ih^T [I, blocks * width], blocked
  Buffer<T> xg, xt;      // the window's projections; its inputs (batch_first)
  Buffer<T> bias, peep;  // the folded biases and the peepholes in blocked order
  PackedRowsBf16 xr;     // bf16 hardware path: the window's inputs rounded once (by the pool)
  bool ahead = false;
  index_t window = 0, N = 0;
  index_t t_lo = 0, n = 0;  // the current window: first time step, steps
  const T* a = nullptr;     // its inputs [n * B, I]
  bool fresh = false;       // whether this step starts the window (its blocks project it)

  // Steps per window: the projection of a step is B * N values; the threads that share a step
  // (up to one per block) each hold their columns of it, kBlockedWindowBytes per core; or, when
  // set_projection_window_bytes has set a budget, that many bytes in all (a budget of every row
  // or more projects every row before the loop, as without these windows); at least one step.
  static index_t steps_per_window(const SeqShape& s, index_t N, index_t blocks) {
    const index_t threads = std::max<index_t>(1, std::min<index_t>(get_num_threads(), blocks));
    const index_t set = g_window_bytes.load(std::memory_order_relaxed);
    const index_t bytes = set != kWindowBytes ? set : threads * kBlockedWindowBytes;
    const index_t step_bytes = s.B * N * static_cast<index_t>(sizeof(T));
    return std::min(s.steps(), std::max<index_t>(1, bytes / step_bytes));
  }

  void init(const SeqShape& s_, const GateBlockedWeights<T>& w_, const T* x_, const T* w_ih,
            const T* bias_, const T* peep_) {
    s = &s_;
    w = &w_;
    x = x_;
    N = w->blocks * w->width;
    w->pack_blocked(s->I, w_ih, wih);
    window = steps_per_window(*s, N, w->blocks);
    ahead = bf16_hardware(wih);
    if constexpr (std::is_same_v<T, float>)
      if (ahead) xr.shape(wih.bf16(), window * s->B);
    xg.resize(window * s->B * N);
    if (s->batch_first) xt.resize(window * s->B * s->I);
    bias.resize(N);
    w->blocked_vector(w->G, bias_, bias.data());
    if (peep_) {
      peep.resize(N);
      w->blocked_vector(3, peep_, peep.data());
    }
  }

  // Before step `step` (serially): whether a window starts there; if so, its inputs.
  void begin(index_t step) {
    fresh = step % window == 0;
    if (!fresh) return;
    const index_t B = s->B, I = s->I;
    n = std::min(window, s->steps() - step);
    t_lo = s->reverse ? s->T - step - n : step;  // reversed: no lengths, time T-1-step
    a = x + t_lo * B * I;
    if (s->batch_first) {
      for (index_t t = 0; t < n; ++t)
        for (index_t b = 0; b < B; ++b)
          std::memcpy(xt.data() + (t * B + b) * I, x + s->row(t_lo + t, b) * I, sizeof(T) * I);
      a = xt.data();
    }
    if constexpr (std::is_same_v<T, float>) {
      if (!ahead) return;
      const index_t rows = n * B;  // by blocks of 16 rows (the tiles), each on one thread
      parallel_for((rows + 15) / 16, 4, [&](index_t u0, index_t u1) {
        xr.set(u0 * 16, std::min(rows, u1 * 16), 0, I, a + u0 * 16 * I, I);
      });
      xr.clear(rows, std::min(xr.M, (rows + 15) / 16 * 16));  // the last window's padding rows
    }
  }

  // Inside the step, before the product of blocks [q0, q1): their columns of the window.
  void project(index_t q0, index_t q1) {
    if constexpr (std::is_same_v<T, float>) {
      if (fresh && ahead) {
        gemm_bf16_prepacked_cols(n * s->B, xr, wih.bf16(), q0 * w->width, q1 * w->width, 0.0f,
                                 xg.data(), N);
        return;
      }
    }
    if (fresh)
      gemm_packed_cols<T>(n * s->B, a, s->I, wih, q0 * w->width, q1 * w->width, T(0), xg.data(),
                          N);
  }

  // Gate 0 of block q's units for time step t of sequence b (gate stride w->hb).
  T* at(index_t t, index_t b, index_t q) {
    return xg.data() + ((t - t_lo) * s->B + b) * N + q * w->width;
  }
};

// Whether the threads take disjoint sequences through every step (detail::split_batch) in
// loop_gate_blocked. Not in inference with AMX products whose W_hh^T (bfloat16) is large, by
// itself and for each thread's share of the rows (at least 4 MiB, and 128 KiB per row): there
// each core would stream all of W_hh^T from L3 at every step (a step's product of 32 rows
// waits for the stream, not for the tiles: bench/RESULTS.md, session 20), where sharing each
// step by blocks of units (and projecting the inputs by blocks, BlockedWindows) streams each
// core's half. Same values either way (every element is computed alone). In-process A/Bs on
// an AMX Xeon (family 6 model 167), two threads, 4 calls of each in a row (alternating single
// calls favours whichever follows the other), blocks / sequences, ms: LSTM T=25 I=H=1024 B=64
// 16.7-17.9 / 19.7-20.7, B=32 9.2 / 10.8, B=96 26.0 / 26.5, B=128 30.8 / 31.7; GRU I=H=1024
// 13.1 / 13.6; LSTM I=H=768 10.3 / 10.5; kept by sequences: GRU I=H=768 (3.4 MiB) 8.0 / 7.3,
// LSTM I=H=512 9.8 / 8.7, GRU I=H=512 7.9 / 6.6. Not changed: training (the backward takes
// sequences), float32 (Zen 4 measured blocks slower: detail::split_batch; on the Xeon at
// I=H=1024 83.7 / 86.8) and AVX512-BF16 (not measured: its products run at a fraction of
// AMX's rate, so the stream weighs less).
template <typename T>
bool shares_large_weights(Cell cell, const SeqShape& s, Precision prec, bool training) {
  if (!std::is_same_v<T, float> || training || prec != Precision::bfloat16 ||
      active_bf16_isa() != Bf16Isa::amx || !detail::split_batch(s))
    return false;
  const index_t bytes = gate_count(cell) * s.H * s.H * 2;
  // the threads that would take sequences (parallel_for: kMinSequencesPerThread or more each)
  const index_t threads =
      std::min<index_t>(get_num_threads(), s.B / detail::kMinSequencesPerThread);
  const index_t rows = (s.B + threads - 1) / threads;  // each one's sequences
  return bytes >= (index_t(4) << 20) && bytes / rows >= (index_t(128) << 10);
}

template <typename T>
bool forward_by_sequences(Cell cell, const SeqShape& s, Precision prec, bool training) {
  return detail::split_batch(s) && !shares_large_weights<T>(cell, s, prec, training);
}

// Whether inference projects the inputs in BlockedWindows (loop_gate_blocked): when the threads
// share each step by blocks of units (not disjoint sequences), the steps cover one time range
// for every sequence, the product is not so small that it reads the weights in place, the
// weights do not fit in L2 (then InputProjection's windows of kL2WindowBytes, smaller, do
// better: LSTM T=100 B=32 I=H=128 in bfloat16 on one thread 1.92 ms with them, 2.27 ms in
// BlockedWindows), and the windows pay. A window saves writing its projection to memory and reading it back (8 bytes
// per row and column, float32), and costs reading each thread's columns of W_ih^T once more
// (I values per column, of wsize bytes: 2 in bfloat16): windows of M = steps * B rows pay when
// 8 M >= I * wsize. With kBlockedWindowBytes at B=64 that selects the LSTM and GRU at I=H=512
// (windows of 2 steps on one thread in bfloat16, of 4-5 steps on two threads in both
// precisions), the RNN at I=H=512 on one thread and at I=H=1024 (float32 on two threads,
// bfloat16 on one or two); the LSTM and GRU at I=H=1024 project every row before the loop as
// before (measured in bench/RESULTS.md). Since the threads take sequences from 16 of them
// whatever the weights' size (detail::split_batch), the two-thread cases are now batches of 9-15
// sequences, and the large weights of shares_large_weights at any I (there InputProjection's
// windows, which the calling thread projects alone when the threads share the steps, took 24.9
// ms against 17.3-18.8 at I=H=1024, B=64).
template <typename T>
bool projects_by_blocks(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w,
                        bool projected, bool training) {
  const index_t G = gate_count(cell), steps = s.steps();
  if (training || cell == Cell::gru_reset_before || projected ||
      (s.reverse && !s.lengths.empty()) || steps * s.B <= detail::kDirectRows ||
      forward_by_sequences<T>(cell, s, w.precision, training) ||
      InputProjection<T>::weights_in_l2(s, G * s.H))
    return false;
  const index_t hb = GateBlockedWeights<T>::block_units(G, s.H, s.B, false, w.precision);
  const index_t blocks = (s.H + hb - 1) / hb;
  const index_t window = BlockedWindows<T>::steps_per_window(s, blocks * G * hb, blocks);
  const index_t wsize = w.precision == Precision::bfloat16 ? 2 : index_t(sizeof(T));
  return window < steps && (8 * window * s.B >= s.I * wsize ||
                            shares_large_weights<T>(cell, s, w.precision, training));
}

// The time loop of every cell but GRU with reset before. h [B, H]: the initial state in, the
// final one out; c [B, H] (LSTM) likewise. The threads either take disjoint sequences through
// every step (forward_by_sequences: no synchronisation at all) or share each step by blocks of
// hidden units (one parallel region per step). The cell C and its options are template
// parameters, so that no row tests them: Train (ws holds what backward needs), Peep (LSTM
// peepholes), Zone (zoneout), Drop (recurrent dropout: one product per gate and block, each
// with its masked state h * m_k, which the epilogue of each block writes for the next step).
template <typename T, Cell C, bool Train, bool Peep, bool Zone, bool Drop>
void loop_gate_blocked(const SeqShape& s, const T* w_hh, const T* bias, const T* peep,
                       const T* b_hn, const detail::Zoneout<T>& zone,
                       const detail::RecurrentDropout<T>& drop, const Projections<T>& proj, T* h,
                       T* c, T* y, RecurrentWorkspace<T>* ws,
                       Precision prec,         // bf16: precision of the products
                       std::uint64_t token) {  // bf16: RecurrentWeights::weights_token
  const index_t B = s.B, H = s.H, G = gate_count(C), I = s.I;
  const bool by_sequences = forward_by_sequences<T>(C, s, prec, Train);
  // merges_input: each step's product is [x_t, h] (xh [B, I + H]) times [W_ih, W_hh]^T
  const bool merged = C == Cell::lstm && proj.w_ih_merged != nullptr;
  const index_t K = merged ? I + H : H;
  Buffer<T> w_cat(merged ? G * H * K : 0);  // [W_ih, W_hh] row by row
  if (merged)
    parallel_for(G * H, std::max<index_t>(1, kPackChunk / K), [&](index_t r0, index_t r1) {
      for (index_t r = r0; r < r1; ++r) {
        std::memcpy(w_cat.data() + r * K, proj.w_ih_merged + r * I, sizeof(T) * I);
        std::memcpy(w_cat.data() + r * K + I, w_hh + r * H, sizeof(T) * H);
      }
    });
  GateBlockedWeights<T> w;
  // bf16: w_cat is this call's copy, so the caller's token (which names W_ih and W_hh at their
  // addresses) keeps no packing of it: packed at every call (a cache hit would save its
  // packing but not the copy; packing every call measured within noise at T=100, B=64, I=64,
  // H=256 and at T=100, B=32, I=H=128)
  auto pack_hh = [&] {
    w.pack(G, H, K, B, merged ? w_cat.data() : w_hh, s.steps() * B <= detail::kDirectRows,
           by_sequences, prec, merged ? 0 : token);
  };
  // W_hh^T and W_ih^T packed at once, one per thread, when each is a single chunk of
  // PackedB::pack's own split (at most kPackChunk elements) and W_hh^T is one block: one after
  // the other on the calling thread they took 2-6% of an LSTM call at B = 32, H = 128.
  const bool both_at_once =
      proj.w_ih_to_pack && get_num_threads() > 1 && !in_parallel_region() &&
      G * H * std::max(H, s.I) <= kPackChunk &&
      GateBlockedWeights<T>::block_units(G, H, B, by_sequences, prec) == H;
  PackedB<T>* wih = proj.wih_to_fill;
  if (both_at_once) {
    parallel_for(2, 1, [&](index_t c0, index_t c1) {
      for (index_t c = c0; c < c1; ++c)
        if (c == 0)
          pack_hh();
        else
          wih->pack(true, s.I, G * H, proj.w_ih_to_pack, s.I, prec);
    });
  } else {
    if (proj.w_ih_to_pack) wih->pack(true, s.I, G * H, proj.w_ih_to_pack, s.I, prec);
    pack_hh();
  }
  const index_t N = w.blocks * w.width;  // columns of the product
  // Time-major with every sequence active at every step: step t's state is y's rows of time
  // t ([B, H], contiguous), so the step writes h there alone and the next step reads it
  // back from there. Each step then writes lines that no core has read before, where a
  // state buffer reused every other step has its lines in the cores that read them last
  // (when the threads share the step, the other core): every write to it would first have
  // to take them back (bench/RESULTS.md). Same values: the products read the same state.
  const bool state_in_y = !s.batch_first && s.lengths.empty();
  Buffer<T> hg(B * N), other(state_in_y ? 0 : B * H);  // other: the state after a step
  // merged training whose step's rows are contiguous in the workspace's gates (every sequence
  // active at every step, the workspace time-major or x so), in its column order (one block):
  // the product goes there straight, not through hg
  const bool into_gates = merged && Train && s.lengths.empty() && w.blocks == 1 &&
                          (ws->time_major || !s.batch_first);
  Buffer<T> hm_a(Drop ? G * B * H : 0), hm_b(Drop ? G * B * H : 0);  // h * m_k [G, B, H]
  if constexpr (Drop) drop.apply_all(h, hm_a.data());
  // merged: [x_t, h] before the step and after it (the next step's, x filled at its start)
  Buffer<T> xh_a(merged ? B * K : 0), xh_b(merged ? B * K : 0);
  xh_a.zero();
  xh_b.zero();
  // merged inference: the gates are the product's tiles, so the biases and peepholes go in
  // the blocked column order
  Buffer<T> m_bias(merged && !Train ? N : 0), m_peep(merged && !Train && Peep ? N : 0);
  if (merged && !Train) w.blocked_vector(G, bias, m_bias.data());
  if (merged && !Train && Peep) w.blocked_vector(3, peep, m_peep.data());
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  const index_t grain = detail::step_grain(B * w.width * H);
  BlockedWindows<T> blocked;  // inference sharing the steps: windows projected by blocks
  const bool by_blocks = proj.w_ih != nullptr;
  if (by_blocks) blocked.init(s, w, proj.x, proj.w_ih, bias, Peep ? peep : nullptr);

  // Sequences [b0, b1) through every step; share_steps: each step's blocks on the threads.
  auto run = [&](index_t b0, index_t b1, bool share_steps) {
    InputProjection<T> local;
    if (!proj.shared && !by_blocks && !merged)
      local.windows(s, G * H, proj.x, proj.wih, b0, b1, proj.into);
    const InputProjection<T>& xg = proj.shared ? *proj.shared : local;
    T* hp = h;             // the state before the step [B, H]
    T* hn = other.data();  // and after it (state_in_y: y's rows of the step, set per step)
    auto step_rows = [&](index_t st) { return y + s.row(s.time_of(st, 0), 0) * H; };
    T* hmp = hm_a.data();  // Drop: h * m_k before the step
    T* hmn = hm_b.data();  // and after it
    T* xhp = xh_a.data();  // merged: [x_t, h] of the step
    T* xhn = xh_b.data();  // and the next step's h
    for (index_t b = b0; merged && b < b1; ++b)
      std::memcpy(xhp + b * K + I, hp + b * H, sizeof(T) * H);
    // bf16 hardware path: hp and hn rounded ahead, each block of hn by the thread computing it
    PackedRowsBf16 hr_a, hr_b;
    PackedRowsBf16* hrp = &hr_a;
    PackedRowsBf16* hrn = &hr_b;
    const bool ahead = !Drop && w.rounds_ahead();
    if (ahead) {  // merged: [x_t, h] (depth K), the first step's rounded before the loop
      hr_a.shape(w.packed.bf16(), b1 - b0);
      hr_b.shape(w.packed.bf16(), b1 - b0);
      if (!merged) w.round_ahead(hr_a, 0, b1 - b0, 0, H, hp + b0 * H, H);
    }
    index_t step = 0;
    const index_t n_steps = s.steps();
    auto input_row = [&](index_t t, index_t b) { return proj.x + s.row(s.time_of(t, b), b) * I; };
    // merged: x of the step after this one, sequence b, into the next operand beside h (its
    // rows are not read by this step's product): copied in the gate pass of the step's first
    // block, where its loads run beside the gate math's arithmetic, the next sequence's row
    // prefetched meanwhile (copied apart before each product, from memory, it took 3% of
    // T=100 B=32 I=H=128: bench/RESULTS.md).
    auto next_inputs = [&](index_t b) {
      const index_t next = step + 1;
      if (next >= n_steps) return;
      if (b + 1 < b1 && s.active(next, b + 1)) {
        const char* row = reinterpret_cast<const char*>(input_row(next, b + 1));
        for (index_t off = 0; off < I * index_t(sizeof(T)); off += 64)
          __builtin_prefetch(row + off);
      }
      if (!s.active(next, b)) return;
      if (ahead)  // rounded straight into the next operand (its float32 copy would not be read)
        w.round_ahead(*hrn, b - b0, b - b0 + 1, 0, I, input_row(next, b), I);
      else
        std::memcpy(xhn + b * K, input_row(next, b), sizeof(T) * I);
    };

    // The gate math of block q for every sequence, from its GEMM tile in hg.
    auto gates = [&](index_t q) {
      const index_t j0 = q * w.hb, n = std::min(w.hb, H - j0), size = sizeof(T) * n;
      for (index_t b = b0; b < b1; ++b) {
        if (merged && q == 0) next_inputs(b);
        const T* hpb = hp + b * H + j0;
        T* hnb = hn + b * H + j0;
        if (!s.active(step, b)) {
          std::memcpy(hnb, hpb, size);
          if (merged) std::memcpy(xhn + b * K + I + j0, hpb, size);
          if constexpr (Drop) drop.apply(b, j0, n, hnb, hmn + b * H + j0, B * H);
          continue;
        }
        const index_t t = s.time_of(step, b), row = s.row(t, b);
        const index_t wrow = Train ? ws->row(s, t, b) : row;  // the workspace's row
        // g, the biases and the peepholes: gate k of unit j0 + u at [k * gs + u]
        T* tile = hg.data() + b * N + q * w.width;  // the block's product
        const T* hgb = merged ? nullptr : tile;     // merged: the whole of g
        T* g = nullptr;
        index_t gs = H;
        if (!merged) {
          g = by_blocks ? blocked.at(t, b, q) : xg.at(t, b) + j0;
          if (by_blocks) gs = w.hb;
        } else if (Train) {  // the workspace's gates receive the tile, then the activations
          g = ws->gates.data() + wrow * G * H + j0;
          for (index_t k = 0; k < G && !into_gates; ++k)
            std::memcpy(g + k * H, tile + k * w.hb, size);
        } else {
          g = tile;
          gs = w.hb;
        }
        const bool blocked_vectors = by_blocks || (merged && !Train);
        const T* bq = !blocked_vectors ? bias + j0
                      : by_blocks      ? blocked.bias.data() + q * w.width
                                       : m_bias.data() + q * w.width;
        [[maybe_unused]] const T* pq = !Peep             ? nullptr
                                       : !blocked_vectors ? peep + j0
                                       : by_blocks        ? blocked.peep.data() + q * w.width
                                                          : m_peep.data() + q * w.width;
        if constexpr (Train) std::memcpy(ws->hprev.data() + wrow * H + j0, hpb, size);
        if constexpr (C == Cell::rnn_tanh || C == Cell::rnn_relu) {
          steps.rnn(C == Cell::rnn_relu, n, gs, w.hb, g, hgb, bq, hnb);
        } else if constexpr (C == Cell::lstm) {
          T* cb = c + b * H + j0;
          if constexpr (Train) std::memcpy(ws->extra.data() + wrow * H + j0, cb, size);
          // zoneout: the step and both blends in one pass; merged: h also to the next xh
          const index_t at = zone.at(s, t, b, H, j0);
          steps.lstm_general(n, gs, w.hb, g, hgb, bq, pq, Zone ? hpb : nullptr,
                             Zone && zone.h ? zone.h + at : nullptr,
                             Zone && zone.c ? zone.c + at : nullptr, zone.rate, hnb, cb,
                             merged ? xhn + b * K + I + j0 : nullptr, Train);
        } else {
          static_assert(C == Cell::gru, "GRU with reset before runs loop_reset_before");
          steps.gru(n, gs, w.hb, g, hgb, bq, b_hn + j0, hpb, hnb,
                    Train ? ws->extra.data() + wrow * H + j0 : nullptr);
        }
        if constexpr (Zone && C != Cell::lstm)
          zone.apply(zone.h, zone.rate, zone.at(s, t, b, H, j0), n, hpb, hnb);
        if constexpr (Drop) drop.apply(b, j0, n, hnb, hmn + b * H + j0, B * H);
        if (!state_in_y) std::memcpy(y + row * H + j0, hnb, size);
      }
      if (ahead) w.round_ahead(*hrn, 0, b1 - b0, (merged ? I : 0) + j0, (merged ? I : 0) + j0 + n,
                               hn + b0 * H + j0, H);
    };
    // Blocks [q0, q1): one GEMM for all of them (A, the state, is read or packed once), then the
    // gate math of each block while its part of the product is still in cache.
    auto run_blocks = [&](index_t q0, index_t q1) {
      if (by_blocks) blocked.project(q0, q1);
      T* out = into_gates ? ws->gates.data() + ws->row(s, s.time_of(step, b0), b0) * G * H
                          : hg.data() + b0 * N;
      if constexpr (Drop)
        w.product_gated(b1 - b0, hmp + b0 * H, B * H, q0, q1, out);
      else if (ahead)
        w.product(b1 - b0, *hrp, q0, q1, out, step % 2 == 1);
      else if (merged)
        w.product(b1 - b0, xhp + b0 * K, q0, q1, out);
      else
        w.product(b1 - b0, hp + b0 * H, q0, q1, out);
      for (index_t q = q0; q < q1; ++q) gates(q);
    };
    for (index_t b = b0; merged && n_steps > 0 && b < b1; ++b)  // the first step's inputs
      if (s.active(0, b))
        std::memcpy(xhp + b * K, input_row(0, b), sizeof(T) * I);
    if (ahead && merged) w.round_ahead(*hrp, 0, b1 - b0, 0, K, xhp + b0 * K, K);
    for (; step < n_steps; ++step) {
      if (state_in_y) hn = step_rows(step);
      local.prepare(step);
      if (by_blocks) blocked.begin(step);
      if (share_steps)
        parallel_for(w.blocks, grain, run_blocks);
      else
        run_blocks(0, w.blocks);
      std::swap(hp, hn);
      std::swap(hrp, hrn);
      std::swap(xhp, xhn);
      if constexpr (Drop) std::swap(hmp, hmn);
    }
    if (hp != h) std::memcpy(h + b0 * H, hp + b0 * H, sizeof(T) * (b1 - b0) * H);
  };
  if (by_sequences)
    parallel_for(B, detail::kMinSequencesPerThread,
                 [&](index_t b0, index_t b1) { run(b0, b1, false); });
  else
    run(0, B, true);
}

// The time loop of GRU with reset before: h and the rows of xg as in loop_gate_blocked, and
// the options Train, Zone and Drop (recurrent dropout: h * m_k in a row pass, one product per
// gate, and r * (h * m_n) into the n gate's).
template <typename T, bool Train, bool Zone, bool Drop>
void loop_reset_before(const SeqShape& s, const T* w_hh, const T* bias,
                       const detail::Zoneout<T>& zone, const detail::RecurrentDropout<T>& drop,
                       const Projections<T>& proj, T* h, T* y, RecurrentWorkspace<T>* ws,
                       Precision prec) {  // bf16: precision of the products
  InputProjection<T> local;
  if (!proj.shared) local.windows(s, 3 * s.H, proj.x, proj.wih, 0, s.B, proj.into);
  const InputProjection<T>& xg = proj.shared ? *proj.shared : local;
  const index_t B = s.B, H = s.H, GH = 3 * H;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  PackedB<T> whh, whh_n;  // W_hh^T of the r,z gates [H, 2H] and of the n gate [H, H]
  detail::GatePackedWeights<T> whh_rz;  // Drop: W_hh_r^T and W_hh_z^T [H, H] apart
  if constexpr (Drop)
    whh_rz.pack(true, 2, H, H, w_hh, prec);
  else
    whh.pack(true, H, 2 * H, w_hh, H, prec);
  whh_n.pack(true, H, H, w_hh + 2 * H * H, H, prec);
  Buffer<T> hg(B * 2 * H), rh(B * H), hn(B * H);
  Buffer<T> hprev(Zone && !Train ? B * H : 0);  // inference with zoneout: h before the step
  Buffer<T> hm(Drop ? 3 * B * H : 0);              // Drop: h * m_k [3, B, H]
  rh.zero();
  for (index_t step = 0, n_steps = s.steps(); step < n_steps; ++step) {
    local.prepare(step);
    if constexpr (Drop) {
      detail::for_each_batch_row(B, 3 * H, [&](index_t b) {
        drop.apply(b, 0, H, h + b * H, hm.data() + b * H, B * H);
      });
      for (index_t k = 0; k < 2; ++k)
        gemm_packed<T>(B, hm.data() + k * B * H, H, whh_rz.gate[k], T(0), hg.data() + k * H,
                       2 * H);
    } else {
      gemm_packed<T>(B, h, H, whh, T(0), hg.data(), 2 * H);
    }
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t t = s.time_of(step, b);
      // Drop: the n gate's product takes r * (h * m_n)
      const T* hb = Drop ? hm.data() + 2 * B * H + b * H : h + b * H;
      steps.gru_before_gates(H, xg.at(t, b), hg.data() + b * 2 * H, bias, hb,
                             rh.data() + b * H);
    });
    gemm_packed<T>(B, rh.data(), H, whh_n, T(0), hn.data(), H);
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t t = s.time_of(step, b), row = s.row(t, b);
      T* hb = h + b * H;
      T* hp = Train ? ws->hprev.data() + row * H : Zone ? hprev.data() + b * H : nullptr;
      if constexpr (Train || Zone) std::memcpy(hp, hb, sizeof(T) * H);
      steps.gru_before_update(H, xg.at(t, b), hn.data() + b * H, bias, hb);
      if constexpr (Zone) zone.apply(zone.h, zone.rate, zone.at(s, t, b, H, 0), H, hp, hb);
      std::memcpy(y + row * H, hb, sizeof(T) * H);
    });
  }
}

// The time loop of the LSTM with a projection (h = W_hr m, m = o * tanh(c), h of P features):
// two products per step, the second needing m of every unit, so each is one GEMM over the
// batch (threaded inside) and the gate math runs between them by rows. h [B, P] and c [B, H]
// as in loop_gate_blocked, and the options Train, Peep, Zone and Drop (recurrent dropout: h * m_k
// in a row pass, one product per gate).
template <typename T, bool Train, bool Peep, bool Zone, bool Drop>
void loop_projected(const SeqShape& s, const T* w_hh, const T* w_hr, const T* bias,
                    const T* peep, const detail::Zoneout<T>& zone,
                    const detail::RecurrentDropout<T>& drop, const Projections<T>& proj, T* h,
                    T* c, T* y, RecurrentWorkspace<T>* ws,
                    Precision prec) {  // bf16: of the products
  const index_t B = s.B, H = s.H, P = s.P, GH = 4 * H;
  InputProjection<T> local;
  if (!proj.shared) local.windows(s, GH, proj.x, proj.wih, 0, B, proj.into);
  const InputProjection<T>& xg = proj.shared ? *proj.shared : local;
  const cells::CellSteps<T>& steps = cells::active_cell_steps<T>();
  PackedB<T> whh, whr;  // W_hh^T [P, 4H], W_hr^T [H, P]
  detail::GatePackedWeights<T> whh_k;  // Drop: each W_hh_k^T [P, H] apart
  if constexpr (Drop)
    whh_k.pack(true, 4, H, P, w_hh, prec);
  else
    whh.pack(true, P, GH, w_hh, P, prec);
  whr.pack(true, H, P, w_hr, H, prec);
  Buffer<T> hg(B * GH), m(B * H), hn(B * P);
  Buffer<T> cprev(Zone && !Train ? B * H : 0);  // inference with zoneout: c before the step
  Buffer<T> hm(Drop ? 4 * B * P : 0);           // Drop: h * m_k [4, B, P]
  m.zero();
  for (index_t step = 0, n_steps = s.steps(); step < n_steps; ++step) {
    local.prepare(step);
    if constexpr (Drop) {
      detail::for_each_batch_row(B, 4 * P, [&](index_t b) {
        drop.apply(b, 0, P, h + b * P, hm.data() + b * P, B * P);
      });
      for (index_t k = 0; k < 4; ++k)
        gemm_packed<T>(B, hm.data() + k * B * P, P, whh_k.gate[k], T(0), hg.data() + k * H, GH);
    } else {
      gemm_packed<T>(B, h, P, whh, T(0), hg.data(), GH);
    }
    detail::for_each_batch_row(B, 2 * GH, [&](index_t b) {
      if (!s.active(step, b)) return;
      const index_t row = s.row(s.time_of(step, b), b);
      T* cb = c + b * H;
      T* mb = m.data() + b * H;
      T* cp = Train ? ws->extra.data() + row * H : Zone ? cprev.data() + b * H : nullptr;
      if constexpr (Train) std::memcpy(ws->hprev.data() + row * P, h + b * P, sizeof(T) * P);
      if constexpr (Train || Zone) std::memcpy(cp, cb, sizeof(T) * H);
      const T* hgb = hg.data() + b * GH;
      T* g = xg.at(s.time_of(step, b), b);
      if constexpr (Peep)
        steps.lstm_peephole(H, H, H, g, hgb, bias, peep, mb, cb);
      else
        steps.lstm(H, H, H, g, hgb, bias, mb, cb);
      if constexpr (Zone)
        zone.apply(zone.c, zone.rate, zone.at(s, s.time_of(step, b), b, H, 0), H, cp, cb);
      if constexpr (Train) std::memcpy(ws->m.data() + row * H, mb, sizeof(T) * H);
    });
    gemm_packed<T>(B, m.data(), H, whr, T(0), hn.data(), P);
    detail::for_each_batch_row(B, 2 * P, [&](index_t b) {
      if (!s.active(step, b)) return;  // the state passes unchanged
      const index_t t = s.time_of(step, b), row = s.row(t, b);
      if constexpr (Zone)
        zone.apply(zone.h, zone.rate, zone.at(s, t, b, P, 0), P, h + b * P, hn.data() + b * P);
      std::memcpy(h + b * P, hn.data() + b * P, sizeof(T) * P);
      std::memcpy(y + row * P, hn.data() + b * P, sizeof(T) * P);
    });
  }
}

}  // namespace

void set_projection_window_bytes(index_t bytes) {
  g_window_bytes.store(bytes > 0 ? bytes : kWindowBytes, std::memory_order_relaxed);
}

template <typename T>
void recurrent_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                       const T* h0, const T* c0, T* y, T* h_n, T* c_n, RecurrentWorkspace<T>* ws) {
  const index_t B = s.B, H = s.H, G = gate_count(cell), GH = G * H, rows = s.rows();
  const index_t Hs = s.state_size();  // features of h
  const bool is_lstm = cell == Cell::lstm, projected = is_lstm && w.w_hr;
  const bool zoned = w.has_zoneout();
  const detail::Zoneout<T> zone = detail::Zoneout<T>::of(w);
  const detail::RecurrentDropout<T> drop = detail::RecurrentDropout<T>::of(w, G, s);

  // Workspace and constants, all allocated before the time loop.
  const bool merged = merges_input<T>(cell, s, w, projected);
  if (ws) {
    ws->time_major = merged;  // its steps write every row (RecurrentWorkspace::time_major)
    ws->gates.resize(rows * GH);
    ws->hprev.resize(rows * Hs);
    ws->extra.resize(is_lstm || cell == Cell::gru ? rows * H : 0);
    ws->m.resize(projected ? rows * H : 0);
    if (projected) detail::zero_padded_rows(ws->layout(s), H, ws->m.data());
  }
  Buffer<T> bias(GH), b_hn(H);
  fold_biases(cell, GH, H, w.b_ih, w.b_hh, bias.data());
  for (index_t j = 0; j < H; ++j) b_hn[j] = w.b_hh && cell == Cell::gru ? w.b_hh[2 * H + j] : T(0);

  // The state: h_n and c_n are the loop's state buffers.
  if (h0) std::memcpy(h_n, h0, sizeof(T) * B * Hs); else std::fill_n(h_n, B * Hs, T(0));
  Buffer<T> c_temp;
  T* c = c_n;
  if (is_lstm && !c) {
    c_temp.resize(B * H);
    c = c_temp.data();
  }
  if (is_lstm) {
    if (c0) std::memcpy(c, c0, sizeof(T) * B * H); else std::fill_n(c, B * H, T(0));
  }

  // Batches of 1..8 (recurrent_small.cc) unless an option sends them to the loops below.
  if (small_batch_forward(cell, s, w, x, bias.data(), b_hn.data(), h_n, c, y, ws)) return;

  // xg = x W_ih^T (the biases are added in the steps): every row now, or windows in the loops
  // (of the sequences each loop runs).
  InputProjection<T> all;
  PackedB<T> wih;
  Projections<T> proj{nullptr, x, &wih, ws ? ws->gates.data() : nullptr};
  if (merged) {
    proj.w_ih_merged = w.w_ih;  // the loop packs it with W_hh
    if (ws) detail::zero_padded_rows(ws->layout(s), GH, ws->gates.data());
  } else if (projects_by_blocks<T>(cell, s, w, projected, ws != nullptr)) {
    proj.w_ih = w.w_ih;  // the loop packs it in its blocked order
  } else if (InputProjection<T>::windowed(s, GH, B, ws != nullptr, bf16_hardware(w.precision))) {
    if (!projected && cell != Cell::gru_reset_before && w.precision == Precision::float32)
      proj.w_ih_to_pack = w.w_ih, proj.wih_to_fill = &wih;  // loop_gate_blocked packs it
    else
      wih.pack(true, s.I, GH, w.w_ih, s.I, w.precision, w.weights_token);
  } else {
    all.all_rows(s, GH, x, w.w_ih, ws ? ws->gates.data() : nullptr, w.precision,
                 w.weights_token);
    proj.shared = &all;
  }
  detail::zero_padded_rows(s, Hs, y);
  if (ws) detail::zero_padded_rows(ws->layout(s), Hs, ws->hprev.data());
  if (proj.into)  // rows past the longest sequence, which no window projects
    for (index_t b = 0; b < B; ++b)
      for (index_t t = s.steps(); t < s.T; ++t)
        std::fill_n(ws->gates.data() + ws->row(s, t, b) * GH, GH, T(0));

  // The cell's loop, training and the cell's options as its template parameters (recurrent
  // dropout in training only: inference drops nothing).
  detail::with_flag(ws != nullptr, [&](auto train_c) {
    constexpr bool Train = decltype(train_c)::value;
    detail::with_flag(Train && w.recurrent_mask != nullptr, [&](auto drop_c) {
      constexpr bool Drop = Train && decltype(drop_c)::value;
      if (cell == Cell::gru_reset_before)
        detail::with_flag(zoned, [&](auto zone_c) {
          loop_reset_before<T, Train, decltype(zone_c)::value, Drop>(
              s, w.w_hh, bias.data(), zone, drop, proj, h_n, y, ws, w.precision);
        });
      else if (projected)
        detail::with_flag(w.w_peephole != nullptr, [&](auto peep_c) {
          detail::with_flag(zoned, [&](auto zone_c) {
            loop_projected<T, Train, decltype(peep_c)::value, decltype(zone_c)::value, Drop>(
                s, w.w_hh, w.w_hr, bias.data(), w.w_peephole, zone, drop, proj, h_n, c, y, ws,
                w.precision);
          });
        });
      else
        detail::with_blocked_options(
            cell, is_lstm && w.w_peephole, zoned, [&](auto cell_c, auto peep_c, auto zone_c) {
              loop_gate_blocked<T, decltype(cell_c)::value, Train, decltype(peep_c)::value,
                                decltype(zone_c)::value, Drop>(
                  s, w.w_hh, bias.data(), w.w_peephole, b_hn.data(), zone, drop, proj, h_n,
                  is_lstm ? c : nullptr, y, ws, w.precision, w.weights_token);
            });
    });
  });
}

template void recurrent_forward<float>(Cell, const SeqShape&, const RecurrentWeights<float>&,
                                       const float*, const float*, const float*, float*, float*,
                                       float*, RecurrentWorkspace<float>*);
template void recurrent_forward<double>(Cell, const SeqShape&, const RecurrentWeights<double>&,
                                        const double*, const double*, const double*, double*,
                                        double*, double*, RecurrentWorkspace<double>*);

}  // namespace rnnfast
