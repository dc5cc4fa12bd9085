// Max pooling over time windows and global max / average pooling, forward and backward.
// Work is split over sequences (and channels), never inside a sum: bitwise identical results for
// any thread count.
#include "rnnfast/pool1d.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "max_rows.h"
#include "rnnfast/threads.h"

namespace rnnfast {

namespace {

// Input steps [lo, hi) of window t, clipped to the input.
inline void window(const Pool1dShape& s, index_t t, index_t* lo, index_t* hi) {
  const index_t start = t * s.stride - s.pad_left;
  *lo = std::max<index_t>(start, 0);
  *hi = std::min<index_t>(start + s.pool_size, s.length);
}

// Per-sequence grain: about 16K elements per chunk of the pool.
index_t grain_for(index_t per_item) {
  return std::max<index_t>(1, (index_t(1) << 14) / std::max<index_t>(per_item, 1));
}

// Channels-last max over steps [lo, hi) (max_rows.h's max_rows_narrow), windows longer than
// int32 offsets reach with arg by a 64-bit loop.
template <typename T>
void max_rows(const T* first, index_t C, index_t lo, index_t hi, T* y, index_t* arg,
              std::int32_t* rel) {
  if (!arg || hi - lo <= std::numeric_limits<std::int32_t>::max()) {
    max_rows_narrow(first, C, lo, hi, y, arg, rel);
    return;
  }
  std::copy(first, first + C, y);
  std::fill(arg, arg + C, lo);
  for (index_t i = lo + 1; i < hi; ++i) {
    const T* row = first + (i - lo) * C;
    for (index_t c = 0; c < C; ++c) {
      const bool win = beats(row[c], y[c]);
      arg[c] = win ? i : arg[c];
      y[c] = win ? row[c] : y[c];
    }
  }
}

// Channels-first max over steps [lo, hi) of one channel's row, from `first` (step lo) on.
template <typename T>
void max_span(const T* first, index_t lo, index_t hi, T* y, index_t* arg) {
  T best = first[0];
  index_t at = lo;
  for (index_t i = lo + 1; i < hi; ++i) {
    if (beats(first[i - lo], best)) {
      best = first[i - lo];
      at = i;
    }
  }
  *y = best;
  if (arg) *arg = at;
}

}  // namespace

template <typename T>
void max_pool1d_windows(const Pool1dShape& s, const T* xs, index_t first, index_t ldx, index_t t0,
                        index_t t1, T* ys, index_t* as, std::int32_t* rel) {
  const index_t C = s.channels, Lo = s.l_out;
  for (index_t t = t0; t < t1; ++t) {
    index_t lo, hi;
    window(s, t, &lo, &hi);
    if (s.channels_last) {
      max_rows(xs + (lo - first) * C, C, lo, hi, ys + t * C, as ? as + t * C : nullptr, rel);
    } else {
      for (index_t c = 0; c < C; ++c)
        max_span(xs + c * ldx + (lo - first), lo, hi, ys + c * Lo + t,
                 as ? as + c * Lo + t : nullptr);
    }
  }
}

template <typename T>
void max_pool1d_forward(const Pool1dShape& s, const T* x, T* y, index_t* arg) {
  const index_t L = s.length, C = s.channels, Lo = s.l_out;
  parallel_for(s.batch, grain_for(L * C), [&](index_t b0, index_t b1) {
    std::vector<std::int32_t> rel(arg && s.channels_last ? static_cast<std::size_t>(C) : 0);
    for (index_t b = b0; b < b1; ++b)
      max_pool1d_windows(s, x + b * L * C, 0, L, 0, Lo, y + b * Lo * C,
                         arg ? arg + b * Lo * C : nullptr, rel.data());
  });
}

template <typename T>
void max_pool1d_backward(const Pool1dShape& s, const index_t* arg, const T* dy, T* dx) {
  const index_t L = s.length, C = s.channels, Lo = s.l_out;
  parallel_for(s.batch, grain_for(L * C), [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      T* dxs = dx + b * L * C;
      const T* dys = dy + b * Lo * C;
      const index_t* as = arg + b * Lo * C;
      std::fill(dxs, dxs + L * C, T(0));
      if (s.channels_last) {
        for (index_t t = 0; t < Lo; ++t)
          for (index_t c = 0; c < C; ++c) dxs[as[t * C + c] * C + c] += dys[t * C + c];
      } else {
        for (index_t c = 0; c < C; ++c)
          for (index_t t = 0; t < Lo; ++t) dxs[c * L + as[c * Lo + t]] += dys[c * Lo + t];
      }
    }
  });
}

template <typename T>
void global_max_pool1d_forward(const Pool1dShape& s, const T* x, T* y, index_t* arg) {
  const index_t L = s.length, C = s.channels;
  parallel_for(s.batch, grain_for(L * C), [&](index_t b0, index_t b1) {
    std::vector<std::int32_t> rel(arg && s.channels_last ? static_cast<std::size_t>(C) : 0);
    for (index_t b = b0; b < b1; ++b) {
      const T* xs = x + b * L * C;
      index_t* as = arg ? arg + b * C : nullptr;
      if (s.channels_last) {
        max_rows(xs, C, 0, L, y + b * C, as, rel.data());
      } else {
        for (index_t c = 0; c < C; ++c) max_span(xs + c * L, 0, L, y + b * C + c, as ? as + c : nullptr);
      }
    }
  });
}

template <typename T>
void global_max_pool1d_backward(const Pool1dShape& s, const index_t* arg, const T* dy, T* dx) {
  const index_t L = s.length, C = s.channels;
  parallel_for(s.batch, grain_for(L * C), [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      T* dxs = dx + b * L * C;
      std::fill(dxs, dxs + L * C, T(0));
      for (index_t c = 0; c < C; ++c) {
        const index_t i = arg[b * C + c];
        dxs[s.channels_last ? i * C + c : c * L + i] = dy[b * C + c];
      }
    }
  });
}

template <typename T>
void global_avg_pool1d_forward(const Pool1dShape& s, const T* x, T* y) {
  const index_t L = s.length, C = s.channels;
  parallel_for(s.batch, grain_for(L * C), [&](index_t b0, index_t b1) {
    std::vector<double> acc(static_cast<std::size_t>(C));
    for (index_t b = b0; b < b1; ++b) {
      const T* xs = x + b * L * C;
      std::fill(acc.begin(), acc.end(), 0.0);
      if (s.channels_last) {
        for (index_t t = 0; t < L; ++t)
          for (index_t c = 0; c < C; ++c) acc[c] += xs[t * C + c];
      } else {
        for (index_t c = 0; c < C; ++c)
          for (index_t t = 0; t < L; ++t) acc[c] += xs[c * L + t];
      }
      for (index_t c = 0; c < C; ++c) y[b * C + c] = static_cast<T>(acc[c] / static_cast<double>(L));
    }
  });
}

template <typename T>
void global_avg_pool1d_backward(const Pool1dShape& s, const T* dy, T* dx) {
  const index_t L = s.length, C = s.channels;
  parallel_for(s.batch, grain_for(L * C), [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      T* dxs = dx + b * L * C;
      if (s.channels_last) {
        for (index_t c = 0; c < C; ++c) dxs[c] = dy[b * C + c] / static_cast<T>(L);
        for (index_t t = 1; t < L; ++t) std::copy(dxs, dxs + C, dxs + t * C);
      } else {
        for (index_t c = 0; c < C; ++c)
          std::fill(dxs + c * L, dxs + (c + 1) * L, dy[b * C + c] / static_cast<T>(L));
      }
    }
  });
}

#define RNNFAST_POOL1D_INSTANTIATE(T)                                                       \
  template void max_pool1d_forward<T>(const Pool1dShape&, const T*, T*, index_t*);         \
  template void max_pool1d_windows<T>(const Pool1dShape&, const T*, index_t, index_t, index_t, \
                                      index_t, T*, index_t*, std::int32_t*);               \
  template void max_pool1d_backward<T>(const Pool1dShape&, const index_t*, const T*, T*);  \
  template void global_max_pool1d_forward<T>(const Pool1dShape&, const T*, T*, index_t*);  \
  template void global_max_pool1d_backward<T>(const Pool1dShape&, const index_t*, const T*, \
                                              T*);                                          \
  template void global_avg_pool1d_forward<T>(const Pool1dShape&, const T*, T*);            \
  template void global_avg_pool1d_backward<T>(const Pool1dShape&, const T*, T*);

RNNFAST_POOL1D_INSTANTIATE(float)
RNNFAST_POOL1D_INSTANTIATE(double)
#undef RNNFAST_POOL1D_INSTANTIATE

}  // namespace rnnfast
