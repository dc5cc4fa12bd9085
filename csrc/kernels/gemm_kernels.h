// The contract between the portable GEMM driver (gemm.cc) and the micro-kernels of each
// instruction set (gemm_generic.cc, gemm_avx2.cc, gemm_avx512.cc).
//
// Included by the instruction-set translation units, so it holds only plain structs (no code,
// no std templates): inline code from a shared header compiled with AVX-512 flags could be
// picked by the linker for the whole module.
#pragma once
#include <cstdint>

namespace rnnfast {
namespace gemm_detail {

using idx = std::int64_t;

// How a block product gets the rows of A.
enum class ARead : std::uint8_t {
  in_place,  // read where they are (a_cs == 1: rows of A, or a_rs == 1: columns)
  copy,      // each panel of rows copied to a_buf (capacity MR * kc) just before its sweep
  packed,    // packed by the kernel set's pack_a before the block (a_rs, a_cs unused)
};

// One block product:  C[m, n] = alpha * opA[m, kc] * Bblock[kc, n] + beta * C[m, n]
// (beta == 0: C is only written).
//  - The m rows run as the fewest panels of at most MR rows, of near-equal size: panel p holds
//    rows [m * p / P, m * (p + 1) / P) of the P = ceil(m / MR) panels (rows of A read in place
//    whose stride is a multiple of 4 KiB: at most MR / 2 rows, against two B panels per tile).
//  - opA element (i, k) is a[i * a_rs + k * a_cs] (ARead::in_place, ARead::copy). A copied or
//    packed panel of R rows holds element (i, k) of the panel at [k * R + i]; packed, the panel
//    that starts at row i0 is at a + i0 * kc.
//  - B is packed: panel j (NR columns) at b + j * b_ps, element (k, col) at [k * b_ks + col]
//    with b_ks == NR, the columns of the last panel past n zero; or B is read in place (b_ks >
//    NR: rows of op(B) b_ks apart, b_ps == NR), the last panel's columns past n never read.
// Every C element is computed as one chain of fused multiply-adds over k in increasing order,
// then alpha * sum (+ beta * C), whatever its position in a tile: results do not depend on how
// the driver splits C between threads.
template <typename T>
struct BlockArgs {
  idx m, n, kc;
  const T* a;
  idx a_rs, a_cs;
  ARead a_read;
  T* a_buf;
  const T* b;
  idx b_ps, b_ks;
  T* c;
  idx ldc;
  T alpha, beta;
};

// The micro-kernel of one instruction set and dtype, with its blocking parameters.
template <typename T>
struct KernelSet {
  int mr, nr;    // register tile: rows of A, columns of B
  int kc;        // depth of a block (A panel mr x kc stays in L1)
  int kc_deep;   // deepest block: a K of up to 2 * kc_deep runs as at most two blocks (rows of A)
  int nc;        // widest B block; a multiple of nr
  long b_block;  // elements of a B block that stay in L2: a block of depth d spans
                 // min(nc, b_block / d) columns (rounded down to panels), so that shallow
                 // products keep wide blocks and deep ones keep C in registers longer
  void (*block)(const BlockArgs<T>&);
  // Packs rows [0, m) and columns [0, kc) of opA (element (i, k) at a[i * rs + k * cs]) into
  // the panels of a block of m rows (ARead::packed), at dst (capacity m * kc).
  void (*pack_a)(idx m, idx kc, const T* a, idx rs, idx cs, T* dst);
  // Packs rows [k0, k0 + kc) and columns [n0, n0 + nc) of op(B) (op(B)[k, n] = trans ?
  // B[n * ldb + k] : B[k * ldb + n]) into panels of nr columns at dst + j * ps, element
  // (k, col) at [k * nr + col], zero past column n0 + nc.
  void (*pack_b)(bool trans, const T* B, idx ldb, idx k0, idx kc, idx n0, idx nc, T* dst, idx ps);
  // C[i, j] = sum over k of a[i * lda + k] * b[j * ldb + k] (rows of A against rows of B, no
  // packing), i < m, j < n: for products too small to pay for packing B.
  void (*dot_rows)(idx m, idx n, idx k, const T* a, idx lda, const T* b, idx ldb, T* c, idx ldc);
  // dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols (beta == 0), else
  // fma(beta, dst[j * ldd + i], src[i * lds + j]) with the micro-kernel's fused multiply-add.
  void (*transpose)(idx rows, idx cols, const T* src, idx lds, T* dst, idx ldd, T beta);
};

extern const KernelSet<float> kGenericF32;
extern const KernelSet<double> kGenericF64;
#ifdef RNNFAST_HAVE_X86_KERNELS
extern const KernelSet<float> kAvx2F32;
extern const KernelSet<double> kAvx2F64;
extern const KernelSet<float> kAvx512F32;
extern const KernelSet<double> kAvx512F64;
#endif

}  // namespace gemm_detail
}  // namespace rnnfast
