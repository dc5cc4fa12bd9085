// Recurrent dropout (Keras' recurrent_dropout) in the recurrent drivers: gate k's recurrent
// product takes h_{t-1} * m_k instead of h_{t-1}, one mask per gate and sequence
// (RecurrentWeights::recurrent_mask [G, B, width], the same at every step). Forward: the loops
// keep G masked copies of the state and run one product per gate (each gate's columns of the
// packed W_hh^T are a contiguous range). Backward: dh_{t-1} += sum_k (dgates_k W_hh_k) * m_k,
// one product per gate with W_hh_k packed alone, and dW_hh_k = (h_{t-1} * m_k)^T dgates_k.
#pragma once
#include <algorithm>
#include <cstring>

#include "rnnfast/buffer.h"
#include "rnnfast/gemm.h"
#include "rnnfast/recurrent.h"
#include "rnnfast/scratch_cache.h"
#include "rnnfast/threads.h"

namespace rnnfast::detail {

template <typename T>
struct RecurrentDropout {
  const T* mask = nullptr;  // [G, B, width], null: none
  index_t G = 0, B = 0, width = 0;

  static RecurrentDropout of(const RecurrentWeights<T>& w, index_t G, const SeqShape& s) {
    return {w.recurrent_mask, G, s.B, s.state_size()};
  }

  // m_k of sequence b from unit j0.
  const T* at(index_t k, index_t b, index_t j0 = 0) const {
    return mask + (k * B + b) * width + j0;
  }

  // out[k * gate_stride + u] = h[u] * m_k[b, j0 + u] for u < n and every gate k.
  void apply(index_t b, index_t j0, index_t n, const T* h, T* out, index_t gate_stride) const {
    for (index_t k = 0; k < G; ++k) {
      const T* m = at(k, b, j0);
      T* o = out + k * gate_stride;
      for (index_t u = 0; u < n; ++u) o[u] = h[u] * m[u];
    }
  }

  // The masked copies [G, B, width] of a whole state h [B, width].
  void apply_all(const T* h, T* out) const {
    for (index_t b = 0; b < B; ++b) apply(b, 0, width, h + b * width, out + b * width, B * width);
  }

  // acc[u] += v[u] * m_k[b, j0 + u] for u < n.
  void add(index_t k, index_t b, index_t j0, index_t n, const T* v, T* acc) const {
    const T* m = at(k, b, j0);
    for (index_t u = 0; u < n; ++u) acc[u] += v[u] * m[u];
  }

  // dh [M, width] (rows b0.., columns [c0, c1)) += sum_k (dg_k whh[k]) * m_k, dg_k the columns
  // [k * H, k * H + H) of dg [M, ldg] (the staged gate gradients), whh[k] = W_hh_k [H, width]
  // packed; tmp [B, width] scratch of which only rows b0.. and columns [c0, c1) are touched.
  // Serial in the calling thread (a caller splits columns or sequences between threads).
  void add_products_cols(index_t b0, index_t M, const T* dg, index_t ldg, index_t H,
                         const PackedB<T>* whh, index_t c0, index_t c1, T* tmp, T* dh) const {
    if (c0 >= c1) return;
    for (index_t k = 0; k < G; ++k) {
      gemm_packed_cols<T>(M, dg + k * H, ldg, whh[k], c0, c1, T(0), tmp + b0 * width, width);
      for (index_t b = b0; b < b0 + M; ++b)
        add(k, b, c0, c1 - c0, tmp + b * width + c0, dh + b * width + c0);
    }
  }

  // The same over the whole batch and every column for the first `gates` gates, the products
  // threaded.
  void add_products(index_t gates, const T* dg, index_t ldg, index_t H, const PackedB<T>* whh,
                    T* tmp, T* dh) const {
    for (index_t k = 0; k < gates; ++k) {
      gemm_packed<T>(B, dg + k * H, ldg, whh[k], T(0), tmp, width);
      for (index_t b = 0; b < B; ++b) add(k, b, 0, width, tmp + b * width, dh + b * width);
    }
  }

  // Whether weight_grads_by_sequence pays for a product of M rows and ld columns: the
  // sequences are long enough that a product of depth T per sequence runs near the GEMM's rate,
  // and the result [M, ld] is small enough that it and a sequence's product stay in L2 while
  // the sequences are summed (LSTM in float32: 147 KiB at H = 64, 557 KiB at H = 128; at
  // H = 128 backward / plain 1.16-1.21 with the per-gate GEMMs, 1.12-1.14 by sequence).
  static bool weight_grads_by_sequence_pay(const SeqShape& s, index_t M, index_t ld) {
    return s.T >= kMinStepsBySequence &&
           M * ld * static_cast<index_t>(sizeof(T)) <= kMaxBytesBySequence;
  }
  static constexpr index_t kMinStepsBySequence = 16;
  static constexpr index_t kMaxBytesBySequence = index_t(1) << 20;

  // The weight gradients of the gates whose gradients dg [rows, ldg] (gate k at columns
  // [k * H, k * H + H)) multiply both the inputs and the masked state, in one product per
  // sequence instead of one per gate over every row: dw [M, ld] (columns [0, n)) = sum over
  // sequences b, in order, of dg_b^T xh_b, xh_b the rows [x | 1 | h_prev] of sequence b
  // (x [rows, I], the ones column if one, h_prev [rows, width]; n = I + one + width), dg_b its
  // valid rows, with the state columns of the rows of gate k scaled by m_k[b] (the mask is the
  // same at every step of a sequence). The same operations as the plain cell's single product
  // (A and B packed once, no masked copy of h_prev), plus a pass over [M, n] per sequence.
  // [x | 1 | h_prev] is built a block of sequences at a time (at most kBlockBytes, each
  // sequence's rows contiguous) and multiplied while it is in L2: never whole (1.8 MB at
  // T=100, B=32, I=H=64). xh: its scratch; tmp: [M, ld] scratch.
  void weight_grads_by_sequence(const SeqShape& s, index_t M, index_t n, index_t H, const T* dg,
                                index_t ldg, const T* x, index_t I, bool one, const T* hprev,
                                index_t ld, Buffer<T>& xh_scratch, T* tmp, T* dw,
                                Precision prec) const {
    const index_t stride = s.batch_first ? 1 : s.B;  // rows from step t to t + 1
    const index_t c_h = I + (one ? 1 : 0);           // the first state column
    const index_t per_sequence = s.T * ld;
    const index_t nb = std::clamp<index_t>(
        kBlockBytes / (per_sequence * static_cast<index_t>(sizeof(T))), 1, B);
    T* xh = detail::fit(xh_scratch, nb * per_sequence);
    std::fill_n(dw, M * ld, T(0));
    for (index_t b0 = 0; b0 < B; b0 += nb) {
      const index_t b1 = std::min(B, b0 + nb);
      // step t of sequence b at row ((b - b0) * T + t) of the block
      parallel_for((b1 - b0) * s.T, 64, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) {
          const index_t b = b0 + i / s.T, t = i % s.T;
          if (t >= s.length(b)) continue;
          const index_t r = s.row(t, b);
          T* dst = xh + i * ld;
          std::memcpy(dst, x + r * I, sizeof(T) * I);
          if (one) dst[I] = T(1);
          std::memcpy(dst + c_h, hprev + r * width, sizeof(T) * width);
        }
      });
      for (index_t b = b0; b < b1; ++b) {
        const index_t len = s.length(b), r0 = s.row(0, b);
        if (len == 0) continue;
        gemm<T>(true, false, M, n, len, T(1), dg + r0 * ldg, stride * ldg,
                xh + (b - b0) * per_sequence, ld, T(0), tmp, ld, prec);
        for (index_t i = 0; i < M; ++i) {
          const T* p = tmp + i * ld;
          T* d = dw + i * ld;
          const T* m = at(i / H, b);
          for (index_t j = 0; j < c_h; ++j) d[j] += p[j];
          for (index_t j = 0; j < n - c_h; ++j) d[c_h + j] += p[c_h + j] * m[j];
        }
      }
    }
  }
  static constexpr index_t kBlockBytes = index_t(512) << 10;

  // rows [T*B rows, width] of the state every step started from (s's layout) times m_k of
  // their sequence, into out (same layout).
  void masked_rows(const SeqShape& s, index_t k, const T* rows, T* out) const {
    parallel_for(s.B, 16, [&](index_t b0, index_t b1) {
      for (index_t b = b0; b < b1; ++b) {
        const T* m = at(k, b);
        for (index_t t = 0; t < s.T; ++t) {
          const index_t r = s.row(t, b);
          for (index_t j = 0; j < width; ++j) out[r * width + j] = rows[r * width + j] * m[j];
        }
      }
    });
  }
};

// The first G gates of W_hh [gates*H, K] packed one gate at a time, for products whose A
// differs by gate (K: the features of h). forward: gate k holds op(B) = W_hh_k^T [K, H];
// backward: W_hh_k [H, K].
template <typename T>
struct GatePackedWeights {
  PackedB<T> gate[4];

  void pack(bool forward, index_t G, index_t H, index_t K, const T* w_hh, Precision prec) {
    for (index_t k = 0; k < G; ++k) {
      if (forward)
        gate[k].pack(true, K, H, w_hh + k * H * K, K, prec);
      else
        gate[k].pack(false, H, K, w_hh + k * H * K, K, prec);
    }
  }
};

// dW_hh [G*H, K] with recurrent dropout: rows of gate k = dg_k^T (hprev * m_k), dg [rows, ldg]
// whose gate k is at columns [k * H + first, ...) for the gates [g0, g1) asked (one GEMM per
// gate over every row; hprev [rows, K] in s's layout).
template <typename T>
void masked_recurrent_weight_grads(const SeqShape& s, const RecurrentDropout<T>& drop, index_t g0,
                                   index_t g1, index_t H, const T* dg, index_t ldg,
                                   index_t first_gate_column, const T* hprev, T* dw_hh,
                                   Precision prec) {
  const index_t K = drop.width, rows = s.rows();
  Buffer<T> hm(rows * K);
  for (index_t k = g0; k < g1; ++k) {
    drop.masked_rows(s, k, hprev, hm.data());
    gemm<T>(true, false, H, K, rows, T(1), dg + first_gate_column + (k - g0) * H, ldg, hm.data(),
            K, T(0), dw_hh + k * H * K, K, prec);
  }
}

}  // namespace rnnfast::detail
