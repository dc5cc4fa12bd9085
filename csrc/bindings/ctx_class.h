// What every ctx class (the opaque objects a training forward returns) refuses: copies and pickling.
// A ctx holds the forward's arrays and workspaces for one process; there is nothing to gain from
// a copy (a ctx serves any number of backward calls) and nothing a pickle could restore.
// Without these methods, copy.copy, copy.deepcopy and pickle protocols >= 2 would raise a
// TypeError anyway, but pickle protocols 0 and 1 (and ctx.__reduce__()) would go through
// copyreg._reduce_ex, which calls pybind11's base type and ends the process (std::terminate).
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "entry.h"

namespace rnnfast::bindings {

template <typename Ctx, typename... Options>
void refuse_copies(pybind11::class_<Ctx, Options...>& cls) {
  namespace py = pybind11;
  auto refuse = guarded([](const py::object& self, const py::args&) -> py::object {
    throw py::type_error("cannot pickle or copy " + py::str(py::type::of(self)).cast<std::string>() +
                         ": a ctx belongs to the process that ran its forward; keep it (it "
                         "serves any number of backward calls) or run the forward again");
  });
  cls.def("__reduce__", refuse)
      .def("__reduce_ex__", refuse)
      .def("__copy__", refuse)
      .def("__deepcopy__", refuse)
      .def("__getstate__", refuse);
}

}  // namespace rnnfast::bindings
