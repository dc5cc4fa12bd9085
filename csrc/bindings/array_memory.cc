// NumPy's memory for the arrays of a training loop: a NEP 49 memory handler (NumPy >= 1.22)
// that keeps the large blocks of freed arrays for the next allocation of their size, installed
// by fit / evaluate / predict for their own duration only (rnnfast/models/training.py).
//
// Why: a training batch allocates and frees arrays of several MiB (layer outputs, gradients,
// zeros). The C library gives such blocks back to the system, or keeps them, depending on its
// heap's history (glibc's dynamic mmap and trim thresholds), so the same loop can fault every
// page of them in again at every batch in one process and not in another (bench/RESULTS.md).
// Kept blocks come back as warm pages, in every process, without changing the C library's
// settings for the rest of the program.
//
// The scope: NumPy keeps its handler in a context variable, so installing it affects the calling
// thread's context only (other threads, and code after the scope, allocate as before); every
// array remembers the handler that allocated it and is freed through it, also after the scope.
// A handler set by the program itself (anything but NumPy's default) is left in place: enter()
// then installs nothing. Blocks: arrays of at least kMinBytes, rounded up to a size class (four
// per power of two); a freed block is kept while a scope is open (in any thread) and the kept
// bytes stay within kMaxIdleBytes, else it is freed; the kept ones are freed when the last
// scope ends. Smaller arrays, and every allocation outside a scope, go to NumPy's default
// handler unchanged. A block is reused only after NumPy freed the array that held it (its
// reference count reached zero), so no array ever shares memory with another: an array handed
// to the caller (predict's result) is never reused while it lives. No value depends on which
// block an array gets (np.zeros still gives zeros: a kept block is cleared).
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bindings.h"
#include "entry.h"

namespace py = pybind11;

namespace rnnfast::bindings {

namespace {

// NumPy's PyDataMem_Handler (numpy/ndarraytypes.h, version 1; NEP 49), declared here: the
// module is built without NumPy's headers and reaches its C API through its _ARRAY_API table.
struct NpyAllocator {
  void* ctx;
  void* (*malloc)(void* ctx, std::size_t size);
  void* (*calloc)(void* ctx, std::size_t nelem, std::size_t elsize);
  void* (*realloc)(void* ctx, void* ptr, std::size_t new_size);
  void (*free)(void* ctx, void* ptr, std::size_t size);
};
struct NpyHandler {
  char name[127];
  std::uint8_t version;
  NpyAllocator allocator;
};
static_assert(offsetof(NpyHandler, allocator) == 128, "NEP 49's PyDataMem_Handler layout");

constexpr const char* kCapsuleName = "mem_handler";  // NumPy's name for handler capsules
constexpr const char* kHandlerName = "rnnfast_array_memory";
// Indices in NumPy's C API table (stable since NumPy 1.22, feature version 0xF).
constexpr int kApiFeatureVersion = 211, kApiSetHandler = 304, kApiDefaultHandler = 306;
constexpr unsigned kNeededFeatureVersion = 0xF;

constexpr std::size_t kMinBytes = std::size_t(256) << 10;      // smaller arrays: NumPy's handler
constexpr std::size_t kMaxIdleBytes = std::size_t(256) << 20;  // kept (idle) blocks, together

// n rounded up to its size class: four classes per power of two (at most 25% more).
std::size_t size_class(std::size_t n) {
  std::size_t top = std::size_t(1) << (63 - __builtin_clzll(static_cast<unsigned long long>(n)));
  const std::size_t step = top / 4;
  return (n + step - 1) / step * step;
}

// What the handler's functions share. The default allocator is NumPy's (from its capsule);
// the mutex guards the rest (NumPy may call a handler from any thread).
struct State {
  NpyAllocator base{};
  std::mutex mutex;
  std::unordered_map<void*, std::size_t> live;  // blocks of this cache in arrays -> class
  std::unordered_map<std::size_t, std::vector<void*>> idle;  // class -> kept blocks
  std::size_t idle_bytes = 0;
  long scopes = 0;  // open scopes, every thread's
  std::size_t reused = 0, allocated = 0;  // blocks handed out from idle / newly allocated
};

State& state() {
  static State* s = new State();  // never destroyed: arrays may outlive the module's teardown
  return *s;
}

// A block of class c: a kept one, or a new one from NumPy's allocator (zeroed when `zero`).
// Registers it as live. nullptr when the allocation fails or no scope is open (the caller then
// uses NumPy's allocator for the exact size).
void* take_block(std::size_t c, bool zero, std::size_t used) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.scopes == 0) return nullptr;
    auto it = s.idle.find(c);
    if (it != s.idle.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      s.idle_bytes -= c;
      s.live.emplace(p, c);
      ++s.reused;
      if (zero) std::memset(p, 0, used);
      return p;
    }
  }
  void* p = zero ? s.base.calloc(s.base.ctx, c, 1) : s.base.malloc(s.base.ctx, c);
  if (p == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.live.emplace(p, c);
  ++s.allocated;
  return p;
}

// Gives back a live block of class c: kept while a scope is open and the bound allows.
void give_back(void* p, std::size_t c) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.scopes > 0 && s.idle_bytes + c <= kMaxIdleBytes) {
      s.idle[c].push_back(p);
      s.idle_bytes += c;
      return;
    }
  }
  s.base.free(s.base.ctx, p, c);
}

// The class of p if it is a live block of this cache (it is then no longer live), else 0.
std::size_t untrack(void* p) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.live.find(p);
  if (it == s.live.end()) return 0;
  const std::size_t c = it->second;
  s.live.erase(it);
  return c;
}

void* handler_malloc(void* /*ctx*/, std::size_t size) {
  State& s = state();
  if (size >= kMinBytes) {
    if (void* p = take_block(size_class(size), false, size)) return p;
  }
  return s.base.malloc(s.base.ctx, size);
}

void* handler_calloc(void* /*ctx*/, std::size_t nelem, std::size_t elsize) {
  State& s = state();
  if (elsize != 0 && nelem > static_cast<std::size_t>(-1) / elsize) return nullptr;
  const std::size_t size = nelem * elsize;
  if (size >= kMinBytes) {
    if (void* p = take_block(size_class(size), true, size)) return p;
  }
  return s.base.calloc(s.base.ctx, nelem, elsize);
}

// A block of this cache keeps its size class while the new size fits it and stays a block's;
// otherwise the contents move to a new allocation. Other memory is NumPy's to resize.
void* handler_realloc(void* ctx, void* ptr, std::size_t new_size) {
  State& s = state();
  if (ptr == nullptr) return handler_malloc(ctx, new_size);
  std::size_t c;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.live.find(ptr);
    if (it == s.live.end()) return s.base.realloc(s.base.ctx, ptr, new_size);
    c = it->second;
    if (new_size <= c && new_size >= kMinBytes) return ptr;
  }
  void* q = handler_malloc(ctx, new_size);
  if (q == nullptr) return nullptr;  // ptr stays valid, as realloc's contract says
  std::memcpy(q, ptr, new_size < c ? new_size : c);
  untrack(ptr);
  give_back(ptr, c);
  return q;
}

// NumPy passes the array's size in bytes. Blocks of this cache are always at least kMinBytes
// (realloc moves a block's contents out when it shrinks below), so smaller sizes skip the lookup.
void handler_free(void* /*ctx*/, void* ptr, std::size_t size) {
  State& s = state();
  if (ptr == nullptr) return;
  if (size >= kMinBytes) {
    if (const std::size_t c = untrack(ptr)) {
      give_back(ptr, c);
      return;
    }
  }
  s.base.free(s.base.ctx, ptr, size);
}

NpyHandler handler_struct = [] {
  NpyHandler h{};
  std::strncpy(h.name, kHandlerName, sizeof(h.name) - 1);
  h.version = 1;
  h.allocator = {nullptr, handler_malloc, handler_calloc, handler_realloc, handler_free};
  return h;
}();

// NumPy's C API table and this module's handler capsule (the first call sets both up).
struct Api {
  PyObject* (*set_handler)(PyObject*) = nullptr;
  PyObject* default_handler = nullptr;  // borrowed from NumPy (it lives as long as NumPy)
  PyObject* capsule = nullptr;          // ours, never freed: arrays keep references to it
};

const Api& api() {
  static Api* a = [] {
    auto* out = new Api();
    py::object core;
    try {
      core = py::module_::import("numpy._core.multiarray");  // NumPy 2
    } catch (const py::error_already_set&) {
      core = py::module_::import("numpy.core.multiarray");   // NumPy 1.x
    }
    py::object table = core.attr("_ARRAY_API");
    void** t = static_cast<void**>(PyCapsule_GetPointer(table.ptr(), nullptr));
    if (t == nullptr) throw py::error_already_set();
    const auto feature = reinterpret_cast<unsigned (*)()>(t[kApiFeatureVersion])();
    if (feature < kNeededFeatureVersion) return out;  // no NEP 49: nothing is ever installed
    out->set_handler = reinterpret_cast<PyObject* (*)(PyObject*)>(t[kApiSetHandler]);
    out->default_handler = *static_cast<PyObject**>(t[kApiDefaultHandler]);
    auto* base = static_cast<NpyHandler*>(PyCapsule_GetPointer(out->default_handler,
                                                               kCapsuleName));
    if (base == nullptr) throw py::error_already_set();
    state().base = base->allocator;
    out->capsule = PyCapsule_New(&handler_struct, kCapsuleName, nullptr);
    if (out->capsule == nullptr) throw py::error_already_set();
    return out;
  }();
  return *a;
}

// Installs the handler in the calling context when NumPy's default one (or ours) is current;
// returns the handler it replaced (for exit), or None when it installed nothing.
py::object array_memory_enter() {
  const Api& a = api();
  if (a.set_handler == nullptr) return py::none();
  py::object previous = py::reinterpret_steal<py::object>(a.set_handler(a.capsule));
  if (!previous) throw py::error_already_set();
  if (previous.ptr() != a.default_handler && previous.ptr() != a.capsule) {
    // the program's own handler: put it back and keep out of the way
    py::object ours = py::reinterpret_steal<py::object>(a.set_handler(previous.ptr()));
    if (!ours) throw py::error_already_set();
    return py::none();
  }
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().scopes;
  return previous;
}

// Ends a scope that array_memory_enter() began: puts back the handler it returned and, when no
// scope is left open, frees the kept blocks.
void array_memory_exit(const py::object& previous) {
  if (previous.is_none()) return;
  const Api& a = api();
  if (a.set_handler == nullptr || (previous.ptr() != a.default_handler &&
                                   previous.ptr() != a.capsule))
    throw py::type_error("previous: expected what _array_memory_enter() returned (None or a "
                         "NumPy memory handler it replaced), got " +
                         py::repr(previous).cast<std::string>());
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.scopes == 0)
      throw py::value_error("previous: no scope of _array_memory_enter() is open");
  }
  py::object ours = py::reinterpret_steal<py::object>(a.set_handler(previous.ptr()));
  if (!ours) throw py::error_already_set();
  std::vector<std::pair<void*, std::size_t>> drop;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (--s.scopes == 0) {
      for (auto& [c, blocks] : s.idle)
        for (void* p : blocks) drop.emplace_back(p, c);
      s.idle.clear();
      s.idle_bytes = 0;
    }
  }
  for (auto& [p, c] : drop) s.base.free(s.base.ctx, p, c);
}

py::dict array_memory_stats() {
  api();
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::size_t idle_blocks = 0;
  for (auto& entry : s.idle) idle_blocks += entry.second.size();
  py::dict d;
  d["scopes"] = s.scopes;
  d["live_blocks"] = s.live.size();
  d["idle_blocks"] = idle_blocks;
  d["idle_bytes"] = s.idle_bytes;
  d["max_idle_bytes"] = kMaxIdleBytes;
  d["min_block_bytes"] = kMinBytes;
  d["reused"] = s.reused;
  d["allocated"] = s.allocated;
  d["handler"] = kHandlerName;
  return d;
}

}  // namespace

void bind_array_memory(Entries& m) {
  m.def("_array_memory_enter", &array_memory_enter,
        "Installs the training loops' NumPy memory handler in the calling context (when NumPy's "
        "default is current) and opens a scope; returns the handler it replaced, for "
        "_array_memory_exit, or None (nothing installed).");
  m.def("_array_memory_exit", &array_memory_exit, py::arg("previous"),
        "Ends a scope of _array_memory_enter(): puts back `previous` (its result) and frees the "
        "kept blocks when no scope is left open.");
  m.def("_array_memory_stats", &array_memory_stats,
        "The handler's counters: open scopes, blocks in arrays, kept blocks and bytes, bounds.");
}

}  // namespace rnnfast::bindings
