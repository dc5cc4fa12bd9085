// The bfloat16 GEMM driver: the hardware paths (cpu.cc's CPUID/XCR0 detection, and Linux's
// tile permission), the run-time choice, rounding, packing of A and B, the split between threads,
// and the portable path (rounded operands through the float32 GEMM).
#include "rnnfast/gemm_bf16.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>

#include "gemm_bf16_kernels.h"
#include "rnnfast/buffer.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"
#include "rnnfast/threads.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rnnfast {

namespace {

namespace bd = gemm_bf16_detail;

struct Bf16Features {
  bool avx512_bf16 = false;
  bool amx = false;
};

// Linux gives a process the AMX tile data state (8 KiB more per thread on context switches)
// only when asked for (since 5.16); without it tile instructions fault. Asked once, here.
bool request_tile_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl) && (defined(__x86_64__) || defined(__i386__))
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask >> kXfeatureXtiledata) & 1u;
#else
  return false;
#endif
}

// The CPU's features (cpu.cc's detection), and AMX only once Linux grants the tile state.
Bf16Features detect() {
  const CpuFeatures& cpu = cpu_features();
  Bf16Features f;
  f.avx512_bf16 = cpu.avx512_bf16;
  f.amx = cpu.amx_bf16 && request_tile_permission();
  return f;
}

const Bf16Features& features() {
  static const Bf16Features f = detect();
  return f;
}

constexpr int kUnset = -1;
std::atomic<int> g_chosen{kUnset};

Bf16Isa best() {
  if (features().amx) return Bf16Isa::amx;
  if (features().avx512_bf16) return Bf16Isa::avx512_bf16;
  return Bf16Isa::portable;
}

const bd::Bf16Kernels& kernels(Bf16Isa isa) {
#ifdef RNNFAST_HAVE_X86_KERNELS
  if (isa == Bf16Isa::amx) return bd::kBf16Amx;
  if (isa == Bf16Isa::avx512_bf16) return bd::kBf16Avx512;
#endif
  (void)isa;
  throw std::logic_error("bfloat16: no kernels for the portable path");
}

const bd::Bf16Convert& convert() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  return bd::kBf16ConvertAvx512;
#else
  throw std::logic_error("bfloat16: no hardware conversions in this build");
#endif
}

index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

// op(A) [M, K] as bfloat16 rows of kp (zeros past K) in the kernel's layout (rows or tiles;
// gemm_bf16_kernels.h), rows up to mp (zeros past M; mp a multiple of 16 when tiled).
// sums (trans_a only, or null): the unrounded sum of each row of op(A) (pack_rows_trans).
void pack_a(bool tiled, bool trans_a, index_t M, index_t K, const float* A, index_t lda,
            index_t mp, index_t kp, bd::bf16* dst, float* sums = nullptr) {
  const bd::Bf16Convert& cv = convert();
  if (tiled) {  // rows M.. of the last block of 16 written as zeros by the conversions
    if (trans_a)
      cv.pack_rows_trans(A, lda, K, 0, M, kp, true, dst, sums);
    else
      cv.pack_rows_tiled(A, lda, K, M, kp, dst);
    const index_t done = (M + 15) / 16 * 16;
    std::fill(dst + done * kp, dst + std::max(done, mp) * kp, bd::bf16(0));
    return;
  }
  if (!trans_a) {
    for (index_t i = 0; i < M; ++i) {
      cv.round(K, A + i * lda, dst + i * kp);
      std::fill(dst + i * kp + K, dst + (i + 1) * kp, bd::bf16(0));
    }
  } else {  // A[k * lda + i]
    cv.pack_rows_trans(A, lda, K, 0, M, kp, false, dst, sums);
  }
  std::fill(dst + M * kp, dst + mp * kp, bd::bf16(0));
}

// Per-thread buffers, allocated on a thread's first call and reused afterwards (as gemm.cc's
// float32 scratch): a fresh buffer of a large product's operands costs its page faults at every
// call (an LSTM training step at T=50, B=64, I=H=512 spent 18% of its time in them).
struct Scratch {
  Buffer<bd::bf16> cols_a;  // gemm_bf16_packed_cols: the rows of A of the current product
  Buffer<bd::bf16> a;       // gemm_bf16, gemm_bf16_packed: the bfloat16 rows of op(A)
  PackedBf16 b;             // gemm_bf16: op(B) packed
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// At least n elements of b, never shrinking it (Buffer::resize forgets its larger size when
// asked for less: the backward's alternating large and step-sized products reallocated, and
// faulted in, 13 MB at every call).
bd::bf16* reserve(Buffer<bd::bf16>& b, index_t n) {
  if (b.size() < n) b.resize(n);
  return b.data();
}

// op(A) [M, K] as bfloat16 rows of kp into a (rows up to mp zero), blocks of 16 rows (the
// transposing unit) on the thread pool, at most 256 rows per call (whose rows of a
// transposed A, read across a chunk of k, stay in L2). sums: as pack_a's.
void pack_a_threaded(bool tiled, bool trans_a, index_t M, index_t K, const float* A, index_t lda,
                     index_t mp, index_t kp, bd::bf16* a, float* sums = nullptr) {
  const index_t grain = std::max<index_t>(1, std::min<index_t>(16, (1 << 15) / kp));
  auto run = [&](index_t b0, index_t b1) {
    const index_t m0 = b0 * 16, m1 = std::min(M, b1 * 16);
    const float* src = trans_a ? A + m0 : A + m0 * lda;
    pack_a(tiled, trans_a, m1 - m0, K, src, lda, m1 - m0, kp, a + m0 * kp,
           sums ? sums + m0 : nullptr);
  };
  if (in_parallel_region())
    run(0, (M + 15) / 16);
  else
    parallel_for((M + 15) / 16, grain, run);
  const index_t done = tiled ? (M + 15) / 16 * 16 : M;
  std::fill(a + done * kp, a + std::max(done, mp) * kp, bd::bf16(0));
}

}  // namespace

Precision precision_from_name(const std::string& name) {
  if (name == "float32") return Precision::float32;
  if (name == "bfloat16") return Precision::bfloat16;
  throw std::invalid_argument("precision: expected 'float32' or 'bfloat16', got '" + name + "'");
}

const char* precision_name(Precision p) {
  return p == Precision::bfloat16 ? "bfloat16" : "float32";
}

const char* bf16_isa_name(Bf16Isa isa) {
  switch (isa) {
    case Bf16Isa::portable: return "portable";
    case Bf16Isa::avx512_bf16: return "avx512_bf16";
    case Bf16Isa::amx: return "amx";
  }
  return "unknown";
}

Bf16Isa bf16_isa_from_name(const std::string& name) {
  if (name == "portable") return Bf16Isa::portable;
  if (name == "avx512_bf16") return Bf16Isa::avx512_bf16;
  if (name == "amx") return Bf16Isa::amx;
  throw std::invalid_argument("unknown bfloat16 path '" + name +
                              "' (expected portable, avx512_bf16 or amx)");
}

std::vector<Bf16Isa> supported_bf16_isas() {
  std::vector<Bf16Isa> isas{Bf16Isa::portable};
  if (features().avx512_bf16) isas.push_back(Bf16Isa::avx512_bf16);
  if (features().amx) isas.push_back(Bf16Isa::amx);
  return isas;
}

Bf16Isa active_bf16_isa() {
  int c = g_chosen.load(std::memory_order_relaxed);
  if (c == kUnset) {
    int expected = kUnset;
    g_chosen.compare_exchange_strong(expected, static_cast<int>(best()));
    c = g_chosen.load(std::memory_order_relaxed);
  }
  if (active_isa() != Isa::avx512) return Bf16Isa::portable;
  return static_cast<Bf16Isa>(c);
}

void set_bf16_isa(Bf16Isa isa) {
  for (Bf16Isa s : supported_bf16_isas())
    if (s == isa) {
      g_chosen.store(static_cast<int>(isa), std::memory_order_relaxed);
      return;
    }
  throw std::invalid_argument(std::string("bfloat16 path '") + bf16_isa_name(isa) +
                              "' is not supported by this CPU, operating system or build");
}

void round_to_bf16(index_t n, const float* src, float* dst) {
  for (index_t i = 0; i < n; ++i) dst[i] = bf16_round(src[i]);
}

index_t PackedBf16::shape(Bf16Isa isa_, index_t K_, index_t N_) {
  isa = isa_;
  K = K_;
  N = N_;
  kp = round_up(std::max<index_t>(K, 1), bd::kKAlign);
  const index_t panels = std::max<index_t>(1, (N + bd::kNr - 1) / bd::kNr);
  const auto size = static_cast<std::size_t>(panels * kp * bd::kNr);
  if (K <= 0 || N <= 0) {
    bits.assign(size, 0);
    return 0;
  }
  bits.resize(size);  // the packing writes every element (zeros past K and N included)
  return panels;
}

void PackedBf16::pack(Bf16Isa isa_, bool trans_b, index_t K_, index_t N_, const float* B,
                      index_t ldb) {
  if (isa_ == Bf16Isa::portable)
    throw std::logic_error("PackedBf16: the portable path packs float32 panels (PackedB)");
  const index_t panels = shape(isa_, K_, N_);
  if (panels == 0) return;
  const bd::Bf16Convert& cv = convert();
  const index_t grain = std::max<index_t>(1, (1 << 16) / (kp * bd::kNr));
  parallel_for(panels, grain, [&](index_t p0, index_t p1) {
    cv.pack_panel(trans_b, B, ldb, K, kp, p0 * bd::kNr, std::min(N, p1 * bd::kNr) - p0 * bd::kNr,
                  bits.data() + p0 * kp * bd::kNr);
  });
}

index_t PackedBf16::pair_offset(index_t N0) { return round_up(N0, bd::kNr); }

namespace {

// Packs [B0 | 0 | B1] (pack_pair) into p for isa, K rows: columns [n0, n0 + n) of B0 by
// pack0(cv, n0, n, dst) and of B1 by pack1 (n0 a multiple of kNr, cv the conversions), on the
// thread pool.
template <typename Pack0, typename Pack1>
void pack_pair_panels(PackedBf16& p, Bf16Isa isa, index_t K, index_t N0, index_t N1, Pack0 pack0,
                      Pack1 pack1) {
  if (isa == Bf16Isa::portable)
    throw std::logic_error("PackedBf16: the portable path packs float32 panels (PackedB)");
  const index_t panels = p.shape(isa, K, PackedBf16::pair_offset(N0) + N1);
  if (panels == 0) return;
  const bd::Bf16Convert& cv = convert();
  const index_t kp = p.kp, panels0 = PackedBf16::pair_offset(N0) / bd::kNr;
  const index_t grain = std::max<index_t>(1, (1 << 16) / (kp * bd::kNr));
  parallel_for(panels, grain, [&](index_t p0, index_t p1) {
    // each part's panels of [p0, p1) in one call (it reads its rows of B a chunk of k at a time)
    const index_t a0 = std::min(p0, panels0), a1 = std::min(p1, panels0);
    if (a0 < a1)
      pack0(cv, a0 * bd::kNr, std::min(N0, a1 * bd::kNr) - a0 * bd::kNr,
            p.bits.data() + a0 * kp * bd::kNr);
    const index_t b0 = std::max(p0, panels0), b1 = std::max(p1, panels0);
    if (b0 < b1)
      pack1(cv, (b0 - panels0) * bd::kNr,
            std::min(N1, (b1 - panels0) * bd::kNr) - (b0 - panels0) * bd::kNr,
            p.bits.data() + b0 * kp * bd::kNr);
  });
}

}  // namespace

void PackedBf16::pack_pair(Bf16Isa isa_, index_t K_, index_t N0, const float* B0, index_t ld0,
                           index_t N1, const float* B1, index_t ld1) {
  using Cv = bd::Bf16Convert;
  pack_pair_panels(
      *this, isa_, K_, N0, N1,
      [&](const Cv& cv, index_t n0, index_t n, bd::bf16* dst) {
        cv.pack_panel(false, B0, ld0, K, kp, n0, n, dst);
      },
      [&](const Cv& cv, index_t n0, index_t n, bd::bf16* dst) {
        cv.pack_panel(false, B1, ld1, K, kp, n0, n, dst);
      });
}

void PackedBf16::pack_pair_rows(Bf16Isa isa_, index_t K_, index_t N0, const float* const* rows0,
                                index_t N1, const float* const* rows1) {
  using Cv = bd::Bf16Convert;
  pack_pair_panels(
      *this, isa_, K_, N0, N1,
      [&](const Cv& cv, index_t n0, index_t n, bd::bf16* dst) {
        cv.pack_panel_rows(rows0, K, kp, n0, n, dst);
      },
      [&](const Cv& cv, index_t n0, index_t n, bd::bf16* dst) {
        cv.pack_panel_rows(rows1, K, kp, n0, n, dst);
      });
}

namespace {

// Columns [n0, n0 + n) of a gathered op(B): how many are consecutive rows of W from rows[n0]
// (0 if rows[n0] < 0), and whether every later one is zero.
index_t gathered_run(const index_t* rows, index_t n0, index_t n, bool* rest_zero) {
  index_t run = 0;
  while (run < n && rows[n0] >= 0 && rows[n0 + run] == rows[n0] + run) ++run;
  index_t rest = run;
  while (rest < n && rows[n0 + rest] < 0) ++rest;
  *rest_zero = rest == n;
  return run;
}

}  // namespace

bool PackedBf16::gathers_in_place(index_t N, const index_t* rows) {
  for (index_t n0 = 0; n0 < N; n0 += bd::kNr) {
    bool rest_zero = false;
    gathered_run(rows, n0, std::min(N, n0 + bd::kNr) - n0, &rest_zero);
    if (!rest_zero) return false;
  }
  return true;
}

void PackedBf16::pack_gathered(Bf16Isa isa_, index_t K_, index_t N_, const float* W,
                               index_t ldw, const index_t* rows) {
  if (isa_ == Bf16Isa::portable)
    throw std::logic_error("PackedBf16: the portable path packs float32 panels (PackedB)");
  if (!gathers_in_place(N_, rows))
    throw std::logic_error("PackedBf16::pack_gathered: a panel's rows are not consecutive");
  const index_t panels = shape(isa_, K_, N_);
  if (panels == 0) return;
  const bd::Bf16Convert& cv = convert();
  const index_t grain = std::max<index_t>(1, (1 << 16) / (kp * bd::kNr));
  parallel_for(panels, grain, [&](index_t p0, index_t p1) {
    for (index_t p = p0; p < p1; ++p) {
      const index_t n0 = p * bd::kNr;
      bool rest_zero = false;
      const index_t run = gathered_run(rows, n0, std::min(N, n0 + bd::kNr) - n0, &rest_zero);
      bd::bf16* dst = bits.data() + p * kp * bd::kNr;
      if (run)  // columns past the run: zeros
        cv.pack_panel(true, W + rows[n0] * ldw, ldw, K, kp, 0, run, dst);
      else
        std::fill_n(dst, kp * bd::kNr, bd::bf16(0));
    }
  });
}

namespace {

// The cache of pack_bf16_cached: most recently used first.
struct CachedPack {
  std::uint64_t token;
  Bf16Isa isa;
  bool trans_b;
  index_t K, N, ldb;
  const float* B;
  std::vector<index_t> rows;  // empty: not gathered
  std::shared_ptr<const PackedBf16> packed;
  bool same(std::uint64_t t, Bf16Isa i, bool tr, index_t k, index_t n, const float* b, index_t ld,
            const index_t* r) const {
    return token == t && isa == i && trans_b == tr && K == k && N == n && B == b && ldb == ld &&
           (r ? !rows.empty() && std::equal(rows.begin(), rows.end(), r) : rows.empty());
  }
  std::size_t bytes() const { return packed->bits.size() * sizeof(bd::bf16); }
};

std::mutex g_cache_mutex;
std::list<CachedPack>& cache() {
  static auto* c = new std::list<CachedPack>();  // never destroyed: no order at exit to mind
  return *c;
}

}  // namespace

std::shared_ptr<const PackedBf16> pack_bf16_cached(std::uint64_t token, Bf16Isa isa,
                                                   bool trans_b, index_t K, index_t N,
                                                   const float* B, index_t ldb,
                                                   const index_t* rows) {
  if (token != 0 && N > 0) {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    auto& c = cache();
    for (auto it = c.begin(); it != c.end(); ++it)
      if (it->same(token, isa, trans_b, K, N, B, ldb, rows)) {
        c.splice(c.begin(), c, it);
        return c.front().packed;
      }
  }
  auto packed = std::make_shared<PackedBf16>();  // packed outside the lock (on the pool)
  if (rows)
    packed->pack_gathered(isa, K, N, B, ldb, rows);
  else
    packed->pack(isa, trans_b, K, N, B, ldb);
  if (token == 0 || N <= 0) return packed;
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto& c = cache();
  c.push_front({token, isa, trans_b, K, N, ldb, B,
                rows ? std::vector<index_t>(rows, rows + N) : std::vector<index_t>(), packed});
  std::size_t bytes = 0, entries = 0;
  for (auto it = c.begin(); it != c.end();) {
    bytes += it->bytes();
    ++entries;
    if (it != c.begin() && (entries > kBf16CacheEntries || bytes > kBf16CacheBytes))
      it = c.erase(it);
    else
      ++it;
  }
  return packed;
}

void clear_bf16_pack_cache() {
  std::list<CachedPack> gone;  // freed after the lock
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  gone.swap(cache());
}

std::size_t bf16_pack_cache_entries() {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  return cache().size();
}

void gemm_bf16_packed_cols(index_t M, const float* A, index_t lda, const PackedBf16& B,
                           index_t n_begin, index_t n_end, float beta, float* C, index_t ldc) {
  if (n_begin < 0 || n_end > B.N || n_begin > n_end)
    throw std::invalid_argument("gemm_bf16_packed_cols: column range out of bounds");
  if (M <= 0 || n_begin == n_end) return;
  const bd::Bf16Kernels& ks = kernels(B.isa);
  const index_t mp = round_up(M, ks.m_align);
  bd::bf16* a = reserve(scratch().cols_a, mp * B.kp);
  pack_a(ks.tiled_a, false, M, B.K, A, lda, mp, B.kp, a);
  ks.product({M, B.kp, a, B.bits.data(), n_begin, n_end, C, ldc, 1.0f, beta});
}

void PackedRowsBf16::shape(const PackedBf16& B, index_t M_) {
  if (B.isa == Bf16Isa::portable)
    throw std::logic_error("PackedRowsBf16: the portable path rounds A in its products");
  const bd::Bf16Kernels& ks = kernels(B.isa);
  isa = B.isa;
  K = B.K;
  kp = B.kp;
  M = M_;
  tiled = ks.tiled_a;
  bits.assign(static_cast<std::size_t>(round_up(std::max<index_t>(M, 1), 16) * kp), 0);
}

void PackedRowsBf16::set(index_t r0, index_t r1, index_t k0, index_t k1, const float* A,
                         index_t lda) {
  if (r0 < 0 || r1 > M || k0 < 0 || k1 > K)
    throw std::invalid_argument("PackedRowsBf16::set: range out of bounds");
  const bd::Bf16Convert& cv = convert();
  for (index_t i = r0; i < r1; ++i) {
    const float* src = A + (i - r0) * lda - k0;  // element k of row i at src[k]
    if (!tiled) {
      cv.round(k1 - k0, src + k0, bits.data() + i * kp + k0);
      continue;
    }
    bd::bf16* row = bits.data() + (i / 16) * 16 * kp + (i % 16) * 32;
    for (index_t k = k0; k < k1;) {  // runs inside one tile's 32 columns
      const index_t end = std::min(k1, (k / 32 + 1) * 32);
      cv.round(end - k, src + k, row + (k / 32) * 512 + k % 32);
      k = end;
    }
  }
}

void PackedRowsBf16::clear(index_t r0, index_t r1) {
  if (r0 < 0 || r1 > round_up(std::max<index_t>(M, 1), 16))
    throw std::invalid_argument("PackedRowsBf16::clear: range out of bounds");
  for (index_t i = r0; i < r1; ++i) {
    if (!tiled) {
      std::fill_n(bits.data() + i * kp, kp, bd::bf16(0));
      continue;
    }
    bd::bf16* row = bits.data() + (i / 16) * 16 * kp + (i % 16) * 32;
    for (index_t kb = 0; kb < kp; kb += 32) std::fill_n(row + kb * 16, 32, bd::bf16(0));
  }
}

void gemm_bf16_prepacked_cols(index_t M, const PackedRowsBf16& A, const PackedBf16& B,
                              index_t n_begin, index_t n_end, float beta, float* C, index_t ldc,
                              bool descending) {
  if (n_begin < 0 || n_end > B.N || n_begin > n_end)
    throw std::invalid_argument("gemm_bf16_prepacked_cols: column range out of bounds");
  if (A.isa != B.isa || A.kp != B.kp || A.K != B.K || M > A.M)
    throw std::invalid_argument("gemm_bf16_prepacked_cols: A was not packed against B");
  if (M <= 0 || n_begin == n_end) return;
  kernels(B.isa).product({M, B.kp, A.bits.data(), B.bits.data(), n_begin, n_end, C, ldc, 1.0f,
                          beta, descending});
}

namespace {

// Rows of A per block of a threaded product: a block of bfloat16 rows stays in L2 while every
// panel of the thread's columns passes: 512 KiB, or 1 MiB for op(A) = A^T (the weight
// gradients' deep products, A packed beforehand): B, read once per block, is then read half as
// often (the recurrent backward at T=50, B=64, I=H=512: 3-7% faster than with 512 KiB, 1.5
// MiB no better).
index_t row_block(index_t kp, bool trans_a) {
  const index_t bytes = trans_a ? index_t(1) << 20 : index_t(1) << 19;
  return std::max<index_t>(32, bytes / (kp * 2) / 32 * 32);
}

// Fewest multiply-adds worth a thread.
constexpr double kMinWork = 256.0 * 1024;

// Where the rows of op(A) [M, K] of a threaded product come from (float32, rounded by the
// products' threads).
struct RowsOfA {
  bool trans;  // op(A) = A^T: element (i, k) at A[k * lda + i]
  const float* A;
  index_t lda, K;
};

// C = alpha * op(A) (rounded to bfloat16) * B + beta * C, over the thread pool: items of (row
// block, group of column panels), as many row blocks as the L2 size asks rounded up to a
// multiple of the threads, of equal numbers of 32-row units (parallel_for's chunks are static:
// 7 blocks on 2 threads left one thread 4 to do against 3). With one group, each item's thread
// packs its rows of A into its own scratch just before multiplying them, so the bfloat16 copy
// of A stays in that core's L2 instead of making a round trip to memory (the backward's gate
// gradients: 26 MB of float32, 13 MB as bfloat16, at T=50, B=64, H=512). With several groups
// (few row blocks, columns split between threads), or op(A) = A^T (an item's 32-64 rows of
// op(A) are 128-256 bytes of every row of A: a strided read across all of A per item), A is
// packed once, on the pool, first. Columns [nb, ne) of C (C points at column 0); sums
// (op(A) = A^T only, or null): the unrounded sums of op(A)'s rows, taken as A is packed
// (pack_rows_trans).
void threaded_product(const bd::Bf16Kernels& ks, index_t M, const RowsOfA& src,
                      const PackedBf16& B, index_t nb, index_t ne, float alpha, float beta,
                      float* C, index_t ldc, float* sums = nullptr) {
  const index_t first = nb / bd::kNr, panels = (ne + bd::kNr - 1) / bd::kNr - first;
  const index_t kp = B.kp;
  const index_t mb = row_block(kp, src.trans);
  const double work = static_cast<double>(M) * (ne - nb) * kp;
  const index_t threads = std::max<index_t>(
      1, std::min<index_t>(get_num_threads(), static_cast<index_t>(work / kMinWork)));
  const index_t units = (M + 31) / 32;
  index_t row_blocks = (M + mb - 1) / mb;
  if (row_blocks >= threads) row_blocks = std::min(units, round_up(row_blocks, threads));
  // Groups of panels sized so every thread gets work when there are few row blocks.
  const index_t groups = std::min(panels, std::max<index_t>(1, (threads + row_blocks - 1) / row_blocks));
  const index_t items = row_blocks * groups;
  const bd::bf16* shared = nullptr;
  if (sums && !src.trans) throw std::logic_error("threaded_product: row sums need A^T");
  if (groups > 1 || src.trans) {
    const index_t mp = round_up(M, ks.m_align);
    bd::bf16* a = reserve(scratch().a, mp * kp);
    pack_a_threaded(ks.tiled_a, src.trans, M, src.K, src.A, src.lda, mp, kp, a, sums);
    shared = a;
  }
  auto run = [&](index_t i0, index_t i1) {
    for (index_t it = i0; it < i1; ++it) {
      const index_t r = it / groups, g = it % groups;
      const index_t m0 = std::min(M, units * r / row_blocks * 32);
      const index_t m = std::min(M, units * (r + 1) / row_blocks * 32) - m0;
      if (m <= 0) continue;
      const bd::bf16* rows = shared ? shared + m0 * kp : nullptr;
      if (!shared) {
        const index_t mp = round_up(m, ks.m_align);
        bd::bf16* a = reserve(scratch().a, mp * kp);
        pack_a(ks.tiled_a, src.trans, m, src.K, src.trans ? src.A + m0 : src.A + m0 * src.lda,
               src.lda, mp, kp, a);
        rows = a;
      }
      const index_t n0 = std::max(nb, (first + panels * g / groups) * bd::kNr);
      const index_t n1 = std::min(ne, (first + panels * (g + 1) / groups) * bd::kNr);
      if (n0 < n1)
        ks.product({m, kp, rows, B.bits.data(), n0, n1, C + m0 * ldc, ldc, alpha, beta});
    }
  };
  if (threads <= 1 || items == 1 || in_parallel_region())
    run(0, items);
  else
    parallel_for(items, 1, run);
}

}  // namespace

void gemm_bf16_packed(index_t M, const float* A, index_t lda, const PackedBf16& B, float beta,
                      float* C, index_t ldc) {
  if (M <= 0 || B.N <= 0) return;
  threaded_product(kernels(B.isa), M, {false, A, lda, B.K}, B, 0, B.N, 1.0f, beta, C, ldc);
}

void gemm_bf16_trans_packed(index_t M, const float* A, index_t lda, const PackedBf16& B,
                            index_t n_begin, index_t n_end, float beta, float* C, index_t ldc,
                            float* sums) {
  if (n_begin < 0 || n_end > B.N || n_begin > n_end)
    throw std::invalid_argument("gemm_bf16_trans_packed: column range out of bounds");
  if (M <= 0) return;
  if (n_begin == n_end) {  // no product: only the sums
    if (sums) {
      std::fill_n(sums, M, 0.0f);
      for (index_t k = 0; k < B.K; ++k)
        for (index_t i = 0; i < M; ++i) sums[i] += A[k * lda + i];
    }
    return;
  }
  threaded_product(kernels(B.isa), M, {true, A, lda, B.K}, B, n_begin, n_end, 1.0f, beta,
                   C - n_begin, ldc, sums);
}

void gemm_bf16(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
               const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
               index_t ldc) {
  if (M <= 0 || N <= 0) return;
  const Bf16Isa isa = active_bf16_isa();
  if (isa == Bf16Isa::portable || K <= 0) {
    // op(A) and op(B) rounded, in their own layouts, through the float32 GEMM.
    const index_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    const index_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    Buffer<float> ra(std::max<index_t>(1, a_rows * a_cols)), rb(std::max<index_t>(1, b_rows * b_cols));
    parallel_for(a_rows, 64, [&](index_t r0, index_t r1) {
      for (index_t r = r0; r < r1; ++r) round_to_bf16(a_cols, A + r * lda, ra.data() + r * a_cols);
    });
    parallel_for(b_rows, 64, [&](index_t r0, index_t r1) {
      for (index_t r = r0; r < r1; ++r) round_to_bf16(b_cols, B + r * ldb, rb.data() + r * b_cols);
    });
    gemm<float>(trans_a, trans_b, M, N, K, alpha, ra.data(), a_cols, rb.data(), b_cols, beta, C,
                ldc);
    return;
  }
  PackedBf16& packed = scratch().b;
  packed.pack(isa, trans_b, K, N, B, ldb);
  threaded_product(kernels(isa), M, {trans_a, A, lda, K}, packed, 0, N, alpha, beta, C, ldc);
}

}  // namespace rnnfast
