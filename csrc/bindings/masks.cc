// Binding of the zoneout and recurrent dropout masks (rnnfast/recurrent_masks.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "entry.h"
#include "gil.h"
#include "rnnfast/recurrent_masks.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// A mask's shape: None (not drawn) or a tuple or list of ints >= 0.
std::optional<std::vector<index_t>> shape_arg(const py::handle& obj, const char* name) {
  if (obj.is_none()) return std::nullopt;
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj))
    throw py::type_error(std::string(name) + ": expected a shape (a tuple of ints) or None, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  std::vector<index_t> dims;
  for (const py::handle& d : obj) dims.push_back(int_arg(d, name, 0));
  checked_size(dims, name);
  return dims;
}

double rate_arg(double p, const char* name) {
  if (!(p >= 0.0 && p < 1.0))
    throw py::value_error(std::string(name) + ": expected a float in [0, 1), got " +
                          py::str(py::float_(p)).cast<std::string>());
  return p;
}

template <typename T>
py::tuple draw(const std::optional<std::vector<index_t>> (&shapes)[3], double zoneout,
               double recurrent_dropout, std::uint64_t seed) {
  std::optional<py::array_t<T>> out[3];
  T* data[3] = {nullptr, nullptr, nullptr};
  index_t n[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    if (!shapes[k]) continue;
    out[k].emplace(*shapes[k]);
    data[k] = out[k]->mutable_data();
    n[k] = static_cast<index_t>(out[k]->size());
  }
  {
    ReleaseGil release;
    recurrent_masks<T>(seed, zoneout, recurrent_dropout, n[0], data[0], n[1], data[1], n[2],
                       data[2]);
  }
  py::tuple result(3);
  for (int k = 0; k < 3; ++k)
    result[k] = out[k] ? py::object(*out[k]) : py::object(py::none());
  return result;
}

py::tuple masks_binding(const py::object& zoneout_h, const py::object& zoneout_c,
                        const py::object& recurrent, double zoneout, double recurrent_dropout,
                        const py::object& seed_obj, const py::object& dtype_obj) {
  const std::optional<std::vector<index_t>> shapes[3] = {
      shape_arg(zoneout_h, "zoneout_h"), shape_arg(zoneout_c, "zoneout_c"),
      shape_arg(recurrent, "recurrent")};
  rate_arg(zoneout, "zoneout");
  rate_arg(recurrent_dropout, "recurrent_dropout");
  const std::uint64_t seed = seed64_arg(seed_obj, "seed");
  const std::string dtype = choice_arg(dtype_obj, "dtype", {"float32", "float64"});
  return dtype == "float64" ? draw<double>(shapes, zoneout, recurrent_dropout, seed)
                            : draw<float>(shapes, zoneout, recurrent_dropout, seed);
}

}  // namespace

void bind_masks(Entries& m) {
  m.def("recurrent_masks", &masks_binding, py::arg("zoneout_h"), py::arg("zoneout_c"),
        py::arg("recurrent"), py::kw_only(), py::arg("zoneout"), py::arg("recurrent_dropout"),
        py::arg("seed"), py::arg("dtype"),
        "The zoneout and recurrent dropout masks of a training forward from one 64-bit seed "
        "(rnnfast/recurrent_masks.h): zoneout_h, zoneout_c, recurrent are each a shape (a tuple "
        "of ints) or None (not drawn); returns a tuple of three new C-contiguous arrays (or None) "
        "of dtype 'float32' or 'float64'. 1 where u < ceil(zoneout * 2**32) in the zoneout masks; "
        "1 / (1 - recurrent_dropout) where u >= ceil(recurrent_dropout * 2**32) in the recurrent "
        "mask, else 0; u: 32 bits of a SplitMix64 sequence per mask. The same arguments give the "
        "same masks at any thread count.");
}

}  // namespace rnnfast::bindings
