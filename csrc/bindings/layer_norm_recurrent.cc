// Bindings of the LayerNorm LSTM and GRU: validation, output allocation and the ctx object,
// then one kernel call with the GIL released.
#include "rnnfast/layer_norm_recurrent.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "ctx_class.h"
#include "entry.h"
#include "gil.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// What a training forward hands to its backward. Opaque to Python.
struct LayerNormCtx {
  std::string op;  // "lstm" or "gru"
  LayerNormCell cell = LayerNormCell::lstm;
  SeqShape shape;
  bool dbl = false;
  double eps = 1e-5;
  py::array x, w_ih, w_hh;  // C-contiguous, of the ctx's dtype
  // b_ih, b_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, ln_c_bias (each or None)
  std::optional<py::array> vec[6];
  bool has_h0 = false, has_c0 = false;
  LayerNormWorkspace<float> ws32;
  LayerNormWorkspace<double> ws64;
};

const char* const kVectorNames[6] = {"b_ih", "b_hh", "ln_ih_weight", "ln_hh_weight",
                                     "ln_c_weight", "ln_c_bias"};
const std::vector<std::string> kOps = {"lstm", "gru"};

template <typename T>
LayerNormWorkspace<T>& workspace(LayerNormCtx& ctx) {
  if constexpr (sizeof(T) == 8) return ctx.ws64; else return ctx.ws32;
}

template <typename T>
LayerNormWeights<T> weights_of(const LayerNormCtx& c) {
  LayerNormWeights<T> w;
  w.w_ih = static_cast<const T*>(c.w_ih.data());
  w.w_hh = static_cast<const T*>(c.w_hh.data());
  w.b_ih = ptr<T>(c.vec[0]);
  w.b_hh = ptr<T>(c.vec[1]);
  w.ln_ih = ptr<T>(c.vec[2]);
  w.ln_hh = ptr<T>(c.vec[3]);
  w.ln_c_weight = ptr<T>(c.vec[4]);
  w.ln_c_bias = ptr<T>(c.vec[5]);
  w.eps = static_cast<T>(c.eps);
  return w;
}

// eps: a real number > 0 and finite (not a bool).
double eps_arg(const py::handle& obj) {
  const std::string given = py::repr(obj).cast<std::string>();
  if (PyBool_Check(obj.ptr()) || !(PyFloat_Check(obj.ptr()) || PyIndex_Check(obj.ptr()) ||
                                   py::isinstance(obj, py::module_::import("numpy").attr("floating"))))
    throw py::type_error("eps: expected a float > 0, got " + given + " of type " +
                         py::str(py::type::of(obj)).cast<std::string>());
  const double v = py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
  if (!(v > 0) || !std::isfinite(v))
    throw py::value_error("eps: expected a finite float > 0, got " + given);
  return v;
}

template <typename T>
py::tuple forward_impl(std::shared_ptr<LayerNormCtx> ctx, const std::optional<py::array>& h0,
                       const std::optional<py::array>& c0, bool training) {
  const SeqShape& s = ctx->shape;
  const bool is_lstm = ctx->cell == LayerNormCell::lstm;
  py::array_t<T> y(s.batch_first ? std::vector<index_t>{s.B, s.T, s.H}
                                 : std::vector<index_t>{s.T, s.B, s.H});
  py::array_t<T> h_n({s.B, s.H});
  std::optional<py::array_t<T>> c_n;
  if (is_lstm) c_n.emplace(std::vector<index_t>{s.B, s.H});
  LayerNormWorkspace<T>* ws = training ? &workspace<T>(*ctx) : nullptr;
  const LayerNormWeights<T> w = weights_of<T>(*ctx);
  const T* px = static_cast<const T*>(ctx->x.data());
  const T *ph0 = ptr<T>(h0), *pc0 = ptr<T>(c0);
  T *py_ = y.mutable_data(), *phn = h_n.mutable_data(), *pcn = c_n ? c_n->mutable_data() : nullptr;
  if (s.B > 0) {
    ReleaseGil release;
    layer_norm_recurrent_forward<T>(ctx->cell, s, w, px, ph0, pc0, py_, phn, pcn, ws);
  }
  py::object ctx_obj = training ? py::cast(ctx) : py::object(py::none());
  py::object cn_obj = c_n ? py::object(*c_n) : py::object(py::none());
  return py::make_tuple(y, h_n, cn_obj, ctx_obj);
}

py::tuple forward_binding(const py::object& op_obj, const py::object& x_obj,
                          const py::object& w_ih_obj, const py::object& w_hh_obj,
                          const py::object& b_ih_obj, const py::object& b_hh_obj,
                          const py::object& h0_obj, const py::object& c0_obj,
                          const py::object& ln_ih_obj, const py::object& ln_hh_obj,
                          const py::object& ln_c_weight_obj, const py::object& ln_c_bias_obj,
                          const py::object& eps_obj, const py::object& lengths_obj, bool reverse,
                          bool batch_first, bool training) {
  const std::string op = choice_arg(op_obj, "op", kOps);
  auto ctx = std::make_shared<LayerNormCtx>();
  ctx->op = op;
  ctx->cell = op == "lstm" ? LayerNormCell::lstm : LayerNormCell::gru;
  const index_t G = gate_count(ctx->cell);
  const char* layout = batch_first ? "(batch, seq_len, input_size)" : "(seq_len, batch, input_size)";

  py::array x = float_array(x_obj, "x");
  if (x.ndim() != 3)
    throw py::value_error(std::string("x: expected a 3-D array ") + layout + ", got shape " +
                          shape_str(shape_of(x)));
  SeqShape& s = ctx->shape;
  s.batch_first = batch_first;
  s.reverse = reverse;
  s.T = x.shape(batch_first ? 1 : 0);
  s.B = x.shape(batch_first ? 0 : 1);
  s.I = x.shape(2);
  if (s.T < 1 || s.I < 1)
    throw py::value_error(std::string("x: expected seq_len >= 1 and input_size >= 1 in ") +
                          layout + ", got shape " + shape_str(shape_of(x)));

  py::array w_hh = float_array(w_hh_obj, "w_hh");
  check_same_dtype(w_hh, "w_hh", x, "x");
  check_ndim(w_hh, "w_hh", 2);
  s.H = w_hh.shape(1);
  if (s.H < 1)
    throw py::value_error("w_hh: expected shape (" + std::to_string(G) +
                          "*hidden_size, hidden_size) with hidden_size >= 1, got " +
                          shape_str(shape_of(w_hh)));
  const Dim gates{"hidden_size", s.H, "w_hh's columns", G}, hidden{"hidden_size", s.H, "w_hh"};
  const Dim input{"input_size", s.I, "x"}, batch{"batch", s.B, "x"};
  check_dims(w_hh, "w_hh", {gates, hidden});
  py::array w_ih = float_array(w_ih_obj, "w_ih");
  check_same_dtype(w_ih, "w_ih", x, "x");
  check_dims(w_ih, "w_ih", {gates, input});
  const py::object* vec_objs[6] = {&b_ih_obj, &b_hh_obj, &ln_ih_obj, &ln_hh_obj,
                                   &ln_c_weight_obj, &ln_c_bias_obj};
  for (int i = 0; i < 6; ++i) {
    if (i >= 4 && ctx->cell != LayerNormCell::lstm) {
      if (!vec_objs[i]->is_none())
        throw py::value_error(std::string(kVectorNames[i]) + ": only the LayerNorm LSTM has a "
                              "layer norm of its cell state");
      continue;
    }
    ctx->vec[i] = optional_array(*vec_objs[i], kVectorNames[i], x, {i >= 4 ? hidden : gates});
  }
  auto h0 = optional_array(h0_obj, "h0", x, {batch, hidden});
  std::optional<py::array> c0;
  if (ctx->cell == LayerNormCell::lstm) c0 = optional_array(c0_obj, "c0", x, {batch, hidden});
  else if (!c0_obj.is_none()) throw py::value_error("c0: only an LSTM has a cell state");
  ctx->eps = eps_arg(eps_obj);
  if (!lengths_obj.is_none()) s.lengths = lengths_vector(lengths_obj, s.B, s.T);
  checked_size({s.T, s.B, 4 * G * s.H + 2 * s.H + s.I}, "x and hidden_size");
  ctx->has_h0 = bool(h0);
  ctx->has_c0 = bool(c0);
  ctx->dbl = is_double(x);
  ctx->x = contiguous_float(x);
  ctx->w_ih = contiguous_float(w_ih);
  ctx->w_hh = contiguous_float(w_hh);
  if (ctx->dbl) return forward_impl<double>(ctx, h0, c0, training);
  return forward_impl<float>(ctx, h0, c0, training);
}

template <typename T>
py::dict backward_impl(LayerNormCtx& ctx, const std::optional<py::array>& dy,
                       const std::optional<py::array>& dh_n, const std::optional<py::array>& dc_n) {
  const SeqShape& s = ctx.shape;
  const bool is_lstm = ctx.cell == LayerNormCell::lstm;
  const index_t GH = gate_count(ctx.cell) * s.H;
  py::array_t<T> dx(shape_of(ctx.x)), dw_ih({GH, s.I}), dw_hh({GH, s.H});
  std::optional<py::array_t<T>> dh0, dc0, dvec[6];
  if (ctx.has_h0) dh0.emplace(std::vector<index_t>{s.B, s.H});
  if (ctx.has_c0) dc0.emplace(std::vector<index_t>{s.B, s.H});
  for (int i = 0; i < 6; ++i)
    if (ctx.vec[i]) dvec[i].emplace(std::vector<index_t>{i >= 4 ? s.H : GH});
  auto out = [](std::optional<py::array_t<T>>& a) { return a ? a->mutable_data() : nullptr; };
  LayerNormGrads<T> g;
  g.x = dx.mutable_data();
  g.w_ih = dw_ih.mutable_data();
  g.w_hh = dw_hh.mutable_data();
  g.h0 = out(dh0);
  g.c0 = out(dc0);
  g.b_ih = out(dvec[0]);
  g.b_hh = out(dvec[1]);
  g.ln_ih = out(dvec[2]);
  g.ln_hh = out(dvec[3]);
  g.ln_c_weight = out(dvec[4]);
  g.ln_c_bias = out(dvec[5]);
  const LayerNormWeights<T> w = weights_of<T>(ctx);
  const T* px = static_cast<const T*>(ctx.x.data());
  const T *pdy = ptr<T>(dy), *pdh = ptr<T>(dh_n), *pdc = ptr<T>(dc_n);
  if (s.B > 0) {
    ReleaseGil release;
    layer_norm_recurrent_backward<T>(ctx.cell, s, w, px, workspace<T>(ctx), pdy, pdh, pdc, g);
  } else {  // an empty batch: the parameter gradients (sums over the batch) are zeros
    for (py::array_t<T>* a : {&dw_ih, &dw_hh}) std::fill_n(a->mutable_data(), a->size(), T(0));
    for (auto& a : dvec)
      if (a) std::fill_n(a->mutable_data(), a->size(), T(0));
  }
  auto obj = [](std::optional<py::array_t<T>>& a) {
    return a ? py::object(*a) : py::object(py::none());
  };
  py::dict grads;
  grads["x"] = dx;
  grads["h0"] = obj(dh0);
  if (is_lstm) grads["c0"] = obj(dc0);
  grads["w_ih"] = dw_ih;
  grads["w_hh"] = dw_hh;
  for (int i = 0; i < (is_lstm ? 6 : 4); ++i) grads[kVectorNames[i]] = obj(dvec[i]);
  return grads;
}

py::dict backward_binding(const py::object& op_obj, const py::object& ctx_obj,
                          const py::object& dy_obj, const py::object& dh_n_obj,
                          const py::object& dc_n_obj) {
  const std::string op = choice_arg(op_obj, "op", kOps);
  const std::string fwd = "layer_norm_" + op + "_forward";
  const std::shared_ptr<LayerNormCtx> held = ctx_arg<LayerNormCtx>(ctx_obj, fwd);
  LayerNormCtx& ctx = *held;
  if (ctx.op != op)
    throw py::value_error("ctx: expected the ctx of " + fwd + ", got the ctx of layer_norm_" +
                          ctx.op + "_forward");
  const SeqShape& s = ctx.shape;
  const py::array& x = ctx.x;
  const std::vector<index_t> y_shape = s.batch_first ? std::vector<index_t>{s.B, s.T, s.H}
                                                     : std::vector<index_t>{s.T, s.B, s.H};
  auto dy = optional_grad(dy_obj, "dy", x, y_shape,
                          s.batch_first ? "(batch, seq_len, hidden_size)"
                                        : "(seq_len, batch, hidden_size)");
  auto dh_n = optional_grad(dh_n_obj, "dh_n", x, {s.B, s.H}, "(batch, hidden_size)");
  std::optional<py::array> dc_n;
  if (ctx.cell == LayerNormCell::lstm)
    dc_n = optional_grad(dc_n_obj, "dc_n", x, {s.B, s.H}, "(batch, hidden_size)");
  else if (!dc_n_obj.is_none())
    throw py::value_error("dc_n: only an LSTM has a cell state");
  if (ctx.dbl) return backward_impl<double>(ctx, dy, dh_n, dc_n);
  return backward_impl<float>(ctx, dy, dh_n, dc_n);
}

}  // namespace

void bind_layer_norm_recurrent(Entries& m) {
  py::class_<LayerNormCtx, std::shared_ptr<LayerNormCtx>> ctx_class(
      m.module(), "LayerNormRecurrentCtx",
      "What a LayerNorm LSTM/GRU training forward keeps for its backward (opaque).");
  ctx_class
      .def_property_readonly("op", guarded([](const py::object& self) {
        return "layer_norm_" + ctx_arg<LayerNormCtx>(self, "a LayerNorm recurrent forward")->op;
      }))
      .def("__repr__", guarded([](const py::object& self) {
        const auto c = held_ctx<LayerNormCtx>(self);
        if (!c) return std::string("<rnnfast ctx, uninitialised>");
        return "<rnnfast ctx of layer_norm_" + c->op + "_forward, x " +
               shape_str(shape_of(c->x)) + ", " + (c->dbl ? "float64" : "float32") + ">";
      }));
  refuse_copies(ctx_class);
  // Arrays by position, options by keyword only (no defaults: rnnfast.functional has them).
  m.def("layer_norm_recurrent_forward", &forward_binding, py::arg("op"), py::arg("x"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("h0"),
        py::arg("c0"), py::arg("ln_ih_weight"), py::arg("ln_hh_weight"), py::arg("ln_c_weight"),
        py::arg("ln_c_bias"), py::kw_only(), py::arg("eps"), py::arg("lengths"),
        py::arg("reverse").noconvert(), py::arg("batch_first").noconvert(),
        py::arg("training").noconvert());
  m.def("layer_norm_recurrent_backward", &backward_binding, py::arg("op"), py::arg("ctx"),
        py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"));
}

}  // namespace rnnfast::bindings
