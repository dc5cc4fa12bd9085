// Small batches (1..8 sequences) of the recurrent forward and backward: one serial time loop
// whose step is a single product of all the batch's rows with the recurrent weights (packed once
// per call into the GEMM's panels, read in an order that keeps most of them in L1 from one step
// to the next) followed by the gate math of each row, with no parallel region or GEMM driver per
// step. Every value is the one the general loops of recurrent_forward.cc / recurrent_backward.cc
// compute (the same chains of multiply-adds, the same step kernels), bit for bit; the cases
// these loops do not take (see small_batch_applies in recurrent_small.cc) return false and run
// the general loops.
#pragma once
#include "rnnfast/recurrent.h"

namespace rnnfast {

// The forward's time loop, called by recurrent_forward after it has set up h (h_n), c, the
// folded biases (bias [G*H], b_hn [H]) and the workspace's sizes. Returns false (having done
// nothing) when the small-batch loop does not apply.
template <typename T>
bool small_batch_forward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w, const T* x,
                         const T* bias, const T* b_hn, T* h, T* c, T* y,
                         RecurrentWorkspace<T>* ws);

// The backward's reverse time loop (recurrent_backward's loop_blocked): dgx [rows, G*H],
// dgh_n [rows, H] (GRU), dh [B, H] and dc [B, H] (LSTM) as there. Returns false (having done
// nothing) when the small-batch loop does not apply.
template <typename T>
bool small_batch_backward(Cell cell, const SeqShape& s, const RecurrentWeights<T>& w,
                          const RecurrentWorkspace<T>& ws, const T* dy, T* dgx, T* dgh_n, T* dh,
                          T* dc);

// Test hook: whether the small-batch loops may run (default true); false sends every call to
// the general loops (whose values they must equal).
void set_small_batch_enabled(bool enabled);

// Whether the small-batch forward may share its steps between two threads (each with half of
// the hidden units and its half of W_hh^T, one exchange of h per step in message lines; the
// same values). Default false: with both threads given a core (real-time priority), LSTM H = 64
// steps ran 1.6-2x slower than on one thread on a 2-core Intel machine (a cache line takes ~110
// ns from one core to the other there, against ~500 ns for a whole step on one core), and
// 1.2-2x slower on a 2-core AMD Zen 4 one, where a cache line's round trip between the cores
// took 100 to 380 ns from run to run (bench/RESULTS.md, sessions 11 and 12); without that
// priority, on a busy machine, the second thread rarely gets a core in time. The switch is for
// tests and for measuring it on other machines.
void set_small_batch_split(bool enabled);

}  // namespace rnnfast
