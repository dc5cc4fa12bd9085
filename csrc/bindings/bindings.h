// Registration functions of the binding files (one per concept).
#pragma once
#include <pybind11/pybind11.h>

namespace rnnfast::bindings {

void bind_runtime(pybind11::module_& m);    // runtime.cc: threads, instruction sets, gemm (tests)
void bind_recurrent(pybind11::module_& m);  // recurrent.cc: RNN, LSTM, GRU
void bind_conv(pybind11::module_& m);       // conv.cc: Conv1D, MaxPool1D, global pooling

}  // namespace rnnfast::bindings
