// Bindings of the LayerNorm LSTM and GRU: validation, output allocation and the ctx object,
// then one kernel call with the GIL released.
#include "rnnfast/layer_norm_recurrent.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "ctx_class.h"
#include "entry.h"
#include "gil.h"
#include "rnnfast/scratch_cache.h"
#include "sequence.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// A training forward's workspace, taken from the workspaces of ctxs already freed, as the plain
// cells' (bindings/recurrent.cc; rnnfast/scratch_cache.h). Eight idle workspaces at most,
// 256 MiB together; never destroyed (a ctx freed late at the interpreter's exit may still give
// its workspace back).
template <typename T>
detail::ScratchCache<LayerNormWorkspace<T>>& workspace_cache() {
  static auto* cache = new detail::ScratchCache<LayerNormWorkspace<T>>(8, std::size_t(256) << 20);
  return *cache;
}

// What a training forward hands to its backward (op "lstm" or "gru"). Opaque to Python.
struct LayerNormCtx : SequenceCtx {
  LayerNormCell cell = LayerNormCell::lstm;
  double eps = 1e-5;
  // b_ih, b_hh, ln_ih_weight, ln_hh_weight, ln_c_weight, ln_c_bias (each or None)
  std::optional<py::array> vec[6];
  ZoneoutArgs zoneout;  // the rate, and the training masks (sequence.h)
  std::unique_ptr<LayerNormWorkspace<float>> ws32;  // training only
  std::unique_ptr<LayerNormWorkspace<double>> ws64;

  LayerNormCtx() = default;
  LayerNormCtx(const LayerNormCtx&) = delete;
  LayerNormCtx& operator=(const LayerNormCtx&) = delete;
  ~LayerNormCtx() {
    workspace_cache<float>().release(std::move(ws32));
    workspace_cache<double>().release(std::move(ws64));
  }
};

const char* const kVectorNames[6] = {"b_ih", "b_hh", "ln_ih_weight", "ln_hh_weight",
                                     "ln_c_weight", "ln_c_bias"};
const std::vector<std::string> kOps = {"lstm", "gru"};

template <typename T>
std::unique_ptr<LayerNormWorkspace<T>>& workspace_slot(LayerNormCtx& ctx) {
  if constexpr (sizeof(T) == 8) return ctx.ws64; else return ctx.ws32;
}

// The training forward's workspace of ctx, from the cache (the forward sizes it).
template <typename T>
LayerNormWorkspace<T>& new_workspace(LayerNormCtx& ctx) {
  auto& slot = workspace_slot<T>(ctx);
  slot = workspace_cache<T>().acquire();
  return *slot;
}

template <typename T>
const LayerNormWorkspace<T>& workspace(LayerNormCtx& ctx) {
  const auto& slot = workspace_slot<T>(ctx);
  if (!slot) throw std::logic_error("layer_norm_recurrent_backward: the ctx has no workspace");
  return *slot;
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
  w.zoneout_h = ptr<T>(c.zoneout.h);
  w.zoneout_c = ptr<T>(c.zoneout.c);
  w.zoneout = static_cast<T>(c.zoneout.rate);
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
py::tuple forward_impl(const std::shared_ptr<LayerNormCtx>& ctx, const InitialStates& init,
                       bool training) {
  LayerNormWorkspace<T>* ws = training ? &new_workspace<T>(*ctx) : nullptr;
  const LayerNormWeights<T> w = weights_of<T>(*ctx);
  const T* x = static_cast<const T*>(ctx->x.data());
  const T *h0 = ptr<T>(init.h0), *c0 = ptr<T>(init.c0);
  return run_forward<T>(ctx, ctx->cell == LayerNormCell::lstm, training,
                        [&](T* y, T* h_n, T* c_n) {
    layer_norm_recurrent_forward<T>(ctx->cell, ctx->shape, w, x, h0, c0, y, h_n, c_n, ws);
  });
}

py::tuple forward_binding(const py::object& op_obj, const py::object& x_obj,
                          const py::object& w_ih_obj, const py::object& w_hh_obj,
                          const py::object& b_ih_obj, const py::object& b_hh_obj,
                          const py::object& h0_obj, const py::object& c0_obj,
                          const py::object& ln_ih_obj, const py::object& ln_hh_obj,
                          const py::object& ln_c_weight_obj, const py::object& ln_c_bias_obj,
                          const py::object& eps_obj, const py::object& lengths_obj, bool reverse,
                          bool batch_first, bool training, const py::object& zoneout_obj,
                          const py::object& zoneout_h_obj, const py::object& zoneout_c_obj) {
  const std::string op = choice_arg(op_obj, "op", kOps);
  auto ctx = std::make_shared<LayerNormCtx>();
  ctx->op = op;
  ctx->cell = op == "lstm" ? LayerNormCell::lstm : LayerNormCell::gru;
  const index_t G = gate_count(ctx->cell);

  py::array x = float_array(x_obj, "x");
  SeqShape& s = ctx->shape;
  s = sequence_shape(x, batch_first, reverse);

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
  const InitialStates init = initial_states(h0_obj, c0_obj, x, ctx->cell == LayerNormCell::lstm,
                                            batch, hidden, hidden);
  ctx->eps = eps_arg(eps_obj);
  if (!lengths_obj.is_none()) s.lengths = lengths_vector(lengths_obj, s.B, s.T);
  ctx->zoneout = zoneout_args(s, ctx->cell == LayerNormCell::lstm, zoneout_obj, zoneout_h_obj,
                              zoneout_c_obj, x, training);
  checked_size({s.T, s.B, 4 * G * s.H + 2 * s.H + s.I}, "x and hidden_size");
  ctx->keep(x, w_ih, w_hh, bool(init.h0), bool(init.c0));
  if (ctx->dbl) return forward_impl<double>(ctx, init, training);
  return forward_impl<float>(ctx, init, training);
}

template <typename T>
py::dict backward_impl(LayerNormCtx& ctx, const OutputGrads& d) {
  const SeqShape& s = ctx.shape;
  const bool is_lstm = ctx.cell == LayerNormCell::lstm;
  const index_t GH = gate_count(ctx.cell) * s.H;
  py::array_t<T> dx(shape_of(ctx.x)), dw_ih({GH, s.I}), dw_hh({GH, s.H});
  std::optional<py::array_t<T>> dh0, dc0, dvec[6];
  if (ctx.has_h0) dh0.emplace(std::vector<index_t>{s.B, s.H});
  if (ctx.has_c0) dc0.emplace(std::vector<index_t>{s.B, s.H});
  for (int i = 0; i < 6; ++i)
    if (ctx.vec[i]) dvec[i].emplace(std::vector<index_t>{i >= 4 ? s.H : GH});
  LayerNormGrads<T> g;
  g.x = dx.mutable_data();
  g.w_ih = dw_ih.mutable_data();
  g.w_hh = dw_hh.mutable_data();
  g.h0 = data_or_null(dh0);
  g.c0 = data_or_null(dc0);
  g.b_ih = data_or_null(dvec[0]);
  g.b_hh = data_or_null(dvec[1]);
  g.ln_ih = data_or_null(dvec[2]);
  g.ln_hh = data_or_null(dvec[3]);
  g.ln_c_weight = data_or_null(dvec[4]);
  g.ln_c_bias = data_or_null(dvec[5]);
  const LayerNormWeights<T> w = weights_of<T>(ctx);
  const T* px = static_cast<const T*>(ctx.x.data());
  const T *pdy = ptr<T>(d.dy), *pdh = ptr<T>(d.dh_n), *pdc = ptr<T>(d.dc_n);
  if (s.B > 0) {
    ReleaseGil release;
    layer_norm_recurrent_backward<T>(ctx.cell, s, w, px, workspace<T>(ctx), pdy, pdh, pdc, g);
  } else {  // an empty batch: the parameter gradients (sums over the batch) are zeros
    for (py::array_t<T>* a : {&dw_ih, &dw_hh}) std::fill_n(a->mutable_data(), a->size(), T(0));
    for (auto& a : dvec)
      if (a) std::fill_n(a->mutable_data(), a->size(), T(0));
  }
  py::dict grads;
  grads["x"] = dx;
  grads["h0"] = or_none(dh0);
  if (is_lstm) grads["c0"] = or_none(dc0);
  grads["w_ih"] = dw_ih;
  grads["w_hh"] = dw_hh;
  for (int i = 0; i < (is_lstm ? 6 : 4); ++i) grads[kVectorNames[i]] = or_none(dvec[i]);
  return grads;
}

py::dict backward_binding(const py::object& op_obj, const py::object& ctx_obj,
                          const py::object& dy_obj, const py::object& dh_n_obj,
                          const py::object& dc_n_obj) {
  const std::string op = choice_arg(op_obj, "op", kOps);
  const std::shared_ptr<LayerNormCtx> held =
      backward_ctx<LayerNormCtx>(ctx_obj, "layer_norm_", op);
  LayerNormCtx& ctx = *held;
  const OutputGrads d =
      output_grads(ctx, ctx.cell == LayerNormCell::lstm, dy_obj, dh_n_obj, dc_n_obj);
  if (ctx.dbl) return backward_impl<double>(ctx, d);
  return backward_impl<float>(ctx, d);
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
        py::arg("training").noconvert(), py::arg("zoneout"), py::arg("zoneout_h"),
        py::arg("zoneout_c"));
  m.def("layer_norm_recurrent_backward", &backward_binding, py::arg("op"), py::arg("ctx"),
        py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"));
}

}  // namespace rnnfast::bindings
