// Plain GEMM: correct and portable, not fast. The packed micro-kernel GEMM replaces it.
#include "rnnfast/gemm.h"

#include "rnnfast/threads.h"

namespace rnnfast {

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  parallel_for(M, 1, [&](index_t m0, index_t m1) {
    for (index_t m = m0; m < m1; ++m) {
      T* c = C + m * ldc;
      for (index_t n = 0; n < N; ++n) c[n] = beta == T(0) ? T(0) : beta * c[n];
      for (index_t k = 0; k < K; ++k) {
        const T a = alpha * (trans_a ? A[k * lda + m] : A[m * lda + k]);
        if (trans_b) {
          for (index_t n = 0; n < N; ++n) c[n] += a * B[n * ldb + k];
        } else {
          const T* b = B + k * ldb;
          for (index_t n = 0; n < N; ++n) c[n] += a * b[n];
        }
      }
    }
  });
}

template <typename T>
void PackedB<T>::pack(bool trans_b, index_t K, index_t N, const T* B, index_t ldb) {
  K_ = K;
  N_ = N;
  ld_ = N;
  data.resize(K * N);
  for (index_t k = 0; k < K; ++k)
    for (index_t n = 0; n < N; ++n) data[k * N + n] = trans_b ? B[n * ldb + k] : B[k * ldb + n];
}

template <typename T>
void gemm_packed(index_t M, const T* A, index_t lda, const PackedB<T>& B, T beta, T* C,
                 index_t ldc) {
  gemm<T>(false, false, M, B.cols(), B.rows(), T(1), A, lda, B.data.data(), B.ld_, beta, C, ldc);
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t);
template class PackedB<float>;
template class PackedB<double>;
template void gemm_packed<float>(index_t, const float*, index_t, const PackedB<float>&, float,
                                 float*, index_t);
template void gemm_packed<double>(index_t, const double*, index_t, const PackedB<double>&, double,
                                  double*, index_t);

}  // namespace rnnfast
