// The pybind11 module rnnfast._C: each binding file registers its functions here.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "rnnfast C++ kernels (private; use rnnfast.functional)";
  rnnfast::bindings::bind_runtime(m);
  rnnfast::bindings::bind_recurrent(m);
  rnnfast::bindings::bind_conv(m);
}
