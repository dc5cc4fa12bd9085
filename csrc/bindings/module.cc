// The pybind11 module rnnfast._C: each binding file registers its functions here.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "rnnfast C++ kernels (private; use rnnfast.functional)";
  rnnfast::bindings::Entries entries(m);
  rnnfast::bindings::bind_runtime(entries);
  rnnfast::bindings::bind_recurrent(entries);
  rnnfast::bindings::bind_conv(entries);
  rnnfast::bindings::bind_layer_norm_recurrent(entries);
  rnnfast::bindings::bind_optimizer(entries);
  rnnfast::bindings::bind_embedding(entries);
  rnnfast::bindings::bind_dropout(entries);
  rnnfast::bindings::bind_masks(entries);
  rnnfast::bindings::bind_array_memory(entries);
}
