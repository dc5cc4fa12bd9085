// Binding of inverted dropout with a counter-based mask (rnnfast/dropout.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "bindings.h"
#include "checks.h"
#include "entry.h"
#include "gil.h"
#include "rnnfast/dropout.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

template <typename T>
py::array dropout_impl(const py::array& x_in, double p, std::uint64_t seed) {
  auto x = contiguous<T>(x_in);
  py::array_t<T> y(shape_of(x_in));
  const index_t n = static_cast<index_t>(x.size());
  const T* px = x.data();
  T* py_ = y.mutable_data();
  ReleaseGil release;
  dropout_apply<T>(n, px, p, seed, py_);
  return y;
}

py::array dropout_binding(const py::object& x_obj, double p, const py::object& seed_obj) {
  py::array x = float_array(x_obj, "x");
  if (!(p >= 0.0 && p < 1.0))
    throw py::value_error("p: expected a float in [0, 1) (p = 1 drops everything: zeros), got " +
                          py::str(py::float_(p)).cast<std::string>());
  const std::uint64_t seed = seed64_arg(seed_obj, "seed");
  return is_double(x) ? dropout_impl<double>(x, p, seed) : dropout_impl<float>(x, p, seed);
}

}  // namespace

void bind_dropout(Entries& m) {
  m.def("dropout", &dropout_binding, py::arg("x"), py::arg("p"), py::arg("seed"),
        "x * (keep ? 1 / (1 - p) : 0) with keep = bits(seed, i) >= ceil(p * 2**32) per element "
        "i (32 bits of the SplitMix64 sequence from seed; rnnfast/dropout.h): a new array of x's "
        "shape and dtype. The same (seed, shape) gives the same mask at any thread count; the "
        "backward is the same call on dy.");
}

}  // namespace rnnfast::bindings
