// Releasing the GIL around a kernel call, safely at interpreter exit.
//
// While the interpreter is finalizing, CPython (< 3.14) ends any thread that asks for the GIL
// with pthread_exit. If that happens inside C++ (pybind11's gil_scoped_release destructor, or
// pybind11's own numpy helpers, which release and retake the GIL once the interpreter is being
// torn down), the forced unwinding meets a noexcept frame and std::terminate aborts the whole
// process at exit. This happens to daemon threads that call the kernels. So:
//  - park_if_finalizing() at the entry of a binding (GIL held; entry.h runs it for every
//    function of the module) parks a thread that arrives during finalization before any
//    pybind11 call can release the GIL;
//  - ReleaseGil parks a thread that comes back from a kernel during finalization instead of
//    taking the GIL back;
//  - a thread already waiting for the GIL when finalization begins (another thread held it:
//    checking first cannot close that window) is ended by CPython with pthread_exit, a forced
//    unwind; park_if_killed catches it right above the call that waited (ReleaseGil, NumPy's
//    copies in checks.h) and at the entry wrapper, and parks there instead.
// A parked thread sleeps until the process is gone (what CPython 3.14 itself does).
#pragma once
#include <Python.h>

#include <chrono>
#include <thread>
#include <utility>
#ifdef __GLIBCXX__
#include <cxxabi.h>
#endif

namespace rnnfast::bindings {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

[[noreturn]] inline void park_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// Call with the GIL held, before touching any Python object.
inline void park_if_finalizing() {
  if (interpreter_finalizing()) {
    PyEval_SaveThread();
    park_forever();
  }
}

// f(), but a thread that CPython ends (pthread_exit's forced unwind) while inside f parks
// instead: the unwinding would otherwise reach noexcept frames (destructors) and terminate the
// process, or run destructors of Python objects without the GIL.
template <typename F>
decltype(auto) park_if_killed(F&& f) {
#ifdef __GLIBCXX__
  try {
    return std::forward<F>(f)();
  } catch (abi::__forced_unwind&) {
    park_forever();
  }
#else
  return std::forward<F>(f)();
#endif
}

class ReleaseGil {
 public:
  ReleaseGil() : state_(PyEval_SaveThread()) {}
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;
  ~ReleaseGil() {
    if (interpreter_finalizing()) park_forever();
    park_if_killed([this] { PyEval_RestoreThread(state_); });
  }

 private:
  PyThreadState* state_;
};

}  // namespace rnnfast::bindings
