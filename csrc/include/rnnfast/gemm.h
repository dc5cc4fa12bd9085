// General matrix multiply, row-major, float and double, on the package's thread pool.
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//   op(A)[m,k] = trans_a ? A[k*lda + m] : A[m*lda + k]
//   op(B)[k,n] = trans_b ? B[n*ldb + k] : B[k*ldb + n]
//
// beta == 0 means C is only written (it may hold NaN/garbage before). K == 0 scales C by beta.
// Work is split over M and N only, never over K: every C[m,n] is computed with the same
// arithmetic whatever the thread count, so results are bitwise reproducible.
#pragma once
#include "rnnfast/buffer.h"
#include "rnnfast/common.h"

namespace rnnfast {

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// op(B) packed once into the micro-kernel's panel layout and reused for many products with
// different A (the recurrent weights of a layer, used at every time step).
template <typename T>
class PackedB {
 public:
  // Packs op(B) [K,N] (same convention as gemm). Replaces any previous content.
  void pack(bool trans_b, index_t K, index_t N, const T* B, index_t ldb);
  index_t rows() const { return K_; }  // K
  index_t cols() const { return N_; }  // N

  // Layout details belong to the implementation (csrc/kernels/gemm*.cc).
  Buffer<T> data;
  index_t K_ = 0, N_ = 0;
  index_t ld_ = 0;  // implementation-defined stride
};

// C[M,N] = A[M,K] (row-major, lda) * packed + beta * C. Same guarantees as gemm.
template <typename T>
void gemm_packed(index_t M, const T* A, index_t lda, const PackedB<T>& B, T beta, T* C,
                 index_t ldc);

}  // namespace rnnfast
