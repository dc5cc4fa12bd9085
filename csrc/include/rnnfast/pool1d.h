// 1-D max pooling (windows) and global max / average pooling over time, float and double.
//
// Shapes (channels_last: Keras; otherwise PyTorch):
//   x      : [B, L, C]     or [B, C, L]
//   y, arg : [B, L_out, C] or [B, C, L_out]   (max_pool1d)
//   y, arg : [B, C]                           (global pools, either layout)
// Window t covers input steps [t*stride - pad_left, t*stride - pad_left + pool_size) clipped to
// [0, L): padded positions never win, and every window must hold at least one input step.
// arg holds the input step of the FIRST maximum of each window (NaN counts as the maximum), and
// the backward passes send each output gradient there, accumulating where windows overlap.
#pragma once
#include <cstdint>

#include "rnnfast/common.h"

namespace rnnfast {

struct Pool1dShape {
  index_t batch = 0;      // B
  index_t length = 0;     // L (>= 1)
  index_t channels = 0;   // C
  index_t pool_size = 1;
  index_t stride = 1;
  index_t pad_left = 0;
  index_t l_out = 0;      // output steps (>= 1)
  bool channels_last = true;
};

// y = max over each window; arg (may be null) receives the step of the first maximum.
template <typename T>
void max_pool1d_forward(const Pool1dShape& s, const T* x, T* y, index_t* arg);

// Windows [t0, t1) of one sequence of max_pool1d_forward, from input steps held from step
// `first` on (channels last: step i's C values at xs + (i - first) * C; channels first: channel
// c's value at xs + c * ldx + (i - first)), which must include every step of those windows. ys
// and as (may be null) are the sequence's y and arg ([L_out, C] or [C, L_out]); rel is scratch
// of C int32 (channels last with as). The values and steps max_pool1d_forward writes there: a
// caller that produces its input a block at a time (conv1d_max_pool1d_forward) pools each
// block while it is in cache.
template <typename T>
void max_pool1d_windows(const Pool1dShape& s, const T* xs, index_t first, index_t ldx, index_t t0,
                        index_t t1, T* ys, index_t* as, std::int32_t* rel);

// dx (only written) = scatter-add of dy to the recorded steps.
template <typename T>
void max_pool1d_backward(const Pool1dShape& s, const index_t* arg, const T* dy, T* dx);

// Global pools: s.pool_size, s.stride, s.pad_left and s.l_out are ignored (one window of L).
template <typename T>
void global_max_pool1d_forward(const Pool1dShape& s, const T* x, T* y, index_t* arg);

template <typename T>
void global_max_pool1d_backward(const Pool1dShape& s, const index_t* arg, const T* dy, T* dx);

// y = mean over time.
template <typename T>
void global_avg_pool1d_forward(const Pool1dShape& s, const T* x, T* y);

// dx[b, t, c] = dy[b, c] / L.
template <typename T>
void global_avg_pool1d_backward(const Pool1dShape& s, const T* dy, T* dx);

}  // namespace rnnfast
