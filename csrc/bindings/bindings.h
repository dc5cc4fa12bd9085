// Registration functions of the binding files (one per concept). Each gets the module as
// Entries (entry.h): every function it defines parks threads that arrive at interpreter exit.
#pragma once
#include "entry.h"

namespace rnnfast::bindings {

void bind_runtime(Entries& m);    // runtime.cc: threads, instruction sets, gemm (tests)
void bind_recurrent(Entries& m);  // recurrent.cc: RNN, LSTM, GRU
void bind_conv(Entries& m);       // conv.cc: Conv1D, MaxPool1D, global pooling
void bind_layer_norm_recurrent(Entries& m);  // layer_norm_recurrent.cc: LayerNorm LSTM, GRU
void bind_optimizer(Entries& m);   // optimizer.cc: Adam update, sum of squares (clipping)
void bind_embedding(Entries& m);   // embedding.cc: the embedding gradient (scatter-add)
void bind_dropout(Entries& m);     // dropout.cc: inverted dropout, counter-based masks
void bind_masks(Entries& m);       // masks.cc: zoneout and recurrent dropout masks
void bind_array_memory(Entries& m);  // array_memory.cc: NumPy's memory during training loops

}  // namespace rnnfast::bindings
