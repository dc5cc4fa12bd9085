// Conv1D forward and backward (PyTorch's cross-correlation), float and double.
//
// Shapes (channels_last: Keras; otherwise PyTorch):
//   x  : [B, L, C_in]      or [B, C_in, L]
//   w  : [C_out, C_in / groups, K]   (PyTorch's layout)
//   b  : [C_out] or null
//   y  : [B, L_out, C_out] or [B, C_out, L_out]
//   y[b, t, o] = b[o] + sum_{c in group(o), k} w[o, c, k] * xpad[b, t*stride + k*dilation, c]
// where xpad is x with pad_left zeros before it and enough zeros after it for l_out outputs.
//
// Work is split into fixed (sequence, time-block) items that depend on the shape only, and every
// reduction over batch and time (dw, db) runs in an order fixed by the shape: results are bitwise
// identical for any thread count.
#pragma once
#include "rnnfast/common.h"
#include "rnnfast/gemm_bf16.h"
#include "rnnfast/pool1d.h"

namespace rnnfast {

// How conv1d_forward computes: automatic takes Winograd's minimal filtering
// (kernels/conv1d_winograd.h: fewer products, a few times the direct float32 error, within the
// numerical contract) where it is supported and measured faster, else the direct GEMM over
// patches; direct and winograd force one (winograd on a shape it does not support:
// std::invalid_argument). The backward is the same for all three.
enum class ConvAlgorithm { automatic = 0, direct = 1, winograd = 2 };

struct Conv1dShape {
  index_t batch = 0;     // B
  index_t length = 0;    // L, input steps (>= 1)
  index_t c_in = 0;      // C_in (a multiple of groups)
  index_t c_out = 0;     // C_out (a multiple of groups)
  index_t kernel = 1;    // K
  index_t stride = 1;
  index_t dilation = 1;
  index_t groups = 1;
  index_t pad_left = 0;  // zeros before the input
  index_t l_out = 0;     // output steps (>= 1); the right padding is implied
  bool channels_last = true;
  // bfloat16 (float only): x, w and dy rounded to bfloat16 once per call, every product of
  // them summed in float32; the bias, y and every gradient stay float32.
  Precision precision = Precision::float32;
  // ReLU on the output: y = max(conv + b + add, 0) in the forward's last pass over each block
  // (NumPy's maximum: NaN stays NaN, -0 becomes +0); the backward then takes y and
  // differentiates through it with dy * (y > 0), as an activation layer after the convolution
  // would.
  bool relu = false;
  ConvAlgorithm algorithm = ConvAlgorithm::automatic;  // the forward's (above)
};

// Why conv1d_forward cannot take ConvAlgorithm::winograd for s (float64 arrays when `float64`):
// what it needs, e.g. "stride=1"; "" when it can.
const char* conv1d_winograd_refusal(const Conv1dShape& s, bool float64);

// y = (conv(x, w) + b) + add. b may be null (no bias), add (y's shape and layout) may be null
// (nothing added): a residual or skip sum in the same pass over each block of y, the same
// values as adding it afterwards. y is only written and must not overlap add.
template <typename T>
void conv1d_forward(const Conv1dShape& s, const T* x, const T* w, const T* b, T* y,
                    const T* add = nullptr);

// A convolution followed by a max pool (p: its shape; its input is the convolution's output y,
// p.length = s.l_out, p.channels = s.c_out, the same layout) without storing y: py (the pool's
// output) and arg (may be null: its record, max_pool1d_forward's) are those of
// max_pool1d_forward over conv1d_forward's y (no add), bit for bit. Each block of y is computed
// into a thread's buffer (the output steps of some consecutive windows, recomputed where
// windows overlap; whole sequences where conv1d_forward takes Winograd's path) and pooled while
// in cache. conv1d_pool_backward (y null) then differentiates both from py and arg.
template <typename T>
void conv1d_max_pool1d_forward(const Conv1dShape& s, const Pool1dShape& p, const T* x, const T* w,
                               const T* b, T* py, index_t* arg);

// Gradients of sum(y * dy): dx [like x] (plus add_dx, x's shape, if not null: another path's
// gradient of x summed in the same pass), dw [like w], db [C_out] (db may be null: no bias).
// All outputs are only written. With s.relu, y is the forward's output (required) and the
// gradients are those of sum(y * dy) through the ReLU (dy * (y > 0) into the products).
template <typename T>
void conv1d_backward(const Conv1dShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db, const T* add_dx = nullptr, const T* y = nullptr);

// The gradients of a convolution followed by a max pool (p: its shape; its input is y, of this
// convolution's output shape and layout), from dpy, the gradient of the pool's output: the same
// as max_pool1d_backward into dy, then conv1d_backward, without the dense dy. arg is the pool's
// forward record; with s.relu, py (the pool's output, [p.batch, p.l_out, C_out] in its layout)
// gives the ReLU's mask at each winner (dpy * (py > 0)) and y (the convolution's output) serves
// the dense route (y null: never stored, conv1d_max_pool1d_forward's; the dense route then takes
// the mask from py too). Channels last, one group, dilation 1, no padding and float32 products sum
// only the winners' products (1/pool_size of the dense backward's; conv1d_pooled.h), when x and
// w are finite (else the dense route: its zero products of infinities are NaN).
template <typename T>
void conv1d_pool_backward(const Conv1dShape& s, const Pool1dShape& p, const index_t* arg,
                          const T* py, const T* dpy, const T* x, const T* w, T* dx, T* dw, T* db,
                          const T* add_dx = nullptr, const T* y = nullptr);

// WaveNet's gated activation over `rows` rows of 2C values, the filter pre-activation first and
// the gate second: z[r, c] = tanh(a[r, c]) * sigmoid(a[r, C + c]) (z is [rows, C], only
// written). One pass instead of the several of an array library; the backward recomputes the
// two nonlinearities from a (nothing else is kept):
//   da[r, c] = dz g (1 - f^2), da[r, C + c] = dz f g (1 - g), f = tanh, g = sigmoid.
// Rows are split between the threads; each value depends on its own row only.
template <typename T>
void gated_activation_forward(index_t rows, index_t C, const T* a, T* z);
template <typename T>
void gated_activation_backward(index_t rows, index_t C, const T* a, const T* dz, T* da);

}  // namespace rnnfast
