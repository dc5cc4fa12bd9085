// What the bindings of the recurrent ops (recurrent.cc, layer_norm_recurrent.cc) share: the
// part of the ctx every op keeps, the sequence shape read from x, the initial states, the
// zoneout options, the forward's outputs and the output gradients a backward takes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "checks.h"
#include "gil.h"
#include "rnnfast/recurrent.h"

namespace rnnfast::bindings {

namespace py = pybind11;

// The part of a ctx (what a training forward hands to its backward) that every recurrent op
// has. Opaque to Python.
struct SequenceCtx {
  std::string op;  // the forward's op ("lstm", ...)
  SeqShape shape;
  bool dbl = false;         // float64, else float32
  py::array x, w_ih, w_hh;  // C-contiguous, of the ctx's dtype
  bool has_h0 = false, has_c0 = false;

  // Keeps the forward's inputs (C-contiguous) and whether it was given h0 and c0.
  void keep(const py::array& x_, const py::array& w_ih_, const py::array& w_hh_, bool h0,
            bool c0) {
    has_h0 = h0;
    has_c0 = c0;
    dbl = is_double(x_);
    x = contiguous_float(x_);
    w_ih = contiguous_float(w_ih_);
    w_hh = contiguous_float(w_hh_);
  }
};

// The shape of y [T, B, state_size], or [B, T, state_size] batch-first.
inline std::vector<index_t> y_shape(const SeqShape& s) {
  const index_t Hs = s.state_size();
  return s.batch_first ? std::vector<index_t>{s.B, s.T, Hs} : std::vector<index_t>{s.T, s.B, Hs};
}

// T, B and I of x, (seq_len, batch, input_size) or batch-first (batch, seq_len, input_size),
// with the layout options. An empty batch (B = 0) gives empty results, as in PyTorch; a
// sequence needs a step and a feature.
inline SeqShape sequence_shape(const py::array& x, bool batch_first, bool reverse) {
  const char* layout =
      batch_first ? "(batch, seq_len, input_size)" : "(seq_len, batch, input_size)";
  if (x.ndim() != 3)
    throw py::value_error(std::string("x: expected a 3-D array ") + layout + ", got shape " +
                          shape_str(shape_of(x)));
  SeqShape s;
  s.batch_first = batch_first;
  s.reverse = reverse;
  s.T = x.shape(batch_first ? 1 : 0);
  s.B = x.shape(batch_first ? 0 : 1);
  s.I = x.shape(2);
  if (s.T < 1 || s.I < 1)
    throw py::value_error(std::string("x: expected seq_len >= 1 and input_size >= 1 in ") +
                          layout + ", got shape " + shape_str(shape_of(x)));
  return s;
}

// The optional initial states of a forward: h0 [batch, state] and, of an LSTM only, c0
// [batch, hidden].
struct InitialStates {
  std::optional<py::array> h0, c0;
};

inline InitialStates initial_states(const py::object& h0, const py::object& c0,
                                    const py::array& x, bool lstm, const Dim& batch,
                                    const Dim& state, const Dim& hidden) {
  InitialStates init;
  init.h0 = optional_array(h0, "h0", x, {batch, state});
  if (lstm) init.c0 = optional_array(c0, "c0", x, {batch, hidden});
  else if (!c0.is_none()) throw py::value_error("c0: only an LSTM has a cell state");
  return init;
}

// zoneout: a float in [0, 1) (not a bool).
inline double zoneout_arg(const py::object& obj) {
  if (py::isinstance<py::bool_>(obj) ||
      !(py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj) ||
        py::isinstance(obj, py::module_::import("numpy").attr("floating")) ||
        py::isinstance(obj, py::module_::import("numpy").attr("integer"))))
    throw py::type_error("zoneout: expected a float in [0, 1), got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  const double v = obj.cast<double>();
  if (!(v >= 0.0 && v < 1.0))
    throw py::value_error("zoneout: expected a float in [0, 1), got " +
                          py::repr(obj).cast<std::string>());
  return v;
}

// The zoneout options of a forward of every recurrent op (RecurrentWeights::zoneout_h in
// recurrent.h): the rate, and in training the masks of h (and c), time-major [T, B, features]
// of x's dtype, one per state; given exactly when training with zoneout > 0.
struct ZoneoutArgs {
  double rate = 0.0;                  // (inference: d itself)
  std::optional<py::array> h, c;      // the training masks [T, B, ...]
};

inline ZoneoutArgs zoneout_args(const SeqShape& s, bool lstm, const py::object& rate_obj,
                                const py::object& h_obj, const py::object& c_obj,
                                const py::array& x, bool training) {
  ZoneoutArgs z;
  z.rate = zoneout_arg(rate_obj);
  const bool want = training && z.rate > 0;
  if (!lstm && !c_obj.is_none())
    throw py::value_error("zoneout_c: only an LSTM has a cell state");
  for (const auto& [obj, name] : {std::pair<const py::object&, const char*>{h_obj, "zoneout_h"},
                                  std::pair<const py::object&, const char*>{c_obj, "zoneout_c"}}) {
    if (!lstm && std::string(name) == "zoneout_c") continue;
    if (want && obj.is_none())
      throw py::value_error(std::string(name) + ": required when training with zoneout > 0 (" +
                            "the masks, 1 where a unit keeps its previous value)");
    if (!want && !obj.is_none())
      throw py::value_error(std::string(name) + ": only for training=True with zoneout > 0 (got " +
                            (training ? "zoneout=0" : "training=False") + ")");
  }
  if (!want) return z;
  const Dim time{"seq_len", s.T, "x"}, batch{"batch", s.B, "x"};
  const Dim hidden{"hidden_size", s.H, s.P ? "w_hr" : "w_hh"};
  const Dim state = s.P ? Dim{"proj_size", s.P, "w_hr"} : hidden;
  z.h = optional_array(h_obj, "zoneout_h", x, {time, batch, state});
  if (lstm) z.c = optional_array(c_obj, "zoneout_c", x, {time, batch, hidden});
  return z;
}

// Allocates the outputs of a forward (y, h_n, and c_n of an LSTM), runs kernel(y, h_n, c_n) on
// their data without the GIL (unless the batch is empty), and returns (y, h_n, c_n or None,
// ctx or None): the ctx when training.
template <typename T, typename Ctx, typename Kernel>
py::tuple run_forward(const std::shared_ptr<Ctx>& ctx, bool lstm, bool training,
                      Kernel&& kernel) {
  const SeqShape& s = ctx->shape;
  py::array_t<T> y(y_shape(s)), h_n({s.B, s.state_size()});
  std::optional<py::array_t<T>> c_n;
  if (lstm) c_n.emplace(std::vector<index_t>{s.B, s.H});
  T *py_ = y.mutable_data(), *phn = h_n.mutable_data(), *pcn = c_n ? c_n->mutable_data() : nullptr;
  if (s.B > 0) {
    ReleaseGil release;
    kernel(py_, phn, pcn);
  }
  py::object cn_obj = c_n ? py::object(*c_n) : py::object(py::none());
  py::object ctx_obj = training ? py::cast(ctx) : py::object(py::none());
  return py::make_tuple(y, h_n, cn_obj, ctx_obj);
}

// The ctx argument of the backward of `op`: the ctx of the forward named prefix + op +
// "_forward", not another op's.
template <typename Ctx>
std::shared_ptr<Ctx> backward_ctx(const py::object& obj, const std::string& prefix,
                                  const std::string& op) {
  const std::string fwd = prefix + op + "_forward";
  std::shared_ptr<Ctx> ctx = ctx_arg<Ctx>(obj, fwd);
  if (ctx->op != op)
    throw py::value_error("ctx: expected the ctx of " + fwd + ", got the ctx of " + prefix +
                          ctx->op + "_forward");
  return ctx;
}

// The gradients of a forward's outputs that a backward is given, each optional: dy (y's
// shape), dh_n and, of an LSTM only, dc_n.
struct OutputGrads {
  std::optional<py::array> dy, dh_n, dc_n;
};

inline OutputGrads output_grads(const SequenceCtx& ctx, bool lstm, const py::object& dy,
                                const py::object& dh_n, const py::object& dc_n) {
  const SeqShape& s = ctx.shape;
  const std::string hs = s.P ? "proj_size" : "hidden_size";
  OutputGrads g;
  g.dy = optional_grad(dy, "dy", ctx.x, y_shape(s),
                       s.batch_first ? "(batch, seq_len, " + hs + ")"
                                     : "(seq_len, batch, " + hs + ")");
  g.dh_n = optional_grad(dh_n, "dh_n", ctx.x, {s.B, s.state_size()}, "(batch, " + hs + ")");
  if (lstm) g.dc_n = optional_grad(dc_n, "dc_n", ctx.x, {s.B, s.H}, "(batch, hidden_size)");
  else if (!dc_n.is_none()) throw py::value_error("dc_n: only an LSTM has a cell state");
  return g;
}

// The data of an optional output, or nullptr; the output itself, or None.
template <typename T>
T* data_or_null(std::optional<py::array_t<T>>& a) {
  return a ? a->mutable_data() : nullptr;
}

template <typename T>
py::object or_none(const std::optional<py::array_t<T>>& a) {
  return a ? py::object(*a) : py::object(py::none());
}

}  // namespace rnnfast::bindings
