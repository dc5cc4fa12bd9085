// Fused LayerNorm LSTM and LayerNorm GRU (Ba et al., 2016, as Haste defines them): forward and
// backward over a whole sequence.
//
// LN(v) = (v - mean(v)) / sqrt(var(v) + eps) over the G*H features of a row (biased variance).
// LSTM (gates i, f, g, o):
//   a = LN(x W_ih^T) * ln_ih + LN(h W_hh^T) * ln_hh + b_ih + b_hh
//   i, f, g, o = sigma, sigma, tanh, sigma(a);  c' = f c + i g  (carried unnormalised)
//   h' = o tanh(LN_H(c') * ln_c_weight + ln_c_bias)
// GRU (gates r, z, n; reset after):
//   gi = LN(x W_ih^T) * ln_ih + b_ih;  gh = LN(h W_hh^T) * ln_hh + b_hh
//   r, z = sigma(gi_rz + gh_rz);  n = tanh(gi_n + r gh_n);  h' = (1 - z) n + z h
//
// Shapes, layouts, lengths, reverse and batch_first as in recurrent.h (SeqShape). A layer norm
// needs a whole row of a product, so the time loop splits its work by sequences (rows), never
// by hidden units: each row's product is followed, in the same thread, by its statistics and
// gate math (the normalisation is the step's epilogue, not a pass of its own).
#pragma once
#include <cstddef>

#include "rnnfast/buffer.h"
#include "rnnfast/common.h"
#include "rnnfast/recurrent.h"

namespace rnnfast {

enum class LayerNormCell { lstm, gru };

constexpr int gate_count(LayerNormCell cell) { return cell == LayerNormCell::lstm ? 4 : 3; }

template <typename T>
struct LayerNormWeights {
  const T* w_ih = nullptr;   // [G*H, I]
  const T* w_hh = nullptr;   // [G*H, H]
  const T* b_ih = nullptr;   // [G*H] or null (zeros)
  const T* b_hh = nullptr;   // [G*H] or null (zeros)
  const T* ln_ih = nullptr;  // [G*H] gain of LN(x W_ih^T), or null (ones)
  const T* ln_hh = nullptr;  // [G*H] gain of LN(h W_hh^T), or null (ones)
  const T* ln_c_weight = nullptr;  // LSTM: [H] gain of LN(c'), or null (ones)
  const T* ln_c_bias = nullptr;    // LSTM: [H] bias of LN(c'), or null (zeros)
  T eps = T(1e-5);                 // > 0
  // Zoneout, as the plain cells' (RecurrentWeights in recurrent.h, the same rule and masks):
  // after the cell's step h_t = d * h_{t-1} + (1 - d) * h~_t, and for the LSTM c_t likewise
  // with its own d (h~_t uses the new c~_t). Training: d from the time-major masks zoneout_h
  // and zoneout_c (LSTM) [T, B, H], element (t * B + b) * H + j whatever the layout; backward
  // needs the same. Inference (null masks): d is the constant zoneout. Neither: none.
  const T* zoneout_h = nullptr;
  const T* zoneout_c = nullptr;
  T zoneout = T(0);
  bool has_zoneout() const { return zoneout_h != nullptr || zoneout != T(0); }
};

// What a training forward keeps for backward: (2 G + 2) * rows * H + 4 * rows values (LSTM;
// the GRU has no c). The activated gates are not kept: backward computes them again from the
// normalised rows. The forward sizes the buffers with detail::fit (rnnfast/scratch_cache.h):
// a workspace of an earlier call, kept by the caller, is reused when large enough (its buffers
// may then hold more than the call uses; what a call reads, it has written).
template <typename T>
struct LayerNormWorkspace {
  Buffer<T> ih;     // [rows, G*H] LN(x W_ih^T) before its gain
  Buffer<T> hh;     // [rows, G*H] LN(h W_hh^T) before its gain
  Buffer<T> hprev;  // [rows, H] the state each step started from
  Buffer<T> cprev;  // [rows, H] LSTM: the cell state each step started from
  Buffer<T> stats;  // [rows, 4] 1/std of the ih row, of the hh row; LSTM: mean, 1/std of c'
                    // (every padded row is zero)
  std::size_t bytes() const {  // the memory held (a detail::ScratchCache's bound)
    return static_cast<std::size_t>(ih.size() + hh.size() + hprev.size() + cprev.size() +
                                    stats.size()) *
           sizeof(T);
  }
};

// y [rows, H] (every row written), h_n and c_n [B, H] (c0/c_n LSTM only; c_n may be null).
// ws != null keeps what backward needs (training).
template <typename T>
void layer_norm_recurrent_forward(LayerNormCell cell, const SeqShape& s,
                                  const LayerNormWeights<T>& w, const T* x, const T* h0,
                                  const T* c0, T* y, T* h_n, T* c_n, LayerNormWorkspace<T>* ws);

// Gradients to write; a null pointer skips that gradient. All are overwritten.
template <typename T>
struct LayerNormGrads {
  T* x = nullptr;     // [rows, I] (0 at padded rows)
  T* h0 = nullptr;    // [B, H]
  T* c0 = nullptr;    // [B, H] (LSTM)
  T* w_ih = nullptr;  // [G*H, I]
  T* w_hh = nullptr;  // [G*H, H]
  T* b_ih = nullptr;  // [G*H]
  T* b_hh = nullptr;  // [G*H]
  T* ln_ih = nullptr;        // [G*H]
  T* ln_hh = nullptr;        // [G*H]
  T* ln_c_weight = nullptr;  // [H] (LSTM)
  T* ln_c_bias = nullptr;    // [H] (LSTM)
};

// dy [rows, H] (padded rows ignored), dh_n, dc_n [B, H]; each may be null (zeros). x, w and ws
// must be those of the training forward.
template <typename T>
void layer_norm_recurrent_backward(LayerNormCell cell, const SeqShape& s,
                                   const LayerNormWeights<T>& w, const T* x,
                                   const LayerNormWorkspace<T>& ws, const T* dy, const T* dh_n,
                                   const T* dc_n, const LayerNormGrads<T>& g);

}  // namespace rnnfast
