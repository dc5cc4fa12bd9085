// Bindings of the runtime: thread count, instruction sets, and the GEMM (for tests and benchmarks).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"
#include "rnnfast/threads.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

template <typename T>
py::array gemm_impl(const py::array& a_in, const py::array& b_in, bool trans_a, bool trans_b) {
  auto a = contiguous<T>(a_in);
  auto b = contiguous<T>(b_in);
  const index_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  const index_t Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
  if (K != Kb)
    throw py::value_error("b: inner dimension " + std::to_string(Kb) + " does not match a's " +
                          std::to_string(K));
  py::array_t<T> c({M, N});
  const T* pa = a.data();
  const T* pb = b.data();
  T* pc = c.mutable_data();
  {
    py::gil_scoped_release release;
    gemm<T>(trans_a, trans_b, M, N, K, T(1), pa, a.shape(1), pb, b.shape(1), T(0), pc, N);
  }
  return std::move(c);
}

py::array gemm_binding(const py::object& a_obj, const py::object& b_obj, bool trans_a,
                       bool trans_b) {
  py::array a = float_array(a_obj, "a");
  py::array b = float_array(b_obj, "b");
  check_same_dtype(b, "b", a, "a");
  check_ndim(a, "a", 2);
  check_ndim(b, "b", 2);
  if (is_double(a)) return gemm_impl<double>(a, b, trans_a, trans_b);
  return gemm_impl<float>(a, b, trans_a, trans_b);
}

}  // namespace

void bind_runtime(py::module_& m) {
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n: expected a number of threads >= 1, got " + std::to_string(n));
    set_num_threads(n);
  });
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("supported_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : supported_isas()) names.emplace_back(isa_name(isa));
    return names;
  });
  m.def("set_isa", [](const std::string& name) {
    try {
      set_active_isa(isa_from_name(name));
    } catch (const std::invalid_argument& e) {
      throw py::value_error(std::string("isa: ") + e.what());
    }
  });
  m.def("gemm", &gemm_binding, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false,
        "op(a) @ op(b) with the package's GEMM (float32 or float64, 2-D arrays).");
}

}  // namespace rnnfast::bindings
