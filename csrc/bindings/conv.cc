// Bindings of Conv1D and 1-D pooling: validation, output allocation and the ctx objects, then one
// kernel call with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "ctx_class.h"
#include "entry.h"
#include "gil.h"
#include "precision.h"
#include "rnnfast/conv1d.h"
#include "rnnfast/pool1d.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// Bound on paddings, kernel spans and pool sizes: keeps every index sum far from overflow.
constexpr index_t kMaxExtent = std::numeric_limits<index_t>::max() / 8;

const char* dtype_name(bool dbl) { return dbl ? "float64" : "float32"; }

std::string repr_of(const py::handle& obj) { return py::repr(obj).cast<std::string>(); }

// (B, L, C) of a 3-D sequence batch in its layout; L and C must be >= 1.
struct Seq {
  index_t batch, length, channels;
};

Seq seq_of(const py::array& x, bool channels_last) {
  const char* layout = channels_last ? "(batch, length, channels) (channels_last=True)"
                                     : "(batch, channels, length) (channels_last=False)";
  if (x.ndim() != 3)
    throw py::value_error(std::string("x: expected a 3-D array ") + layout + ", got shape " +
                          shape_str(shape_of(x)));
  Seq s{x.shape(0), x.shape(channels_last ? 1 : 2), x.shape(channels_last ? 2 : 1)};
  if (s.length < 1 || s.channels < 1)
    throw py::value_error(std::string("x: expected length >= 1 and channels >= 1 in ") + layout +
                          ", got shape " + shape_str(shape_of(x)));
  return s;
}

std::vector<index_t> seq_shape(index_t batch, index_t length, index_t channels, bool channels_last) {
  return channels_last ? std::vector<index_t>{batch, length, channels}
                       : std::vector<index_t>{batch, channels, length};
}

std::string seq_words(bool channels_last, const char* length) {
  return channels_last ? std::string("(batch, ") + length + ", channels)"
                       : std::string("(batch, channels, ") + length + ")";
}

// dy of a backward: the ctx's dtype and the forward output's shape, C-contiguous; null if None.
template <typename T>
std::optional<py::array_t<T, py::array::c_style>> grad_arg(const py::object& obj, bool dbl,
                                                           const std::vector<index_t>& shape,
                                                           const std::string& what) {
  if (obj.is_none()) return std::nullopt;
  py::array a = float_array(obj, "dy");
  if (is_double(a) != dbl)
    throw py::type_error(std::string("dy: expected dtype ") + dtype_name(dbl) +
                         " (the dtype of the forward's x), got " + dtype_str(a));
  check_shape(a, "dy", shape, what);
  return contiguous<T>(a);
}

// "same" (TensorFlow): ceil(L / stride) outputs, the odd padding step on the right.
void same_padding(index_t length, index_t stride, index_t span, index_t* left, index_t* right) {
  const index_t out = (length - 1) / stride + 1;
  const index_t total = std::max<index_t>((out - 1) * stride + span - length, 0);
  *left = total / 2;
  *right = total - total / 2;
}

// ------------------------------------------------------------------ Conv1D

struct Pool1dCtx {
  std::string op;  // "max_pool1d", "global_max_pool1d" or "global_avg_pool1d"
  Pool1dShape shape;
  std::optional<py::array_t<std::int64_t>> arg;  // the max pools' argmax steps
  py::object y;  // max_pool1d's output (a ReLU convolution before it differentiates through it)
  bool dbl = false;
};


struct Conv1dCtx {
  Conv1dShape shape;
  py::array x, w;  // C-contiguous, of the call's dtype
  py::array y;     // the output, kept with shape.relu (the backward's ReLU mask)
  bool has_bias = false;
  bool dbl = false;
  // Made by conv1d_max_pool1d_forward: y was never stored; the backward takes this pool's ctx.
  std::weak_ptr<Pool1dCtx> pooled_with;
  bool pooled = false;
};

const char* kConvPaddingWords =
    "'valid', 'same', 'causal', an int >= 0 or a (left, right) pair of ints >= 0";

void conv_padding(const py::handle& padding, index_t length, index_t stride, index_t span,
                  index_t* left, index_t* right) {
  if (py::isinstance<py::str>(padding)) {
    const std::string p = padding.cast<std::string>();
    if (p == "valid") {
      *left = *right = 0;
    } else if (p == "same") {
      same_padding(length, stride, span, left, right);
    } else if (p == "causal") {
      *left = span - 1;
      *right = 0;
    } else {
      throw py::value_error(std::string("padding: expected ") + kConvPaddingWords + ", got " +
                            repr_of(padding));
    }
    return;
  }
  if (PyIndex_Check(padding.ptr()) && !PyBool_Check(padding.ptr())) {
    *left = *right = int_arg(padding, "padding", 0);
  } else if (py::isinstance<py::tuple>(padding) || py::isinstance<py::list>(padding)) {
    py::sequence pair = py::reinterpret_borrow<py::sequence>(padding);
    if (pair.size() != 2)
      throw py::value_error(std::string("padding: expected ") + kConvPaddingWords + ", got " +
                            repr_of(padding) + " of length " + std::to_string(pair.size()));
    *left = int_arg(pair[0], "padding[0]", 0);
    *right = int_arg(pair[1], "padding[1]", 0);
  } else {
    throw py::type_error(std::string("padding: expected ") + kConvPaddingWords + ", got " +
                         repr_of(padding) + " of type " +
                         py::str(py::type::of(padding)).cast<std::string>());
  }
  if (*left > kMaxExtent || *right > kMaxExtent)
    throw py::value_error("padding: " + repr_of(padding) + " is too large");
}

// The properties of s that algorithm='winograd' depends on, for its refusal's message.
std::string describe_for_winograd(const Conv1dShape& s, bool float64) {
  return std::string(float64 ? "float64" : "float32") + " arrays, precision '" +
         precision_name(s.precision) + "', channels_last=" +
         (s.channels_last ? "True" : "False") + ", groups=" + std::to_string(s.groups) +
         ", stride=" + std::to_string(s.stride) + ", dilation=" + std::to_string(s.dilation) +
         ", kernel_size=" + std::to_string(s.kernel);
}

template <typename T>
py::tuple conv1d_forward_impl(std::shared_ptr<Conv1dCtx> ctx, const py::array& x_in,
                              const py::array& w_in, const std::optional<py::array>& b_in,
                              const std::optional<py::array>& add_in, bool training) {
  const Conv1dShape& s = ctx->shape;
  auto x = contiguous<T>(x_in);
  auto w = contiguous<T>(w_in);
  std::optional<py::array_t<T, py::array::c_style>> b, add;
  if (b_in) b = contiguous<T>(*b_in);
  if (add_in) add = contiguous<T>(*add_in);
  py::array_t<T> y(seq_shape(s.batch, s.l_out, s.c_out, s.channels_last));
  const T *px = x.data(), *pw = w.data(), *pb = b ? b->data() : nullptr;
  const T* padd = add ? add->data() : nullptr;
  T* py_ = y.mutable_data();
  {
    ReleaseGil release;
    conv1d_forward<T>(s, px, pw, pb, py_, padd);
  }
  if (!training) return py::make_tuple(y, py::none());
  ctx->x = x;
  ctx->w = w;
  if (s.relu) ctx->y = y;
  return py::make_tuple(y, py::cast(ctx));
}

// The validated arrays and shape of a convolution's call (conv1d_forward's arguments).
struct ConvCall {
  std::shared_ptr<Conv1dCtx> ctx;
  py::array x, w;
  std::optional<py::array> b;
};

ConvCall conv_call(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                   const py::object& stride_obj, const py::object& padding,
                   const py::object& dilation_obj, const py::object& groups_obj,
                   bool channels_last, const py::object& precision,
                   const py::object& activation, const py::object& algorithm) {
  py::array x = float_array(x_obj, "x");
  const Seq in = seq_of(x, channels_last);
  py::array w = float_array(w_obj, "w");
  check_same_dtype(w, "w", x, "x");
  if (w.ndim() != 3 || w.shape(0) < 1 || w.shape(1) < 1 || w.shape(2) < 1)
    throw py::value_error("w: expected a 3-D array (out_channels, in_channels // groups, "
                          "kernel_size) with every dimension >= 1, got shape " +
                          shape_str(shape_of(w)));
  const index_t stride = int_arg(stride_obj, "stride", 1);
  const index_t dilation = int_arg(dilation_obj, "dilation", 1);
  const index_t groups = int_arg(groups_obj, "groups", 1);
  const index_t c_out = w.shape(0), K = w.shape(2);
  if (in.channels % groups != 0 || c_out % groups != 0)
    throw py::value_error("groups: expected a divisor of the input channels (" +
                          std::to_string(in.channels) + ") and of the output channels (" +
                          std::to_string(c_out) + "), got " + std::to_string(groups));
  check_dims(w, "w", {{"out_channels", c_out, "w"},
                      {"in_channels // groups", in.channels / groups,
                       "x and groups (" + std::to_string(in.channels) + " // " +
                           std::to_string(groups) + ")"},
                      {"kernel_size", K, "w"}});
  std::optional<py::array> b;
  if (!b_obj.is_none()) {
    b = float_array(b_obj, "b");
    check_same_dtype(*b, "b", x, "x");
    check_dims(*b, "b", {{"out_channels", c_out, "w"}});
  }
  if (K > 1 && dilation > kMaxExtent / (K - 1))
    throw py::value_error("dilation: " + std::to_string(dilation) + " * (kernel_size - 1) = " +
                          std::to_string(dilation) + " * " + std::to_string(K - 1) +
                          " is too large");
  const index_t span = dilation * (K - 1) + 1;
  index_t left = 0, right = 0;
  conv_padding(padding, in.length, stride, span, &left, &right);
  const index_t padded = in.length + left + right;
  if (padded < span)
    throw py::value_error("w: kernel_size " + std::to_string(K) + " with dilation " +
                          std::to_string(dilation) + " spans " + std::to_string(span) +
                          " steps, more than the padded input of x (length " +
                          std::to_string(in.length) + " + padding " + std::to_string(left) +
                          " + " + std::to_string(right) + " = " + std::to_string(padded) +
                          "): the output would be empty");

  auto ctx = std::make_shared<Conv1dCtx>();
  Conv1dShape& s = ctx->shape;
  s.batch = in.batch;
  s.length = in.length;
  s.c_in = in.channels;
  s.c_out = c_out;
  s.kernel = K;
  s.stride = stride;
  s.dilation = dilation;
  s.groups = groups;
  s.pad_left = left;
  s.l_out = (padded - span) / stride + 1;
  // A stride past the padded input gives one output whatever its size: the kernels get one no
  // larger than that input, so no index arithmetic of theirs comes near the int64 limit.
  s.stride = std::min(stride, padded);
  s.channels_last = channels_last;
  s.precision = precision_arg(precision, x, "x");
  if (!activation.is_none()) {
    if (!py::isinstance<py::str>(activation) || activation.cast<std::string>() != "relu")
      throw py::value_error("activation: expected None or 'relu', got " + repr_of(activation));
    s.relu = true;
  }
  if (!py::isinstance<py::str>(algorithm))
    throw py::type_error("algorithm: expected 'auto', 'direct' or 'winograd', got " +
                         repr_of(algorithm));
  const std::string algo = algorithm.cast<std::string>();
  if (algo == "direct") {
    s.algorithm = ConvAlgorithm::direct;
  } else if (algo == "winograd") {
    s.algorithm = ConvAlgorithm::winograd;
    const std::string why = conv1d_winograd_refusal(s, is_double(x));
    if (!why.empty())
      throw py::value_error("algorithm: 'winograd' needs " + why + ", got " +
                            describe_for_winograd(s, is_double(x)));
  } else if (algo != "auto") {
    throw py::value_error("algorithm: expected 'auto', 'direct' or 'winograd', got " +
                          repr_of(algorithm));
  }
  checked_size({s.batch, std::max(s.l_out, s.length), std::max(s.c_out, s.c_in)}, "x and y");
  checked_size({s.c_out, s.c_in, K}, "w");
  ctx->has_bias = bool(b);
  ctx->dbl = is_double(x);
  return {ctx, x, w, b};
}

py::tuple conv1d_forward_binding(const py::object& x_obj, const py::object& w_obj,
                                 const py::object& b_obj, const py::object& stride_obj,
                                 const py::object& padding, const py::object& dilation_obj,
                                 const py::object& groups_obj, bool channels_last, bool training,
                                 const py::object& precision, const py::object& add_obj,
                                 const py::object& activation, const py::object& algorithm) {
  ConvCall c = conv_call(x_obj, w_obj, b_obj, stride_obj, padding, dilation_obj, groups_obj,
                         channels_last, precision, activation, algorithm);
  const Conv1dShape& s = c.ctx->shape;
  std::optional<py::array> add;
  if (!add_obj.is_none()) {
    add = float_array(add_obj, "add");
    check_same_dtype(*add, "add", c.x, "x");
    check_shape(*add, "add", seq_shape(s.batch, s.l_out, s.c_out, channels_last),
                "y's " + seq_words(channels_last, "length_out"));
  }
  if (c.ctx->dbl) return conv1d_forward_impl<double>(c.ctx, c.x, c.w, c.b, add, training);
  return conv1d_forward_impl<float>(c.ctx, c.x, c.w, c.b, add, training);
}

template <typename T>
py::dict conv1d_backward_impl(const Conv1dCtx& ctx, const py::object& dy_obj,
                              const py::object& add_obj, const Pool1dCtx* pool) {
  const Conv1dShape& s = ctx.shape;
  auto dy = pool ? grad_arg<T>(dy_obj, ctx.dbl,
                               seq_shape(s.batch, pool->shape.l_out, s.c_out, s.channels_last),
                               s.channels_last ? "(batch, the pool's length_out, out_channels)"
                                               : "(batch, out_channels, the pool's length_out)")
                 : grad_arg<T>(dy_obj, ctx.dbl,
                               seq_shape(s.batch, s.l_out, s.c_out, s.channels_last),
                               s.channels_last ? "(batch, length_out, out_channels)"
                                               : "(batch, out_channels, length_out)");
  std::optional<py::array_t<T, py::array::c_style>> add;
  if (!add_obj.is_none()) {
    py::array a = float_array(add_obj, "add");
    if (is_double(a) != ctx.dbl)
      throw py::type_error(std::string("add: expected dtype ") + dtype_name(ctx.dbl) +
                           " (the dtype of the forward's x), got " + dtype_str(a));
    check_shape(a, "add", shape_of(ctx.x), "x's " + seq_words(s.channels_last, "length"));
    add = contiguous<T>(a);
  }
  const T* padd = add ? add->data() : nullptr;
  py::array_t<T> dx(shape_of(ctx.x)), dw(shape_of(ctx.w));
  std::optional<py::array_t<T>> db;
  if (ctx.has_bias) db.emplace(std::vector<index_t>{s.c_out});
  T *pdx = dx.mutable_data(), *pdw = dw.mutable_data(), *pdb = db ? db->mutable_data() : nullptr;
  if (!dy) {
    if (padd) {
      std::copy(padd, padd + dx.size(), pdx);
    } else {
      std::fill(pdx, pdx + dx.size(), T(0));
    }
    std::fill(pdw, pdw + dw.size(), T(0));
    if (pdb) std::fill(pdb, pdb + s.c_out, T(0));
  } else {
    const T* px = static_cast<const T*>(ctx.x.data());
    const T* pw = static_cast<const T*>(ctx.w.data());
    const T* pdy = dy->data();
    const T* py_ = s.relu && !ctx.pooled ? static_cast<const T*>(ctx.y.data()) : nullptr;
    if (pool) {
      const index_t* parg = reinterpret_cast<const index_t*>(pool->arg->data());
      const T* ppy = static_cast<const T*>(pool->y.cast<py::array>().data());
      ReleaseGil release;  // (py_ null for a fused ctx: the kernel takes the ReLU's mask from ppy)
      conv1d_pool_backward<T>(s, pool->shape, parg, ppy, pdy, px, pw, pdx, pdw, pdb, padd, py_);
    } else {
      ReleaseGil release;
      conv1d_backward<T>(s, px, pw, pdy, pdx, pdw, pdb, padd, py_);
    }
  }
  py::dict grads;
  grads["x"] = dx;
  grads["w"] = dw;
  grads["b"] = db ? py::object(*db) : py::object(py::none());
  return grads;
}

py::dict conv1d_backward_binding(const py::object& ctx_obj, const py::object& dy_obj,
                                 const py::object& add_obj, const py::object& pool_obj) {
  const std::shared_ptr<Conv1dCtx> ctx = ctx_arg<Conv1dCtx>(ctx_obj, "conv1d_forward");
  std::shared_ptr<Pool1dCtx> pool;
  if (!pool_obj.is_none()) {
    pool = ctx_arg<Pool1dCtx>(pool_obj, "max_pool1d_forward");
    const Conv1dShape& s = ctx->shape;
    const Pool1dShape& p = pool->shape;
    if (pool->op != "max_pool1d")
      throw py::value_error("pool: expected the ctx of max_pool1d_forward, got the ctx of " +
                            pool->op + "_forward");
    if (p.batch != s.batch || p.length != s.l_out || p.channels != s.c_out ||
        p.channels_last != s.channels_last || pool->dbl != ctx->dbl)
      throw py::value_error(
          "pool: expected the ctx of a max_pool1d_forward over this convolution's output " +
          shape_str(seq_shape(s.batch, s.l_out, s.c_out, s.channels_last)) + " (" +
          dtype_name(ctx->dbl) + ", channels_last=" + (s.channels_last ? "True" : "False") +
          "), got one over " + shape_str(seq_shape(p.batch, p.length, p.channels,
                                                   p.channels_last)) +
          " (" + dtype_name(pool->dbl) + ", channels_last=" +
          (p.channels_last ? "True" : "False") + ")");
  }
  if (ctx->pooled && ctx->shape.relu && (!pool || pool != ctx->pooled_with.lock()))
    throw py::value_error(
        std::string("pool: this ctx is conv1d_max_pool1d_forward's, whose ReLU output was never "
                    "stored; its gradient needs the pool ctx returned by the same call, got ") +
        (pool ? "another pool's ctx" : "None"));
  if (ctx->dbl) return conv1d_backward_impl<double>(*ctx, dy_obj, add_obj, pool.get());
  return conv1d_backward_impl<float>(*ctx, dy_obj, add_obj, pool.get());
}

// ------------------------------------------------------------------ pooling

static_assert(sizeof(index_t) == sizeof(std::int64_t), "argmax arrays are int64");

template <typename T>
py::tuple pool_forward_impl(std::shared_ptr<Pool1dCtx> ctx, const py::array& x_in, bool training) {
  const Pool1dShape& s = ctx->shape;
  auto x = contiguous<T>(x_in);
  const bool global = ctx->op != "max_pool1d";
  const std::vector<index_t> out = global ? std::vector<index_t>{s.batch, s.channels}
                                          : seq_shape(s.batch, s.l_out, s.channels, s.channels_last);
  py::array_t<T> y(out);
  if (training && ctx->op != "global_avg_pool1d") ctx->arg.emplace(out);
  const T* px = x.data();
  T* py_ = y.mutable_data();
  index_t* parg = ctx->arg ? reinterpret_cast<index_t*>(ctx->arg->mutable_data()) : nullptr;
  {
    ReleaseGil release;
    if (ctx->op == "max_pool1d") {
      max_pool1d_forward<T>(s, px, py_, parg);
    } else if (ctx->op == "global_max_pool1d") {
      global_max_pool1d_forward<T>(s, px, py_, parg);
    } else {
      global_avg_pool1d_forward<T>(s, px, py_);
    }
  }
  if (!training) return py::make_tuple(y, py::none());
  if (ctx->op == "max_pool1d") ctx->y = y;
  return py::make_tuple(y, py::cast(ctx));
}

py::tuple pool_forward(std::shared_ptr<Pool1dCtx> ctx, const py::array& x, bool training) {
  ctx->dbl = is_double(x);
  if (ctx->dbl) return pool_forward_impl<double>(ctx, x, training);
  return pool_forward_impl<float>(ctx, x, training);
}

std::shared_ptr<Pool1dCtx> pool_ctx(const std::string& op, const Seq& in, bool channels_last) {
  auto ctx = std::make_shared<Pool1dCtx>();
  ctx->op = op;
  Pool1dShape& s = ctx->shape;
  s.batch = in.batch;
  s.length = in.length;
  s.channels = in.channels;
  s.channels_last = channels_last;
  s.pool_size = in.length;
  s.stride = 1;
  s.l_out = 1;
  checked_size({s.batch, s.length, s.channels}, "x");
  return ctx;
}

const std::vector<std::string> kPoolOps = {"max_pool1d", "global_max_pool1d", "global_avg_pool1d"};

// The window of max_pool1d: pool_size, stride (None: pool_size) and padding, under the names
// `prefix` + "stride" / "padding" for the input `input` (words for the messages).
void max_pool_window(Pool1dShape& s, const py::object& pool_size_obj, const py::object& stride_obj,
                     const py::object& padding, const std::string& prefix = "",
                     const std::string& input = "x") {
  const index_t pool_size = int_arg(pool_size_obj, "pool_size", 1);
  const std::string stride_name = prefix + "stride", padding_name = prefix + "padding";
  const index_t stride =
      stride_obj.is_none() ? pool_size : int_arg(stride_obj, stride_name.c_str(), 1);
  if (pool_size > kMaxExtent)
    throw py::value_error("pool_size: " + std::to_string(pool_size) + " is too large");
  const std::string p = choice_arg(padding, padding_name.c_str(), {"valid", "same"});
  s.pool_size = pool_size;
  // As conv1d's stride: one past the input gives one window whatever its size (see there).
  s.stride = std::min(stride, s.length);
  if (p == "valid") {
    if (pool_size > s.length)
      throw py::value_error("pool_size: a window of " + std::to_string(pool_size) +
                            " steps is longer than the input length " + std::to_string(s.length) +
                            " of " + input + " with " + padding_name + "='valid'");
    s.pad_left = 0;
    s.l_out = (s.length - pool_size) / stride + 1;
  } else {
    index_t right = 0;
    same_padding(s.length, stride, pool_size, &s.pad_left, &right);
    s.l_out = (s.length - 1) / stride + 1;
  }
}

// op: "max_pool1d" (with pool_size, stride and padding), "global_max_pool1d" or
// "global_avg_pool1d" (over all steps: pool_size, stride and padding must be None).
py::tuple pool_forward_binding(const py::object& op_obj, const py::object& x_obj,
                               const py::object& pool_size_obj, const py::object& stride_obj,
                               const py::object& padding, bool channels_last, bool training) {
  const std::string op = choice_arg(op_obj, "op", kPoolOps);
  py::array x = float_array(x_obj, "x");
  const Seq in = seq_of(x, channels_last);
  auto ctx = pool_ctx(op, in, channels_last);
  if (op == "max_pool1d") {
    max_pool_window(ctx->shape, pool_size_obj, stride_obj, padding);
  } else {
    const std::pair<const char*, const py::object*> window[] = {
        {"pool_size", &pool_size_obj}, {"stride", &stride_obj}, {"padding", &padding}};
    for (const auto& [name, value] : window)
      if (!value->is_none())
        throw py::value_error(std::string(name) + ": " + op + " pools over all steps; expected "
                              "None, got " + repr_of(*value));
  }
  return pool_forward(ctx, x, training);
}

template <typename T>
py::dict pool_backward_impl(const Pool1dCtx& ctx, const py::object& dy_obj) {
  const Pool1dShape& s = ctx.shape;
  const bool global = ctx.op != "max_pool1d";
  auto dy = global ? grad_arg<T>(dy_obj, ctx.dbl, {s.batch, s.channels}, "(batch, channels)")
                   : grad_arg<T>(dy_obj, ctx.dbl,
                                 seq_shape(s.batch, s.l_out, s.channels, s.channels_last),
                                 seq_words(s.channels_last, "length_out"));
  py::array_t<T> dx(seq_shape(s.batch, s.length, s.channels, s.channels_last));
  T* pdx = dx.mutable_data();
  if (!dy) {
    std::fill(pdx, pdx + dx.size(), T(0));
  } else {
    const T* pdy = dy->data();
    const index_t* parg = ctx.arg ? reinterpret_cast<const index_t*>(ctx.arg->data()) : nullptr;
    ReleaseGil release;
    if (ctx.op == "max_pool1d") {
      max_pool1d_backward<T>(s, parg, pdy, pdx);
    } else if (ctx.op == "global_max_pool1d") {
      global_max_pool1d_backward<T>(s, parg, pdy, pdx);
    } else {
      global_avg_pool1d_backward<T>(s, pdy, pdx);
    }
  }
  py::dict grads;
  grads["x"] = dx;
  return grads;
}

py::dict pool_backward_binding(const py::object& op_obj, const py::object& ctx_obj,
                               const py::object& dy_obj) {
  const std::string op = choice_arg(op_obj, "op", kPoolOps);
  const std::shared_ptr<Pool1dCtx> ctx = ctx_arg<Pool1dCtx>(ctx_obj, op + "_forward");
  if (ctx->op != op)
    throw py::value_error("ctx: expected the ctx of " + op + "_forward, got the ctx of " +
                          ctx->op + "_forward");
  if (ctx->dbl) return pool_backward_impl<double>(*ctx, dy_obj);
  return pool_backward_impl<float>(*ctx, dy_obj);
}

// ------------------------------------------------------------------ Conv1D + MaxPool1D

template <typename T>
py::tuple conv_pool_forward_impl(const ConvCall& c, std::shared_ptr<Pool1dCtx> pool,
                                 bool training) {
  const Conv1dShape& s = c.ctx->shape;
  const Pool1dShape& p = pool->shape;
  auto x = contiguous<T>(c.x);
  auto w = contiguous<T>(c.w);
  std::optional<py::array_t<T, py::array::c_style>> b;
  if (c.b) b = contiguous<T>(*c.b);
  const std::vector<index_t> out = seq_shape(p.batch, p.l_out, p.channels, p.channels_last);
  py::array_t<T> y(out);
  if (training) pool->arg.emplace(out);
  const T *px = x.data(), *pw = w.data(), *pb = b ? b->data() : nullptr;
  T* py_ = y.mutable_data();
  index_t* parg = pool->arg ? reinterpret_cast<index_t*>(pool->arg->mutable_data()) : nullptr;
  {
    ReleaseGil release;
    conv1d_max_pool1d_forward<T>(s, p, px, pw, pb, py_, parg);
  }
  if (!training) return py::make_tuple(y, py::none(), py::none());
  c.ctx->x = x;
  c.ctx->w = w;
  c.ctx->pooled = true;
  c.ctx->pooled_with = pool;
  pool->y = y;
  return py::make_tuple(y, py::cast(c.ctx), py::cast(pool));
}

// conv1d_forward's arguments (no add) and max_pool1d's window over its output.
py::tuple conv_pool_forward_binding(const py::object& x_obj, const py::object& w_obj,
                                    const py::object& b_obj, const py::object& stride_obj,
                                    const py::object& padding, const py::object& dilation_obj,
                                    const py::object& groups_obj, bool channels_last,
                                    bool training, const py::object& precision,
                                    const py::object& activation, const py::object& pool_size,
                                    const py::object& pool_stride,
                                    const py::object& pool_padding,
                                    const py::object& algorithm) {
  ConvCall c = conv_call(x_obj, w_obj, b_obj, stride_obj, padding, dilation_obj, groups_obj,
                         channels_last, precision, activation, algorithm);
  const Conv1dShape& s = c.ctx->shape;
  auto pool = pool_ctx("max_pool1d", Seq{s.batch, s.l_out, s.c_out}, channels_last);
  max_pool_window(pool->shape, pool_size, pool_stride, pool_padding, "pool_",
                  "the convolution's output");
  pool->dbl = c.ctx->dbl;
  if (c.ctx->dbl) return conv_pool_forward_impl<double>(c, pool, training);
  return conv_pool_forward_impl<float>(c, pool, training);
}

// ------------------------------------------------------------------ gated activation

// a (..., 2C), C >= 1: the rows and C.
std::pair<index_t, index_t> gated_rows(const py::array& a) {
  const std::vector<index_t> shape = shape_of(a);
  if (shape.empty() || shape.back() < 2 || shape.back() % 2)
    throw py::value_error("a: expected an array (..., 2C) with an even last axis >= 2 (the filter "
                          "pre-activations, then the gates), got shape " + shape_str(shape));
  index_t rows = 1;
  for (std::size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return {rows, shape.back() / 2};
}

template <typename T>
py::array gated_forward_impl(const py::array& a_in) {
  auto a = contiguous<T>(a_in);
  const auto [rows, C] = gated_rows(a);
  std::vector<index_t> shape = shape_of(a);
  shape.back() = C;
  py::array_t<T> z(shape);
  const T* pa = a.data();
  T* pz = z.mutable_data();
  if (rows > 0) {
    ReleaseGil release;
    gated_activation_forward<T>(rows, C, pa, pz);
  }
  return std::move(z);
}

template <typename T>
py::array gated_backward_impl(const py::array& a_in, const py::array& dz_in) {
  auto a = contiguous<T>(a_in);
  const auto [rows, C] = gated_rows(a);
  std::vector<index_t> zshape = shape_of(a);
  zshape.back() = C;
  check_shape(dz_in, "dz", zshape, "(..., C), the shape of the forward's output");
  auto dz = contiguous<T>(dz_in);
  py::array_t<T> da(shape_of(a));
  const T* pa = a.data();
  const T* pdz = dz.data();
  T* pda = da.mutable_data();
  if (rows > 0) {
    ReleaseGil release;
    gated_activation_backward<T>(rows, C, pa, pdz, pda);
  }
  return std::move(da);
}

py::array gated_forward_binding(const py::object& a_obj) {
  py::array a = float_array(a_obj, "a");
  gated_rows(a);
  if (is_double(a)) return gated_forward_impl<double>(a);
  return gated_forward_impl<float>(a);
}

py::array gated_backward_binding(const py::object& a_obj, const py::object& dz_obj) {
  py::array a = float_array(a_obj, "a");
  gated_rows(a);
  py::array dz = float_array(dz_obj, "dz");
  check_same_dtype(dz, "dz", a, "a");
  if (is_double(a)) return gated_backward_impl<double>(a, dz);
  return gated_backward_impl<float>(a, dz);
}

}  // namespace

void bind_conv(Entries& m) {
  py::class_<Conv1dCtx, std::shared_ptr<Conv1dCtx>> conv_ctx(
      m.module(), "Conv1dCtx",
      "What conv1d_forward(..., training=True) keeps for conv1d_backward (opaque).");
  conv_ctx.def("__repr__", guarded([](const py::object& self) {
    const auto c = held_ctx<Conv1dCtx>(self);
    if (!c) return std::string("<rnnfast ctx, uninitialised>");
    return "<rnnfast ctx of conv1d_forward, x " + shape_str(shape_of(c->x)) + ", w " +
           shape_str(shape_of(c->w)) + ", " + dtype_name(c->dbl) + ">";
  }));
  refuse_copies(conv_ctx);
  py::class_<Pool1dCtx, std::shared_ptr<Pool1dCtx>> pool_ctx(
      m.module(), "Pool1dCtx",
      "What a pooling forward with training=True keeps for its backward (opaque).");
  pool_ctx
      .def_property_readonly("op", guarded([](const py::object& self) {
        return ctx_arg<Pool1dCtx>(self, "a pooling forward")->op;
      }))
      .def_property_readonly("input_shape", guarded([](const py::object& self) {
        const Pool1dShape& s = ctx_arg<Pool1dCtx>(self, "a pooling forward")->shape;
        const std::vector<index_t> shape = seq_shape(s.batch, s.length, s.channels,
                                                     s.channels_last);
        return py::make_tuple(shape[0], shape[1], shape[2]);
      }), "The shape of the pooled input (for conv1d_max_pool1d_forward's, the convolution's "
          "output, never stored).")
      .def("__repr__", guarded([](const py::object& self) {
        const auto c = held_ctx<Pool1dCtx>(self);
        if (!c) return std::string("<rnnfast ctx, uninitialised>");
        const Pool1dShape& s = c->shape;
        return "<rnnfast ctx of " + c->op + "_forward, x " +
               shape_str(seq_shape(s.batch, s.length, s.channels, s.channels_last)) + ", " +
               dtype_name(c->dbl) + ">";
      }));
  refuse_copies(pool_ctx);
  // Arrays by position, options by keyword only (no defaults: rnnfast.functional has them).
  m.def("conv1d_forward", &conv1d_forward_binding, py::arg("x"), py::arg("w"), py::arg("b"),
        py::kw_only(), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("channels_last").noconvert(), py::arg("training").noconvert(),
        py::arg("precision") = "float32", py::arg("add") = py::none(),
        py::arg("activation") = py::none(), py::arg("algorithm") = "auto");
  m.def("conv1d_max_pool1d_forward", &conv_pool_forward_binding, py::arg("x"), py::arg("w"),
        py::arg("b"), py::kw_only(), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("channels_last").noconvert(),
        py::arg("training").noconvert(), py::arg("precision") = "float32",
        py::arg("activation") = py::none(), py::arg("pool_size"), py::arg("pool_stride"),
        py::arg("pool_padding"), py::arg("algorithm") = "auto");
  m.def("conv1d_backward", &conv1d_backward_binding, py::arg("ctx"), py::arg("dy"),
        py::kw_only(), py::arg("add") = py::none(), py::arg("pool") = py::none());
  m.def("pool1d_forward", &pool_forward_binding, py::arg("op"), py::arg("x"), py::kw_only(),
        py::arg("pool_size"), py::arg("stride"), py::arg("padding"),
        py::arg("channels_last").noconvert(), py::arg("training").noconvert());
  m.def("pool1d_backward", &pool_backward_binding, py::arg("op"), py::arg("ctx"), py::arg("dy"));
  m.def("gated_activation_forward", &gated_forward_binding, py::arg("a"));
  m.def("gated_activation_backward", &gated_backward_binding, py::arg("a"), py::arg("dz"));
}

}  // namespace rnnfast::bindings
