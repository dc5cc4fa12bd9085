// Bindings of the optimisers' one-pass kernels (rnnfast/optimizer.h): the Adam update in place
// and the sum of squares of gradient clipping.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "entry.h"
#include "gil.h"
#include "rnnfast/optimizer.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

template <typename T>
void adam_impl(py::array& w, const py::array& g_in, py::array& m, py::array& v, py::array* v_max,
               const AdamStep<T>& s) {
  py::array g = py::array(contiguous<T>(g_in));
  bool clash = false;
  const py::array* outs[] = {&w, &m, &v, v_max};
  for (const py::array* out : outs)
    if (out && overlap(g, *out)) clash = true;
  if (clash) g = py::array(py::array_t<T, py::array::c_style>(g.attr("copy")()));
  const index_t n = static_cast<index_t>(w.size());
  T* pw = static_cast<T*>(w.mutable_data());
  const T* pg = static_cast<const T*>(g.data());
  T* pm = static_cast<T*>(m.mutable_data());
  T* pv = static_cast<T*>(v.mutable_data());
  T* px = v_max ? static_cast<T*>(v_max->mutable_data()) : nullptr;
  if (n > 0) {
    ReleaseGil release;
    adam_update<T>(n, s, pw, pg, pm, pv, px);
  }
}

template <typename T>
AdamStep<T> adam_step(AdamRule rule, double beta1, double one_minus_beta1, double beta2,
                      double one_minus_beta2, double lr, double eps, double bias2_sqrt,
                      double grad_mul, double grad_div) {
  AdamStep<T> s;
  s.rule = rule;
  s.beta1 = static_cast<T>(beta1);
  s.one_minus_beta1 = static_cast<T>(one_minus_beta1);
  s.beta2 = static_cast<T>(beta2);
  s.one_minus_beta2 = static_cast<T>(one_minus_beta2);
  s.lr = static_cast<T>(lr);
  s.eps = static_cast<T>(eps);
  s.bias2_sqrt = static_cast<T>(bias2_sqrt);
  s.grad_mul = static_cast<T>(grad_mul);
  s.grad_div = static_cast<T>(grad_div);
  s.scale_grad = !(s.grad_mul == T(1) && s.grad_div == T(1));  // (g * 1) / 1 is g
  return s;
}

void adam_binding(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj,
                  const py::object& v_obj, const py::object& v_max_obj, const py::object& rule_obj,
                  double beta1, double one_minus_beta1, double beta2, double one_minus_beta2,
                  double lr, double eps, double bias2_sqrt, double grad_mul, double grad_div) {
  const AdamRule rule =
      choice_arg(rule_obj, "rule", {"keras", "torch"}) == "keras" ? AdamRule::keras
                                                                  : AdamRule::torch;
  py::array w = in_place(w_obj, "w", nullptr);
  py::array g = float_array(g_obj, "g");
  check_same_dtype(g, "g", w, "w");
  check_shape(g, "g", shape_of(w), "the shape of w");
  py::array m = in_place(m_obj, "m", &w);
  py::array v = in_place(v_obj, "v", &w);
  std::optional<py::array> v_max;
  if (!v_max_obj.is_none()) v_max = in_place(v_max_obj, "v_max", &w);
  const std::vector<std::pair<const char*, const py::array*>> outs = {
      {"w", &w}, {"m", &m}, {"v", &v}, {"v_max", v_max ? &*v_max : nullptr}};
  for (std::size_t i = 0; i < outs.size(); ++i)
    for (std::size_t j = i + 1; j < outs.size(); ++j)
      if (outs[i].second && outs[j].second && overlap(*outs[i].second, *outs[j].second))
        throw py::value_error(std::string(outs[j].first) + ": shares memory with " +
                              outs[i].first + "; every array updated in place must be its own");
  if (is_double(w))
    adam_impl<double>(w, g, m, v, v_max ? &*v_max : nullptr,
                      adam_step<double>(rule, beta1, one_minus_beta1, beta2, one_minus_beta2, lr,
                                        eps, bias2_sqrt, grad_mul, grad_div));
  else
    adam_impl<float>(w, g, m, v, v_max ? &*v_max : nullptr,
                     adam_step<float>(rule, beta1, one_minus_beta1, beta2, one_minus_beta2, lr,
                                      eps, bias2_sqrt, grad_mul, grad_div));
}

template <typename T>
double sum_squares_impl(const py::array& x_in) {
  auto x = contiguous<T>(x_in);
  const T* px = x.data();
  const index_t n = static_cast<index_t>(x.size());
  ReleaseGil release;
  return sum_squares<T>(n, px);
}

double sum_squares_binding(const py::object& x_obj) {
  py::array x = float_array(x_obj, "x");
  return is_double(x) ? sum_squares_impl<double>(x) : sum_squares_impl<float>(x);
}

}  // namespace

void bind_optimizer(Entries& m) {
  m.def("adam_update", &adam_binding, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"),
        py::arg("v_max"), py::kw_only(), py::arg("rule"), py::arg("beta1"),
        py::arg("one_minus_beta1"), py::arg("beta2"), py::arg("one_minus_beta2"), py::arg("lr"),
        py::arg("eps"), py::arg("bias2_sqrt") = 1.0, py::arg("grad_mul") = 1.0,
        py::arg("grad_div") = 1.0,
        "One Adam step in place over w, m, v (and v_max: amsgrad; None without) from the "
        "gradient g, every constant already rounded to w's dtype; rule 'keras' or 'torch' "
        "(rnnfast/optimizer.h gives each rule's expressions).");
  m.def("sum_squares", &sum_squares_binding, py::arg("x"),
        "sum(x**2) over every element of a float32/float64 array, accumulated in float64.");
}

}  // namespace rnnfast::bindings
