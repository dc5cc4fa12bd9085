// Bindings of the embedding lookup with its dropout (rnnfast/dropout.h) and of its gradient
// (rnnfast/embedding.h): a scatter-add into grad in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings.h"
#include "checks.h"
#include "entry.h"
#include "gil.h"
#include "rnnfast/dropout.h"
#include "rnnfast/embedding.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// Token ids: an integer array (1-D when ndim is 1, any rank when 0), each in [0, rows) (the rows
// of `table`, named in the message), as contiguous int64; the message's indices are flat.
py::array_t<std::int64_t, py::array::c_style> ids_arg(const py::handle& obj, index_t rows,
                                                      const char* table, int ndim = 1) {
  const py::array a = integer_array(obj, "ids");
  const char kind = a.dtype().kind();
  if (ndim > 0) check_ndim(a, "ids", ndim);
  const std::string range = "ids: every entry must be in 0.." + std::to_string(rows - 1) +
                            " (the rows of " + table + "), got ";
  if (kind == 'u' && a.dtype().itemsize() == 8) {  // above the int64 range: not a row
    auto u = py::array_t<std::uint64_t, py::array::c_style>::ensure(a);
    for (index_t i = 0; i < static_cast<index_t>(u.size()); ++i)
      if (u.data()[i] >= static_cast<std::uint64_t>(rows))
        throw py::value_error(range + std::to_string(u.data()[i]) + " at index " +
                              std::to_string(i));
  }
  auto ids = contiguous<std::int64_t>(a);
  for (index_t i = 0; i < static_cast<index_t>(ids.size()); ++i)
    if (ids.data()[i] < 0 || ids.data()[i] >= rows)
      throw py::value_error(range + std::to_string(ids.data()[i]) + " at index " +
                            std::to_string(i));
  return ids;
}

// keep=: None, or the dropout mask's bits over count elements (rnnfast/dropout.h's
// dropout_gather): a 1-D uint8 NumPy array of (count + 7) / 8 bytes, C-contiguous, and
// writeable when the forward fills it; only with a dropout (p > 0).
py::object keep_arg(const py::object& obj, index_t count, double p, bool fill) {
  if (obj.is_none()) return obj;
  const std::string bytes = std::to_string((count + 7) / 8);
  if (!py::isinstance<py::array>(obj))
    throw py::type_error("keep: expected None or a uint8 NumPy array (the dropout mask's bits), "
                         "got " + py::str(py::type::of(obj)).cast<std::string>());
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.dtype().kind() != 'u' || a.dtype().itemsize() != 1)
    throw py::type_error("keep: expected a uint8 array, got dtype " + dtype_str(a));
  check_ndim(a, "keep", 1);
  if (static_cast<index_t>(a.size()) != (count + 7) / 8)
    throw py::value_error("keep: expected " + bytes + " bytes (one bit per element of dy or y: "
                          "(ids.size * dim + 7) // 8), got " + std::to_string(a.size()));
  const int needed = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                     (fill ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
  if ((a.flags() & needed) != needed)
    throw py::value_error(std::string("keep: expected a ") + (fill ? "writeable, " : "") +
                          "C-contiguous array, got " +
                          (fill && !(a.flags() & py::detail::npy_api::NPY_ARRAY_WRITEABLE_)
                               ? "a read-only one" : "another layout"));
  if (!(p > 0.0)) throw py::value_error("keep: needs a dropout (p > 0), got p = 0");
  return obj;
}

const std::uint8_t* keep_data(const py::object& keep) {
  return keep.is_none() ? nullptr
                        : static_cast<const std::uint8_t*>(py::array(keep).data());
}

template <typename T>
py::array embedding_forward_impl(const py::array_t<std::int64_t, py::array::c_style>& ids,
                                 const py::array& weight_in, double p, std::uint64_t seed,
                                 const py::object& keep_obj) {
  auto weight = contiguous<T>(weight_in);
  std::vector<index_t> shape = shape_of(ids);
  const index_t dim = static_cast<index_t>(weight.shape(1));
  shape.push_back(dim);
  py::array_t<T> y(shape);
  const index_t n = static_cast<index_t>(ids.size());
  const std::int64_t* pi = ids.data();
  const T* pw = weight.data();
  T* py_ = y.mutable_data();
  std::uint8_t* keep = nullptr;
  if (!keep_obj.is_none()) {
    py::array k(keep_obj);
    if (overlap(k, weight) || overlap(k, ids))
      throw py::value_error("keep: shares memory with weight or ids (it is written)");
    keep = static_cast<std::uint8_t*>(k.mutable_data());
  }
  ReleaseGil release;
  dropout_gather<T>(n, dim, pi, pw, p, seed, py_, keep);
  return y;
}

py::array embedding_forward_binding(const py::object& ids_obj, const py::object& weight_obj,
                                    double p, const py::object& seed_obj,
                                    const py::object& keep_obj) {
  py::array weight = float_array(weight_obj, "weight");
  check_ndim(weight, "weight", 2);
  const auto ids = ids_arg(ids_obj, static_cast<index_t>(weight.shape(0)), "weight", 0);
  if (!(p >= 0.0 && p < 1.0))
    throw py::value_error("p: expected a float in [0, 1) (0: no dropout), got " +
                          py::str(py::float_(p)).cast<std::string>());
  const std::uint64_t seed = seed64_arg(seed_obj, "seed");
  const index_t count =
      checked_size({static_cast<index_t>(ids.size()), static_cast<index_t>(weight.shape(1))}, "y");
  const py::object keep = keep_arg(keep_obj, count, p, true);
  if (is_double(weight)) return embedding_forward_impl<double>(ids, weight, p, seed, keep);
  return embedding_forward_impl<float>(ids, weight, p, seed, keep);
}

template <typename T>
void embedding_backward_impl(const py::array_t<std::int64_t, py::array::c_style>& ids,
                             const py::array& dy_in, py::array& grad, std::int64_t skip, double p,
                             std::uint64_t seed, bool zero, py::object keep) {
  py::array dy = py::array(contiguous<T>(dy_in));
  if (overlap(dy, grad)) dy = py::array(py::array_t<T, py::array::c_style>(dy.attr("copy")()));
  if (!keep.is_none() && overlap(py::array(keep), grad)) keep = py::array(keep).attr("copy")();
  const index_t n = static_cast<index_t>(ids.size()), dim = static_cast<index_t>(grad.shape(1));
  const index_t rows = static_cast<index_t>(grad.shape(0));
  const std::int64_t* pi = ids.data();
  const T* pd = static_cast<const T*>(dy.data());
  T* pg = static_cast<T*>(grad.mutable_data());
  const std::uint8_t* pk = keep_data(keep);
  ReleaseGil release;
  if (p > 0.0)
    embedding_backward_dropped<T>(n, dim, rows, pi, pd, skip, p, seed, zero, pg, pk);
  else
    embedding_backward<T>(n, dim, rows, pi, pd, skip, zero, pg);
}

void embedding_backward_binding(const py::object& ids_obj, const py::object& dy_obj,
                                const py::object& grad_obj, const py::object& padding_obj,
                                double p, const py::object& seed_obj, bool zero,
                                const py::object& keep_obj) {
  py::array grad = in_place(grad_obj, "grad", nullptr);
  check_ndim(grad, "grad", 2);
  const index_t rows = static_cast<index_t>(grad.shape(0));
  const auto ids = ids_arg(ids_obj, rows, "grad");
  py::array dy = float_array(dy_obj, "dy");
  check_same_dtype(dy, "dy", grad, "grad");
  check_shape(dy, "dy", {static_cast<index_t>(ids.size()), static_cast<index_t>(grad.shape(1))},
              "(ids.size, grad.shape[1])");
  std::int64_t skip = -1;
  if (!padding_obj.is_none()) {
    skip = int_arg(padding_obj, "padding_idx", 0);
    if (skip >= rows)
      throw py::value_error("padding_idx: expected None or an int in 0.." +
                            std::to_string(rows - 1) + " (the rows of grad), got " +
                            std::to_string(skip));
  }
  if (!(p >= 0.0 && p < 1.0))
    throw py::value_error("p: expected a float in [0, 1) (0: no dropout), got " +
                          py::str(py::float_(p)).cast<std::string>());
  const std::uint64_t seed = seed64_arg(seed_obj, "seed");
  const py::object keep = keep_arg(keep_obj, static_cast<index_t>(dy.size()), p, false);
  if (is_double(grad))
    embedding_backward_impl<double>(ids, dy, grad, skip, p, seed, zero, keep);
  else
    embedding_backward_impl<float>(ids, dy, grad, skip, p, seed, zero, keep);
}

}  // namespace

void bind_embedding(Entries& m) {
  m.def("embedding_forward", &embedding_forward_binding, py::arg("ids"), py::arg("weight"),
        py::arg("p") = 0.0, py::arg("seed") = 0, py::arg("keep") = py::none(),
        "weight[ids] (ids integers of any shape in 0..rows-1, weight (rows, dim) float32/float64) "
        "as a new array of shape ids.shape + (dim,), then with p > 0 the dropout of "
        "rnnfast/dropout.h in the same pass: bitwise dropout(weight[ids], p, seed) (p in [0, 1), "
        "seed in 0..2**64-1); the same for any thread count. keep (p > 0): a writeable uint8 "
        "array of (ids.size * dim + 7) // 8 bytes, filled with the dropout's mask as bits "
        "(np.packbits(kept, bitorder='little') of the flat elements; for embedding_backward's "
        "keep).");
  m.def("embedding_backward", &embedding_backward_binding, py::arg("ids"), py::arg("dy"),
        py::arg("grad"), py::arg("padding_idx") = py::none(), py::arg("p") = 0.0,
        py::arg("seed") = 0, py::arg("zero") = false, py::arg("keep") = py::none(),
        "grad[ids[i]] += dy[i] for every i in order (ids 1-D integers in 0..rows-1, dy "
        "(ids.size, dim), grad (rows, dim) float32/float64 updated in place), skipping "
        "ids[i] == padding_idx; with p > 0, dy is first dropped as dropout(dy, p, seed) would "
        "(the backward of embedding_forward(ids, weight, p, seed), without the dropped copy); "
        "zero=True: grad's contents are ignored and taken as zeros (cleared by the threads as "
        "they go: a new gradient needs no zeroed array); bitwise the same for any thread "
        "count. keep (p > 0): the mask's bits that embedding_forward(..., p, seed, keep=) "
        "filled, read instead of drawn again from seed (the same values for that seed's bits).");
}

}  // namespace rnnfast::bindings
