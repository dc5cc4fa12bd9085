// Bindings of the optimisers' one-pass kernels (rnnfast/optimizer.h): the Adam update in place
// (of one parameter, or of a list of them in one call) and the sum of squares of gradient
// clipping.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <optional>
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

// g replaced by a copy when it shares memory with one of its update's outputs (w, m, v, v_max;
// null: none): the kernel reads every gradient value before its update writes there.
template <typename T>
void own_gradient(py::array& g, const py::array& w, const py::array& m, const py::array& v,
                  const py::array* v_max) {
  const py::array* outs[] = {&w, &m, &v, v_max};
  for (const py::array* out : outs)
    if (out && overlap(g, *out)) {
      g = py::array(py::array_t<T, py::array::c_style>(g.attr("copy")()));
      return;
    }
}

template <typename T>
void adam_impl(py::array& w, const py::array& g_in, py::array& m, py::array& v, py::array* v_max,
               const AdamStep<T>& s) {
  py::array g = py::array(contiguous<T>(g_in));
  own_gradient<T>(g, w, m, v, v_max);
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

AdamRule rule_arg(const py::object& rule_obj) {
  return choice_arg(rule_obj, "rule", {"keras", "torch"}) == "keras" ? AdamRule::keras
                                                                     : AdamRule::torch;
}

// One parameter's arrays, checked: w, m, v (and v_max) updated in place, g read.
struct AdamArrays {
  py::array w, g, m, v;
  std::optional<py::array> v_max;
};

// The arrays of one update, checked as adam_update checks them; names: those of w, g, m, v and
// v_max in the messages ("w", ... or "ws[2]", ...; in_place's messages call ws[i] "w").
AdamArrays adam_arrays(const py::handle& w_obj, const py::handle& g_obj, const py::handle& m_obj,
                       const py::handle& v_obj, const py::handle& v_max_obj,
                       const std::string (&names)[5]) {
  AdamArrays a;
  a.w = in_place(w_obj, names[0].c_str(), nullptr);
  a.g = float_array(g_obj, names[1].c_str());
  check_same_dtype(a.g, names[1].c_str(), a.w, names[0].c_str());
  check_shape(a.g, names[1].c_str(), shape_of(a.w), ("the shape of " + names[0]).c_str());
  a.m = in_place(m_obj, names[2].c_str(), &a.w);
  a.v = in_place(v_obj, names[3].c_str(), &a.w);
  if (!v_max_obj.is_none()) a.v_max = in_place(v_max_obj, names[4].c_str(), &a.w);
  const std::pair<const std::string*, const py::array*> in_place_ones[] = {
      {&names[0], &a.w}, {&names[2], &a.m}, {&names[3], &a.v},
      {&names[4], a.v_max ? &*a.v_max : nullptr}};
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = i + 1; j < 4; ++j)
      if (in_place_ones[i].second && in_place_ones[j].second &&
          overlap(*in_place_ones[i].second, *in_place_ones[j].second))
        throw py::value_error(*in_place_ones[j].first + ": shares memory with " +
                              *in_place_ones[i].first +
                              "; every array updated in place must be its own");
  return a;
}

// The update of checked arrays with the constants c = (beta1, one_minus_beta1, beta2,
// one_minus_beta2, lr, eps, bias2_sqrt, grad_mul, grad_div), each rounded to w's dtype.
void adam_run(AdamArrays& a, AdamRule rule, const std::array<double, 9>& c) {
  py::array* v_max = a.v_max ? &*a.v_max : nullptr;
  if (is_double(a.w))
    adam_impl<double>(a.w, a.g, a.m, a.v, v_max,
                      adam_step<double>(rule, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                                        c[8]));
  else
    adam_impl<float>(a.w, a.g, a.m, a.v, v_max,
                     adam_step<float>(rule, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                                      c[8]));
}

void adam_binding(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj,
                  const py::object& v_obj, const py::object& v_max_obj, const py::object& rule_obj,
                  double beta1, double one_minus_beta1, double beta2, double one_minus_beta2,
                  double lr, double eps, double bias2_sqrt, double grad_mul, double grad_div) {
  const AdamRule rule = rule_arg(rule_obj);
  static const std::string names[5] = {"w", "g", "m", "v", "v_max"};
  AdamArrays a = adam_arrays(w_obj, g_obj, m_obj, v_obj, v_max_obj, names);
  adam_run(a, rule,
           {beta1, one_minus_beta1, beta2, one_minus_beta2, lr, eps, bias2_sqrt, grad_mul,
            grad_div});
}

// A list or tuple argument of `count` entries (count < 0: any), or a TypeError / ValueError
// naming it.
py::sequence list_arg(const py::object& obj, const char* name, py::ssize_t count,
                      const char* what) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw py::type_error(std::string(name) + ": expected a list or tuple of " + what + ", got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
  if (count >= 0 && static_cast<py::ssize_t>(py::len(s)) != count)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(count) + " " +
                          what + " (one per entry of ws), got " + std::to_string(py::len(s)));
  return s;
}

// Every update of checked arrays of one dtype T in one kernel call (one parallel pass over all
// their elements), when that gives what one call each in list order gives: no array of one
// parameter shares memory with an array of another (else a later gradient or state could be an
// earlier parameter's, read updated by the calls; two gradients may share memory). Returns
// false, with nothing updated, when they do.
template <typename T>
bool adam_many_typed(std::vector<AdamArrays>& arrays, AdamRule rule,
                     const std::vector<std::array<double, 9>>& cs) {
  const std::size_t count = arrays.size();
  std::vector<py::array> gs;  // contiguous gradients (copies of those that need one)
  gs.reserve(count);
  struct Owned {
    Span span;
    std::size_t parameter;
    bool gradient;  // (gradients are only read: two may share memory)
  };
  std::vector<Owned> spans;
  spans.reserve(5 * count);
  for (std::size_t i = 0; i < count; ++i) {
    AdamArrays& a = arrays[i];
    gs.push_back(py::array(contiguous<T>(a.g)));
    const py::array* all[] = {&a.w, &gs.back(), &a.m, &a.v, a.v_max ? &*a.v_max : nullptr};
    for (const py::array* x : all)
      if (x && x->nbytes() > 0) spans.push_back({span_of(*x), i, x == &gs.back()});
  }
  for (std::size_t i = 0; i < spans.size(); ++i)
    for (std::size_t j = i + 1; j < spans.size(); ++j)
      if (spans[i].parameter != spans[j].parameter &&
          !(spans[i].gradient && spans[j].gradient) && spans[i].span.begin < spans[j].span.end &&
          spans[j].span.begin < spans[i].span.end)
        return false;
  std::vector<AdamParameter<T>> params(count);
  for (std::size_t i = 0; i < count; ++i) {
    AdamArrays& a = arrays[i];
    py::array& g = gs[i];
    own_gradient<T>(g, a.w, a.m, a.v, a.v_max ? &*a.v_max : nullptr);  // as adam_impl
    const std::array<double, 9>& c = cs[i];
    AdamParameter<T>& p = params[i];
    p.n = static_cast<index_t>(a.w.size());
    p.step = adam_step<T>(rule, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]);
    p.w = static_cast<T*>(a.w.mutable_data());
    p.g = static_cast<const T*>(g.data());
    p.m = static_cast<T*>(a.m.mutable_data());
    p.v = static_cast<T*>(a.v.mutable_data());
    p.v_max = a.v_max ? static_cast<T*>(a.v_max->mutable_data()) : nullptr;
  }
  ReleaseGil release;
  adam_update_many<T>(static_cast<index_t>(count), params.data());
  return true;
}

// adam_many_typed when every parameter has one dtype; false (nothing updated) otherwise.
bool adam_many_fused(std::vector<AdamArrays>& arrays, AdamRule rule,
                     const std::vector<std::array<double, 9>>& cs) {
  if (arrays.empty()) return true;
  const bool dbl = is_double(arrays[0].w);
  for (const AdamArrays& a : arrays)
    if (is_double(a.w) != dbl) return false;
  return dbl ? adam_many_typed<double>(arrays, rule, cs) : adam_many_typed<float>(arrays, rule, cs);
}

void adam_many_binding(const py::object& ws_obj, const py::object& gs_obj,
                       const py::object& ms_obj, const py::object& vs_obj,
                       const py::object& v_maxs_obj, const py::object& constants_obj,
                       const py::object& rule_obj) {
  const AdamRule rule = rule_arg(rule_obj);
  const py::sequence ws = list_arg(ws_obj, "ws", -1, "arrays");
  const py::ssize_t n = static_cast<py::ssize_t>(py::len(ws));
  const py::sequence gs = list_arg(gs_obj, "gs", n, "arrays");
  const py::sequence ms = list_arg(ms_obj, "ms", n, "arrays");
  const py::sequence vs = list_arg(vs_obj, "vs", n, "arrays");
  std::optional<py::sequence> v_maxs;
  if (!v_maxs_obj.is_none()) v_maxs = list_arg(v_maxs_obj, "v_maxs", n, "arrays or None");
  const py::sequence constants = list_arg(constants_obj, "constants", n, "tuples of 9 floats");
  // every argument checked before the first update
  std::vector<AdamArrays> arrays;
  std::vector<std::array<double, 9>> cs(static_cast<std::size_t>(n));
  arrays.reserve(static_cast<std::size_t>(n));
  for (py::ssize_t i = 0; i < n; ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    const std::string names[5] = {"ws" + at, "gs" + at, "ms" + at, "vs" + at, "v_maxs" + at};
    arrays.push_back(adam_arrays(ws[i], gs[i], ms[i], vs[i],
                                 v_maxs ? py::object((*v_maxs)[i]) : py::object(py::none()),
                                 names));
    const py::object c = constants[i];
    const std::string name = "constants" + at;
    const py::sequence ci = list_arg(c, name.c_str(), -1, "floats");
    if (py::len(ci) != 9)
      throw py::value_error(name + ": expected 9 floats (beta1, one_minus_beta1, beta2, "
                            "one_minus_beta2, lr, eps, bias2_sqrt, grad_mul, grad_div), got " +
                            std::to_string(py::len(ci)));
    for (int k = 0; k < 9; ++k) {
      const py::object x = ci[k];
      try {
        cs[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)] = x.cast<double>();
      } catch (const py::cast_error&) {
        throw py::type_error(name + "[" + std::to_string(k) + "]: expected a float, got " +
                             py::str(py::type::of(x)).cast<std::string>());
      }
    }
  }
  if (adam_many_fused(arrays, rule, cs)) return;
  // one after the other, as adam_update calls in this order
  for (std::size_t i = 0; i < arrays.size(); ++i) adam_run(arrays[i], rule, cs[i]);
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
  m.def("adam_update_many", &adam_many_binding, py::arg("ws"), py::arg("gs"), py::arg("ms"),
        py::arg("vs"), py::arg("v_maxs"), py::arg("constants"), py::kw_only(), py::arg("rule"),
        "adam_update of every parameter i of the lists in one call, with the results of one "
        "adam_update call each in list order: ws[i], ms[i], vs[i] (and v_maxs[i]; v_maxs "
        "None, or a list with None where there is none) in place from gs[i]; constants[i] = "
        "(beta1, one_minus_beta1, beta2, one_minus_beta2, lr, eps, bias2_sqrt, grad_mul, "
        "grad_div), each rounded to ws[i]'s dtype. Every argument is checked before the first "
        "update. Parameters of one dtype whose arrays share no memory with another's are "
        "updated in one pass over all their elements (the threads split them end to end); "
        "otherwise one after the other.");
  m.def("sum_squares", &sum_squares_binding, py::arg("x"),
        "sum(x**2) over every element of a float32/float64 array, accumulated in float64.");
}

}  // namespace rnnfast::bindings
