// General matrix multiply, row-major, float and double, on the package's thread pool.
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//   op(A)[m,k] = trans_a ? A[k*lda + m] : A[m*lda + k]
//   op(B)[k,n] = trans_b ? B[n*ldb + k] : B[k*ldb + n]
//
// beta == 0 means C is only written (it may hold NaN/garbage before). K == 0 scales C by beta.
// Work is split over M and N only, never over K: every C[m,n] is computed with the same
// arithmetic whatever the thread count, so results are bitwise reproducible.
//
// Implementation (csrc/kernels/gemm*.cc): a BLIS-style driver (cache blocks of depth kc and
// width nc, B packed into panels of nr columns (or, not transposed, read in place when at most
// eight panels of rows of A use it), A read in place (few rows, or a C of at most four column
// panels, eight for a transposed A of one depth block), copied per panel of mr rows, or packed a
// depth block at a time (transposed A; or
// rows of A that fit 512 KiB when a thread's columns span several B blocks, so that they are
// not copied again for each))
// around one register-blocked micro-kernel per instruction set, chosen by active_isa() at call
// time. A B^T with at most four column panels of rows of A runs as C^T = B A^T into a scratch
// transposed into C when that moves fewer elements (same bits: the same chain per element). Results differ between instruction sets (different tiles and FMA use), never between
// thread counts or runs.
//
// Precision::bfloat16 (float only; double throws std::invalid_argument): the operands are
// rounded to bfloat16 and the products summed in float32, on the active bfloat16 path
// (rnnfast/gemm_bf16.h).
#pragma once
#include "rnnfast/buffer.h"
#include "rnnfast/common.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm_bf16.h"

namespace rnnfast {

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc,
          Precision precision = Precision::float32);

// op(B) packed once into the micro-kernel's panel layout and reused for many products with
// different A (the recurrent weights of a layer, used at every time step).
//
// The layout belongs to the instruction set that was active at pack(): the PackedB records it
// and gemm_packed always uses that instruction set's kernels, so set_active_isa() between pack
// and use is harmless (it takes effect at the next pack). Likewise its precision: packed with
// Precision::bfloat16, every product with it rounds A and B to bfloat16.
template <typename T>
class PackedB {
 public:
  // Packs op(B) [K,N] (same convention as gemm). Replaces any previous content. Large B are
  // packed on the thread pool.
  // bf16: cache_token != 0 on a hardware path takes the packing from pack_bf16_cached
  // (gemm_bf16.h: the caller's token for B's current values), as pack_gathered's.
  void pack(bool trans_b, index_t K, index_t N, const T* B, index_t ldb,
            Precision precision = Precision::float32, std::uint64_t cache_token = 0);
  // Packs op(B) [K,N] whose column n is row src[n] of B: op(B)[k, n] = B[src[n] * ldb + k], or
  // zero where src[n] < 0 (N entries): the panels of pack() of those rows gathered into a
  // matrix and transposed, without that copy (float32 and the bfloat16 hardware paths pack
  // straight from B; the portable bfloat16 path packs a gathered copy). Each panel of
  // packed_panel_width() columns must be consecutive rows of B followed by zero columns (the
  // recurrent weights grouped by blocks of hidden units); std::logic_error otherwise.
  void pack_gathered(index_t K, index_t N, const T* B, index_t ldb, const index_t* src,
                     Precision precision = Precision::float32, std::uint64_t cache_token = 0);
  index_t rows() const { return K_; }  // K
  index_t cols() const { return N_; }  // N
  // Columns per panel. Column ranges of gemm_packed_cols that start at a multiple of it are
  // the cheapest (others cost one extra tile copy).
  index_t panel_width() const { return nr_; }
  Isa isa() const { return isa_; }
  // The packed values, for the GEMM driver: panel j of panel_width() columns holds
  // rows() x panel_width() values at panels() + j * panel_stride(), element (k, col) at
  // [k * panel_width() + col]; the columns of the last panel past cols() are zero.
  const T* panels() const { return data_.data(); }
  index_t panel_stride() const { return ld_; }
  // bfloat16: the precision packed with, and (on a hardware path) the bfloat16 panels.
  Precision precision() const { return precision_; }
  const PackedBf16& bf16() const { return bf16_ ? *bf16_ : empty_bf16_; }

 private:
  // Record a K x N op(B) of the active instruction set: float panels of its width, data_ sized
  // for them (shape_panels), or the bfloat16 hardware panels kept in bf16_, data_ empty
  // (shape_bf16).
  void shape_panels(index_t K, index_t N);
  void shape_bf16(index_t K, index_t N);

  Buffer<T> data_;
  index_t K_ = 0, N_ = 0;
  index_t ld_ = 0;
  index_t nr_ = 0;
  Isa isa_ = Isa::generic;
  // bfloat16: on the portable path data holds the panels of the rounded B (and A is rounded
  // at each product); on a hardware path bf16_ holds B instead (shared with the cache of
  // pack_bf16_cached when packed with a token) and data is empty.
  Precision precision_ = Precision::float32;
  std::shared_ptr<const PackedBf16> bf16_;
  static inline const PackedBf16 empty_bf16_{};
};

// C[M,N] = A[M,K] B[N,K]^T, both row-major, without packing: every element one dot product of
// a row of A and a row of B (serial; the caller splits N between threads). For a handful of
// rows of A, where packing B would cost more than the product (a single time step). Values
// differ from gemm's (another summation order) but never between calls or threads.
template <typename T>
void gemm_rows_nt(index_t M, index_t N, index_t K, const T* A, index_t lda, const T* B,
                  index_t ldb, T* C, index_t ldc, Precision precision = Precision::float32);

// The panel width PackedB::pack uses under the active instruction set (and bfloat16 path):
// callers that split columns between threads (gemm_packed_cols) align their ranges to it.
template <typename T>
index_t packed_panel_width(Precision precision = Precision::float32);

// The depth of the blocks gemm / gemm_packed sum a product of depth K over, on instruction set
// isa, A transposed or not: each C element is one chain of fused multiply-adds per block, added
// to what the blocks before it left. For loops that must give the GEMM's values bit for bit.
template <typename T>
index_t gemm_depth_block(index_t K, bool trans_a, Isa isa);

// C[M,N] = A[M,K] (row-major, lda) * packed + beta * C. Same guarantees as gemm. Small M
// (the batch of a recurrent step) reads A in place: no copy, no allocation after the first
// call of a thread.
template <typename T>
void gemm_packed(index_t M, const T* A, index_t lda, const PackedB<T>& B, T beta, T* C,
                 index_t ldc);

// Columns [n_begin, n_end) of gemm_packed only, computed serially in the calling thread (for
// callers that split the columns between the threads of their own parallel_for). C points at
// column 0 as in gemm_packed. Each element gets exactly the value gemm_packed gives it.
// Requires 0 <= n_begin <= n_end <= B.cols().
template <typename T>
void gemm_packed_cols(index_t M, const T* A, index_t lda, const PackedB<T>& B, index_t n_begin,
                      index_t n_end, T beta, T* C, index_t ldc);

}  // namespace rnnfast
