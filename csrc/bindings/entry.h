// The one way a function enters rnnfast._C: every function of the module is defined through
// Entries::def, which runs park_if_finalizing() (gil.h) before the function's body or any
// argument check, and parks a thread that CPython ends inside it (park_if_killed), so no
// binding can forget either. The binding files get an Entries, not the
// module: classes are made on entries.module(), and their methods wrapped with guarded().
#pragma once
#include <pybind11/pybind11.h>

#include <utility>

#include "gil.h"

namespace rnnfast::bindings {

// f with park_if_finalizing() on entry, with f's signature (pybind11 reads it for the
// argument conversions and the docstring).
template <typename Return, typename... Args>
auto guarded(Return (*f)(Args...)) {
  return [f](Args... args) -> Return {
    park_if_finalizing();
    return park_if_killed([&]() -> Return { return f(std::forward<Args>(args)...); });
  };
}

// A lambda without captures, as its function pointer.
template <typename F>
auto guarded(F f) -> decltype(guarded(+f)) {
  return guarded(+f);
}

class Entries {
 public:
  explicit Entries(pybind11::module_& m) : m_(m) {}

  // m.def(name, guarded(f), extra...): f is a function or a lambda without captures.
  template <typename F, typename... Extra>
  Entries& def(const char* name, F f, const Extra&... extra) {
    m_.def(name, guarded(f), extra...);
    return *this;
  }

  // For classes and attributes (functions go through def).
  pybind11::module_& module() { return m_; }

 private:
  pybind11::module_& m_;
};

}  // namespace rnnfast::bindings
