// Argument validation shared by every binding: runs with the GIL held, before any kernel touches
// memory. Every message names the argument, what was expected and what was given.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gil.h"
#include "rnnfast/common.h"

namespace rnnfast::bindings {

namespace py = pybind11;

inline std::string shape_str(const std::vector<index_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  if (dims.size() == 1) s += ",";
  return s + ")";
}

inline std::vector<index_t> shape_of(const py::array& a) {
  return std::vector<index_t>(a.shape(), a.shape() + a.ndim());
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline bool is_double(const py::array& a) { return a.dtype().itemsize() == 8; }

// obj itself when it is a base-class ndarray (no conversion: what py::array::ensure would give
// back, without NumPy's array-from-object machinery on every argument of every call), else
// py::array::ensure(obj), null when that fails (the Python error cleared).
inline py::array as_array(const py::handle& obj) {
  if (Py_TYPE(obj.ptr()) == reinterpret_cast<PyTypeObject*>(py::detail::npy_api::get().PyArray_Type_))
    return py::reinterpret_borrow<py::array>(obj);
  py::array a;
  try {
    a = py::array::ensure(obj);
  } catch (py::error_already_set&) {
    a = py::array();
  }
  if (!a) PyErr_Clear();
  return a;
}

// Any array-like (ndarray, list, object with __array__) as an ndarray of float32 or float64;
// anything else raises TypeError naming the argument.
inline py::array float_array(const py::handle& obj, const char* name) {
  py::array a = as_array(obj);
  if (!a)
    throw py::type_error(std::string(name) + ": expected a float32 or float64 array, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (kind != 'f' || (size != 4 && size != 8)) {
    std::string given = "dtype " + dtype_str(a);
    if (!py::isinstance<py::array>(obj))
      given = py::str(py::type::of(obj).attr("__name__")).cast<std::string>() + " (" + given + ")";
    throw py::type_error(std::string(name) + ": expected a float32 or float64 array, got " + given);
  }
  return a;
}

// Every float array of one call shares the dtype of the reference argument (x).
inline void check_same_dtype(const py::array& a, const char* name, const py::array& ref,
                             const char* ref_name) {
  if (a.dtype().itemsize() != ref.dtype().itemsize())
    throw py::type_error(std::string(name) + ": expected dtype " + dtype_str(ref) + " (the dtype of " +
                         ref_name + "), got " + dtype_str(a));
}

inline void check_ndim(const py::array& a, const char* name, int ndim) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) +
                          "-D array, got shape " + shape_str(shape_of(a)));
}

// what: the expected shape in words, e.g. "(4*hidden_size, input_size)".
inline void check_shape(const py::array& a, const char* name, const std::vector<index_t>& expected,
                        const std::string& what) {
  if (shape_of(a) != expected)
    throw py::value_error(std::string(name) + ": expected shape " + what + " = " +
                          shape_str(expected) + ", got " + shape_str(shape_of(a)));
}

// One expected dimension of an argument, and where its size comes from: `base` (e.g.
// "hidden_size") is `base_size`, read from the argument `origin`, and the dimension is
// factor * base (e.g. 4*hidden_size, the gates of an LSTM). When the given size differs, the
// message names the pair that disagrees and the size each implies.
struct Dim {
  std::string base;
  index_t base_size;
  std::string origin;
  index_t factor = 1;

  index_t size() const { return factor * base_size; }
  std::string word() const { return factor == 1 ? base : std::to_string(factor) + "*" + base; }
};

using Dims = std::initializer_list<Dim>;

inline std::string dims_words(Dims dims) {
  std::string s = "(";
  std::size_t i = 0;
  for (const Dim& d : dims) s += (i++ ? ", " : "") + d.word();
  return s + (dims.size() == 1 ? ",)" : ")");
}

// a must have the shape of dims: e.g. "w_ih: expected shape (4*hidden_size, input_size) =
// (24, 3), got (24, 4): input_size is 3 from x but 4 from w_ih".
inline void check_dims(const py::array& a, const char* name, Dims dims) {
  bool same = a.ndim() == static_cast<py::ssize_t>(dims.size());
  for (std::size_t i = 0; same && i < dims.size(); ++i) same = a.shape(i) == dims.begin()[i].size();
  if (same) return;
  std::vector<index_t> expected;
  for (const Dim& d : dims) expected.push_back(d.size());
  const std::vector<index_t> given = shape_of(a);
  std::string msg = std::string(name) + ": expected ";
  msg += "shape " + dims_words(dims) + " = " + shape_str(expected) + ", got " + shape_str(given);
  if (given.size() != dims.size()) throw py::value_error(msg);
  std::string why;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const Dim& d = dims.begin()[i];
    const index_t g = given[i];
    if (g == d.size()) continue;
    why += why.empty() ? ": " : "; ";
    if (d.factor > 1 && g % d.factor != 0) {
      why += std::to_string(g) + " is not a multiple of " + std::to_string(d.factor) + " (" +
             d.word() + ", with " + d.base + " = " + std::to_string(d.base_size) + " from " +
             d.origin + ")";
    } else {
      why += d.base + " is " + std::to_string(d.base_size) + " from " + d.origin + " but " +
             std::to_string(g / d.factor) + " from " + name;
      if (d.factor > 1)
        why += " (" + std::to_string(g) + " = " + std::to_string(d.factor) + "*" +
               std::to_string(g / d.factor) + ")";
    }
  }
  throw py::value_error(msg + why);
}

// Throws ValueError if the product of dims overflows what can be addressed.
inline index_t checked_size(const std::vector<index_t>& dims, const char* what) {
  index_t n = 1;
  for (index_t d : dims) {
    if (d != 0 && n > std::numeric_limits<index_t>::max() / 8 / d)
      throw py::value_error(std::string(what) + ": sizes " + shape_str(dims) +
                            " are too large to allocate");
    n *= d;
  }
  return n;
}

// A C-contiguous, aligned array of T in native byte order: `a` itself when it is one, else a
// copy. The dtype must already be checked. A copy that cannot be allocated (a huge broadcast view)
// raises MemoryError: array_t::ensure would clear that error and return a null array.
template <typename T>
py::array_t<T, py::array::c_style> contiguous(const py::array& a) {
  // The usual argument: already one (no conversion call into NumPy).
  constexpr int kReady = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                         py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  const auto* descr = py::detail::array_descriptor_proxy(py::detail::array_proxy(a.ptr())->descr);
  if ((a.flags() & kReady) == kReady && descr->type_num == py::detail::npy_format_descriptor<T>::value &&
      descr->byteorder == '=')
    return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(a);
  // NumPy releases the GIL during large copies (gil.h: a thread may be ended while it waits).
  auto c = park_if_killed([&] {
    return py::array_t<T, py::array::c_style | py::array::forcecast>(a);  // throws on failure
  });
  if (reinterpret_cast<std::uintptr_t>(c.data()) % alignof(T) != 0) {
    py::array_t<T, py::array::c_style> copy(shape_of(c));
    if (c.size() > 0)
      std::memcpy(copy.mutable_data(), c.data(), sizeof(T) * static_cast<std::size_t>(c.size()));
    return copy;
  }
  return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(c);
}

// a (of float32 or float64) C-contiguous.
inline py::array contiguous_float(const py::array& a) {
  if (is_double(a)) return py::array(contiguous<double>(a));
  return py::array(contiguous<float>(a));
}

// An optional float argument of the call's dtype (x's) with the shape of dims, C-contiguous;
// None stays None.
inline std::optional<py::array> optional_array(const py::object& obj, const char* name,
                                               const py::array& x, Dims dims) {
  if (obj.is_none()) return std::nullopt;
  py::array a = float_array(obj, name);
  check_same_dtype(a, name, x, "x");
  check_dims(a, name, dims);
  return contiguous_float(a);
}

// The same for the gradients a backward is given, whose shapes come from the forward.
inline std::optional<py::array> optional_grad(const py::object& obj, const char* name,
                                              const py::array& x,
                                              const std::vector<index_t>& shape,
                                              const std::string& what) {
  if (obj.is_none()) return std::nullopt;
  py::array a = float_array(obj, name);
  check_same_dtype(a, name, x, "the forward's x");
  check_shape(a, name, shape, what);
  return contiguous_float(a);
}

// The data of an optional array, or nullptr.
template <typename T>
const T* ptr(const std::optional<py::array>& a) {
  return a ? static_cast<const T*>(a->data()) : nullptr;
}

// obj as an array of a signed or unsigned integer dtype (TypeError naming `name` otherwise).
inline py::array integer_array(const py::handle& obj, const char* name) {
  py::array a;
  try {
    a = py::array::ensure(obj);
  } catch (py::error_already_set&) {
    a = py::array();
  }
  if (!a) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + ": expected an integer array, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  }
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(std::string(name) + ": expected an integer array, got dtype " +
                         dtype_str(a));
  return a;
}

// Integer lengths of shape (B,), each in 1..T, as int64.
inline std::vector<std::int64_t> lengths_vector(const py::handle& obj, index_t B, index_t T) {
  const py::array a = integer_array(obj, "lengths");
  const char kind = a.dtype().kind();
  if (a.ndim() != 1 || a.shape(0) != B)
    throw py::value_error("lengths: expected shape (batch,) = " + shape_str({B}) + ", got " +
                          shape_str(shape_of(a)));
  auto l = contiguous<std::int64_t>(a);
  std::vector<std::int64_t> out(l.data(), l.data() + B);
  for (index_t b = 0; b < B; ++b)
    if (out[b] < 1 || out[b] > T) {
      // uint64 entries above the int64 range wrapped to negative values: show them as given.
      const std::string given = kind == 'u' ? std::to_string(static_cast<std::uint64_t>(out[b]))
                                            : std::to_string(out[b]);
      throw py::value_error("lengths: every entry must be in 1..T = 1.." + std::to_string(T) +
                            ", got " + given + " at index " + std::to_string(b));
    }
  return out;
}

// A Python int (or NumPy integer; not bool) >= min_value, as index_t. TypeError for anything else,
// ValueError when it is smaller than min_value or does not fit in 64 bits.
inline index_t int_arg(const py::handle& obj, const char* name, index_t min_value) {
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw py::type_error(std::string(name) + ": expected an int, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!as_int) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + ": expected an int >= " + std::to_string(min_value) +
                          " that fits in 64 bits, got " + py::str(obj).cast<std::string>());
  }
  if (v < min_value)
    throw py::value_error(std::string(name) + ": expected an int >= " + std::to_string(min_value) +
                          ", got " + std::to_string(v));
  return static_cast<index_t>(v);
}

// A 64-bit seed: a Python int (or NumPy integer; not bool) in 0 .. 2**64 - 1. TypeError for
// anything else, ValueError outside the range; both name the argument.
inline std::uint64_t seed64_arg(const py::handle& obj, const char* name) {
  const std::string expected = std::string(name) + ": expected an int in 0..2**64-1, got ";
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw py::type_error(expected + py::str(py::type::of(obj)).cast<std::string>());
  py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!as_int) throw py::error_already_set();
  const unsigned long long v = PyLong_AsUnsignedLongLong(as_int.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(expected + py::str(obj).cast<std::string>());
  }
  return static_cast<std::uint64_t>(v);
}

// One of the names in `choices`, given as a str (the enum arguments of the bindings: op,
// nonlinearity, padding): TypeError for another type, ValueError for another name; both show
// the choices and the repr of what was given.
inline std::string choice_arg(const py::handle& obj, const char* name,
                              const std::vector<std::string>& choices) {
  if (PyUnicode_Check(obj.ptr())) {
    for (const std::string& c : choices)
      if (PyUnicode_CompareWithASCIIString(obj.ptr(), c.c_str()) == 0) return c;
  }
  std::string words;  // the error's message, made only on an error
  for (std::size_t i = 0; i < choices.size(); ++i)
    words += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + ("'" + choices[i] + "'");
  const std::string given = py::repr(obj).cast<std::string>();
  if (!py::isinstance<py::str>(obj))
    throw py::type_error(std::string(name) + ": expected " + words + ", got " + given +
                         " of type " + py::str(py::type::of(obj)).cast<std::string>());
  throw py::value_error(std::string(name) + ": expected " + words + ", got " + given);
}

// The C++ object of a ctx, or null when obj is not a Ctx or is an instance that no forward made
// (Ctx.__new__(Ctx) gives one whose C++ object was never constructed: reading it would be UB).
template <typename Ctx>
std::shared_ptr<Ctx> held_ctx(const py::handle& obj) {
  try {
    return obj.cast<std::shared_ptr<Ctx>>();
  } catch (const py::cast_error&) {
    return nullptr;
  }
}

// The ctx argument of a backward: a Ctx made by `forward` (the forward's name, for messages).
// None (a forward run with training=False keeps nothing) is a ValueError, another type a TypeError.
// The shared_ptr keeps the ctx alive while the kernel runs without the GIL.
template <typename Ctx>
std::shared_ptr<Ctx> ctx_arg(const py::handle& obj, const std::string& forward) {
  if (obj.is_none())
    throw py::value_error("ctx: got None; call " + forward +
                          "(..., training=True) to get a ctx for the backward pass");
  const std::string expected = "ctx: expected the ctx returned by " + forward + "(..., training=True), got ";
  if (!py::isinstance<Ctx>(obj))
    throw py::type_error(expected + py::str(py::type::of(obj)).cast<std::string>());
  std::shared_ptr<Ctx> ctx = held_ctx<Ctx>(obj);
  if (!ctx) throw py::type_error(expected + "an uninitialised " + py::str(py::type::of(obj)).cast<std::string>());
  return ctx;
}

// An array a kernel updates in place (the optimisers' arrays, an embedding gradient): an ndarray of w's dtype and shape that the kernel can
// write through a plain pointer (C-contiguous, aligned, native byte order, writeable).
inline py::array in_place(const py::handle& obj, const char* name, const py::array* w) {
  py::array a = float_array(obj, name);
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) +
                         ": expected a NumPy array (it is updated in place), got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  if (w) {
    check_same_dtype(a, name, *w, "w");
    check_shape(a, name, shape_of(*w), "the shape of w");
  }
  const int needed = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                     py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                     py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  const bool native = a.dtype().byteorder() != '>';
  if ((a.flags() & needed) != needed || !native)
    throw py::value_error(std::string(name) +
                          ": expected a writeable, aligned, C-contiguous array in native byte "
                          "order (it is updated in place), got " +
                          (!(a.flags() & py::detail::npy_api::NPY_ARRAY_WRITEABLE_)
                               ? std::string("a read-only one")
                           : !native ? std::string("big-endian dtype ") + dtype_str(a)
                                     : std::string("another layout")));
  return a;
}

struct Span {
  std::uintptr_t begin, end;
};

inline Span span_of(const py::array& a) {
  const auto p = reinterpret_cast<std::uintptr_t>(a.data());
  return {p, p + static_cast<std::uintptr_t>(a.nbytes())};
}

inline bool overlap(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const Span x = span_of(a), y = span_of(b);
  return x.begin < y.end && y.begin < x.end;
}

}  // namespace rnnfast::bindings
