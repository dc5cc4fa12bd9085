// Conv1D as GEMMs over packed patches (im2col per sequence and time block), with a direct kernel
// when each group has a single input channel (depthwise). The input gradient is itself a
// convolution: dy, zero-stuffed by the stride, correlated with the flipped, transposed kernel.
#include "rnnfast/conv1d.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "conv1d_pooled.h"
#include "conv1d_winograd.h"
#include "gated_rows.h"
#include "rnnfast/buffer.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

index_t floor_div(index_t a, index_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
index_t ceil_div(index_t a, index_t b) { return -floor_div(-a, b); }

// A convolution as the engine runs it. Unlike Conv1dShape, the input may be zero-stuffed
// (logical step q holds input step q / upsample when q % upsample == 0, zero otherwise) and
// pad_left may be negative (the input is cropped): both serve the input gradient.
struct Geometry {
  index_t batch, l_in, c_in, c_out, kernel, stride, dilation, groups, pad_left, l_out, upsample;
  bool channels_last;
  bool relu;  // the forward's epilogue ends with max(., 0)

  index_t c_group() const { return c_in / groups; }
  index_t out_group() const { return c_out / groups; }
  index_t l_logical() const { return (l_in - 1) * upsample + 1; }
  index_t patch() const { return kernel * c_in; }  // one output step's patch, all groups
  // Logical input step that output step t reads through tap k.
  index_t source(index_t t, index_t k) const { return t * stride + k * dilation - pad_left; }
  // The input step at logical step q, or -1 for padding and stuffed zeros.
  index_t input_step(index_t q) const {
    if (q < 0 || q >= l_logical() || q % upsample != 0) return -1;
    return q / upsample;
  }
  // Output steps t in [t0, t0 + nt) whose tap k reads inside the logical input: [t0+lo, t0+hi).
  void inside(index_t k, index_t t0, index_t nt, index_t* lo, index_t* hi) const {
    const index_t a = ceil_div(pad_left - k * dilation, stride) - t0;
    const index_t b = floor_div(l_logical() - 1 + pad_left - k * dilation, stride) - t0 + 1;
    *lo = std::clamp<index_t>(a, 0, nt);
    *hi = std::clamp<index_t>(b, *lo, nt);
  }
};

Geometry geometry_of(const Conv1dShape& s) {
  return {s.batch,  s.length,   s.c_in, s.c_out, s.kernel,        s.stride, s.dilation,
          s.groups, s.pad_left, s.l_out, 1,       s.channels_last, s.relu};
}

// The convolution whose output is dx: input dy, channels swapped, kernel flipped (see
// transpose_weights), stride 1 over dy zero-stuffed by the forward stride.
Geometry input_gradient_geometry(const Geometry& g) {
  Geometry t = g;
  t.l_in = g.l_out;
  t.c_in = g.c_out;
  t.c_out = g.c_in;
  t.stride = 1;
  t.upsample = g.stride;
  t.pad_left = (g.kernel - 1) * g.dilation - g.pad_left;
  t.l_out = g.l_in;
  t.relu = false;
  return t;
}

// Work items: one sequence and `block` consecutive output steps each. Fixed by the shape only.
struct Blocks {
  index_t block = 1, per_seq = 0, items = 0;
};

Blocks time_blocks(const Geometry& g) {
  Blocks bl;
  if (g.batch == 0 || g.l_out == 0) return bl;
  // About 64K patch elements per block: the patches stay in L2 while the GEMM runs over them.
  const index_t rows = (index_t(1) << 16) / std::max<index_t>(g.patch(), 1);
  const index_t block = std::min(std::clamp<index_t>(rows, 32, 1024), g.l_out);
  bl.per_seq = ceil_div(g.l_out, block);
  bl.block = ceil_div(g.l_out, bl.per_seq);
  bl.items = g.batch * bl.per_seq;
  return bl;
}

// Calls fn over [0, n): spread on the pool when there is an item for every thread (in up to
// per_thread chunks each, parallel_for's), else in the caller, whose GEMMs then use the pool
// themselves. Either way each item computes the same.
void run_items(index_t n, const std::function<void(index_t, index_t)>& fn, int per_thread = 1) {
  if (n <= 0) return;
  if (n >= get_num_threads()) {
    parallel_for(n, 1, fn, per_thread);
  } else {
    fn(0, n);
  }
}

// ------------------------------------------------------------------ patches

// Channels-last patches of output steps [t0, t0 + nt) of one sequence xs [l_in, c_in]:
// P[t][grp][k][c] = x[source(t0 + t, k)][grp * c_group + c], zero where that is padding.
template <typename T>
void im2col_cl(const Geometry& g, const T* xs, index_t t0, index_t nt, T* P) {
  const index_t cg = g.c_group(), K = g.kernel;
  for (index_t t = 0; t < nt; ++t) {
    T* row = P + t * g.patch();
    for (index_t k = 0; k < K; ++k) {
      const index_t i = g.input_step(g.source(t0 + t, k));
      for (index_t grp = 0; grp < g.groups; ++grp) {
        T* dst = row + (grp * K + k) * cg;
        if (i < 0) {
          std::fill(dst, dst + cg, T(0));
        } else {
          std::memcpy(dst, xs + i * g.c_in + grp * cg, static_cast<std::size_t>(cg) * sizeof(T));
        }
      }
    }
  }
}

// Channels-last patches without a copy: with one group and contiguous taps (dilation 1 or a single
// tap) the patch of step t is the K * c_in values from its first source step on, rows
// stride * c_in apart. Null when the block touches padding or the input is stuffed.
template <typename T>
const T* direct_rows(const Geometry& g, const T* xs, index_t t0, index_t nt) {
  if (g.groups != 1 || g.upsample != 1 || (g.dilation != 1 && g.kernel != 1)) return nullptr;
  const index_t first = g.source(t0, 0), last = g.source(t0 + nt - 1, g.kernel - 1);
  if (first < 0 || last >= g.l_in) return nullptr;
  return xs + first * g.c_in;
}

// Channels-first patches of output steps [t0, t0 + nt) of one sequence xs [c_in, l_in]:
// P[(c * K + k) * nt + t] = x[c][source(t0 + t, k)] (grouped rows are contiguous per group).
template <typename T>
void im2col_cf(const Geometry& g, const T* xs, index_t t0, index_t nt, T* P) {
  for (index_t c = 0; c < g.c_in; ++c) {
    const T* src = xs + c * g.l_in;
    for (index_t k = 0; k < g.kernel; ++k) {
      T* row = P + (c * g.kernel + k) * nt;
      index_t lo, hi;
      g.inside(k, t0, nt, &lo, &hi);
      std::fill(row, row + lo, T(0));
      std::fill(row + hi, row + nt, T(0));
      if (lo == hi) continue;
      if (g.upsample == 1) {
        const T* s0 = src + g.source(t0 + lo, k);
        if (g.stride == 1) {
          std::copy(s0, s0 + (hi - lo), row + lo);
        } else {
          for (index_t t = lo; t < hi; ++t) row[t] = s0[(t - lo) * g.stride];
        }
      } else {
        for (index_t t = lo; t < hi; ++t) {
          const index_t i = g.input_step(g.source(t0 + t, k));
          row[t] = i < 0 ? T(0) : src[i];
        }
      }
    }
  }
}

// ------------------------------------------------------------------ weights

// Channels-last GEMM weights: W2[grp][k][c][o] = w[grp * out_group + o][c][k]. Calls
// fn(index in W2, index in w) for every weight.
template <typename F>
void for_each_weight_cl(const Geometry& g, F&& fn) {
  const index_t cg = g.c_group(), cog = g.out_group(), K = g.kernel;
  for (index_t grp = 0; grp < g.groups; ++grp)
    for (index_t k = 0; k < K; ++k)
      for (index_t c = 0; c < cg; ++c)
        for (index_t o = 0; o < cog; ++o)
          fn(((grp * K + k) * cg + c) * cog + o, ((grp * cog + o) * cg + c) * K + k);
}

template <typename T>
void pack_weights_cl(const Geometry& g, const T* w, T* W2) {
  for_each_weight_cl(g, [&](index_t i2, index_t i) { W2[i2] = w[i]; });
}

// The inverse of pack_weights_cl.
template <typename T>
void unpack_weights_cl(const Geometry& g, const T* W2, T* w) {
  for_each_weight_cl(g, [&](index_t i2, index_t i) { w[i] = W2[i2]; });
}

// Weights of the input-gradient convolution: wt[grp * c_group + c][o][k] =
// w[grp * out_group + o][c][K - 1 - k], shape (c_in, out_group, K).
template <typename T>
void transpose_weights(const Geometry& g, const T* w, T* wt) {
  const index_t cg = g.c_group(), cog = g.out_group(), K = g.kernel;
  for (index_t grp = 0; grp < g.groups; ++grp)
    for (index_t c = 0; c < cg; ++c)
      for (index_t o = 0; o < cog; ++o)
        for (index_t k = 0; k < K; ++k)
          wt[((grp * cg + c) * cog + o) * K + k] = w[((grp * cog + o) * cg + c) * K + (K - 1 - k)];
}

// ------------------------------------------------------------------ forward

// NumPy's maximum(v, 0): NaN stays NaN, -0 becomes +0.
template <typename T>
inline T relu(T v) {
  return v > T(0) ? v : (v == v ? T(0) : v);
}

// The epilogue of one block of y: ys += bias (null: none), then += the same block of add (y's
// layout; null: none), then the ReLU (g.relu), in one pass while the block is in cache: the
// values of adding each to the whole output and applying the ReLU afterwards. Channels first,
// the block's channel rows are ld values apart (channels last, its rows are c_out apart).
template <typename T>
void finish_block(const Geometry& g, const T* bias, const T* add, index_t b, index_t t0,
                  index_t nt, T* ys, index_t ld) {
  if (!bias && !add && !g.relu) return;
  if (g.channels_last) {
    const T* as = add ? add + (b * g.l_out + t0) * g.c_out : nullptr;
    for (index_t t = 0; t < nt; ++t) {
      T* row = ys + t * g.c_out;
      if (bias)
        for (index_t o = 0; o < g.c_out; ++o) row[o] += bias[o];
      if (as)
        for (index_t o = 0; o < g.c_out; ++o) row[o] += as[t * g.c_out + o];
      if (g.relu)
        for (index_t o = 0; o < g.c_out; ++o) row[o] = relu(row[o]);
    }
  } else {
    const T* as = add ? add + b * g.c_out * g.l_out + t0 : nullptr;
    for (index_t o = 0; o < g.c_out; ++o) {
      T* row = ys + o * ld;
      if (bias)
        for (index_t t = 0; t < nt; ++t) row[t] += bias[o];
      if (as)
        for (index_t t = 0; t < nt; ++t) row[t] += as[o * g.l_out + t];
      if (g.relu)
        for (index_t t = 0; t < nt; ++t) row[t] = relu(row[t]);
    }
  }
}

// The forward, one block (one sequence, consecutive output steps) at a time: GEMMs over packed
// patches, or the direct kernel when each group has a single input channel (depthwise). A
// block's values do not depend on where it starts or how many steps it has (each output is one
// fixed chain of products: gemm.h), so blocks cut differently (conv1d_max_pool1d_forward's)
// give y's values bit for bit.
template <typename T>
class Forward {
 public:
  Forward(const Geometry& g, const T* w) : g_(g), w_(w), direct_(g.c_group() == 1) {
    const index_t cg = g.c_group(), K = g.kernel;
    if (direct_) {
      wd_.resize(K * g.c_out);  // wd[k][o] = w[o][0][k]
      for (index_t o = 0; o < g.c_out; ++o)
        for (index_t k = 0; k < K; ++k) wd_[k * g.c_out + o] = w[o * K + k];
    } else if (g.channels_last) {
      W2_.resize(g.c_out * cg * K);
      pack_weights_cl(g, w, W2_.data());
    }
  }

  // Output steps [t0, t0 + nt) of sequence b of x into ys (channels last: nt rows of c_out
  // values; channels first: c_out rows of nt values, ld apart), then finish_block. P: the
  // caller's scratch for patches (resized here when needed).
  void block(const T* x, const T* bias, const T* add, index_t b, index_t t0, index_t nt, T* ys,
             index_t ld, Buffer<T>& P) const {
    if (direct_) {
      direct(x, b, t0, nt, ys, ld);
    } else {
      products(x, b, t0, nt, ys, ld, P);
    }
    finish_block(g_, bias, add, b, t0, nt, ys, ld);
  }

 private:
  void products(const T* x, index_t b, index_t t0, index_t nt, T* ys, index_t ld,
                Buffer<T>& P) const {
    const Geometry& g = g_;
    const index_t cg = g.c_group(), cog = g.out_group(), K = g.kernel;
    const T* xs = x + b * g.l_in * g.c_in;
    if (g.channels_last) {
      const T* A = direct_rows(g, xs, t0, nt);
      index_t lda = g.stride * g.c_in;
      if (!A) {
        if (P.size() < nt * g.patch()) P.resize(nt * g.patch());
        im2col_cl(g, xs, t0, nt, P.data());
        A = P.data();
        lda = g.patch();
      }
      for (index_t grp = 0; grp < g.groups; ++grp)
        gemm<T>(false, false, nt, cog, K * cg, T(1), A + grp * K * cg, lda,
                W2_.data() + grp * K * cg * cog, cog, T(0), ys + grp * cog, g.c_out);
    } else {
      if (P.size() < nt * g.patch()) P.resize(nt * g.patch());
      im2col_cf(g, xs, t0, nt, P.data());
      for (index_t grp = 0; grp < g.groups; ++grp)
        gemm<T>(false, false, cog, nt, cg * K, T(1), w_ + grp * cog * cg * K, cg * K,
                P.data() + grp * cg * K * nt, nt, T(0), ys + grp * cog * ld, ld);
    }
  }

  // One input channel per group: y[o] reads input channel o / m (m = out_group) only.
  void direct(const T* x, index_t b, index_t t0, index_t nt, T* ys, index_t ld) const {
    const Geometry& g = g_;
    const index_t m = g.out_group(), K = g.kernel;
    const T* xs = x + b * g.l_in * g.c_in;
    if (g.channels_last) {
      for (index_t t = 0; t < nt; ++t) {
        T* yr = ys + t * g.c_out;
        std::fill(yr, yr + g.c_out, T(0));
        for (index_t k = 0; k < K; ++k) {
          const index_t i = g.input_step(g.source(t0 + t, k));
          if (i < 0) continue;
          const T* xr = xs + i * g.c_in;
          const T* wk = wd_.data() + k * g.c_out;
          if (m == 1) {
            for (index_t c = 0; c < g.c_in; ++c) yr[c] += xr[c] * wk[c];
          } else {
            for (index_t c = 0; c < g.c_in; ++c)
              for (index_t j = 0; j < m; ++j) yr[c * m + j] += xr[c] * wk[c * m + j];
          }
        }
      }
    } else {
      for (index_t o = 0; o < g.c_out; ++o) {
        const T* xr = xs + (o / m) * g.l_in;
        T* yr = ys + o * ld;
        std::fill(yr, yr + nt, T(0));
        for (index_t k = 0; k < K; ++k) {
          const T wk = w_[o * K + k];
          index_t lo, hi;
          g.inside(k, t0, nt, &lo, &hi);
          if (lo == hi) continue;
          if (g.upsample == 1) {
            const T* s0 = xr + g.source(t0 + lo, k);
            for (index_t t = lo; t < hi; ++t) yr[t] += s0[(t - lo) * g.stride] * wk;
          } else {
            for (index_t t = lo; t < hi; ++t) {
              const index_t i = g.input_step(g.source(t0 + t, k));
              if (i >= 0) yr[t] += xr[i] * wk;
            }
          }
        }
      }
    }
  }

  const Geometry& g_;
  const T* w_;
  bool direct_;
  Buffer<T> W2_, wd_;
};

template <typename T>
void run_forward(const Geometry& g, const T* x, const T* w, const T* bias, T* y,
                 const T* add = nullptr) {
  const Blocks bl = time_blocks(g);
  const Forward<T> fwd(g, w);
  run_items(bl.items, [&](index_t i0, index_t i1) {
    Buffer<T> P;  // the patches, when the GEMM cannot read them in place
    for (index_t it = i0; it < i1; ++it) {
      const index_t b = it / bl.per_seq, t0 = (it % bl.per_seq) * bl.block;
      const index_t nt = std::min(bl.block, g.l_out - t0);
      T* ys = g.channels_last ? y + (b * g.l_out + t0) * g.c_out : y + b * g.c_out * g.l_out + t0;
      fwd.block(x, bias, add, b, t0, nt, ys, g.l_out, P);
    }
  });
}

// ------------------------------------------------------------------ weight gradient

// The items are cut into a number of contiguous ranges fixed by the shape; each range sums its
// items in order into its own accumulator, and the accumulators are then added in order.
index_t accumulator_count(index_t items, index_t size) {
  const index_t by_memory = std::max<index_t>(1, (index_t(1) << 22) / std::max<index_t>(size, 1));
  return std::max<index_t>(1, std::min({items, index_t(16), by_memory}));
}

// acc += this item's share of dw, in the accumulator layout of weight_grad.
template <typename T>
void weight_grad_gemm_item(const Geometry& g, const T* x, const T* dy, index_t b, index_t t0,
                           index_t nt, T* P, T* acc) {
  const index_t cg = g.c_group(), cog = g.out_group(), K = g.kernel;
  const T* xs = x + b * g.l_in * g.c_in;
  if (g.channels_last) {
    const T* dys = dy + (b * g.l_out + t0) * g.c_out;
    const T* A = direct_rows(g, xs, t0, nt);
    index_t lda = g.stride * g.c_in;
    if (!A) {
      im2col_cl(g, xs, t0, nt, P);
      A = P;
      lda = g.patch();
    }
    for (index_t grp = 0; grp < g.groups; ++grp)
      gemm<T>(true, false, K * cg, cog, nt, T(1), A + grp * K * cg, lda, dys + grp * cog, g.c_out,
              T(1), acc + grp * K * cg * cog, cog);
  } else {
    const T* dys = dy + b * g.c_out * g.l_out + t0;
    im2col_cf(g, xs, t0, nt, P);
    for (index_t grp = 0; grp < g.groups; ++grp)
      gemm<T>(false, true, cog, cg * K, nt, T(1), dys + grp * cog * g.l_out, g.l_out,
              P + grp * cg * K * nt, nt, T(1), acc + grp * cog * cg * K, cg * K);
  }
}

template <typename T>
void weight_grad_direct_item(const Geometry& g, const T* x, const T* dy, index_t b, index_t t0,
                             index_t nt, T* acc) {
  const index_t m = g.out_group(), K = g.kernel;
  const T* xs = x + b * g.l_in * g.c_in;
  if (g.channels_last) {  // acc[k][o]
    const T* dys = dy + (b * g.l_out + t0) * g.c_out;
    for (index_t t = 0; t < nt; ++t) {
      const T* dr = dys + t * g.c_out;
      for (index_t k = 0; k < K; ++k) {
        const index_t i = g.input_step(g.source(t0 + t, k));
        if (i < 0) continue;
        const T* xr = xs + i * g.c_in;
        T* ak = acc + k * g.c_out;
        if (m == 1) {
          for (index_t c = 0; c < g.c_in; ++c) ak[c] += xr[c] * dr[c];
        } else {
          for (index_t c = 0; c < g.c_in; ++c)
            for (index_t j = 0; j < m; ++j) ak[c * m + j] += xr[c] * dr[c * m + j];
        }
      }
    }
  } else {  // acc[o][k], the layout of w
    for (index_t o = 0; o < g.c_out; ++o) {
      const T* xr = xs + (o / m) * g.l_in;
      const T* dr = dy + (b * g.c_out + o) * g.l_out + t0;
      for (index_t k = 0; k < K; ++k) {
        index_t lo, hi;
        g.inside(k, t0, nt, &lo, &hi);
        T sum(0);
        for (index_t t = lo; t < hi; ++t) {
          const index_t i = g.input_step(g.source(t0 + t, k));
          if (i >= 0) sum += xr[i] * dr[t];
        }
        acc[o * K + k] += sum;
      }
    }
  }
}

// The sums of the bias gradient, channels last, from `rows` rows of C values starting at dys
// (groups of up to 8 rows, as below).
template <typename T>
void bias_grad_rows(index_t C, const T* dys, index_t rows, double* db_acc, T* group) {
  for (index_t t = 0; t < rows; t += 8) {
    const index_t n = std::min<index_t>(8, rows - t);
    const T* r = dys + t * C;
    std::copy(r, r + C, group);
    for (index_t j = 1; j < n; ++j)
      for (index_t o = 0; o < C; ++o) group[o] += r[j * C + o];
    for (index_t o = 0; o < C; ++o) db_acc[o] += static_cast<double>(group[o]);
  }
}

// db_acc[o] += the sum of dy over the item's steps (dy: the exact one, unrounded): channels
// last, groups of up to 8 rows summed in T (each value rounded at most 7 times, the loops over
// channels vectorise), each group's sum added in double; channels first, 8 double lanes over
// the steps, added in order at the end. The order is fixed by the shape.
template <typename T>
void bias_grad_item(const Geometry& g, const T* dy, index_t b, index_t t0, index_t nt,
                    double* db_acc, T* group) {
  if (g.channels_last) {
    const index_t C = g.c_out;
    bias_grad_rows(C, dy + (b * g.l_out + t0) * C, nt, db_acc, group);
  } else {
    for (index_t o = 0; o < g.c_out; ++o) {
      const T* row = dy + (b * g.c_out + o) * g.l_out + t0;
      double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      index_t t = 0;
      for (; t + 8 <= nt; t += 8)
        for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(row[t + j]);
      for (int j = 0; t < nt; ++t, ++j) lane[j] += static_cast<double>(row[t]);
      double sum = 0.0;
      for (int j = 0; j < 8; ++j) sum += lane[j];
      db_acc[o] += sum;
    }
  }
}

// dw, and db (if not null) from dy_exact: each accumulator range sums its items' shares in
// order (the bias in double, while the item's dy is in cache), then the ranges are added in
// order: the same for any thread count.
template <typename T>
void weight_and_bias_grad(const Geometry& g, const T* x, const T* dy, const T* dy_exact, T* dw,
                          T* db) {
  const Blocks bl = time_blocks(g);
  const bool direct = g.c_group() == 1;
  const index_t size = g.c_out * g.c_group() * g.kernel;
  const index_t na = accumulator_count(bl.items, size);
  Buffer<T> acc(na * size);
  acc.zero();
  std::vector<double> db_acc(db ? static_cast<std::size_t>(na * g.c_out) : 0, 0.0);
  run_items(na, [&](index_t a0, index_t a1) {
    Buffer<T> P(direct ? 0 : bl.block * g.patch());
    Buffer<T> group(db ? g.c_out : 0);
    for (index_t a = a0; a < a1; ++a) {
      T* A = acc.data() + a * size;
      for (index_t it = a * bl.items / na; it < (a + 1) * bl.items / na; ++it) {
        const index_t b = it / bl.per_seq, t0 = (it % bl.per_seq) * bl.block;
        const index_t nt = std::min(bl.block, g.l_out - t0);
        if (direct) {
          weight_grad_direct_item(g, x, dy, b, t0, nt, A);
        } else {
          weight_grad_gemm_item(g, x, dy, b, t0, nt, P.data(), A);
        }
        if (db) bias_grad_item(g, dy_exact, b, t0, nt, db_acc.data() + a * g.c_out, group.data());
      }
    }
  });
  T* sum = acc.data();
  parallel_for(size, 4096, [&](index_t e0, index_t e1) {
    for (index_t a = 1; a < na; ++a) {
      const T* src = acc.data() + a * size;
      for (index_t e = e0; e < e1; ++e) sum[e] += src[e];
    }
  });
  if (db) {
    for (index_t o = 0; o < g.c_out; ++o) {
      double total = db_acc[o];
      for (index_t a = 1; a < na; ++a) total += db_acc[a * g.c_out + o];
      db[o] = static_cast<T>(total);
    }
  }
  if (!g.channels_last) {
    std::copy(sum, sum + size, dw);
  } else if (direct) {
    for (index_t o = 0; o < g.c_out; ++o)
      for (index_t k = 0; k < g.kernel; ++k) dw[o * g.kernel + k] = sum[k * g.c_out + o];
  } else {
    unpack_weights_cl(g, sum, dw);
  }
}

}  // namespace

// bfloat16 (Conv1dShape::precision): the operands rounded once into rounded copies; the
// float32 kernels then multiply bfloat16 values, whose products are exact in float32.
template <typename T>
struct Bf16Operands {
  Buffer<T> x, w, dy;

  const T* round(const T* src, index_t n, Buffer<T>& out) {
    if constexpr (std::is_same_v<T, float>) {
      out.resize(std::max<index_t>(1, n));
      parallel_for(n, 1 << 14, [&](index_t i0, index_t i1) {
        round_to_bf16(i1 - i0, src + i0, out.data() + i0);
      });
      return out.data();
    } else {
      throw std::invalid_argument("precision 'bfloat16' needs float32 operands, got float64");
    }
  }
  static index_t x_size(const Conv1dShape& s) { return s.batch * s.length * s.c_in; }
  static index_t w_size(const Conv1dShape& s) { return s.c_out * (s.c_in / s.groups) * s.kernel; }
  static index_t y_size(const Conv1dShape& s) { return s.batch * s.l_out * s.c_out; }
};

template <typename T>
void conv1d_forward(const Conv1dShape& s, const T* x, const T* w, const T* b, T* y,
                    const T* add) {
  const Geometry g = geometry_of(s);
  if (winograd::forward(s, x, w, y, [&](index_t seq, T* ys) {
        finish_block(g, b, add, seq, 0, g.l_out, ys, g.l_out);
      }))
    return;
  Bf16Operands<T> r;
  if (s.precision == Precision::bfloat16) {
    x = r.round(x, r.x_size(s), r.x);
    w = r.round(w, r.w_size(s), r.w);
  }
  run_forward(g, x, w, b, y, add);
}

template <typename T>
void conv1d_max_pool1d_forward(const Conv1dShape& s, const Pool1dShape& p, const T* x, const T* w,
                               const T* b, T* py, index_t* arg) {
  if (p.batch != s.batch || p.length != s.l_out || p.channels != s.c_out ||
      p.channels_last != s.channels_last)
    throw std::invalid_argument("conv1d_max_pool1d_forward: the pool's input is not the output");
  const Geometry g = geometry_of(s);
  // Winograd's forward where conv1d_forward takes it (the same values; float32, channels last):
  // each sequence's rows pooled in its thread's buffer as soon as they are computed, by the
  // instruction set's epilogue
  if (p.l_out > 0 &&
      winograd::forward_each(s, x, w, [&](index_t seq, T* ys) {
        std::vector<std::int32_t> rel(static_cast<std::size_t>(g.c_out));
        const index_t out = seq * p.l_out * p.channels;
        if constexpr (std::is_same_v<T, float>) {
          if (g.l_out <= std::numeric_limits<std::int32_t>::max()) {
            const winograd::PoolWindows pw{p.pool_size, p.stride, p.pad_left, p.l_out};
            winograd::active_finish_pool()(b, g.relu, g.l_out, g.c_out, pw, ys, py + out,
                                           arg ? arg + out : nullptr, rel.data());
            return;
          }
        }
        finish_block(g, b, static_cast<const T*>(nullptr), seq, 0, g.l_out, ys, g.l_out);
        max_pool1d_windows(p, ys, 0, g.l_out, 0, p.l_out, py + out, arg ? arg + out : nullptr,
                           rel.data());
      }))
    return;
  Bf16Operands<T> r;
  if (s.precision == Precision::bfloat16) {
    x = r.round(x, r.x_size(s), r.x);
    w = r.round(w, r.w_size(s), r.w);
  }
  if (g.batch == 0 || p.l_out == 0) return;
  // Items: one sequence and `windows` consecutive pool windows each, as many as the rows of
  // the forward's own blocks hold (the whole sequence, for IMDB's 96 steps); each computes the
  // output steps its windows read into its thread's block, then pools them.
  const Blocks bl = time_blocks(g);
  const index_t fit = bl.block < p.pool_size ? 1 : (bl.block - p.pool_size) / p.stride + 1;
  const index_t per_seq = ceil_div(p.l_out, std::clamp<index_t>(fit, 1, p.l_out));
  const index_t windows = ceil_div(p.l_out, per_seq);
  const index_t rows = std::min(g.l_out, (windows - 1) * p.stride + p.pool_size);
  const Forward<T> fwd(g, w);
  run_items(g.batch * per_seq, [&](index_t i0, index_t i1) {
    Buffer<T> P, block(rows * g.c_out);
    std::vector<std::int32_t> rel(static_cast<std::size_t>(g.c_out));
    for (index_t it = i0; it < i1; ++it) {
      const index_t seq = it / per_seq, j0 = (it % per_seq) * windows;
      const index_t j1 = std::min(j0 + windows, p.l_out);
      // the steps of windows [j0, j1), clipped to the output (padding never wins)
      const index_t r0 = std::max<index_t>(j0 * p.stride - p.pad_left, 0);
      const index_t r1 = std::min((j1 - 1) * p.stride - p.pad_left + p.pool_size, g.l_out);
      fwd.block(x, b, nullptr, seq, r0, r1 - r0, block.data(), r1 - r0, P);
      const index_t out = seq * p.l_out * p.channels;
      max_pool1d_windows(p, block.data(), r0, r1 - r0, j0, j1, py + out,
                         arg ? arg + out : nullptr, rel.data());
    }
  });
}

namespace {

// dy * (y > 0) (the gradient through the ReLU, NumPy's values: 0 * NaN is NaN), threaded.
template <typename T>
void relu_gradient(index_t n, const T* y, const T* dy, T* out) {
  parallel_for(n, 1 << 14, [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) out[i] = dy[i] * (y[i] > T(0) ? T(1) : T(0));
  });
}

}  // namespace

namespace {

// ------------------------------------------------------------------ whole-batch backward

// The backward of a "valid" convolution (channels last, one group, stride 1, dilation 1, no
// padding; bfloat16 on operands rounded first, as elsewhere) as two products over the whole batch instead of one pair per
// sequence. dy is written once into D, each sequence's rows after kernel - 1 zero rows, one
// sequence every l_in rows, and kernel - 1 zero rows at the end:
//   D[b * l_in + j] = dy[b, j - (K - 1)] for K - 1 <= j < l_in, zero for j < K - 1.
// - dx is the full correlation of dy with the flipped kernel: row b * l_in + t of dx reads the
//   K rows of D from b * l_in + t on (the zero rows of D are the padding of that correlation,
//   shared by neighbouring sequences), so dx = D' Wt with D' the rows of D read in place, K * C_out
//   values each, l_in values apart: M = B * l_in, every row a row of dx.
// - dw (the W2 layout) = X'^T D'', X' the patches of x read in place (row r = x's K rows from
//   row r on), D'' = D from its row K - 1 on: depth B * l_in - (K - 1). The rows b * l_in + t
//   with t >= l_out are patches across two sequences, multiplied by zero rows of D; they add
//   nothing when those x are finite (checked; otherwise the per-sequence path runs).
// Results are those of one product each (fixed by the shape, the same for any thread count).
bool whole_batch_backward(const Geometry& g) {
  return g.channels_last && g.groups == 1 && g.stride == 1 && g.dilation == 1 &&
         g.upsample == 1 && g.pad_left == 0 && g.l_out == g.l_in - g.kernel + 1 &&
         g.batch > 0 && g.l_out > 0;
}

// Whether v[0, n) is all finite: no value has every exponent bit set (counted on the bits, so
// the loop vectorises).
template <typename T>
bool all_finite(index_t n, const T* v) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr U kExp = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (index_t i = 0; i < n; ++i) {
    U u;
    std::memcpy(&u, v + i, sizeof(T));
    bad += (u & kExp) == kExp;
  }
  return bad == 0;
}

// Whether the x rows that only patches across sequences read (the last and first K - 1 rows of
// neighbouring sequences) are all finite: then those patches times zero add exactly nothing.
template <typename T>
bool seams_finite(const Geometry& g, const T* x) {
  const index_t span = (g.kernel - 1) * g.c_in;
  if (span == 0 || g.batch < 2) return true;
  std::vector<char> ok(static_cast<std::size_t>(g.batch - 1), 1);
  parallel_for(g.batch - 1, 16, [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      const T* seam = x + ((b + 1) * g.l_in - (g.kernel - 1)) * g.c_in;
      ok[b] = all_finite(2 * span, seam);
    }
  });
  return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
}

template <typename T>
void backward_whole_batch(const Geometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw,
                          T* db, const T* add_dx, const T* y, bool bf16) {
  const index_t B = g.batch, S = g.l_in, K = g.kernel, Ci = g.c_in, Co = g.c_out;
  const index_t pad = K - 1;
  Buffer<T> D((B * S + pad) * Co);
  // D, with dy * (y > 0) under the ReLU; each sequence's bias sums while its rows are in cache.
  const index_t na = accumulator_count(B, Co);
  std::vector<double> db_acc(db ? static_cast<std::size_t>(na * Co) : 0, 0.0);
  parallel_for(na, 1, [&](index_t a0, index_t a1) {
    Buffer<T> group(db ? Co : 0);
    for (index_t a = a0; a < a1; ++a) {
      for (index_t b = a * B / na; b < (a + 1) * B / na; ++b) {
        T* Ds = D.data() + b * S * Co;
        std::fill(Ds, Ds + pad * Co, T(0));
        T* rows = Ds + pad * Co;
        const index_t n = g.l_out * Co;
        const T* src = dy + b * n;
        if (g.relu) {
          const T* ys = y + b * n;
          for (index_t i = 0; i < n; ++i) rows[i] = src[i] * (ys[i] > T(0) ? T(1) : T(0));
        } else {
          std::copy(src, src + n, rows);
        }
        if (db) bias_grad_rows(Co, rows, g.l_out, db_acc.data() + a * Co, group.data());
        if constexpr (std::is_same_v<T, float>) {
          if (bf16) round_to_bf16(n, rows, rows);  // the products' dy (the bias sums it exact)
        }
      }
    }
  });
  std::fill(D.data() + B * S * Co, D.data() + (B * S + pad) * Co, T(0));
  if (db) {
    for (index_t o = 0; o < Co; ++o) {
      double total = db_acc[o];
      for (index_t a = 1; a < na; ++a) total += db_acc[a * Co + o];
      db[o] = static_cast<T>(total);
    }
  }
  // dw in the W2 layout [k][c][o], then w's.
  if (seams_finite(g, x)) {
    Buffer<T> sum(K * Ci * Co);
    gemm<T>(true, false, K * Ci, Co, B * S - pad, T(1), x, Ci, D.data() + pad * Co, Co, T(0),
            sum.data(), Co);
    unpack_weights_cl(g, sum.data(), dw);
  } else {
    Buffer<T> rows(B * g.l_out * Co);  // D's rows without the zero rows
    for (index_t b = 0; b < B; ++b)
      std::copy(D.data() + (b * S + pad) * Co, D.data() + (b * S + S) * Co,
                rows.data() + b * g.l_out * Co);
    weight_and_bias_grad<T>(g, x, rows.data(), nullptr, dw, nullptr);
  }
  // dx: Wt2[k][o][c] = w[o][c][K - 1 - k].
  Buffer<T> wt(K * Co * Ci);
  for (index_t k = 0; k < K; ++k)
    for (index_t o = 0; o < Co; ++o)
      for (index_t c = 0; c < Ci; ++c)
        wt[(k * Co + o) * Ci + c] = w[(o * Ci + c) * K + (K - 1 - k)];
  gemm<T>(false, false, B * S, Ci, K * Co, T(1), D.data(), Co, wt.data(), Ci, T(0), dx, Ci);
  if (add_dx) {
    parallel_for(B * S * Ci, 1 << 14, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) dx[i] += add_dx[i];
    });
  }
}

}  // namespace

template <typename T>
void conv1d_backward(const Conv1dShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db, const T* add_dx, const T* y) {
  if (s.relu && !y)
    throw std::invalid_argument("conv1d_backward: relu needs the forward's output y");
  Bf16Operands<T> r;
  if (whole_batch_backward(geometry_of(s))) {
    const bool bf16 = s.precision == Precision::bfloat16;
    if (bf16) {
      x = r.round(x, r.x_size(s), r.x);
      w = r.round(w, r.w_size(s), r.w);
    }
    backward_whole_batch(geometry_of(s), x, w, dy, dx, dw, db, add_dx, y, bf16);
    return;
  }
  Buffer<T> through_relu;
  if (s.relu) {
    through_relu.resize(std::max<index_t>(1, r.y_size(s)));
    relu_gradient(r.y_size(s), y, dy, through_relu.data());
    dy = through_relu.data();
  }
  const T* dy_exact = dy;  // the bias gradient sums dy unrounded (no product)
  if (s.precision == Precision::bfloat16) {
    x = r.round(x, r.x_size(s), r.x);
    w = r.round(w, r.w_size(s), r.w);
    dy = r.round(dy, r.y_size(s), r.dy);
  }
  const Geometry g = geometry_of(s);
  weight_and_bias_grad(g, x, dy, dy_exact, dw, db);
  const Geometry gt = input_gradient_geometry(g);
  Buffer<T> wt(g.c_out * g.c_group() * g.kernel);
  transpose_weights(g, w, wt.data());
  run_forward<T>(gt, dy, wt.data(), nullptr, dx, add_dx);
}

// ------------------------------------------------------------------ backward through a max pool

namespace {

// Whether the winners' products alone give the backward (conv1d_pooled.h: each output step's
// patch one contiguous run of the sequence, float32 products).
bool pooled_route(const Conv1dShape& s, const Pool1dShape& p) {
  return s.channels_last && p.channels_last && s.groups == 1 && s.dilation == 1 &&
         s.pad_left == 0 && (s.l_out - 1) * s.stride + s.kernel <= s.length &&
         s.precision == Precision::float32 && s.batch > 0 && p.l_out > 0;
}

// One sequence's lists of conv1d_pooled.h, each in the order of the pool's output (windows, then
// channels), entries only where the gradient g [np, Co] is not zero. By channel: start [Co + 1],
// off (the patch's first value in the sequence), g. Every entry is written and the count moves
// past it only when its gradient is not zero (no branch). Out of line with restrict pointers:
// inlined into the backward's loop, the compiler kept the lists' pointers and counters in memory
// and reloaded them after each store.
template <typename T>
[[gnu::noinline]] void winners_by_channel(index_t np, index_t Co, index_t step,
                                          const index_t* __restrict arg, const T* __restrict g,
                                          index_t* __restrict start, index_t* __restrict off,
                                          T* __restrict gl) {
  index_t e = 0;
  for (index_t n = 0; n < Co; ++n) {
    start[n] = e;
    for (index_t j = 0; j < np; ++j) {
      const T v = g[j * Co + n];
      off[e] = arg[j * Co + n] * step;
      gl[e] = v;
      e += v != T(0);
    }
  }
  start[Co] = e;
}

// Both lists of one sequence; the vectors keep their memory from one sequence to the next.
template <typename T>
struct WinnerLists {
  std::vector<index_t> by_channel_start, by_channel_off, by_step_start, by_step_off;
  std::vector<T> by_channel_g, by_step_g;

  void build(index_t np, index_t Co, index_t l_out, index_t step, index_t wt_stride,
             const index_t* arg, const T* g) {
    const std::size_t n_all = static_cast<std::size_t>(np * Co);
    by_channel_start.resize(static_cast<std::size_t>(Co + 1));
    by_step_start.resize(static_cast<std::size_t>(l_out + 1));
    if (by_channel_off.size() < n_all) {
      by_channel_off.resize(n_all);
      by_channel_g.resize(n_all);
      by_step_off.resize(n_all);
      by_step_g.resize(n_all);
    }
    // by step first: its first pass reads arg in order (from memory: the prefetchers follow it),
    // the columns that winners_by_channel reads then come from cache
    pooled::active_pooled_grad<T>().by_step(np, Co, l_out, wt_stride, arg, g,
                                            by_step_start.data(), by_step_off.data(),
                                            by_step_g.data());
    winners_by_channel(np, Co, step, arg, g, by_channel_start.data(), by_channel_off.data(),
                       by_channel_g.data());
  }
};

// Weight accumulators of the winners-only backward: few, so that they stay in L2 while the
// gathers add into them (IMDB: 4 x 128 KB; 16, weight_and_bias_grad's count, made 2 MB and the
// call 8% slower), and still two per thread on two cores.
constexpr index_t kPooledAccumulators = 4;
// The winners-only backward's accumulators in up to two chunks per thread (one each at two
// threads): a thread that starts late (a worker waking from sleep, or off its core on a busy
// machine) then leaves only some of them to the others. Four chunks per thread in the forward
// made it 3% slower at two threads when the machine was quiet (bench/RESULTS.md, session 17).
constexpr int kPooledChunksPerThread = 2;
// wt's rows in the winners-only backward start on cache lines (below).
constexpr index_t kWtAlign = 64;
// The dw gathers' patches start on 32 bytes (no 256-bit half of a load crosses a cache line):
// each sequence's x is copied, with the finite check (PooledGrad::copy_rows), to rows of a
// multiple of 32 bytes when that adds at most 1/8 to the products and the patches in place do
// not all start on 32 bytes (IMDB: 100 channels to 104; both gathers together 9% faster, the
// call 3-5%, bench/RESULTS.md).
constexpr index_t kPatchAlign = 32;

// The row length of that copy, or 0 for the patches of x in place.
template <typename T>
index_t patch_row_length(const Conv1dShape& s, const T* x) {
  const index_t per = kPatchAlign / index_t(sizeof(T)), Ci = s.c_in;
  const index_t Cp = (Ci + per - 1) / per * per;
  if (Cp * 8 > Ci * 9) return 0;
  const bool in_place = Cp == Ci && (s.length * Ci) % per == 0 &&
                        reinterpret_cast<std::uintptr_t>(x) % kPatchAlign == 0;
  return in_place ? 0 : Cp;
}

// The winners-only backward; false (outputs partly written) when x or w is not all finite.
// Sequences are split between a fixed number of weight accumulators (kPooledAccumulators, at
// most), each sequence's dx written by the item that holds it: the same for any thread count.
template <typename T>
bool pooled_backward(const Conv1dShape& s, const Pool1dShape& p, const index_t* arg, const T* py,
                     const T* dpy, const T* x, const T* w, T* dx, T* dw, T* db,
                     const T* add_dx) {
  const index_t B = s.batch, L = s.length, Ci = s.c_in, Co = s.c_out, K = s.kernel;
  const index_t KC = K * Ci, size = Co * KC, np = p.l_out, step = s.stride * Ci;
  if (!all_finite(size, w)) return false;
  // wt[n][k * Ci + c] = w[n][c][k], rows a whole number of cache lines apart (padding unread):
  // every block the dx gathers load from a row starts on a line; one line more when that
  // would put the rows a multiple of 1 KiB apart (blocks of many rows in a few L1 sets)
  index_t wt_bytes = (KC * index_t(sizeof(T)) + kWtAlign - 1) / kWtAlign * kWtAlign;
  if (wt_bytes % 1024 == 0) wt_bytes += kWtAlign;
  const index_t wt_stride = wt_bytes / index_t(sizeof(T));
  Buffer<T> wt(Co * wt_stride);
  for (index_t n = 0; n < Co; ++n)
    for (index_t c = 0; c < Ci; ++c)
      for (index_t k = 0; k < K; ++k) wt[n * wt_stride + k * Ci + c] = w[(n * Ci + c) * K + k];
  // the dw gathers' source: x's rows in place (Cx = Ci) or copied to rows of Cx values
  const index_t Cp = patch_row_length(s, x), Cx = Cp ? Cp : Ci;
  const index_t KCx = K * Cx, size_x = Co * KCx;  // the accumulators: rows of K * Cx
  const index_t na = std::min(kPooledAccumulators, accumulator_count(B, size_x));
  Buffer<T> acc(na * size_x);  // each cleared by the thread that adds into it
  std::vector<double> db_acc(db ? static_cast<std::size_t>(na * Co) : 0, 0.0);
  std::vector<char> finite(static_cast<std::size_t>(B), 1);
  const auto& kernel = pooled::active_pooled_grad<T>();
  run_items(na, [&](index_t a0, index_t a1) {
    Buffer<T> g(np * Co), group(db ? Co : 0), xc(Cp ? L * Cp : 0);
    std::fill(xc.data(), xc.data() + xc.size(), T(0));  // the columns past Ci stay zero
    WinnerLists<T> lists;
    for (index_t a = a0; a < a1; ++a) {
      std::fill(acc.data() + a * size_x, acc.data() + (a + 1) * size_x, T(0));
      for (index_t b = a * B / na; b < (a + 1) * B / na; ++b) {
        const T* xs = x + b * L * Ci;
        finite[b] = Cp ? kernel.copy_rows(L, Ci, Cp, xs, xc.data()) : all_finite(L * Ci, xs);
        const T* d = dpy + b * np * Co;
        if (s.relu) {
          const T* ys = py + b * np * Co;
          for (index_t i = 0; i < np * Co; ++i) g[i] = d[i] * (ys[i] > T(0) ? T(1) : T(0));
        } else {
          std::copy(d, d + np * Co, g.data());
        }
        if (db) bias_grad_rows(Co, g.data(), np, db_acc.data() + a * Co, group.data());
        lists.build(np, Co, s.l_out, s.stride * Cx, wt_stride, arg + b * np * Co, g.data());
        kernel.gather(Co, KCx, KCx, lists.by_channel_start.data(), lists.by_channel_off.data(),
                      lists.by_channel_g.data(), Cp ? xc.data() : xs, acc.data() + a * size_x);
        T* dxs = dx + b * L * Ci;
        std::fill(dxs, dxs + L * Ci, T(0));
        kernel.gather(s.l_out, KC, step, lists.by_step_start.data(), lists.by_step_off.data(),
                      lists.by_step_g.data(), wt.data(), dxs);
        if (add_dx) {  // added afterwards, as the dense backward does
          const T* as = add_dx + b * L * Ci;
          for (index_t i = 0; i < L * Ci; ++i) dxs[i] += as[i];
        }
      }
    }
  }, kPooledChunksPerThread);
  if (!std::all_of(finite.begin(), finite.end(), [](char c) { return c != 0; })) return false;
  // the accumulators summed in order and put in w's layout, rows of dw split between threads
  parallel_for(Co, std::max<index_t>(1, 4096 / KCx), [&](index_t n0, index_t n1) {
    T* sum = acc.data();
    for (index_t a = 1; a < na; ++a) {
      const T* src = acc.data() + a * size_x;
      for (index_t e = n0 * KCx; e < n1 * KCx; ++e) sum[e] += src[e];
    }
    for (index_t n = n0; n < n1; ++n)
      for (index_t c = 0; c < Ci; ++c)
        for (index_t k = 0; k < K; ++k) dw[(n * Ci + c) * K + k] = sum[n * KCx + k * Cx + c];
  });
  if (db) {
    for (index_t n = 0; n < Co; ++n) {
      double total = db_acc[n];
      for (index_t a = 1; a < na; ++a) total += db_acc[a * Co + n];
      db[n] = static_cast<T>(total);
    }
  }
  return true;
}

}  // namespace

template <typename T>
void conv1d_pool_backward(const Conv1dShape& s, const Pool1dShape& p, const index_t* arg,
                          const T* py, const T* dpy, const T* x, const T* w, T* dx, T* dw, T* db,
                          const T* add_dx, const T* y) {
  if (p.batch != s.batch || p.length != s.l_out || p.channels != s.c_out ||
      p.channels_last != s.channels_last)
    throw std::invalid_argument("conv1d_pool_backward: the pool's input is not the output");
  if (s.relu && !py)
    throw std::invalid_argument("conv1d_pool_backward: relu needs the pool's output");
  if (pooled_route(s, p) &&
      pooled_backward(s, p, arg, py, dpy, x, w, dx, dw, db, add_dx))
    return;
  Buffer<T> dy(std::max<index_t>(1, s.batch * s.l_out * s.c_out));
  if (s.relu && !y) {
    // y never stored (conv1d_max_pool1d_forward): the ReLU's gradient at each winner from py,
    // as the pooled route takes it, then a convolution without one
    const index_t n = p.batch * p.l_out * p.channels;
    Buffer<T> g(std::max<index_t>(1, n));
    for (index_t i = 0; i < n; ++i) g[i] = dpy[i] * (py[i] > T(0) ? T(1) : T(0));
    max_pool1d_backward<T>(p, arg, g.data(), dy.data());
    Conv1dShape plain = s;
    plain.relu = false;
    conv1d_backward<T>(plain, x, w, dy.data(), dx, dw, db, add_dx);
    return;
  }
  max_pool1d_backward<T>(p, arg, dpy, dy.data());
  conv1d_backward<T>(s, x, w, dy.data(), dx, dw, db, add_dx, y);
}

namespace pooled {

template <>
const PooledGrad<float>& active_pooled_grad<float>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kPooledAvx512F32;
    case Isa::avx2: return kPooledAvx2F32;
    case Isa::generic: break;
  }
#endif
  return kPooledGenericF32;
}

template <>
const PooledGrad<double>& active_pooled_grad<double>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kPooledAvx512F64;
    case Isa::avx2: return kPooledAvx2F64;
    case Isa::generic: break;
  }
#endif
  return kPooledGenericF64;
}

}  // namespace pooled

// ------------------------------------------------------------------ gated activation

namespace {

// Rows per work item: enough values that an item outweighs the hand-off to a thread.
index_t gated_rows_per_item(index_t C) { return std::max<index_t>(1, 16384 / std::max<index_t>(C, 1)); }

template <typename F>
void over_row_blocks(index_t rows, index_t C, F&& fn) {
  const index_t per = gated_rows_per_item(C);
  const index_t items = (rows + per - 1) / per;
  auto run = [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) fn(i * per, std::min(rows, (i + 1) * per));
  };
  if (items >= 2 && get_num_threads() > 1)
    parallel_for(items, 1, run);
  else
    run(0, items);
}

}  // namespace

template <typename T>
void gated_activation_forward(index_t rows, index_t C, const T* a, T* z) {
  const auto& kernel = gated::active_gated_rows<T>();
  over_row_blocks(rows, C, [&](index_t r0, index_t r1) {
    kernel.forward(r1 - r0, C, a + r0 * 2 * C, z + r0 * C);
  });
}

template <typename T>
void gated_activation_backward(index_t rows, index_t C, const T* a, const T* dz, T* da) {
  const auto& kernel = gated::active_gated_rows<T>();
  over_row_blocks(rows, C, [&](index_t r0, index_t r1) {
    kernel.backward(r1 - r0, C, a + r0 * 2 * C, dz + r0 * C, da + r0 * 2 * C);
  });
}

namespace gated {

template <>
const GatedRows<float>& active_gated_rows<float>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kGatedAvx512F32;
    case Isa::avx2: return kGatedAvx2F32;
    case Isa::generic: break;
  }
#endif
  return kGatedGenericF32;
}

template <>
const GatedRows<double>& active_gated_rows<double>() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kGatedAvx512F64;
    case Isa::avx2: return kGatedAvx2F64;
    case Isa::generic: break;
  }
#endif
  return kGatedGenericF64;
}

}  // namespace gated

template void gated_activation_forward<float>(index_t, index_t, const float*, float*);
template void gated_activation_forward<double>(index_t, index_t, const double*, double*);
template void gated_activation_backward<float>(index_t, index_t, const float*, const float*,
                                               float*);
template void gated_activation_backward<double>(index_t, index_t, const double*, const double*,
                                                double*);

template void conv1d_forward<float>(const Conv1dShape&, const float*, const float*, const float*,
                                    float*, const float*);
template void conv1d_forward<double>(const Conv1dShape&, const double*, const double*,
                                     const double*, double*, const double*);
template void conv1d_max_pool1d_forward<float>(const Conv1dShape&, const Pool1dShape&,
                                               const float*, const float*, const float*, float*,
                                               index_t*);
template void conv1d_max_pool1d_forward<double>(const Conv1dShape&, const Pool1dShape&,
                                                const double*, const double*, const double*,
                                                double*, index_t*);
template void conv1d_backward<float>(const Conv1dShape&, const float*, const float*, const float*,
                                     float*, float*, float*, const float*, const float*);
template void conv1d_backward<double>(const Conv1dShape&, const double*, const double*,
                                      const double*, double*, double*, double*, const double*,
                                      const double*);

template void conv1d_pool_backward<float>(const Conv1dShape&, const Pool1dShape&, const index_t*,
                                          const float*, const float*, const float*, const float*,
                                          float*, float*, float*, const float*, const float*);
template void conv1d_pool_backward<double>(const Conv1dShape&, const Pool1dShape&,
                                           const index_t*, const double*, const double*,
                                           const double*, const double*, double*, double*,
                                           double*, const double*, const double*);

}  // namespace rnnfast
