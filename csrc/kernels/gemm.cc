// The portable GEMM driver: cache blocking, packing of B, the split between threads, and the
// dispatch to the micro-kernels of the active instruction set (gemm_kernels.h).
//
// Loops of one thread over its part C[m0:m1, n0:n1] (BLIS's, with the roles of A and B swapped
// because C is row-major and the vectors run along N):
//   for each block of nc columns:            B block kc x nc (packed here, or pre-packed) in L2
//     for each depth block of kc:            C += A[:, kc] * B[kc, nc]   (beta only at the first)
//       for each panel of mr rows of A:      read in place or copied (mr x kc stays in L1)
//         for each panel of nr columns:      the micro-kernel's register tile
// The split between threads is over row panels and column panels only, never over K.
#include "rnnfast/gemm.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "gemm_kernels.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

namespace gd = gemm_detail;

template <typename T>
const gd::KernelSet<T>& kernel_set(Isa isa);

template <>
const gd::KernelSet<float>& kernel_set<float>(Isa isa) {
  switch (isa) {
#ifdef RNNFAST_HAVE_X86_KERNELS
    case Isa::avx512: return gd::kAvx512F32;
    case Isa::avx2: return gd::kAvx2F32;
#endif
    default: return gd::kGenericF32;
  }
}

template <>
const gd::KernelSet<double>& kernel_set<double>(Isa isa) {
  switch (isa) {
#ifdef RNNFAST_HAVE_X86_KERNELS
    case Isa::avx512: return gd::kAvx512F64;
    case Isa::avx2: return gd::kAvx2F64;
#endif
    default: return gd::kGenericF64;
  }
}

// Fewest multiply-adds worth waking one more thread for (about a microsecond of work).
constexpr double kMinWorkPerThread = 48.0 * 1024;
// Copying an element of A or B (or reading A in place once more from beyond L2) costs about as
// much as this many multiply-adds: fitted to the total CPU time of the LSTM's dx, dW and input
// projection at 2 threads under both splits (bench/RESULTS.md, session 7: the GEMM's grid).
constexpr double kPackCost = 32.0;
// B (not transposed) is read in place by products of at most this many panels of rows.
constexpr index_t kInPlaceBPanels = 8;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Depth of the K blocks: K itself up to kc_deep, two equal blocks up to 2 * kc_deep (C tiles
// reloaded once), else equal blocks of at most kc. Depends on K and the kernel set only (and on
// whether A is transposed: see depth_of), so the summation order never depends on the thread
// count or on how a caller splits rows or columns.
index_t depth_block(index_t K, index_t kc, index_t kc_deep) {
  if (K <= kc_deep) return K;
  if (K <= 2 * kc_deep) return ceil_div(K, 2);
  return ceil_div(K, ceil_div(K, kc));
}

// A transposed A (the weight gradients' dgates^T) is packed a whole depth block of all its rows
// at a time, which then stays in L2 with the B block: its blocks keep the usual depth.
template <typename T>
index_t depth_of(const gd::KernelSet<T>& ks, index_t K, bool trans_a) {
  return depth_block(K, ks.kc, trans_a ? ks.kc : ks.kc_deep);
}

// Columns of a B block of depth kc: the whole panels the kernel set's B block holds at that
// depth, at most its widest block (AVX-512 float: 1024 columns up to depth 256, 512 at 512).
template <typename T>
index_t block_width(const gd::KernelSet<T>& ks, index_t kc) {
  const index_t panels = std::max<index_t>(1, ks.b_block / kc / ks.nr);
  return std::min<index_t>(ks.nc, panels * ks.nr);
}

template <typename T>
struct Scratch {
  Buffer<T> a, b, tile, ct;
};

// Per-thread buffers: allocated on a thread's first call, reused afterwards.
template <typename T>
Scratch<T>& scratch() {
  thread_local Scratch<T> s;
  return s;
}

template <typename T>
struct Plan {
  const gd::KernelSet<T>* ks = nullptr;
  index_t M = 0, N = 0, K = 0, kc = 0, nc = 0;  // depth and width of the blocks
  T alpha = T(1), beta = T(0);
  const T* A = nullptr;
  index_t a_rs = 0, a_cs = 0;
  gd::ARead a_read = gd::ARead::copy;
  bool trans_b = false;  // raw B, packed per block (when packed == nullptr)
  bool b_in_place = false;  // raw B (not transposed) read where it is, not packed
  const T* B = nullptr;
  index_t ldb = 0;
  const T* packed = nullptr;  // pre-packed B: panels over all of K
  index_t packed_ps = 0;
  T* C = nullptr;
  index_t ldc = 0;
  int tm = 1, tn = 1;  // grid of parts
  int per_thread = 1;  // parts per thread (tm * tn = threads * per_thread when above 1)
  // A product run transposed (run_transposed): C above is a scratch C^T, and each part moves
  // its block of it into out (out[j * ld_out + i] from C[i * ldc + j], added to beta_out * out),
  // having first loaded the block from out when preload (several depth blocks with beta != 0).
  T* out = nullptr;
  index_t ld_out = 0;
  T beta_out = T(0);
  bool preload = false;
};

// Reads rows of A in place when they are few (the packed copy would not pay off) and their
// stride does not map them all to the same L1 set (a multiple of 4 KiB), or when C has at most
// four column panels, whatever M and the stride: each copied element of A would then serve at
// most 4 * nr multiply-adds, and the copy cost 20-30% of the product (the dx of a char-level
// LSTM, even with its 4 KiB row stride; figures in bench/RESULTS.md, session 5). The same
// holds for a transposed A (a Conv1D weight gradient of 64 channels: 9-13% faster in place,
// session 10). A transposed A whose product is one depth block (K <= kc) is read in place up to
// eight column panels: each packed element would serve at most 8 * nr multiply-adds, and the
// block is already in cache (the LSTM backward's weight-gradient block, 512 x 256 x 128: 3-5%
// faster, AVX2's 128 columns 6-20%; at sixteen panels AVX2 lost 7% with a 4 KiB stride, and 320
// or more columns gained nothing on AVX-512; deeper products, whose A streams from memory, lost
// 10% at 256 columns; bench/RESULTS.md, gemm session 15). Otherwise a transposed A (its columns
// contiguous) is packed a whole depth block at a time (pack_a reads it one long run per k), and
// rows of A are copied panel by panel.
template <typename T>
gd::ARead a_reading(index_t M, index_t N, index_t a_rs, index_t a_cs, int mr, int nr,
                    bool one_block) {
  if (a_cs == 1) {
    if (M == 1 || N <= 4 * nr) return gd::ARead::in_place;
    if (M <= 4 * mr && (a_rs * static_cast<index_t>(sizeof(T))) % 4096 != 0)
      return gd::ARead::in_place;
    return gd::ARead::copy;
  }
  return M == 1 || N <= (one_block ? 8 : 4) * nr ? gd::ARead::in_place : gd::ARead::packed;
}

// Reads B in place (rows of op(B), not transposed) when few panels of rows of A reuse each of its
// elements, so that packing it would cost more than it saves (a Conv1D forward of 64 output
// channels: 8-10% faster, bench/RESULTS.md session 10), and its rows are not a multiple of 4 KiB
// apart (they would all map to the same L1 set). The micro-kernel reads the same values in the
// same order: the results are those of the packed B.
template <typename T>
bool b_reading_in_place(index_t M, bool trans_b, index_t ldb, int mr, int nr) {
  return !trans_b && M <= kInPlaceBPanels * mr && ldb > nr &&
         (ldb * static_cast<index_t>(sizeof(T))) % 4096 != 0;
}

// Rows of A packed at a time (ARead::packed): bounds the thread's buffer to kPackedRows * kc.
constexpr index_t kPackedRows = 4096;

// Copied rows of A (ARead::copy) whose depth block is at most this many bytes are packed once
// per depth block instead, when the thread's columns span more than one block of columns:
// every column block then reads the packed rows (from L2) rather than copying each panel
// again from A (the per-thread product of a recurrent step, 64 rows over two 512-column blocks;
// the input projection's windows). The panels are the ones the copy makes: same values.
constexpr index_t kPackOnceBytes = index_t(512) << 10;

// Computes rows [m0, m1) and columns [n0, n1) of C (n0 a multiple of nr), writing column n0
// of row m at c[m * ldc] (c = C + n0 and ldc = p.ldc, or a scratch tile). Depth blocks are the
// outer loop, so that a packed block of A serves every block of columns.
template <typename T>
void run_range(const Plan<T>& p, index_t m0, index_t m1, index_t n0, index_t n1, T* c,
               index_t ldc) {
  if (p.a_read == gd::ARead::packed && m1 - m0 > kPackedRows) {
    for (index_t r = m0; r < m1; r += kPackedRows)
      run_range(p, r, std::min(m1, r + kPackedRows), n0, n1, c, ldc);
    return;
  }
  const gd::KernelSet<T>& ks = *p.ks;
  const index_t nr = ks.nr;
  Scratch<T>& s = scratch<T>();
  const index_t nc_max = p.nc;
  gd::ARead a_read = p.a_read;
  if (a_read == gd::ARead::copy && n1 - n0 > nc_max &&
      (m1 - m0) * p.kc * static_cast<index_t>(sizeof(T)) <= kPackOnceBytes)
    a_read = gd::ARead::packed;
  if (a_read == gd::ARead::copy) s.a.resize(static_cast<index_t>(ks.mr) * p.kc);
  if (a_read == gd::ARead::packed) s.a.resize((m1 - m0) * p.kc);
  if (!p.packed && !p.b_in_place)
    s.b.resize(p.kc * std::min<index_t>(nc_max, ceil_div(n1 - n0, nr) * nr));
  for (index_t k0 = 0; k0 < p.K; k0 += p.kc) {
    const index_t kc = std::min(p.kc, p.K - k0);
    const T* a = p.A + m0 * p.a_rs + k0 * p.a_cs;
    if (a_read == gd::ARead::packed) {
      ks.pack_a(m1 - m0, kc, a, p.a_rs, p.a_cs, s.a.data());
      a = s.a.data();
    }
    for (index_t nb = n0; nb < n1; nb += nc_max) {
      const index_t nc = std::min<index_t>(nc_max, n1 - nb);
      gd::BlockArgs<T> g;
      g.b_ks = nr;
      if (p.packed) {
        g.b = p.packed + (nb / nr) * p.packed_ps + k0 * nr;
        g.b_ps = p.packed_ps;
      } else if (p.b_in_place) {
        g.b = p.B + k0 * p.ldb + nb;
        g.b_ps = nr;
        g.b_ks = p.ldb;
      } else {
        ks.pack_b(p.trans_b, p.B, p.ldb, k0, kc, nb, nc, s.b.data(), kc * nr);
        g.b = s.b.data();
        g.b_ps = kc * nr;
      }
      g.m = m1 - m0;
      g.n = nc;
      g.kc = kc;
      g.a = a;
      g.a_rs = p.a_rs;
      g.a_cs = p.a_cs;
      g.a_read = a_read;
      g.a_buf = a_read == gd::ARead::copy ? s.a.data() : nullptr;
      g.c = c + m0 * ldc + (nb - n0);
      g.ldc = ldc;
      g.alpha = p.alpha;
      g.beta = k0 == 0 ? p.beta : T(1);
      ks.block(g);
    }
  }
}

// Rows [m0, m1) and columns [n0, n1) of C, moved from and into out when the product runs
// transposed: by the thread that computes them, while they are in its cache (the caller moving
// all of C^T after a parallel product read the other thread's half from that thread's cache:
// 64 x 500 x 96 took 62 us at 2 threads, 28 us of product and 34 of transpose, against 58 us at
// 1 thread; bench/RESULTS.md, session 14). Every element is moved by the same operation
// whatever the block: the bits do not depend on the split.
template <typename T>
void run_block(const Plan<T>& p, index_t m0, index_t m1, index_t n0, index_t n1) {
  T* c = p.C + m0 * p.ldc + n0;
  if (p.out && p.preload)
    p.ks->transpose(n1 - n0, m1 - m0, p.out + n0 * p.ld_out + m0, p.ld_out, c, p.ldc, T(0));
  run_range(p, m0, m1, n0, n1, p.C + n0, p.ldc);
  if (p.out)
    p.ks->transpose(m1 - m0, n1 - n0, c, p.ldc, p.out + n0 * p.ld_out + m0, p.ld_out, p.beta_out);
}

// Part `part` of the tm x tn grid: whole row panels and whole column panels.
template <typename T>
void run_part(const Plan<T>& p, index_t part) {
  const index_t mr = p.ks->mr, nr = p.ks->nr;
  const index_t im = part / p.tn, in = part % p.tn;
  const index_t mp = ceil_div(p.M, mr), np = ceil_div(p.N, nr);
  const index_t m0 = std::min(p.M, mp * im / p.tm * mr);
  const index_t m1 = std::min(p.M, mp * (im + 1) / p.tm * mr);
  const index_t n0 = std::min(p.N, np * in / p.tn * nr);
  const index_t n1 = std::min(p.N, np * (in + 1) / p.tn * nr);
  if (m0 < m1 && n0 < n1) run_block(p, m0, m1, n0, n1);
}

// Chooses the thread grid tm x tn: the fewest threads that keep every one busy enough, split
// so that the largest part, plus the copies of A and B its thread makes, is smallest; ties go to
// splitting N. Each thread packs B for its columns over all of K (unless B is pre-packed) and
// copies or reads A for its rows: once per depth block (ARead::packed) or once per block of
// columns (ARead::copy, ARead::in_place), so splitting N copies or reads all of A in every
// thread (the LSTM's dW split by N took 3-12% more CPU than split by M, its dx up to 20%).
template <typename T>
void choose_grid(Plan<T>& p) {
  p.tm = p.tn = 1;
  const int threads = get_num_threads();
  if (threads <= 1 || in_parallel_region()) return;
  const double work = static_cast<double>(p.M) * p.N * p.K;
  const int most = static_cast<int>(std::min<double>(threads, std::max(1.0, work / kMinWorkPerThread)));
  const index_t mr = p.ks->mr, nr = p.ks->nr;
  const index_t mp = ceil_div(p.M, mr), np = ceil_div(p.N, nr);
  const double pack_b = p.packed || p.b_in_place ? 0.0 : kPackCost;
  double best = -1;
  for (int t = 1; t <= most; ++t)
    for (int tm = 1; tm <= t; ++tm) {
      if (t % tm) continue;
      const int tn = t / tm;
      if (tm > mp || tn > np) continue;
      const double rows = static_cast<double>(ceil_div(mp, tm) * mr);
      const double cols = static_cast<double>(ceil_div(np, tn) * nr);
      const double a_copies = p.a_read == gd::ARead::packed
                                  ? 1.0
                                  : static_cast<double>(ceil_div(ceil_div(np, tn) * nr, p.nc));
      const double cost = (rows * cols + pack_b * cols + kPackCost * a_copies * rows) * p.K +
                          kMinWorkPerThread * t / 8;
      if (best < 0 || cost < best || (cost == best && tn > p.tn)) {
        best = cost;
        p.tm = tm;
        p.tn = tn;
      }
    }
}

// A parallel product that finds the pool's workers asleep (detail::readiness) pays for waking
// them: a system call of 8-14 us in the caller on the AMD KVM guest, and the workers join 20-40
// us after the call begins (bench/RESULTS.md, session 13), so the caller alone finishes a
// product of up to kAloneWork multiply-adds (about 40 us) sooner. Such a product runs on the
// caller alone, without waking them, unless another call came within the pool's spin time (a
// run of calls, which waking the pool serves).
constexpr double kAloneWork = 2.0 * 1024 * 1024;
// Any other parallel product whose threads each have at most kFinePartsBelow multiply-adds
// (about 0.6 ms) is cut into up to kMaxFineParts parts per thread of at least kFinePart (about 9
// us), claimed one at a time (parallel_for's per_thread): a worker that joins late (waking, or
// off its core on a busy machine) then leaves the caller only the parts it has not reached, not
// its whole share. Only a grid of rows alone, and only when B is packed once or read in place
// (so that no part packs anything twice) and fits in L2 with room to spare (every part reads
// all of it): there the finer parts cost nothing measurable on back-to-back calls, while
// cutting columns finer made some products 10-60% slower (session 13). The values do not
// change: parts are whole panels of rows, and K is never split.
constexpr double kFinePart = 512.0 * 1024;
constexpr double kFinePartsBelow = 64 * kFinePart;
constexpr int kMaxFineParts = 4;
constexpr double kFineBBytes = 256.0 * 1024;

template <typename T>
void refine_grid(Plan<T>& p) {
  const int t = p.tm * p.tn;
  if (t != get_num_threads()) return;  // parts beyond the grid's threads would spread
  if (p.tn != 1 || !(p.packed || p.b_in_place)) return;
  if (static_cast<double>(p.K) * p.N * sizeof(T) > kFineBBytes) return;
  const double per_thread = static_cast<double>(p.M) * p.N * p.K / t;
  if (per_thread > kFinePartsBelow) return;
  const index_t mp = ceil_div(p.M, p.ks->mr);
  for (int f = std::min<int>(kMaxFineParts, static_cast<int>(per_thread / kFinePart)); f >= 2; --f)
    if (p.tm * f <= mp) {
      p.tm *= f;
      p.per_thread = f;
      return;
    }
}

// The grid of a parallel product, from how the pool's workers would join it.
template <typename T>
void adapt_to_workers(Plan<T>& p) {
  if (p.tm * p.tn <= 1) return;
  if (static_cast<double>(p.M) * p.N * p.K <= kAloneWork &&
      detail::readiness() == detail::Readiness::kAsleepAlone) {
    p.tm = p.tn = 1;
    return;
  }
  refine_grid(p);
}

template <typename T>
void run(Plan<T>& p) {
  choose_grid(p);
  adapt_to_workers(p);
  const int parts = p.tm * p.tn;
  if (parts == 1) {
    run_block(p, 0, p.M, 0, p.N);
    return;
  }
  const Plan<T>* pp = &p;
  parallel_for(
      parts, 1,
      [pp](index_t b, index_t e) {
        for (index_t part = b; part < e; ++part) run_part(*pp, part);
      },
      p.per_thread);
}

// C = A B^T (A not transposed) with at most four panels of rows of A (a Conv1D weight gradient
// in channels-first layout: 64 output channels against patches of 192-500 values) runs
// transposed, C^T = B A^T, when that moves fewer elements: B's rows are then read in place as the
// rows of the product, A is packed as its B panels (M x K values instead of N x K, and no copy
// of A's rows), and C^T, computed in a scratch buffer, is transposed into C (twice as many moved
// elements when C must first be read, beta != 0 over several depth blocks). Lanes past M in the
// last vector of C^T's rows are wasted multiply-adds, each ~1/8 of a move (40 x 300 x 200: 7%
// slower transposed with 1/16). Every element is
// the same chain of fused multiply-adds over k (a * b == b * a), so the bits do not change:
// only where the time goes (wavenet 64 x 192 x 334: 12% less; bench/RESULTS.md, session 11).
template <typename T>
bool transposed_pays(const Plan<T>& p) {
  const index_t nr = p.ks->nr, w = nr / 2;  // two vectors per panel in every kernel set
  if (p.trans_b == false || p.a_cs != 1 || p.M > 4 * nr || p.M < w) return false;
  const double M = static_cast<double>(p.M), N = static_cast<double>(p.N);
  const double K = static_cast<double>(p.K);
  const double a_copies = p.a_read == gd::ARead::copy ? ceil_div(p.N, p.nc) : 0.0;
  const bool preload = p.kc < p.K && p.beta != T(0);
  const double lanes = static_cast<double>(ceil_div(p.M, w) * w) - M;
  const double now = N * K + a_copies * M * K;
  const double transposed = M * K + M * N * (preload ? 2.0 : 1.0) + lanes * N * K / 8.0;
  return transposed < now;
}

template <typename T>
void run_transposed(const Plan<T>& p) {
  Plan<T> q = p;
  Buffer<T>& ct = scratch<T>().ct;
  ct.resize(p.N * p.M);
  // One depth block: C = fma(beta, C, alpha * sum) is added after the transpose. Several: the
  // later blocks add to what the first left, which must then start from beta * C (preload).
  const bool one_block = p.kc >= p.K;
  q.preload = !one_block && p.beta != T(0);
  q.out = p.C;
  q.ld_out = p.ldc;
  q.beta_out = one_block ? p.beta : T(0);
  q.M = p.N;
  q.N = p.M;
  q.A = p.B;
  q.a_rs = p.ldb;
  q.a_cs = 1;
  q.a_read = a_reading<T>(q.M, q.N, q.a_rs, 1, p.ks->mr, p.ks->nr, false);
  q.trans_b = true;
  q.b_in_place = false;
  q.B = p.A;
  q.ldb = p.a_rs;
  q.C = ct.data();
  q.ldc = p.M;
  if (one_block) q.beta = T(0);
  run(q);
}

template <typename T>
void scale_c(index_t M, index_t N, T beta, T* C, index_t ldc) {
  for (index_t m = 0; m < M; ++m) {
    T* c = C + m * ldc;
    if (beta == T(0))
      std::fill(c, c + N, T(0));
    else
      for (index_t n = 0; n < N; ++n) c[n] *= beta;
  }
}

template <typename T>
Plan<T> packed_plan(index_t M, const T* A, index_t lda, const PackedB<T>& B, T beta, T* C,
                    index_t ldc) {
  Plan<T> p;
  p.ks = &kernel_set<T>(B.isa());
  p.M = M;
  p.N = B.cols();
  p.K = B.rows();
  p.kc = depth_of(*p.ks, p.K, false);
  p.nc = block_width(*p.ks, p.kc);
  p.alpha = T(1);
  p.beta = beta;
  p.A = A;
  p.a_rs = lda;
  p.a_cs = 1;
  p.a_read = a_reading<T>(M, p.N, lda, 1, p.ks->mr, p.ks->nr, false);
  p.packed = B.panels();
  p.packed_ps = B.panel_stride();
  p.C = C;
  p.ldc = ldc;
  return p;
}

// ---- bfloat16 (rnnfast/gemm_bf16.h): the glue between PackedB and the bfloat16 paths.

template <typename T>
constexpr bool kIsFloat = std::is_same_v<T, float>;

void refuse_bf16_double() {
  throw std::invalid_argument("precision 'bfloat16' needs float32 operands, got float64");
}

// rows x cols of m (row stride ld) rounded to bfloat16 into the calling thread's scratch
// (row stride cols).
const float* rounded_copy(index_t rows, index_t cols, const float* m, index_t ld,
                          Buffer<float>& out) {
  out.resize(std::max<index_t>(1, rows * cols));
  for (index_t r = 0; r < rows; ++r) round_to_bf16(cols, m + r * ld, out.data() + r * cols);
  return out.data();
}

Buffer<float>& rounded_scratch_a() {
  thread_local Buffer<float> a;
  return a;
}

Buffer<float>& rounded_scratch_b() {
  thread_local Buffer<float> b;
  return b;
}

template <typename T>
bool bf16_hardware(const PackedB<T>& B) {
  return B.precision() == Precision::bfloat16 && B.bf16().isa != Bf16Isa::portable;
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc,
          Precision precision) {
  if (precision == Precision::bfloat16) {
    if constexpr (kIsFloat<T>)
      gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
      refuse_bf16_double();
    return;
  }
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  Plan<T> p;
  p.ks = &kernel_set<T>(active_isa());
  p.M = M;
  p.N = N;
  p.K = K;
  p.kc = depth_of(*p.ks, K, trans_a);
  p.nc = block_width(*p.ks, p.kc);
  p.alpha = alpha;
  p.beta = beta;
  p.A = A;
  p.a_rs = trans_a ? 1 : lda;
  p.a_cs = trans_a ? lda : 1;
  p.a_read = a_reading<T>(M, N, p.a_rs, p.a_cs, p.ks->mr, p.ks->nr, p.kc >= K);
  p.trans_b = trans_b;
  p.b_in_place = b_reading_in_place<T>(M, trans_b, ldb, p.ks->mr, p.ks->nr);
  p.B = B;
  p.ldb = ldb;
  p.C = C;
  p.ldc = ldc;
  if (!trans_a && transposed_pays(p)) {
    run_transposed(p);
    return;
  }
  run(p);
}

template <typename T>
void PackedB<T>::shape_panels(index_t K, index_t N) {
  isa_ = active_isa();
  K_ = K;
  N_ = N;
  nr_ = kernel_set<T>(isa_).nr;
  ld_ = K * nr_;
  data_.resize(std::max<index_t>(1, ceil_div(N, nr_) * ld_));
}

template <typename T>
void PackedB<T>::shape_bf16(index_t K, index_t N) {
  isa_ = active_isa();
  K_ = K;
  N_ = N;
  nr_ = kBf16PanelWidth;
  ld_ = 0;
  data_.resize(0);
}

template <typename T>
void PackedB<T>::pack(bool trans_b, index_t K, index_t N, const T* B, index_t ldb,
                      Precision precision, std::uint64_t cache_token) {
  precision_ = precision;
  bf16_.reset();
  Buffer<T> rounded;
  if (precision == Precision::bfloat16) {
    if constexpr (kIsFloat<T>) {
      const Bf16Isa bi = active_bf16_isa();
      if (bi != Bf16Isa::portable) {
        shape_bf16(K, N);
        bf16_ = pack_bf16_cached(cache_token, bi, trans_b, K, N, B, ldb);
        return;
      }
      // Portable: the float32 panels of the rounded op(B).
      const index_t rows = trans_b ? N : K, cols = trans_b ? K : N;
      rounded.resize(std::max<index_t>(1, rows * cols));
      parallel_for(rows, 64, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r)
          round_to_bf16(cols, B + r * ldb, rounded.data() + r * cols);
      });
      B = rounded.data();
      ldb = cols;
    } else {
      refuse_bf16_double();
    }
  }
  shape_panels(K, N);
  const gd::KernelSet<T>& ks = kernel_set<T>(isa_);
  const index_t panels = ceil_div(N, nr_);
  if (K <= 0 || N <= 0) return;
  const index_t grain = std::max<index_t>(1, (1 << 16) / std::max<index_t>(1, ld_));
  parallel_for(panels, grain, [&](index_t j0, index_t j1) {
    ks.pack_b(trans_b, B, ldb, 0, K, j0 * nr_, std::min(N, j1 * nr_) - j0 * nr_,
              data_.data() + j0 * ld_, ld_);
  });
}

template <typename T>
void PackedB<T>::pack_gathered(index_t K, index_t N, const T* B, index_t ldb, const index_t* src,
                               Precision precision, std::uint64_t cache_token) {
  if (precision == Precision::bfloat16) {
    if constexpr (kIsFloat<T>) {  // the hardware paths pack from B without a copy
      const Bf16Isa bi = active_bf16_isa();
      if (bi != Bf16Isa::portable && PackedBf16::gathers_in_place(N, src)) {
        precision_ = precision;
        shape_bf16(K, N);
        bf16_ = pack_bf16_cached(cache_token, bi, true, K, N, B, ldb, src);
        return;
      }
    }
    Buffer<T> rows(std::max<index_t>(1, N * K));  // the gathered rows, packed by pack()
    parallel_for(N, 64, [&](index_t n0, index_t n1) {
      for (index_t n = n0; n < n1; ++n) {
        if (src[n] >= 0)
          std::memcpy(rows.data() + n * K, B + src[n] * ldb, sizeof(T) * K);
        else
          std::fill_n(rows.data() + n * K, K, T(0));
      }
    });
    pack(true, K, N, rows.data(), K, precision);
    return;
  }
  precision_ = precision;
  bf16_.reset();
  shape_panels(K, N);
  const gd::KernelSet<T>& ks = kernel_set<T>(isa_);
  const index_t panels = ceil_div(N, nr_);
  if (K <= 0 || N <= 0) return;
  const index_t nr = nr_, ld = ld_;
  const index_t grain = std::max<index_t>(1, (1 << 16) / std::max<index_t>(1, ld));
  parallel_for(panels, grain, [&](index_t j0, index_t j1) {
    for (index_t j = j0; j < j1; ++j) {
      const index_t c0 = j * nr, cols = std::min(nr, N - c0);
      T* dst = data_.data() + j * ld;
      index_t run = 0;  // columns from consecutive rows of B, from row src[c0]
      while (run < cols && src[c0] >= 0 && src[c0 + run] == src[c0] + run) ++run;
      for (index_t c = run; c < cols; ++c)
        if (src[c0 + c] >= 0)
          throw std::logic_error("PackedB::pack_gathered: a panel's rows are not consecutive");
      if (run > 0)
        ks.pack_b(true, B + src[c0] * ldb, ldb, 0, K, 0, run, dst, ld);  // zero past run
      else
        std::fill_n(dst, ld, T(0));
    }
  });
}

template <typename T>
void gemm_rows_nt(index_t M, index_t N, index_t K, const T* A, index_t lda, const T* B,
                  index_t ldb, T* C, index_t ldc, Precision precision) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, T(0), C, ldc);
    return;
  }
  if (precision == Precision::bfloat16) {
    if constexpr (kIsFloat<T>) {
      A = rounded_copy(M, K, A, lda, rounded_scratch_a());
      lda = K;
      B = rounded_copy(N, K, B, ldb, rounded_scratch_b());
      ldb = K;
    } else {
      refuse_bf16_double();
    }
  }
  kernel_set<T>(active_isa()).dot_rows(M, N, K, A, lda, B, ldb, C, ldc);
}

template <typename T>
index_t packed_panel_width(Precision precision) {
  if (kIsFloat<T> && precision == Precision::bfloat16 && active_bf16_isa() != Bf16Isa::portable)
    return kBf16PanelWidth;
  return kernel_set<T>(active_isa()).nr;
}

template <typename T>
index_t gemm_depth_block(index_t K, bool trans_a, Isa isa) {
  return depth_of(kernel_set<T>(isa), K, trans_a);
}

template <typename T>
void gemm_packed(index_t M, const T* A, index_t lda, const PackedB<T>& B, T beta, T* C,
                 index_t ldc) {
  if (M <= 0 || B.cols() <= 0) return;
  if (B.rows() <= 0) {
    scale_c(M, B.cols(), beta, C, ldc);
    return;
  }
  if constexpr (kIsFloat<T>) {
    if (bf16_hardware(B)) {
      gemm_bf16_packed(M, A, lda, B.bf16(), beta, C, ldc);
      return;
    }
    if (B.precision() == Precision::bfloat16) {
      A = rounded_copy(M, B.rows(), A, lda, rounded_scratch_a());
      lda = B.rows();
    }
  }
  Plan<T> p = packed_plan(M, A, lda, B, beta, C, ldc);
  run(p);
}

template <typename T>
void gemm_packed_cols(index_t M, const T* A, index_t lda, const PackedB<T>& B, index_t n_begin,
                      index_t n_end, T beta, T* C, index_t ldc) {
  if (n_begin < 0 || n_end > B.cols() || n_begin > n_end)
    throw std::invalid_argument("gemm_packed_cols: column range out of bounds");
  if (M <= 0 || n_begin == n_end) return;
  if (B.rows() <= 0) {
    scale_c(M, n_end - n_begin, beta, C + n_begin, ldc);
    return;
  }
  if constexpr (kIsFloat<T>) {
    if (bf16_hardware(B)) {
      gemm_bf16_packed_cols(M, A, lda, B.bf16(), n_begin, n_end, beta, C, ldc);
      return;
    }
    if (B.precision() == Precision::bfloat16) {
      A = rounded_copy(M, B.rows(), A, lda, rounded_scratch_a());
      lda = B.rows();
    }
  }
  Plan<T> p = packed_plan(M, A, lda, B, beta, C, ldc);
  const index_t nr = p.ks->nr;
  const index_t first = n_begin / nr * nr;
  if (first < n_begin) {
    // The panel holding n_begin: computed whole into a scratch tile (the same arithmetic for
    // every element), then only its columns [n_begin, ...) are copied out.
    const index_t last = std::min(first + nr, B.cols());
    const index_t keep_end = std::min(n_end, last);
    Buffer<T>& tile = scratch<T>().tile;
    tile.resize(M * nr);
    if (beta != T(0)) {
      tile.zero();
      for (index_t m = 0; m < M; ++m)
        std::memcpy(tile.data() + m * nr + (n_begin - first), C + m * ldc + n_begin,
                    sizeof(T) * (keep_end - n_begin));
    }
    run_range(p, 0, M, first, last, tile.data(), nr);
    for (index_t m = 0; m < M; ++m)
      std::memcpy(C + m * ldc + n_begin, tile.data() + m * nr + (n_begin - first),
                  sizeof(T) * (keep_end - n_begin));
    n_begin = keep_end;
  }
  if (n_begin < n_end) run_range(p, 0, M, n_begin, n_end, C + n_begin, ldc);
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t, Precision);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t, Precision);
template class PackedB<float>;
template class PackedB<double>;
template void gemm_rows_nt<float>(index_t, index_t, index_t, const float*, index_t, const float*,
                                  index_t, float*, index_t, Precision);
template void gemm_rows_nt<double>(index_t, index_t, index_t, const double*, index_t,
                                   const double*, index_t, double*, index_t, Precision);
template index_t gemm_depth_block<float>(index_t, bool, Isa);
template index_t gemm_depth_block<double>(index_t, bool, Isa);
template index_t packed_panel_width<float>(Precision);
template index_t packed_panel_width<double>(Precision);
template void gemm_packed<float>(index_t, const float*, index_t, const PackedB<float>&, float,
                                 float*, index_t);
template void gemm_packed<double>(index_t, const double*, index_t, const PackedB<double>&, double,
                                  double*, index_t);
template void gemm_packed_cols<float>(index_t, const float*, index_t, const PackedB<float>&,
                                      index_t, index_t, float, float*, index_t);
template void gemm_packed_cols<double>(index_t, const double*, index_t, const PackedB<double>&,
                                       index_t, index_t, double, double*, index_t);

}  // namespace rnnfast
