// Fused recurrent layers (tanh/relu RNN, LSTM, GRU): forward and backward over a whole sequence.
//
// Weights use PyTorch's layout and gate order (G gates of H units each):
//   w_ih [G*H, I], w_hh [G*H, H], b_ih [G*H], b_hh [G*H]   (biases may be null)
//   LSTM with a projection (PyTorch's proj_size P): w_hh [4H, P], w_hr [P, H], and
//   h = W_hr (o * tanh(c)) of P features, so y, h0 and h_n below have P columns instead of H.
//   G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n)
// Sequences are stored as T*B rows of a matrix; row(t, b) is t*B + b (time-major) or b*T + t
// (batch-first), for x [rows, I], y [rows, H] and every per-step workspace [rows, ...].
// States h0, c0, h_n, c_n are [B, H]; null h0/c0 means zeros.
//
// Variable lengths (post-padded batches): sequence b has lengths[b] valid steps (1..T). Steps at
// or past it leave its state unchanged and write zeros to y; h_n/c_n are its state after its last
// valid step. With reverse, sequence b runs from t = lengths[b]-1 down to 0; y keeps the original
// time positions.
#pragma once
#include <vector>

#include "rnnfast/buffer.h"
#include "rnnfast/common.h"
#include "rnnfast/gemm_bf16.h"

namespace rnnfast {

enum class Cell { rnn_tanh, rnn_relu, lstm, gru, gru_reset_before };

// Number of gates G of a cell.
constexpr int gate_count(Cell cell) {
  switch (cell) {
    case Cell::rnn_tanh:
    case Cell::rnn_relu: return 1;
    case Cell::lstm: return 4;
    case Cell::gru:
    case Cell::gru_reset_before: return 3;
  }
  return 0;
}

struct SeqShape {
  index_t T = 0, B = 0, I = 0, H = 0;
  index_t P = 0;  // LSTM with a projection: proj_size, the features of h; 0 = none (H)
  bool batch_first = false;
  bool reverse = false;
  std::vector<index_t> lengths;  // [B], each in 1..T; empty means all T

  index_t rows() const { return T * B; }
  // Features of h (of y, h0, h_n and the recurrent weights' columns): P, or H.
  index_t state_size() const { return P ? P : H; }
  index_t row(index_t t, index_t b) const { return batch_first ? b * T + t : t * B + b; }
  index_t length(index_t b) const { return lengths.empty() ? T : lengths[b]; }
  // Number of steps the longest sequence takes.
  index_t steps() const;
  // Whether sequence b takes step s (0-based, in processing order) and at which time index.
  bool active(index_t s, index_t b) const { return s < length(b); }
  index_t time_of(index_t s, index_t b) const { return reverse ? length(b) - 1 - s : s; }
};

template <typename T>
struct RecurrentWeights {
  const T* w_ih = nullptr;  // [G*H, I]
  const T* w_hh = nullptr;  // [G*H, H]
  const T* b_ih = nullptr;  // [G*H] or null
  const T* b_hh = nullptr;  // [G*H] or null
  // How every product with these weights is computed, forward and backward (float only for
  // bfloat16: operands rounded to bfloat16, float32 sums; gemm_bf16.h). Gate math, states
  // and everything outside the products stay T.
  Precision precision = Precision::float32;
  // LSTM only. [3, H] peepholes p_i, p_f, p_o (ONNX's P): i and f add p * c_{t-1} to their
  // pre-activations, o adds p_o * c_t. Null: none (the plain cell's kernels run).
  const T* w_peephole = nullptr;
  // LSTM only. [P, H] projection (PyTorch's weight_hr, SeqShape::P > 0); null: none.
  const T* w_hr = nullptr;
  // Zoneout (Krueger et al.): after the cell's step, h_t = d * h_{t-1} + (1 - d) * h~_t, and for
  // the LSTM c_t likewise with its own d. Training: d from the time-major masks zoneout_h
  // [T, B, state_size] and zoneout_c [T, B, H] (LSTM), element (t * B + b) * width + j whatever
  // the layout (batch_first or not); backward needs the same. Inference (null masks): d is the
  // constant zoneout (the expectation). Neither: none (the plain cell's kernels run).
  const T* zoneout_h = nullptr;
  const T* zoneout_c = nullptr;
  T zoneout = T(0);
  bool has_zoneout() const { return zoneout_h != nullptr || zoneout != T(0); }
  // Recurrent dropout (Keras' recurrent_dropout; training only): gate k's recurrent product
  // uses h_{t-1} * m_k instead of h_{t-1}, m = recurrent_mask [G, B, state_size] (element
  // (k * B + b) * state_size + j whatever the layout), the same at every step; backward needs
  // the same masks. The state carried to the next step (and the GRU's z * h) is not masked.
  // Null: none (the plain cell's kernels run).
  const T* recurrent_mask = nullptr;
  // bfloat16 on a hardware path: the caller's token for the current values of w_ih and w_hh
  // (pack_bf16_cached in gemm_bf16.h: a new token whenever they may have changed); the
  // forward's packings of them are then kept across calls. 0: packed at every call.
  std::uint64_t weights_token = 0;
};

// What a training forward keeps for backward: (G + 2) * rows * H values at most (hprev has
// P columns with a projection, which adds m).
template <typename T>
struct RecurrentWorkspace {
  Buffer<T> gates;  // [rows, G*H] activated gates: RNN h'; LSTM i,f,g,o; GRU r,z,n
  Buffer<T> hprev;  // [rows, H] the state each step started from (0 at padded rows)
  Buffer<T> extra;  // [rows, H] LSTM: c the step started from; GRU (reset after): W_hn h + b_hn
  Buffer<T> m;      // [rows, H] LSTM with a projection: o * tanh(c), the projection's input
  // The order of those rows: x's (SeqShape::row), or time-major (t * B + b) whatever x's layout
  // when time_major, the forward's choice where its steps write every row themselves (the LSTM
  // merging its input projection into the step product: never with a projection or recurrent
  // dropout), so that the rows of a step are contiguous for the forward's writes and for the
  // backward's reads (batch-first rows of a step lie T rows apart: a page each at T = 30,
  // G*H = 512).
  bool time_major = false;

  // The row of time step t of sequence b.
  index_t row(const SeqShape& s, index_t t, index_t b) const {
    return time_major ? t * s.B + b : s.row(t, b);
  }
  // The row that holds x's row r (r = s.row(t, b)).
  index_t row_of(const SeqShape& s, index_t r) const {
    return time_major && s.batch_first ? r % s.T * s.B + r / s.T : r;
  }
  // A shape whose row() is this workspace's (for the helpers that take a SeqShape).
  SeqShape layout(const SeqShape& s) const {
    SeqShape l = s;
    if (time_major) l.batch_first = false;
    return l;
  }
};

// y [rows, H] (every row written), h_n and c_n [B, H] (c0/c_n only for LSTM; c_n may be null);
// with a projection y, h0 and h_n have P columns.
// The outputs must not overlap the inputs.
// ws != null keeps what backward needs (training); ws == null keeps nothing.
template <typename T>
void recurrent_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                       const T* h0, const T* c0, T* y, T* h_n, T* c_n, RecurrentWorkspace<T>* ws);

// Bytes of input projection an inference call may hold before it projects a window of steps at
// a time (default 32 MiB, and about 1 MiB per thread where the threads project windows by blocks
// of units; a value set here replaces both, bytes <= 0 restores them). For tests, which need
// windows on small shapes, and benchmarks (a budget above every row: no windows).
void set_projection_window_bytes(index_t bytes);

// Gradients to write; a null pointer skips that gradient. All are overwritten (not accumulated).
template <typename T>
struct RecurrentGrads {
  T* x = nullptr;     // [rows, I] (0 at padded rows)
  T* h0 = nullptr;    // [B, H]
  T* c0 = nullptr;    // [B, H] (LSTM)
  T* w_ih = nullptr;  // [G*H, I]
  T* w_hh = nullptr;  // [G*H, H]
  T* b_ih = nullptr;  // [G*H]
  T* b_hh = nullptr;  // [G*H]
  T* w_peephole = nullptr;  // [3, H] (LSTM with peepholes)
  T* w_hr = nullptr;        // [P, H] (LSTM with a projection)
};

// dy [rows, H] (rows at padded positions are ignored), dh_n and dc_n [B, H] (dy and dh_n of P
// columns with a projection); each may be null
// (zeros). x, w and ws must be those of the training forward.
template <typename T>
void recurrent_backward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                        const RecurrentWorkspace<T>& ws, const T* dy, const T* dh_n,
                        const T* dc_n, const RecurrentGrads<T>& g);

}  // namespace rnnfast
