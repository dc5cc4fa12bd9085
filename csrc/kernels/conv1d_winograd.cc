// Conv1D forward by Winograd's minimal filtering (conv1d_winograd.h): the matrices, the filter
// transform, the products through the GEMM and the split between threads.
#include "conv1d_winograd.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnfast/buffer.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"
#include "rnnfast/threads.h"

namespace rnnfast {
namespace winograd {

namespace {

// The interpolation points of Toom-Cook's matrices, in the order they are taken (infinity is
// always the last point): small integers and their inverses keep the transforms' magnitudes low.
constexpr double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};

// Per kernel size r: m output steps per tile and the pieces of the taps (conv1d_winograd.h),
// chosen from the float32 error measured against the float64 reference over many seeds and
// shapes (DECISIONS.md): the fewest products whose worst error stays well inside the numerical
// contract's bound.
struct Plan {
  index_t r, m;
  std::vector<index_t> pieces;
};

const Plan* plan_for(index_t r) {
  static const std::vector<Plan> plans = {
      {3, 2, {3}},     // F(2,3): 4 products for 6, worst error 0.35 of the bound
      {4, 3, {2, 2}},  // F(3,2) twice: 8 for 12, 0.32
      {5, 3, {2, 3}},  // F(3,2) + F(3,3): 9 for 15, 0.67
      {6, 2, {3, 3}},  // F(2,3) twice: 8 for 12, 0.30 (F(3,3) twice: 10 for 18, 0.89)
      {7, 2, {4, 3}},  // F(2,4) + F(2,3): 9 for 14, 0.42
  };
  for (const Plan& p : plans)
    if (p.r == r) return &p;
  return nullptr;
}

// The matrices of a plan: AT [m, N], BT [N, span] (float), G [N, r] (double).
struct Matrices {
  index_t m = 0, r = 0, N = 0, span = 0;
  std::vector<float> AT, BT;
  std::vector<double> G;
};

// inv(A) of an n x n matrix by Gauss-Jordan elimination with partial pivoting.
std::vector<double> inverse(std::vector<double> a, index_t n) {
  std::vector<double> inv(static_cast<std::size_t>(n * n), 0.0);
  for (index_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
  for (index_t col = 0; col < n; ++col) {
    index_t piv = col;
    for (index_t i = col + 1; i < n; ++i)
      if (std::abs(a[i * n + col]) > std::abs(a[piv * n + col])) piv = i;
    for (index_t k = 0; k < n; ++k) {
      std::swap(a[col * n + k], a[piv * n + k]);
      std::swap(inv[col * n + k], inv[piv * n + k]);
    }
    const double p = a[col * n + col];
    for (index_t k = 0; k < n; ++k) {
      a[col * n + k] /= p;
      inv[col * n + k] /= p;
    }
    for (index_t i = 0; i < n; ++i) {
      if (i == col) continue;
      const double f = a[i * n + col];
      if (f == 0.0) continue;
      for (index_t k = 0; k < n; ++k) {
        a[i * n + k] -= f * a[col * n + k];
        inv[i * n + k] -= f * inv[col * n + k];
      }
    }
  }
  return inv;
}

// Row p of the evaluation matrix with k columns at point p (the last point: infinity, the
// leading coefficient).
void evaluation_row(index_t p, index_t n, index_t k, double* row) {
  if (p == n - 1) {
    for (index_t j = 0; j < k; ++j) row[j] = j == k - 1 ? 1.0 : 0.0;
    return;
  }
  double v = 1.0;
  for (index_t j = 0; j < k; ++j, v *= kPoints[p]) row[j] = v;
}

Matrices matrices_of(const Plan& plan) {
  Matrices mt;
  mt.m = plan.m;
  mt.r = plan.r;
  mt.span = plan.m + plan.r - 1;
  for (index_t rp : plan.pieces) mt.N += plan.m + rp - 1;
  const index_t m = mt.m, N = mt.N, span = mt.span, r = mt.r;
  mt.AT.assign(static_cast<std::size_t>(m * N), 0.0f);
  mt.BT.assign(static_cast<std::size_t>(N * span), 0.0f);
  mt.G.assign(static_cast<std::size_t>(N * r), 0.0);
  index_t i0 = 0, k0 = 0;  // the piece's first product and first tap
  for (index_t rp : plan.pieces) {
    // F(m, rp) on taps [k0, k0 + rp): reads input steps [k0, k0 + n) of the tile
    const index_t n = m + rp - 1;
    std::vector<double> em(static_cast<std::size_t>(n * m)), vn(static_cast<std::size_t>(n * n));
    for (index_t p = 0; p < n; ++p) {
      evaluation_row(p, n, m, &em[p * m]);
      evaluation_row(p, n, n, &vn[p * n]);
      evaluation_row(p, n, rp, &mt.G[(i0 + p) * r + k0]);
    }
    const std::vector<double> vinv = inverse(vn, n);  // BT = inv(Vn)^T
    for (index_t p = 0; p < n; ++p) {
      for (index_t j = 0; j < m; ++j) mt.AT[j * N + i0 + p] = static_cast<float>(em[p * m + j]);
      for (index_t j = 0; j < n; ++j)
        mt.BT[(i0 + p) * span + k0 + j] = static_cast<float>(vinv[j * n + p]);
    }
    i0 += n;
    k0 += rp;
  }
  return mt;
}

const Matrices& matrices_for(index_t r) {
  static const std::vector<Matrices> all = [] {
    std::vector<Matrices> v;
    for (index_t k = kMinTaps; k <= kMaxTaps; ++k) {
      v.push_back(matrices_of(*plan_for(k)));
      const TileShape& ts = kTileShapes[k - kMinTaps];
      const Plan& plan = *plan_for(k);
      if (ts.r != k || ts.m != v.back().m || ts.N != v.back().N || ts.span != v.back().span ||
          ts.r1 != plan.pieces[0] || plan.pieces.size() > 2)
        throw std::logic_error("conv1d_winograd: kTileShapes does not match the plans");
    }
    return v;
  }();
  return all[static_cast<std::size_t>(r - kMinTaps)];
}

// Tiles per work item: the item's V and M (tiles x N rows of C_in and C_out values) stay in L2
// while its N products run over them.
constexpr index_t kTilesPerItem = 96;

// The smallest shapes that take this path under "auto" (crossover measured with kernels of 3, 5
// and 7 taps, DECISIONS.md): with fewer channels the transforms cost about what the products
// they save do (32 channels: 0.89-1.02 x the direct time, 16: 1.05-1.27 x), with short outputs
// or few outputs in all the filter transform and the packing of U do.
constexpr index_t kMinChannels = 48;
constexpr index_t kMinOutputSteps = 24;
constexpr index_t kMinOutputs = 256;  // batch x output steps

}  // namespace

const Transforms& active_transforms(index_t r) {
  const std::size_t i = static_cast<std::size_t>(r - kMinTaps);
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kWinogradAvx512[i];
    case Isa::avx2: return kWinogradAvx2[i];
    case Isa::generic: break;
  }
#endif
  return kWinogradGeneric[i];
}

FinishPool active_finish_pool() {
#ifdef RNNFAST_HAVE_X86_KERNELS
  switch (active_isa()) {
    case Isa::avx512: return kFinishPoolAvx512;
    case Isa::avx2: return kFinishPoolAvx2;
    case Isa::generic: break;
  }
#endif
  return kFinishPoolGeneric;
}

const char* refusal(const Conv1dShape& s, bool float64) {
  if (float64) return "float32 arrays";
  if (s.precision != Precision::float32) return "precision 'float32'";
  if (!s.channels_last) return "channels_last=True";
  if (s.groups != 1) return "groups=1";
  if (s.stride != 1) return "stride=1";
  if (s.dilation != 1) return "dilation=1";
  if (s.kernel < kMinTaps || s.kernel > kMaxTaps) return "a kernel of 3 to 7 taps";
  return "";
}

namespace {

void refusal_check(const Conv1dShape& s) {
  const char* why = refusal(s, false);
  if (why[0] != '\0')
    throw std::invalid_argument(std::string("algorithm: 'winograd' needs ") + why);
}

}  // namespace

bool chosen(const Conv1dShape& s) {
  return refusal(s, false)[0] == '\0' && s.c_in >= kMinChannels && s.c_out >= kMinChannels &&
         s.l_out >= kMinOutputSteps && s.batch * s.l_out >= kMinOutputs;
}

Filter::Filter(const Conv1dShape& s, const float* w) : s_(s) {
  refusal_check(s);
  const Matrices& mt = matrices_for(s.kernel);
  m_ = mt.m;
  N_ = mt.N;
  AT_ = mt.AT.data();
  BT_ = mt.BT.data();
  tiles_ = (s.l_out + m_ - 1) / m_;
  per_item_ = std::max<index_t>(1, kTilesPerItem / std::max<index_t>(tiles_, 1));
  // U_i [C_in, C_out] = sum_k G[i][k] w[:, :, k]^T, in double (zero coefficients skipped: a
  // piece's products read its own taps) and rounded once, then packed
  const index_t Ci = s.c_in, Co = s.c_out, r = s.kernel;
  U_.resize(static_cast<std::size_t>(N_));
  std::vector<double> wt(static_cast<std::size_t>(r * Ci * Co));  // wt[k][c][o] = w[o][c][k]
  for (index_t o = 0; o < Co; ++o)
    for (index_t c = 0; c < Ci; ++c)
      for (index_t k = 0; k < r; ++k) wt[(k * Ci + c) * Co + o] = w[(o * Ci + c) * r + k];
  std::vector<double> acc(static_cast<std::size_t>(Ci * Co));
  Buffer<float> ui(Ci * Co);
  for (index_t i = 0; i < N_; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (index_t k = 0; k < r; ++k) {
      const double gk = mt.G[i * r + k];
      if (gk == 0.0) continue;
      const double* src = wt.data() + k * Ci * Co;
      for (index_t e = 0; e < Ci * Co; ++e) acc[e] += gk * src[e];
    }
    for (index_t e = 0; e < Ci * Co; ++e) ui[e] = static_cast<float>(acc[e]);
    U_[static_cast<std::size_t>(i)].pack(false, Ci, Co, ui.data(), Co);
  }
}

void Filter::run(index_t b0, index_t b1, const float* x, float* ys, const Finish<float>& finish,
                 Workspace& ws) const {
  const index_t Ci = s_.c_in, Co = s_.c_out, L = s_.length, N = N_, tiles = tiles_;
  const Transforms& tf = active_transforms(s_.kernel);
  const index_t rows = std::min(per_item_, b1 - b0) * tiles * N;
  if (ws.V.size() < rows * Ci) ws.V.resize(rows * Ci);
  if (ws.M.size() < rows * Co) ws.M.resize(rows * Co);
  for (index_t c0 = b0; c0 < b1; c0 += per_item_) {  // items of per_item_ sequences
    const index_t c1 = std::min(b1, c0 + per_item_);
    for (index_t b = c0; b < c1; ++b)
      tf.input(BT_, tiles, Ci, x + b * L * Ci, L, s_.pad_left,
               ws.V.data() + (b - c0) * tiles * N * Ci);
    for (index_t i = 0; i < N; ++i)
      gemm_packed<float>((c1 - c0) * tiles, ws.V.data() + i * Ci, N * Ci,
                         U_[static_cast<std::size_t>(i)], 0.0f, ws.M.data() + i * Co, N * Co);
    for (index_t b = c0; b < c1; ++b) {
      float* yb = ys + (b - b0) * s_.l_out * Co;
      tf.output(AT_, tiles, Co, ws.M.data() + (b - c0) * tiles * N * Co, s_.l_out, yb);
      if (finish) finish(b, yb);
    }
  }
}

namespace {

// Whether s.algorithm (and, for automatic, chosen()) sends s to this path.
bool takes(const Conv1dShape& s) {
  if (s.algorithm == ConvAlgorithm::direct) return false;
  return s.algorithm == ConvAlgorithm::winograd || chosen(s);
}

// The forward of s on this path (when it takes s), into y, or with y null into a buffer per
// item that finish(b, rows) reads: items of filter.sequences_per_item() sequences, split between
// the threads when there are enough of them (else in the calling thread, the products parallel).
bool run(const Conv1dShape& s, const float* x, const float* w, float* y,
         const Finish<float>& finish) {
  if (!takes(s)) return false;
  if (s.batch == 0 || s.l_out == 0) {
    refusal_check(s);
    return true;
  }
  const Filter filter(s, w);
  const index_t per = filter.sequences_per_item();
  const index_t items = (s.batch + per - 1) / per, rows = s.l_out * s.c_out;
  auto range = [&](index_t i0, index_t i1) {
    Workspace ws;
    const index_t b0 = i0 * per, b1 = std::min(s.batch, i1 * per);
    Buffer<float> own(y ? 0 : (b1 - b0) * rows);
    filter.run(b0, b1, x, y ? y + b0 * rows : own.data(), finish, ws);
  };
  if (items >= get_num_threads()) {
    parallel_for(items, 1, range);
  } else {
    range(0, items);
  }
  return true;
}

}  // namespace

bool forward(const Conv1dShape& s, const float* x, const float* w, float* y,
             const Finish<float>& finish) {
  return run(s, x, w, y, finish);
}

bool forward_each(const Conv1dShape& s, const float* x, const float* w,
                  const Finish<float>& consume) {
  return run(s, x, w, nullptr, consume);
}

bool forward(const Conv1dShape& s, const double*, const double*, double*,
             const Finish<double>&) {
  if (s.algorithm == ConvAlgorithm::winograd)
    throw std::invalid_argument(std::string("algorithm: 'winograd' needs ") + refusal(s, true));
  return false;
}

bool forward_each(const Conv1dShape& s, const double*, const double*,
                  const Finish<double>&) {
  return forward(s, nullptr, nullptr, nullptr, Finish<double>());
}

}  // namespace winograd

const char* conv1d_winograd_refusal(const Conv1dShape& s, bool float64) {
  return winograd::refusal(s, float64);
}

}  // namespace rnnfast
