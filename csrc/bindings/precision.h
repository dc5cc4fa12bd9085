// The precision argument of the bindings ("float32" or "bfloat16"; rnnfast/gemm_bf16.h).
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "checks.h"
#include "rnnfast/gemm_bf16.h"

namespace rnnfast::bindings {

// precision: a str naming a Precision; bfloat16 needs float32 arrays (ref, named ref_name).
inline Precision precision_arg(const py::handle& obj, const py::array& ref, const char* ref_name) {
  if (!py::isinstance<py::str>(obj))
    throw py::type_error("precision: expected 'float32' or 'bfloat16', got " +
                         py::repr(obj).cast<std::string>());
  const std::string name = obj.cast<std::string>();
  Precision p;
  try {
    p = precision_from_name(name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  if (p == Precision::bfloat16 && is_double(ref))
    throw py::type_error(std::string("precision 'bfloat16': expected float32 arrays, got ") +
                         ref_name + " of dtype " + dtype_str(ref));
  return p;
}

}  // namespace rnnfast::bindings
