// bfloat16 products: float32 operands rounded to bfloat16, float32 accumulation, float32 out.
//
// Rounding: round to nearest, ties to even (PyTorch's and oneDNN's float -> bfloat16); a NaN
// stays a (quiet) NaN; infinities and values past the largest bfloat16 round to infinity.
// Every path rounds with this same function, so the operands every path multiplies are
// bitwise the same; the paths differ only in the order of the float32 sums (and the hardware
// paths flush subnormal products and sums to zero, as the instructions do).
//
// Paths (Bf16Isa), chosen at run time:
//   portable    : the operands rounded to bfloat16 values held in float, multiplied by the
//                 float32 GEMM of the active instruction set (a product of two bfloat16 values
//                 is exact in float32, so this is exactly "bfloat16 products, float32 sums").
//                 Correct on any CPU; about the speed of float32.
//   avx512_bf16 : vdpbf16ps (AVX512-BF16: Intel Cooper Lake and later, AMD Zen 4 and later).
//   amx         : tdpbf16ps tiles (Intel AMX: Sapphire Rapids and later), once Linux grants the
//                 process the tile state (arch_prctl(ARCH_REQ_XCOMP_PERM)); refused -> not
//                 supported, and the best other path is used.
// The hardware paths need the AVX-512 float32 kernels too: when the active float32 instruction
// set (cpu.h) is not avx512, bfloat16 products take the portable path.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "rnnfast/common.h"

namespace rnnfast {

// How an op computes its products.
enum class Precision { float32 = 0, bfloat16 = 1 };

// Parses "float32" | "bfloat16"; throws std::invalid_argument otherwise.
Precision precision_from_name(const std::string& name);
const char* precision_name(Precision p);

enum class Bf16Isa { portable = 0, avx512_bf16 = 1, amx = 2 };

const char* bf16_isa_name(Bf16Isa isa);
// Parses "portable" | "avx512_bf16" | "amx"; throws std::invalid_argument otherwise.
Bf16Isa bf16_isa_from_name(const std::string& name);
// Every path this CPU, operating system and build support, best last (always has portable).
// The first call asks Linux for the AMX tile state when the CPU has AMX.
std::vector<Bf16Isa> supported_bf16_isas();
// The path bfloat16 products take now: the one set (default: the best supported), or portable
// while the active float32 instruction set is not avx512.
Bf16Isa active_bf16_isa();
// Chooses a path; throws std::invalid_argument if this CPU or build lacks it.
void set_bf16_isa(Bf16Isa isa);

// The bfloat16 nearest to x (ties to even), as its 16 bits / as a float.
inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
inline float bf16_round(float x) {
  const std::uint32_t u = static_cast<std::uint32_t>(bf16_bits(x)) << 16;
  float r;
  __builtin_memcpy(&r, &u, 4);
  return r;
}

// dst[i] = bf16_round(src[i]) (dst may be src).
void round_to_bf16(index_t n, const float* src, float* dst);

// C[M,N] = alpha * op(A) op(B) + beta * C with op(A) and op(B) rounded to bfloat16 (gemm.h's
// conventions: row-major, trans flags, beta == 0 only writes C). Results do not depend on the
// thread count.
void gemm_bf16(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
               const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
               index_t ldc);

// The allocator of packed bfloat16 operands: 64-byte aligned (a row of an AMX tile is one cache
// line; at an offset of 16 bytes every row spans two, and the products ran at half speed), and
// elements left uninitialised by resize (the packing writes every one).
template <typename T>
struct Bf16Allocator {
  using value_type = T;
  Bf16Allocator() = default;
  template <typename U>
  Bf16Allocator(const Bf16Allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <typename U>
  void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) { ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...); }
  template <typename U>
  bool operator==(const Bf16Allocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const Bf16Allocator<U>&) const noexcept { return false; }
};

// op(B) [K,N] rounded to bfloat16 once, in the tile layout of the hardware paths, for many
// products (gemm.h's PackedB holds one when packed with Precision::bfloat16 on a hardware path).
struct PackedBf16 {
  // Packs op(B) for `isa` (avx512_bf16 or amx).
  void pack(Bf16Isa isa, bool trans_b, index_t K, index_t N, const float* B, index_t ldb);
  // The same for op(B) = W^T with its columns gathered from rows of W: column n is row rows[n]
  // of W (K values at W + rows[n] * ldw), or zeros where rows[n] < 0 (the gate-blocked column
  // orders of the recurrent weights, packed without a gathered copy of W). Each panel's
  // columns must be consecutive rows of W followed by zeros (gathers_in_place; else throws
  // std::logic_error).
  void pack_gathered(Bf16Isa isa, index_t K, index_t N, const float* W, index_t ldw,
                     const index_t* rows);
  static bool gathers_in_place(index_t N, const index_t* rows);
  // op(B) = [B0 | 0 | B1] (K rows; B0 [K, N0] at ld0, B1 [K, N1] at ld1, both row-major):
  // B1's column j is column pair_offset(N0) + j, the first of a panel, the columns between are
  // zeros (N = pair_offset(N0) + N1). The weight-gradient products of the recurrent backward
  // multiply [x | h_prev]: packed from x and h_prev where they lie, with no copy of them side
  // by side first.
  void pack_pair(Bf16Isa isa, index_t K, index_t N0, const float* B0, index_t ld0, index_t N1,
                 const float* B1, index_t ld1);
  // The same [B0 | 0 | B1] with row k of B0 at rows0[k] and of B1 at rows1[k] (k < K): the
  // rows of [x | h_prev] of a block of steps and sequences (the recurrent backward's weight
  // gradients inside its reverse loop), packed from where they lie.
  void pack_pair_rows(Bf16Isa isa, index_t K, index_t N0, const float* const* rows0, index_t N1,
                      const float* const* rows1);
  static index_t pair_offset(index_t N0);
  // Records isa, K, N and kp and sizes bits for them: the number of panels the packing fills,
  // 0 when K or N is 0 (bits then all zeros).
  index_t shape(Bf16Isa isa, index_t K, index_t N);
  // Layout (csrc/kernels/gemm_bf16.cc): panels of 32 columns, K padded with zeros to kp (a
  // multiple of 32); panel j at bits + j * kp * 32. A panel is kp / 32 depth steps of 1024
  // values; a depth step is two AMX tiles of 512 (columns 0-15, then 16-31), each 16 pair rows
  // of 16 columns: element (k, col) at [(k / 32) * 1024 + (col / 16) * 512 + (k % 32 / 2) * 32
  // + (col % 16) * 2 + k % 2] (pairs of k side by side: the VNNI layout of vdpbf16ps and
  // tdpbf16ps; each tile's 1 KiB contiguous). Columns past N are zero.
  std::vector<std::uint16_t, Bf16Allocator<std::uint16_t>> bits;
  index_t K = 0, N = 0, kp = 0;
  Bf16Isa isa = Bf16Isa::portable;
};

// Packed weights kept across calls. A forward with precision bfloat16 packs W_ih^T and W_hh^T
// at every call (LSTM inference at T=50, B=64, I=H=512: 5-8% of the call); a caller whose
// weights stay the same from call to call names their current values with a token, and the
// packing is then kept and shared by every later call with the same token, source address,
// layout (ldb, K, N, trans_b, the gathered rows) and path.
//
// The token is the caller's promise: the same token with the same address means the same
// values. The cache cannot see a write into the weights (reading them to check would cost
// about as much as packing them, the pack being bound by that read): a caller takes a new
// token whenever the values may have changed, and for any other arrays (a freed array's
// address can be another array's). Token 0 never caches. The cache holds at most
// kBf16CacheEntries packings and kBf16CacheBytes bytes, the least recently used evicted first
// (a packing in use stays alive while its user holds it).
constexpr std::size_t kBf16CacheEntries = 16;
constexpr std::size_t kBf16CacheBytes = std::size_t(256) << 20;

// op(B) packed for isa (a hardware path) as PackedBf16::pack (rows null) or pack_gathered
// (rows: N entries); from the cache when token != 0 and it holds that packing, else packed now
// (and kept when token != 0).
std::shared_ptr<const PackedBf16> pack_bf16_cached(std::uint64_t token, Bf16Isa isa,
                                                   bool trans_b, index_t K, index_t N,
                                                   const float* B, index_t ldb,
                                                   const index_t* rows = nullptr);
// Empties the cache (what it holds is freed once no call uses it); the packings it holds.
void clear_bf16_pack_cache();
std::size_t bf16_pack_cache_entries();

// Columns per panel of PackedBf16.
constexpr index_t kBf16PanelWidth = 32;

// Columns [n_begin, n_end) of C[M, N] = A[M,K] (row-major, lda; rounded to bfloat16) * packed
// + beta * C, computed in the calling thread; C points at column 0. Each element gets the same
// value whatever the range.
void gemm_bf16_packed_cols(index_t M, const float* A, index_t lda, const PackedBf16& B,
                           index_t n_begin, index_t n_end, float beta, float* C, index_t ldc);
// All columns, on the thread pool.
void gemm_bf16_packed(index_t M, const float* A, index_t lda, const PackedBf16& B, float beta,
                      float* C, index_t ldc);
// Columns [n_begin, n_end) of C[M, N] = A^T B + beta * C on the thread pool, A [K, M] (row-
// major, lda; rounded to bfloat16) with K = B.K: the weight gradients of the recurrent
// backward (A the gate gradients of every row, B the packed [x | h_prev]). C points at column
// n_begin. sums (or null): sums[i] = the float32 sum over k of A[k * lda + i], unrounded, k in
// increasing order (the bits of a sequential column sum: the bias gradients), taken by the
// pass that rounds A, i < M.
void gemm_bf16_trans_packed(index_t M, const float* A, index_t lda, const PackedBf16& B,
                            index_t n_begin, index_t n_end, float beta, float* C, index_t ldc,
                            float* sums);

// The rows of A [M, K] of gemm_bf16_packed_cols rounded to bfloat16 ahead of the products, in
// the layout the kernels of B's path read: for a left operand that many products share (the
// window of inputs of a recurrent loop, which every thread multiplies by its columns of W_ih^T)
// or that is produced a block of columns at a time (the recurrent state, whose block of units
// the thread that computed it rounds into place for the next step's products): each element is
// rounded once, not once per thread. The products give exactly gemm_bf16_packed_cols' values.
struct PackedRowsBf16 {
  // Sizes for up to M rows against B (its path and depth), every element zero.
  void shape(const PackedBf16& B, index_t M);
  // Rows [r0, r1), columns [k0, k1) (k1 <= K) rounded into place from A: element (i, k) at
  // A[(i - r0) * lda + k - k0]. Disjoint ranges may be set from different threads.
  void set(index_t r0, index_t r1, index_t k0, index_t k1, const float* A, index_t lda);
  // Rows [r0, r1) set to zeros.
  void clear(index_t r0, index_t r1);
  std::vector<std::uint16_t, Bf16Allocator<std::uint16_t>> bits;
  index_t M = 0, K = 0, kp = 0;
  bool tiled = false;  // the kernel's tiles of 16 rows (gemm_bf16_kernels.h), else rows of kp
  Bf16Isa isa = Bf16Isa::portable;
};

// Columns [n_begin, n_end) of C[M, N] = A (its rows [0, M), packed) * B + beta * C in the
// calling thread, as gemm_bf16_packed_cols; A was shaped against B (same path and depth).
// descending: B's panels taken from the last to the first, the same values. A loop that
// multiplies by the same B at every step and alternates the order reads first, at each step,
// the panels that the step before read last: those still in the core's L2 when B does not fit
// there (taken in the same order at every step, least-recently-used eviction would leave none).
void gemm_bf16_prepacked_cols(index_t M, const PackedRowsBf16& A, const PackedBf16& B,
                              index_t n_begin, index_t n_end, float beta, float* C, index_t ldc,
                              bool descending = false);

}  // namespace rnnfast
