// AMX kernel of the bfloat16 GEMM: tdpbf16ps on 16 x 16 float tiles. A block of 32 rows x one
// panel (32 columns) is four accumulator tiles (0-3), fed at each depth step of 32 by two
// tiles of A rows (4, 5) and the panel's two tiles of B (6, 7). Both operands are packed tile
// by tile (a in ProductArgs' tiled layout, B in PackedBf16's), so every tile load reads 1 KiB
// of contiguous, 64-byte aligned memory: 16 whole cache lines (row strides of 128 bytes or
// more ran the products up to 1.4x slower; misaligned rows, two lines each, 2x slower).
// Blocks of at most 16 rows use tiles 0, 1, 4, 6, 7.
//
// The tile configuration belongs to the thread: every call loads it (another library, e.g.
// oneDNN inside PyTorch, may have loaded its own on this thread) and releases the tiles at the
// end. The process-wide permission (arch_prctl) is asked for by gemm_bf16.cc before this path is
// ever reported as supported. Compiled with AVX-512 F/BW/DQ/VL, -mavx512bf16, -mamx-tile,
// -mamx-bf16; includes nothing but intrinsics and the internal header.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "gemm_bf16_kernels.h"
#include "gemm_bf16_simd.h"

namespace rnnfast {
namespace gemm_bf16_detail {

namespace {

struct alignas(64) TileConfig {
  std::uint8_t palette_id;
  std::uint8_t start_row;
  std::uint8_t reserved[14];
  std::uint16_t colsb[16];
  std::uint8_t rows[16];
};

TileConfig make_config() {
  TileConfig cfg{};
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  return cfg;
}

// Writes the accumulator tile held in `tmp` (16 x 16 floats) to C rows [r0, r0 + rows) and
// columns [c0 + lo, c0 + hi): C = alpha * acc + beta * C.
void epilogue(const ProductArgs& p, const float* tmp, idx r0, idx rows, idx c0, idx lo, idx hi) {
  const __mmask16 m = static_cast<__mmask16>(mask16(hi) & ~mask16(lo));
  for (idx r = 0; r < rows; ++r)
    store_c(p.c + (r0 + r) * p.ldc + c0, m, _mm512_load_ps(tmp + 16 * r), p.alpha, p.beta);
}

// Stores accumulator tile T, rows [r0, r0 + 16) of the block and columns [c0, c0 + 16), to C.
#define RNNFAST_STORE_TILE(T, r0, c0)                                                      \
  do {                                                                                     \
    const idx rows_ = p.m - (r0) < 16 ? p.m - (r0) : 16;                                   \
    const idx lo_ = p.n0 > (c0) ? p.n0 - (c0) : 0;                                         \
    const idx hi_ = p.n1 - (c0) < 16 ? p.n1 - (c0) : 16;                                   \
    if (rows_ > 0 && lo_ < hi_) {                                                          \
      if (rows_ == 16 && lo_ == 0 && hi_ == 16 && p.alpha == 1.0f && p.beta == 0.0f) {     \
        _tile_stored(T, p.c + (r0) * p.ldc + (c0), p.ldc * static_cast<idx>(sizeof(float))); \
      } else {                                                                             \
        _tile_stored(T, tmp, 64);                                                          \
        epilogue(p, tmp, r0, rows_, c0, lo_, hi_);                                         \
      }                                                                                    \
    }                                                                                      \
  } while (0)

// The next panel of B (lines of 64 bytes at `at`), brought into L2 per_step lines at each depth
// step of the current panel's blocks, so that it is there when its blocks start instead of each
// first tile load of it waiting for L3 or memory. Default: nothing to bring.
struct NextPanels {
  const char* at = nullptr;
  idx lines = 0, per_step = 0, done = 0;
  void step() {
    for (idx e = done + per_step < lines ? done + per_step : lines; done < e; ++done)
      _mm_prefetch(at + done * 64, _MM_HINT_T1);
  }
};

// Rows [i0, i0 + 32) (or the last 16) of C x the columns of panel pj, over the whole depth.
inline void block(const ProductArgs& p, idx i0, idx pj, float* tmp, NextPanels& next) {
  constexpr idx stride = 64;  // bytes per tile row: tiles are contiguous
  const idx col0 = pj * kNr;
  const bf16* panel = p.b + pj * p.kp * kNr;
  const bf16* a0 = p.a + i0 * p.kp;  // tile (rows i0.., depth kb) at a0 + kb * 16
  if (i0 + 16 >= p.m) {  // one tile of rows
    _tile_zero(0);
    _tile_zero(1);
    for (idx kb = 0; kb < p.kp; kb += 32) {
      next.step();
      _tile_loadd(4, a0 + kb * 16, stride);
      _tile_loadd(6, panel + kb * kNr, stride);
      _tile_loadd(7, panel + kb * kNr + 512, stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
    }
    RNNFAST_STORE_TILE(0, i0, col0);
    RNNFAST_STORE_TILE(1, i0, col0 + 16);
    return;
  }
  const bf16* a1 = a0 + 16 * p.kp;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (idx kb = 0; kb < p.kp; kb += 32) {
    next.step();
    _tile_loadd(4, a0 + kb * 16, stride);
    _tile_loadd(6, panel + kb * kNr, stride);
    _tile_loadd(7, panel + kb * kNr + 512, stride);
    _tile_loadd(5, a1 + kb * 16, stride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  RNNFAST_STORE_TILE(0, i0, col0);
  RNNFAST_STORE_TILE(1, i0, col0 + 16);
  RNNFAST_STORE_TILE(2, i0 + 16, col0);
  RNNFAST_STORE_TILE(3, i0 + 16, col0 + 16);
}

// Panels in groups of kGroup; in a group, every block of 32 rows takes each panel of the group
// in turn, so that its rows of A (32 KiB at a depth of 512) stay in L1 while the group's panels
// come from L2 (+5-10% over panel by panel at 64 and 512 rows, depth 512). Deeper products (the
// weight gradients', whose depth is every row of the sequence, and the input projections at
// I > 512) go panel by panel: there 32 rows of A do not fit L1, and groups measured 5-10%
// slower (taking the depth in chunks, partial sums kept in C, 10-20% slower). Panel by panel,
// with at least kPrefetchRows rows, the next panel is brought into L2 while the blocks of the
// current one run (NextPanels): 1600 x 1024 x 4096 on two threads 6-19% faster, 512 rows 16%
// (bench/RESULTS.md); with groups (no faster) and fewer rows (a step's product, whose time goes
// to streaming B from L3 at the core's bandwidth whatever the order of the requests) it does
// not. Prefetching the next depth step's B tiles into L1 helped a stand-alone kernel loop by
// 10-15% but not the library's products (measured, removed). descending (the recurrent steps'
// products): the panels from the last to the first (ProductArgs).
constexpr idx kGroup = 8, kShallow = 512, kPrefetchRows = 128;

void product(const ProductArgs& p) {
  if (p.m <= 0 || p.n0 >= p.n1) return;
  static const TileConfig cfg = make_config();
  _tile_loadconfig(&cfg);
  alignas(64) float tmp[16 * 16];
  const idx first = p.n0 / kNr, end = (p.n1 + kNr - 1) / kNr;
  auto panel = [&](idx j) { return p.descending ? first + end - 1 - j : j; };
  if (p.kp > kShallow) {
    const bool prefetch = !p.descending && p.m >= kPrefetchRows;
    const idx lines = p.kp * kNr * idx(sizeof(bf16)) / 64;  // of a panel
    const idx depth_steps = (p.m + 31) / 32 * (p.kp / 32);  // of a panel's blocks
    for (idx j = first; j < end; ++j) {
      NextPanels next;
      if (prefetch && j + 1 < end)
        next = {reinterpret_cast<const char*>(p.b + (j + 1) * p.kp * kNr), lines,
                (lines + depth_steps - 1) / depth_steps};
      for (idx i0 = 0; i0 < p.m; i0 += 32) block(p, i0, panel(j), tmp, next);
    }
  } else {
    NextPanels none;
    for (idx g = first; g < end; g += kGroup) {
      const idx g_end = g + kGroup < end ? g + kGroup : end;
      for (idx i0 = 0; i0 < p.m; i0 += 32)
        for (idx j = g; j < g_end; ++j) block(p, i0, panel(j), tmp, none);
    }
  }
  _tile_release();
}

#undef RNNFAST_STORE_TILE

}  // namespace

extern const Bf16Kernels kBf16Amx{16, true, product};

}  // namespace gemm_bf16_detail
}  // namespace rnnfast
