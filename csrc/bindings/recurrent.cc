// Bindings of the recurrent layers: validation, output allocation and the ctx object, then one
// kernel call with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "bindings.h"
#include "checks.h"
#include "ctx_class.h"
#include "entry.h"
#include "gil.h"
#include "precision.h"
#include "rnnfast/recurrent.h"
#include "rnnfast/scratch_cache.h"
#include "sequence.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// A training forward's workspace, taken from the workspaces of ctxs already freed
// (rnnfast/scratch_cache.h: a workspace freed after every backward lets the C library trim its
// heap, and the next forward touches fresh pages).
template <typename T>
struct PooledWorkspace {
  RecurrentWorkspace<T> ws;
  std::size_t bytes() const {
    return detail::bytes_of(ws.gates) + detail::bytes_of(ws.hprev) + detail::bytes_of(ws.extra) +
           detail::bytes_of(ws.m);
  }
};

// Eight idle workspaces at most (the layers and directions of a model, alive together between
// its forward and its backward), 256 MiB together. Never destroyed: a ctx freed late at the
// interpreter's exit may still give its workspace back (what it holds stays reachable).
template <typename T>
detail::ScratchCache<PooledWorkspace<T>>& workspace_cache() {
  static auto* cache = new detail::ScratchCache<PooledWorkspace<T>>(8, std::size_t(256) << 20);
  return *cache;
}

// What a training forward hands to its backward (op "rnn", "lstm" or "gru"). Opaque to Python.
struct RecurrentCtx : SequenceCtx {
  Cell cell;
  std::optional<py::array> b_ih, b_hh;
  std::optional<py::array> w_peephole;  // LSTM peepholes [3, H]
  std::optional<py::array> w_hr;        // LSTM projection [P, H]
  std::optional<py::array> zoneout_h, zoneout_c;  // training zoneout masks [T, B, ...]
  double zoneout = 0.0;                            // the rate (inference: d itself)
  std::optional<py::array> recurrent_mask;         // training recurrent dropout [G, B, ...]
  Precision precision = Precision::float32;  // of the products, forward and backward
  std::uint64_t weights_token = 0;           // bf16: RecurrentWeights::weights_token
  std::unique_ptr<PooledWorkspace<float>> ws32;  // training only
  std::unique_ptr<PooledWorkspace<double>> ws64;

  RecurrentCtx() = default;
  RecurrentCtx(const RecurrentCtx&) = delete;
  RecurrentCtx& operator=(const RecurrentCtx&) = delete;
  ~RecurrentCtx() {
    workspace_cache<float>().release(std::move(ws32));
    workspace_cache<double>().release(std::move(ws64));
  }
};

// nonlinearity: only a str names one (no bytes, no None); the message shows the repr given.
Cell cell_of(const std::string& op, const py::object& nonlinearity, bool reset_after) {
  if (op == "rnn") {
    if (py::isinstance<py::str>(nonlinearity)) {
      const std::string name = nonlinearity.cast<std::string>();
      if (name == "tanh") return Cell::rnn_tanh;
      if (name == "relu") return Cell::rnn_relu;
    }
    throw py::value_error("nonlinearity: expected 'tanh' or 'relu', got " +
                          py::repr(nonlinearity).cast<std::string>());
  }
  if (op == "lstm") return Cell::lstm;
  return reset_after ? Cell::gru : Cell::gru_reset_before;  // "gru" (checked by choice_arg)
}

const std::vector<std::string> kRecurrentOps = {"rnn", "lstm", "gru"};

template <typename T>
std::unique_ptr<PooledWorkspace<T>>& workspace_slot(RecurrentCtx& ctx) {
  if constexpr (sizeof(T) == 8) return ctx.ws64; else return ctx.ws32;
}

// The training forward's workspace of ctx (taken from the cache and sized here, where the
// forward's resize then keeps it: the same sizes as recurrent_forward gives them).
template <typename T>
RecurrentWorkspace<T>& new_workspace(RecurrentCtx& ctx) {
  auto& slot = workspace_slot<T>(ctx);
  slot = workspace_cache<T>().acquire();
  const SeqShape& s = ctx.shape;
  const index_t rows = s.rows(), H = s.H;
  const bool is_lstm = ctx.cell == Cell::lstm;
  RecurrentWorkspace<T>& ws = slot->ws;
  detail::fit(ws.gates, rows * gate_count(ctx.cell) * H);
  detail::fit(ws.hprev, rows * s.state_size());
  detail::fit(ws.extra, is_lstm || ctx.cell == Cell::gru ? rows * H : 0);
  detail::fit(ws.m, is_lstm && s.P ? rows * H : 0);
  return ws;
}

template <typename T>
const RecurrentWorkspace<T>& workspace(RecurrentCtx& ctx) {
  const auto& slot = workspace_slot<T>(ctx);
  if (!slot) throw std::logic_error("recurrent_backward: the ctx has no training workspace");
  return slot->ws;
}

template <typename T>
RecurrentWeights<T> weights_of(const RecurrentCtx& c) {
  RecurrentWeights<T> w{static_cast<const T*>(c.w_ih.data()), static_cast<const T*>(c.w_hh.data()),
                        ptr<T>(c.b_ih), ptr<T>(c.b_hh), c.precision, ptr<T>(c.w_peephole),
                        ptr<T>(c.w_hr)};
  w.zoneout_h = ptr<T>(c.zoneout_h);
  w.zoneout_c = ptr<T>(c.zoneout_c);
  w.zoneout = static_cast<T>(c.zoneout);
  w.recurrent_mask = ptr<T>(c.recurrent_mask);
  w.weights_token = c.weights_token;
  return w;
}

// The zoneout options of a forward (sequence.h's zoneout_args).
void zoneout_options(RecurrentCtx& ctx, const py::object& rate_obj, const py::object& h_obj,
                     const py::object& c_obj, const py::array& x, bool training) {
  ZoneoutArgs z =
      zoneout_args(ctx.shape, ctx.cell == Cell::lstm, rate_obj, h_obj, c_obj, x, training);
  ctx.zoneout = z.rate;
  ctx.zoneout_h = std::move(z.h);
  ctx.zoneout_c = std::move(z.c);
}

// The recurrent dropout mask of a training forward: [G, B, state_size] of x's dtype (one mask
// per gate, the same at every step, time-major whatever batch_first); None: none.
void recurrent_dropout_option(RecurrentCtx& ctx, const py::object& mask_obj, const py::array& x,
                              bool training) {
  if (mask_obj.is_none()) return;
  if (!training)
    throw py::value_error("recurrent_mask: only for training=True (inference drops nothing)");
  const SeqShape& s = ctx.shape;
  const index_t G = gate_count(ctx.cell);
  const Dim gates{"gates", G, ctx.op == "rnn" ? "an RNN" : ctx.op == "lstm" ? "an LSTM" : "a GRU"};
  const Dim batch{"batch", s.B, "x"};
  const Dim state = s.P ? Dim{"proj_size", s.P, "w_hr"} : Dim{"hidden_size", s.H, "w_hh"};
  ctx.recurrent_mask = optional_array(mask_obj, "recurrent_mask", x, {gates, batch, state});
}

template <typename T>
py::tuple forward_impl(const std::shared_ptr<RecurrentCtx>& ctx, const InitialStates& init,
                       bool training) {
  RecurrentWorkspace<T>* ws = training ? &new_workspace<T>(*ctx) : nullptr;
  const RecurrentWeights<T> w = weights_of<T>(*ctx);
  const T* x = static_cast<const T*>(ctx->x.data());
  const T *h0 = ptr<T>(init.h0), *c0 = ptr<T>(init.c0);
  return run_forward<T>(ctx, ctx->cell == Cell::lstm, training, [&](T* y, T* h_n, T* c_n) {
    recurrent_forward<T>(ctx->cell, ctx->shape, w, x, h0, c0, y, h_n, c_n, ws);
  });
}

py::tuple recurrent_forward_binding(const py::object& op_obj, const py::object& x_obj,
                                    const py::object& w_ih_obj, const py::object& w_hh_obj,
                                    const py::object& b_ih_obj, const py::object& b_hh_obj,
                                    const py::object& h0_obj, const py::object& c0_obj,
                                    const py::object& nonlinearity, bool reset_after,
                                    const py::object& lengths_obj, bool reverse, bool batch_first,
                                    bool training, const py::object& precision,
                                    const py::object& w_peephole_obj,
                                    const py::object& w_hr_obj, const py::object& zoneout_obj,
                                    const py::object& zoneout_h_obj,
                                    const py::object& zoneout_c_obj,
                                    const py::object& recurrent_mask_obj,
                                    const py::object& weights_token_obj) {
  const std::string op = choice_arg(op_obj, "op", kRecurrentOps);
  auto ctx = std::make_shared<RecurrentCtx>();
  ctx->op = op;
  ctx->cell = cell_of(op, nonlinearity, reset_after);
  const index_t G = gate_count(ctx->cell);

  py::array x = float_array(x_obj, "x");
  SeqShape& s = ctx->shape;
  s = sequence_shape(x, batch_first, reverse);

  std::optional<py::array> w_hr;
  if (!w_hr_obj.is_none()) {  // LSTM with a projection: H and P from w_hr [P, H]
    if (ctx->cell != Cell::lstm) throw py::value_error("w_hr: only an LSTM has a projection");
    w_hr = float_array(w_hr_obj, "w_hr");
    check_same_dtype(*w_hr, "w_hr", x, "x");
    check_ndim(*w_hr, "w_hr", 2);
    s.P = w_hr->shape(0);
    s.H = w_hr->shape(1);
    if (s.P < 1 || s.H < 1)
      throw py::value_error("w_hr: expected shape (proj_size, hidden_size) with both >= 1, got " +
                            shape_str(shape_of(*w_hr)));
  }
  py::array w_hh = float_array(w_hh_obj, "w_hh");
  check_same_dtype(w_hh, "w_hh", x, "x");
  if (w_hr) {
    check_dims(w_hh, "w_hh", {Dim{"hidden_size", s.H, "w_hr", 4}, Dim{"proj_size", s.P, "w_hr"}});
  } else {
    check_ndim(w_hh, "w_hh", 2);
    s.H = w_hh.shape(1);
    if (s.H < 1 || w_hh.shape(0) != G * s.H) {  // the message, made only on an error
      const std::string gw = G == 1 ? "hidden_size" : std::to_string(G) + "*hidden_size";
      if (s.H < 1)
        throw py::value_error("w_hh: expected shape (" + gw +
                              ", hidden_size) with hidden_size >= 1, got " +
                              shape_str(shape_of(w_hh)));
      const index_t rows = w_hh.shape(0);
      std::string why = rows % G == 0 ? "hidden_size is " + std::to_string(rows / G) +
                                            " from its rows" +
                                            (G > 1 ? " (" + std::to_string(rows) + " = " +
                                                         std::to_string(G) + "*" +
                                                         std::to_string(rows / G) + ")"
                                                   : std::string()) +
                                            " but " + std::to_string(s.H) + " from its columns"
                                      : "its " + std::to_string(rows) + " rows are not a multiple of " +
                                            std::to_string(G) + " (" + gw + ")";
      throw py::value_error("w_hh: expected shape (" + gw + ", hidden_size), got " +
                            shape_str(shape_of(w_hh)) + ": " + why);
    }
  }
  const Dim gates{"hidden_size", s.H, w_hr ? "w_hr" : "w_hh", G};
  const Dim hidden{"hidden_size", s.H, w_hr ? "w_hr" : "w_hh"};
  const Dim state = w_hr ? Dim{"proj_size", s.P, "w_hr"} : hidden;
  const Dim input{"input_size", s.I, "x"}, batch{"batch", s.B, "x"};
  py::array w_ih = float_array(w_ih_obj, "w_ih");
  check_same_dtype(w_ih, "w_ih", x, "x");
  check_dims(w_ih, "w_ih", {gates, input});
  ctx->b_ih = optional_array(b_ih_obj, "b_ih", x, {gates});
  ctx->b_hh = optional_array(b_hh_obj, "b_hh", x, {gates});
  const InitialStates init =
      initial_states(h0_obj, c0_obj, x, ctx->cell == Cell::lstm, batch, state, hidden);
  if (!w_peephole_obj.is_none()) {
    if (ctx->cell != Cell::lstm) throw py::value_error("w_peephole: only an LSTM has peepholes");
    py::array p = float_array(w_peephole_obj, "w_peephole");
    check_same_dtype(p, "w_peephole", x, "x");
    const std::vector<index_t> want{3, s.H};
    if (shape_of(p) != want)
      throw py::value_error("w_peephole: expected shape (3, hidden_size) = " + shape_str(want) +
                            " (rows p_i, p_f, p_o; hidden_size from " + hidden.origin + "), got " +
                            shape_str(shape_of(p)));
    ctx->w_peephole = contiguous_float(p);
  }
  if (!lengths_obj.is_none()) s.lengths = lengths_vector(lengths_obj, s.B, s.T);
  checked_size({s.T, s.B, G * s.H + 2 * s.state_size() + (s.P ? 2 * s.H : 0) + s.I},
               "x and hidden_size");
  if (w_hr) ctx->w_hr = contiguous_float(*w_hr);
  zoneout_options(*ctx, zoneout_obj, zoneout_h_obj, zoneout_c_obj, x, training);
  recurrent_dropout_option(*ctx, recurrent_mask_obj, x, training);
  ctx->precision = precision_arg(precision, x, "x");
  ctx->keep(x, w_ih, w_hh, bool(init.h0), bool(init.c0));
  // bf16: the caller's token names the values of its own w_ih and w_hh: kept only when the
  // kernels read those arrays in place (a converted copy is freed after the call, and its
  // address can be another copy's)
  if (!weights_token_obj.is_none()) {
    const std::uint64_t token = seed64_arg(weights_token_obj, "weights_token");
    if (ctx->w_ih.ptr() == w_ih_obj.ptr() && ctx->w_hh.ptr() == w_hh_obj.ptr())
      ctx->weights_token = token;
  }
  if (ctx->dbl) return forward_impl<double>(ctx, init, training);
  return forward_impl<float>(ctx, init, training);
}

template <typename T>
py::dict backward_impl(RecurrentCtx& ctx, const OutputGrads& d) {
  const SeqShape& s = ctx.shape;
  const index_t GH = gate_count(ctx.cell) * s.H, Hs = s.state_size();
  py::array_t<T> dx(shape_of(ctx.x)), dw_ih({GH, s.I}), dw_hh({GH, Hs});
  std::optional<py::array_t<T>> dh0, dc0, db_ih, db_hh, dpeep, dw_hr;
  if (ctx.w_peephole) dpeep.emplace(std::vector<index_t>{3, s.H});
  if (ctx.w_hr) dw_hr.emplace(std::vector<index_t>{s.P, s.H});
  if (ctx.has_h0) dh0.emplace(std::vector<index_t>{s.B, Hs});
  if (ctx.has_c0) dc0.emplace(std::vector<index_t>{s.B, s.H});
  if (ctx.b_ih) db_ih.emplace(std::vector<index_t>{GH});
  if (ctx.b_hh) db_hh.emplace(std::vector<index_t>{GH});
  RecurrentGrads<T> g;
  g.x = dx.mutable_data();
  g.w_ih = dw_ih.mutable_data();
  g.w_hh = dw_hh.mutable_data();
  g.h0 = data_or_null(dh0);
  g.c0 = data_or_null(dc0);
  g.b_ih = data_or_null(db_ih);
  g.b_hh = data_or_null(db_hh);
  g.w_peephole = data_or_null(dpeep);
  g.w_hr = data_or_null(dw_hr);
  const RecurrentWeights<T> w = weights_of<T>(ctx);
  const T* px = static_cast<const T*>(ctx.x.data());
  const T *pdy = ptr<T>(d.dy), *pdh = ptr<T>(d.dh_n), *pdc = ptr<T>(d.dc_n);
  if (s.B > 0) {
    ReleaseGil release;
    recurrent_backward<T>(ctx.cell, s, w, px, workspace<T>(ctx), pdy, pdh, pdc, g);
  } else {  // an empty batch: the weight gradients (sums over the batch) are zeros
    for (py::array_t<T>* a : {&dw_ih, &dw_hh}) std::fill_n(a->mutable_data(), a->size(), T(0));
    for (auto* a : {&db_ih, &db_hh, &dpeep, &dw_hr})
      if (*a) std::fill_n((*a)->mutable_data(), (*a)->size(), T(0));
  }
  py::dict grads;
  grads["x"] = dx;
  grads["h0"] = or_none(dh0);
  if (ctx.cell == Cell::lstm) grads["c0"] = or_none(dc0);
  grads["w_ih"] = dw_ih;
  grads["w_hh"] = dw_hh;
  grads["b_ih"] = or_none(db_ih);
  grads["b_hh"] = or_none(db_hh);
  if (ctx.cell == Cell::lstm) {
    grads["w_hr"] = or_none(dw_hr);
    grads["w_peephole"] = or_none(dpeep);
  }
  return grads;
}

py::dict recurrent_backward_binding(const py::object& op_obj, const py::object& ctx_obj,
                                    const py::object& dy_obj, const py::object& dh_n_obj,
                                    const py::object& dc_n_obj) {
  const std::string op = choice_arg(op_obj, "op", kRecurrentOps);
  const std::shared_ptr<RecurrentCtx> held = backward_ctx<RecurrentCtx>(ctx_obj, "", op);
  RecurrentCtx& ctx = *held;
  const OutputGrads d = output_grads(ctx, ctx.cell == Cell::lstm, dy_obj, dh_n_obj, dc_n_obj);
  if (ctx.dbl) return backward_impl<double>(ctx, d);
  return backward_impl<float>(ctx, d);
}

}  // namespace

void bind_recurrent(Entries& m) {
  py::class_<RecurrentCtx, std::shared_ptr<RecurrentCtx>> ctx_class(m.module(), "RecurrentCtx",
      "What a training forward keeps for its backward (opaque).");
  ctx_class
      .def_property_readonly("op", guarded([](const py::object& self) {
        return ctx_arg<RecurrentCtx>(self, "a recurrent forward")->op;
      }))
      .def("__repr__", guarded([](const py::object& self) {
        const auto c = held_ctx<RecurrentCtx>(self);
        if (!c) return std::string("<rnnfast ctx, uninitialised>");
        return "<rnnfast ctx of " + c->op + "_forward, x " + shape_str(shape_of(c->x)) + ", " +
               (c->dbl ? "float64" : "float32") +
               (c->precision == Precision::bfloat16 ? ", precision bfloat16" : "") + ">";
      }));
  refuse_copies(ctx_class);
  // Arrays by position, options by keyword only (no defaults: rnnfast.functional has them).
  m.def("recurrent_forward", &recurrent_forward_binding, py::arg("op"), py::arg("x"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
        py::arg("h0"), py::arg("c0"), py::kw_only(),
        py::arg("nonlinearity"), py::arg("reset_after").noconvert(), py::arg("lengths"),
        py::arg("reverse").noconvert(), py::arg("batch_first").noconvert(),
        py::arg("training").noconvert(), py::arg("precision") = "float32",
        py::arg("w_peephole") = py::none(), py::arg("w_hr") = py::none(),
        py::arg("zoneout") = 0.0, py::arg("zoneout_h") = py::none(),
        py::arg("zoneout_c") = py::none(), py::arg("recurrent_mask") = py::none(),
        py::arg("weights_token") = py::none());
  // The same function with every argument by position, in the order above (rnnfast.functional's
  // call: pybind11 matches keywords to parameters by comparing names, ~100 string comparisons
  // per call at these 21 parameters, more than the rest of a T=1 step's binding).
  m.def("recurrent_forward_positional", &recurrent_forward_binding, py::arg("op"), py::arg("x"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("h0"),
        py::arg("c0"), py::arg("nonlinearity"), py::arg("reset_after").noconvert(),
        py::arg("lengths"), py::arg("reverse").noconvert(), py::arg("batch_first").noconvert(),
        py::arg("training").noconvert(), py::arg("precision"), py::arg("w_peephole"),
        py::arg("w_hr"), py::arg("zoneout"), py::arg("zoneout_h"), py::arg("zoneout_c"),
        py::arg("recurrent_mask"), py::arg("weights_token") = py::none(), py::pos_only());
  m.def("recurrent_backward", &recurrent_backward_binding, py::arg("op"), py::arg("ctx"),
        py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"));
}

}  // namespace rnnfast::bindings
