// Bindings of the runtime: thread count, instruction sets, the build's configuration, and the GEMM
// (for tests and benchmarks).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "bindings.h"
#include "checks.h"
#include "entry.h"
#include "gil.h"
#include "precision.h"
#include "rnnfast/cpu.h"
#include "rnnfast/gemm.h"
#include "rnnfast/gemm_bf16.h"
#include "rnnfast/recurrent.h"
#include "rnnfast/recurrent_small.h"
#include "rnnfast/threads.h"

// The flags of the build, defined by setup.py (string literals); absent in other builds.
#ifndef RNNFAST_BUILD_FLAGS
#define RNNFAST_BUILD_FLAGS "unknown"
#endif
#ifndef RNNFAST_BUILD_FLAGS_AVX2
#define RNNFAST_BUILD_FLAGS_AVX2 "unknown"
#endif
#ifndef RNNFAST_BUILD_FLAGS_AVX512
#define RNNFAST_BUILD_FLAGS_AVX512 "unknown"
#endif
#ifndef RNNFAST_BUILD_FLAGS_AVX512BF16
#define RNNFAST_BUILD_FLAGS_AVX512BF16 "unknown"
#endif
#ifndef RNNFAST_BUILD_FLAGS_AMX
#define RNNFAST_BUILD_FLAGS_AMX "unknown"
#endif

#define RNNFAST_STR_(x) #x
#define RNNFAST_STR(x) RNNFAST_STR_(x)

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

std::string compiler_name() {
#if defined(__clang__)
  return std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("GCC ") + __VERSION__;
#elif defined(_MSC_VER)
  return "MSVC " + std::to_string(_MSC_FULL_VER);
#else
  return "unknown";
#endif
}

const char* target_arch() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__i386__) || defined(_M_IX86)
  return "x86";
#elif defined(__aarch64__) || defined(_M_ARM64)
  return "aarch64";
#elif defined(__powerpc64__)
  return "ppc64";
#else
  return "unknown";
#endif
}

// What built this binary: compiler, language standard, flags, and the kernels compiled in (with
// the extra flags of each instruction set's translation units).
py::dict build_info() {
  py::dict info;
  info["compiler"] = compiler_name();
  info["cxx_standard"] = static_cast<long>(__cplusplus);
  info["target"] = target_arch();
  info["flags"] = RNNFAST_BUILD_FLAGS;
  py::dict isa_flags;
  isa_flags["generic"] = "";
#ifdef RNNFAST_HAVE_X86_KERNELS
  isa_flags["avx2"] = RNNFAST_BUILD_FLAGS_AVX2;
  isa_flags["avx512"] = RNNFAST_BUILD_FLAGS_AVX512;
#endif
  info["isa_flags"] = isa_flags;
  py::dict bf16_flags;  // the bfloat16 paths' kernels compiled in, with their extra flags
  bf16_flags["portable"] = "";
#ifdef RNNFAST_HAVE_X86_KERNELS
  bf16_flags["avx512_bf16"] = RNNFAST_BUILD_FLAGS_AVX512BF16;
  bf16_flags["amx"] = RNNFAST_BUILD_FLAGS_AMX;
#endif
  info["bf16_isa_flags"] = bf16_flags;
  info["pybind11"] = RNNFAST_STR(PYBIND11_VERSION_MAJOR) "." RNNFAST_STR(
      PYBIND11_VERSION_MINOR) "." RNNFAST_STR(PYBIND11_VERSION_PATCH);
  return info;
}

std::string supported_names() {
  std::string names;
  for (Isa isa : supported_isas()) names += (names.empty() ? "" : ", ") + std::string(isa_name(isa));
  return names;
}

// A 2-D matrix view: rows may be strided (lda >= cols) as long as each row is contiguous, so
// tests reach lda != cols without a copy; anything else is copied to C order.
template <typename T>
struct Matrix {
  py::array keep;
  const T* data;
  index_t rows, cols, ld;
};

template <typename T>
Matrix<T> matrix(const py::array& a) {
  const auto item = static_cast<index_t>(sizeof(T));
  const index_t rows = a.shape(0), cols = a.shape(1);
  const index_t s0 = a.strides(0), s1 = a.strides(1);
  const bool rows_ok = py::isinstance<py::array_t<T>>(a) && (cols <= 1 || s1 == item) &&
                       s0 > 0 && s0 % item == 0 && s0 / item >= cols &&
                       reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
  if (rows_ok) return {a, static_cast<const T*>(a.data()), rows, cols, s0 / item};
  auto c = contiguous<T>(a);
  return {c, c.data(), rows, cols, cols > 0 ? cols : 1};
}

// The (M, N) result array: a copy of c (checked against its expected shape), or zeros, or
// left uninitialised when the kernel writes every element without reading it (!zero).
template <typename T>
py::array_t<T> result_from(const py::object& c_obj, const py::array& a, index_t M, index_t N,
                           bool zero) {
  py::array_t<T> out({M, N});
  if (c_obj.is_none()) {
    if (zero && M > 0 && N > 0) std::memset(out.mutable_data(), 0, sizeof(T) * M * N);
    return out;
  }
  py::array c = float_array(c_obj, "c");
  check_same_dtype(c, "c", a, "a");
  check_shape(c, "c", {M, N}, "(M, N)");
  auto cc = contiguous<T>(c);
  if (M > 0 && N > 0) std::memcpy(out.mutable_data(), cc.data(), sizeof(T) * M * N);
  return out;
}

// out (BLAS's C, updated in place: no result array and no copy of c, as a benchmark against
// another library's in-place product needs) or else the result of result_from.
template <typename T>
py::array gemm_impl(const py::array& a_in, const py::array& b_in, bool trans_a, bool trans_b,
                    double alpha, double beta, const py::object& c_obj, const py::object& out_obj,
                    Precision precision) {
  const Matrix<T> a = matrix<T>(a_in), b = matrix<T>(b_in);
  const index_t M = trans_a ? a.cols : a.rows, K = trans_a ? a.rows : a.cols;
  const index_t Kb = trans_b ? b.cols : b.rows, N = trans_b ? b.rows : b.cols;
  if (K != Kb)
    throw py::value_error("b: inner dimension " + std::to_string(Kb) + " does not match a's " +
                          std::to_string(K));
  py::array c;
  if (out_obj.is_none()) {
    c = result_from<T>(c_obj, a_in, M, N, beta != 0.0 || K == 0);
  } else {
    if (!c_obj.is_none())
      throw py::value_error("c: expected None when out is given (out is C, updated in place)");
    c = in_place(out_obj, "out", nullptr);
    check_same_dtype(c, "out", a_in, "a");
    check_shape(c, "out", {M, N}, "(M, N)");
    if (overlap(c, a_in) || overlap(c, b_in))
      throw py::value_error("out: expected an array that shares no memory with a or b");
  }
  T* pc = static_cast<T*>(c.mutable_data());
  {
    ReleaseGil release;
    gemm<T>(trans_a, trans_b, M, N, K, T(alpha), a.data, a.ld, b.data, b.ld, T(beta), pc,
            N > 0 ? N : 1, precision);
  }
  return std::move(c);
}

py::array gemm_binding(const py::object& a_obj, const py::object& b_obj, bool trans_a,
                       bool trans_b, double alpha, double beta, const py::object& c,
                       const py::object& out, const py::object& precision_obj) {
  py::array a = float_array(a_obj, "a");
  check_ndim(a, "a", 2);  // a (its dtype, then its shape) before b is compared with it
  py::array b = float_array(b_obj, "b");
  check_same_dtype(b, "b", a, "a");
  check_ndim(b, "b", 2);
  const Precision precision = precision_arg(precision_obj, a, "a");
  if (is_double(a))
    return gemm_impl<double>(a, b, trans_a, trans_b, alpha, beta, c, out, precision);
  return gemm_impl<float>(a, b, trans_a, trans_b, alpha, beta, c, out, precision);
}

// gemm_packed's `order`: none (gemm_packed's route), or the route of the recurrent steps'
// bfloat16 products on a hardware path (a rounded ahead, gemm_bf16_prepacked_cols) with B's
// panels ascending or descending.
enum class PanelOrder { none, ascending, descending };

PanelOrder panel_order_arg(const py::object& order, Precision precision) {
  if (order.is_none()) return PanelOrder::none;
  const std::string expected = "order: expected None, 'ascending' or 'descending', got " +
                               py::repr(order).cast<std::string>();
  if (!py::isinstance<py::str>(order)) throw py::type_error(expected);
  const std::string name = order.cast<std::string>();
  if (name != "ascending" && name != "descending") throw py::value_error(expected);
  if (precision != Precision::bfloat16 || active_bf16_isa() == Bf16Isa::portable)
    throw py::value_error(std::string("order: needs precision='bfloat16' on a hardware bfloat16 "
                                      "path (precision '") + precision_name(precision) +
                          "', bfloat16 path '" + bf16_isa_name(active_bf16_isa()) + "')");
  return name == "ascending" ? PanelOrder::ascending : PanelOrder::descending;
}

template <typename T>
py::array gemm_packed_impl(const py::array& a_in, const py::array& b_in, bool trans_b,
                           double beta, const py::object& c_obj, const py::object& cols,
                           int repeats, Precision precision, PanelOrder order) {
  const Matrix<T> a = matrix<T>(a_in), b = matrix<T>(b_in);
  const index_t M = a.rows, K = a.cols;
  const index_t Kb = trans_b ? b.cols : b.rows, N = trans_b ? b.rows : b.cols;
  if (K != Kb)
    throw py::value_error("b: inner dimension " + std::to_string(Kb) + " does not match a's " +
                          std::to_string(K));
  index_t n0 = 0, n1 = N;
  const bool ranged = !cols.is_none();
  if (ranged) {
    const std::string expected = "cols: expected (begin, end) with 0 <= begin <= end <= N = " +
                                 std::to_string(N) + ", got " + py::repr(cols).cast<std::string>();
    if (!py::isinstance<py::tuple>(cols) && !py::isinstance<py::list>(cols))
      throw py::type_error(expected);
    const auto range = py::reinterpret_borrow<py::sequence>(cols);
    if (range.size() != 2) throw py::value_error(expected);
    n0 = int_arg(range[0], "cols[0]", 0);
    n1 = int_arg(range[1], "cols[1]", 0);
    if (n0 > n1 || n1 > N) throw py::value_error(expected);
  }
  if (repeats < 1)
    throw py::value_error("repeats: expected >= 1, got " + std::to_string(repeats));
  py::array_t<T> c = result_from<T>(c_obj, a_in, M, N, beta != 0.0 || ranged || K == 0);
  T* pc = c.mutable_data();
  {
    ReleaseGil release;
    PackedB<T> packed;
    packed.pack(trans_b, K, N, b.data, b.ld, precision);
    // With beta != 0 a repeated product would compound: every repeat starts from the same C.
    std::vector<T> c0;
    if (beta != 0.0 && repeats > 1) c0.assign(pc, pc + M * N);
    PackedRowsBf16 rows;  // order (float32 only): a rounded ahead, once for every repeat
    if constexpr (std::is_same_v<T, float>) {
      if (order != PanelOrder::none) {
        rows.shape(packed.bf16(), M);
        rows.set(0, M, 0, K, a.data, a.ld);
      }
    }
    for (int r = 0; r < repeats; ++r) {
      if (r && !c0.empty()) std::copy(c0.begin(), c0.end(), pc);
      if constexpr (std::is_same_v<T, float>) {
        if (order != PanelOrder::none) {
          gemm_bf16_prepacked_cols(M, rows, packed.bf16(), n0, n1, float(beta), pc,
                                   N > 0 ? N : 1, order == PanelOrder::descending);
          continue;
        }
      }
      if (ranged)
        gemm_packed_cols<T>(M, a.data, a.ld, packed, n0, n1, T(beta), pc, N > 0 ? N : 1);
      else
        gemm_packed<T>(M, a.data, a.ld, packed, T(beta), pc, N > 0 ? N : 1);
    }
  }
  return std::move(c);
}

// Batched products for attention: c[i] = op(a[i]) @ op(b[i]) for i < B, a (B, M, K) or
// (B, K, M) with trans_a, b (B, K, N) or (B, N, K) with trans_b. One Python call instead of B
// (a per-call cost of about 2 us dominated a loop of small products). With at least as many
// products as threads they are split between the threads (each product serial); else each
// product uses the whole pool. The values do not depend on the thread count (gemm never splits
// K); products of at most 4 rows of a against b^T are dot products (gemm_rows_nt).
template <typename T>
py::array gemm_batched_impl(const py::array& a_in, const py::array& b_in, bool trans_a,
                            bool trans_b) {
  auto a = contiguous<T>(a_in);
  auto b = contiguous<T>(b_in);
  const index_t B = a.shape(0);
  if (b.shape(0) != B)
    throw py::value_error("b: batch size " + std::to_string(b.shape(0)) +
                          " does not match a's " + std::to_string(B));
  const index_t M = trans_a ? a.shape(2) : a.shape(1), K = trans_a ? a.shape(1) : a.shape(2);
  const index_t Kb = trans_b ? b.shape(2) : b.shape(1), N = trans_b ? b.shape(1) : b.shape(2);
  if (K != Kb)
    throw py::value_error("b: inner dimension " + std::to_string(Kb) + " does not match a's " +
                          std::to_string(K));
  py::array_t<T> c({B, M, N});
  T* pc = c.mutable_data();
  const T* pa = a.data();
  const T* pb = b.data();
  const index_t sa = a.shape(1) * a.shape(2), sb = b.shape(1) * b.shape(2), sc = M * N;
  const index_t lda = a.shape(2) > 0 ? a.shape(2) : 1, ldb = b.shape(2) > 0 ? b.shape(2) : 1;
  {
    ReleaseGil release;
    // A few rows against B^T (one decoder step's queries): dot products, no packing of B.
    const bool rows_nt = !trans_a && trans_b && M <= 4;
    if (B * sc > 0 && K == 0) {
      std::memset(pc, 0, sizeof(T) * B * sc);
    } else if (B * sc > 0) {
      auto run = [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) {
          if (rows_nt)
            gemm_rows_nt<T>(M, N, K, pa + i * sa, lda, pb + i * sb, ldb, pc + i * sc, N);
          else
            gemm<T>(trans_a, trans_b, M, N, K, T(1), pa + i * sa, lda, pb + i * sb, ldb, T(0),
                    pc + i * sc, N);
        }
      };
      if (B >= get_num_threads())
        parallel_for(B, 1, run);
      else
        run(0, B);
    }
  }
  return std::move(c);
}

py::array gemm_batched_binding(const py::object& a_obj, const py::object& b_obj, bool trans_a,
                               bool trans_b) {
  py::array a = float_array(a_obj, "a");
  check_ndim(a, "a", 3);  // a (its dtype, then its shape) before b is compared with it
  py::array b = float_array(b_obj, "b");
  check_same_dtype(b, "b", a, "a");
  check_ndim(b, "b", 3);
  if (is_double(a)) return gemm_batched_impl<double>(a, b, trans_a, trans_b);
  return gemm_batched_impl<float>(a, b, trans_a, trans_b);
}

py::array gemm_packed_binding(const py::object& a_obj, const py::object& b_obj, bool trans_b,
                              double beta, const py::object& c, const py::object& cols,
                              int repeats, const py::object& precision_obj,
                              const py::object& order_obj) {
  py::array a = float_array(a_obj, "a");
  check_ndim(a, "a", 2);  // a (its dtype, then its shape) before b is compared with it
  py::array b = float_array(b_obj, "b");
  check_same_dtype(b, "b", a, "a");
  check_ndim(b, "b", 2);
  const Precision precision = precision_arg(precision_obj, a, "a");
  const PanelOrder order = panel_order_arg(order_obj, precision);  // bf16: float32 arrays only
  if (is_double(a))
    return gemm_packed_impl<double>(a, b, trans_b, beta, c, cols, repeats, precision, order);
  return gemm_packed_impl<float>(a, b, trans_b, beta, c, cols, repeats, precision, order);
}

// Runs parallel_for(n, grain, per_thread) with a body that records its chunks as (begin, end,
// inner chunk count); a chunk containing raise_at throws; inner > 0 makes every chunk call
// parallel_for(inner, 1) itself (which must run serially: one inner chunk).
std::vector<std::tuple<index_t, index_t, index_t>> parallel_for_chunks(index_t n, index_t grain,
                                                                        index_t raise_at,
                                                                        index_t inner,
                                                                        int per_thread) {
  if (per_thread < 1 || per_thread > detail::kMaxChunksPerThread)
    throw py::value_error("per_thread: expected 1.." +
                          std::to_string(detail::kMaxChunksPerThread) + ", got " +
                          std::to_string(per_thread));
  std::mutex mu;
  std::vector<std::tuple<index_t, index_t, index_t>> chunks;
  {
    ReleaseGil release;
    parallel_for(n, grain, [&](index_t b, index_t e) {
      index_t inner_chunks = 0;
      if (inner > 0)
        parallel_for(inner, 1, [&](index_t, index_t) {
          std::lock_guard<std::mutex> lock(mu);
          ++inner_chunks;
        });
      {
        std::lock_guard<std::mutex> lock(mu);
        chunks.emplace_back(b, e, inner_chunks);
      }
      if (raise_at >= b && raise_at < e)
        throw std::runtime_error("parallel_for_chunks: raised in the chunk holding " +
                                 std::to_string(raise_at));
    }, per_thread);
  }
  std::sort(chunks.begin(), chunks.end());
  return chunks;
}

// The largest thread count set_num_threads takes: the CPUs a default cpu_set_t describes
// (glibc's CPU_SETSIZE). More threads than CPUs only add contention, and a count like 10**6 would
// ask the system for as many threads at the next kernel call.
constexpr int kMaxThreads = 1024;

// A thread count: an int (or NumPy integer; not bool) in 1..kMaxThreads.
int thread_count_arg(const py::handle& n) {
  if (PyBool_Check(n.ptr()) || !PyIndex_Check(n.ptr()))
    throw py::type_error("n: expected an int, got " + py::str(py::type::of(n)).cast<std::string>());
  py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(n.ptr()));
  if (!as_int) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < 1 || v > kMaxThreads)
    throw py::value_error("n: expected a number of threads in 1.." + std::to_string(kMaxThreads) +
                          ", got " + py::str(as_int).cast<std::string>());
  return static_cast<int>(v);
}

}  // namespace

void bind_runtime(Entries& m) {
  m.def("get_num_threads", &get_num_threads);
  // Test hook: the inference projection window (csrc/include/rnnfast/recurrent.h).
  m.def("_set_projection_window_bytes",
        [](index_t bytes) { set_projection_window_bytes(bytes); }, py::arg("bytes"));
  // Test hook: the small-batch recurrent loops (csrc/include/rnnfast/recurrent_small.h).
  m.def("_set_small_batch_enabled", [](bool enabled) { set_small_batch_enabled(enabled); },
        py::arg("enabled").noconvert());
  m.def("_set_small_batch_split", [](bool enabled) { set_small_batch_split(enabled); },
        py::arg("enabled").noconvert());
  m.module().attr("MAX_THREADS") = kMaxThreads;
  m.def("set_num_threads", [](const py::object& n) { set_num_threads(thread_count_arg(n)); },
        py::arg("n"));
  // The executor of the parallel regions (csrc/include/rnnfast/threads.h).
  m.def("get_thread_pool", [] {
    const bool openmp = active_executor() == Executor::kOpenMP;
    return py::make_tuple(openmp ? "openmp" : "rnnfast", openmp_runtime());
  }, "(name, OpenMP runtime path or '') of the executor in use.");
  m.def("loaded_openmp_runtimes", &loaded_openmp_runtimes);
  m.def("use_openmp", &use_openmp, py::arg("library"));
  m.def("use_own_pool", &use_own_pool);
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
      throw py::value_error(std::string("isa: ") + e.what() + "; this CPU and build support " +
                            supported_names());
    }
  }, py::arg("name"));
  m.def("active_bf16_isa", [] { return std::string(bf16_isa_name(active_bf16_isa())); });
  m.def("supported_bf16_isas", [] {
    std::vector<std::string> names;
    for (Bf16Isa isa : supported_bf16_isas()) names.emplace_back(bf16_isa_name(isa));
    return names;
  });
  m.def("set_bf16_isa", [](const std::string& name) {
    try {
      set_bf16_isa(bf16_isa_from_name(name));
    } catch (const std::invalid_argument& e) {
      std::string names;
      for (Bf16Isa isa : supported_bf16_isas())
        names += (names.empty() ? "" : ", ") + std::string(bf16_isa_name(isa));
      throw py::value_error(std::string("bf16_isa: ") + e.what() + "; this CPU and build support " +
                            names);
    }
  }, py::arg("name"));
  m.def("round_bf16", [](const py::object& a_obj) {
    py::array a = float_array(a_obj, "a");
    if (is_double(a)) throw py::type_error("a: expected a float32 array, got dtype " + dtype_str(a));
    auto c = contiguous<float>(a);
    py::array_t<float> out(shape_of(c));
    round_to_bf16(static_cast<index_t>(c.size()), c.data(), out.mutable_data());
    return out;
  }, py::arg("a"), "a rounded to the nearest bfloat16 (ties to even), as float32 (tests).");
  m.def("build_info", &build_info,
        "The build's compiler, C++ standard, target, flags, and the flags of each instruction "
        "set's kernels (the keys of isa_flags are the kernels compiled in).");
  m.def("gemm", &gemm_binding, py::arg("a"), py::arg("b"), py::kw_only(),
        py::arg("trans_a").noconvert() = false, py::arg("trans_b").noconvert() = false,
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("c") = py::none(),
        py::arg("out") = py::none(), py::arg("precision") = "float32",
        "alpha * op(a) @ op(b) + beta * c with the package's GEMM (float32 or float64, 2-D "
        "arrays; c defaults to zeros and is not modified; precision 'bfloat16' rounds op(a) "
        "and op(b) to bfloat16 and sums in float32). out (c must then be None): a writeable "
        "C-contiguous (M, N) array of a's dtype, updated in place as BLAS's C (out = alpha * "
        "op(a) @ op(b) + beta * out) and returned. A test and benchmark hook.");
  m.def("gemm_batched", &gemm_batched_binding, py::arg("a"), py::arg("b"), py::kw_only(),
        py::arg("trans_a").noconvert() = false, py::arg("trans_b").noconvert() = false,
        "op(a[i]) @ op(b[i]) for every i of 3-D arrays a and b (float32 or float64) with the "
        "package's GEMM, split between the threads when there are at least as many products.");
  m.def("gemm_packed", &gemm_packed_binding, py::arg("a"), py::arg("b"), py::kw_only(),
        py::arg("trans_b").noconvert() = false, py::arg("beta") = 0.0, py::arg("c") = py::none(),
        py::arg("cols") = py::none(), py::arg("repeats") = 1, py::arg("precision") = "float32",
        py::arg("order") = py::none(),
        "a @ op(b) + beta * c through PackedB + gemm_packed (b packed once, the product run "
        "`repeats` times); cols=(begin, end) computes only those columns (gemm_packed_cols), "
        "the others keep c (or zeros). order='ascending' or 'descending' (precision "
        "'bfloat16' on a hardware path): the recurrent steps' route instead, a rounded ahead "
        "and the product in the calling thread (gemm_bf16_prepacked_cols) with b's panels in "
        "that order.");
  m.def("parallel_for_chunks", &parallel_for_chunks, py::arg("n"), py::arg("grain") = 1,
        py::arg("raise_at") = -1, py::arg("inner") = 0, py::arg("per_thread") = 1,
        "Test hook of the thread pool: the sorted chunks (begin, end, inner_chunks) that "
        "parallel_for(n, grain, per_thread) made.");
}

}  // namespace rnnfast::bindings
