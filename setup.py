"""Build of rnnfast's extension modules.

- ``rnnfast._C``: the C++ kernels (csrc/kernels) and their pybind11 binding (csrc/bindings),
  compiled for baseline x86-64 (or the host's baseline elsewhere).
- ``rnnfast_avx2``, ``rnnfast_avx512``: static libraries of the instruction-set translation
  units (``csrc/kernels/*_avx2.cc``, ``*_avx512.cc``), each built with its own flags
  (setuptools' ``build_clib`` and its ``cflags``) and linked into ``rnnfast._C``, which picks
  one of them at run time (csrc/kernels/cpu.cc). Only these units get AVX flags: their code
  has internal linkage, so the linker can never pick an AVX copy of an inline function for the
  baseline code (tests/test_packaging.py checks the machine code).
- Cython modules: every ``rnnfast/*.pyx`` (loops over Python objects).

The compiler and the flags are compiled into ``rnnfast._C`` as macros, so
``rnnfast.show_config()`` reports what built the binary it runs. Sources compile in parallel
(``RNNFAST_BUILD_JOBS``, default: every core).
"""
import glob
import os
import platform

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
HEADERS = sorted(glob.glob("csrc/**/*.h", recursive=True))
# -fno-math-errno and -fno-trapping-math keep IEEE results (unlike -ffast-math) and let loops
# with selects and math calls vectorise.
COMMON_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden"]
# The instruction-set libraries: name -> (file-name suffix, extra flags).
ISA_LIBRARIES = {
    "avx2": ("_avx2.cc", ["-mavx2", "-mfma", "-mf16c"]),
    "avx512": ("_avx512.cc", ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2",
                              "-mfma"]),
} if IS_X86 else {}
# What Pybind11Extension gives _C's own units (C++17, hidden symbols, no debug info), for the
# instruction-set units too.
LIBRARY_FLAGS = ["-std=c++17", "-g0"] + COMMON_FLAGS
MACROS = [("RNNFAST_HAVE_X86_KERNELS", "1")] if IS_X86 else []


def c_string(text):
    """A C string literal of text, for a -D macro (the compiler is run without a shell)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def isa_sources(suffix):
    return sorted(glob.glob("csrc/kernels/*" + suffix))


libraries = [
    (f"rnnfast_{name}", {
        "sources": isa_sources(suffix),
        "include_dirs": ["csrc/include"],
        "macros": MACROS,
        "cflags": LIBRARY_FLAGS + flags,
        "obj_deps": {"": [h for h in HEADERS if not h.startswith("csrc/bindings")]},
    })
    for name, (suffix, flags) in ISA_LIBRARIES.items()
]


class BuildExt(build_ext):
    """build_ext that builds the instruction-set libraries first (also for ``build_ext
    --inplace`` alone) and records the build's flags in rnnfast._C."""

    def run(self):
        if self.distribution.has_c_libraries():
            self.run_command("build_clib")
            clib = self.get_finalized_command("build_clib")
            archives = [os.path.join(clib.build_clib, clib.compiler.library_filename(name))
                        for name, _ in libraries]
            for ext in self.extensions:
                if ext.name == "rnnfast._C":
                    ext.depends = list(ext.depends) + archives  # relink when they change
        super().run()

    def build_extensions(self):
        for ext in self.extensions:
            if ext.name == "rnnfast._C":
                command = getattr(self.compiler, "compiler_so_cxx", None) or self.compiler.compiler_so
                flags = list(command[1:]) + list(ext.extra_compile_args)
                ext.define_macros = list(ext.define_macros) + [
                    ("RNNFAST_BUILD_FLAGS", c_string(" ".join(flags)))] + [
                    (f"RNNFAST_BUILD_FLAGS_{name.upper()}", c_string(" ".join(isa_flags)))
                    for name, (_, isa_flags) in ISA_LIBRARIES.items()]
        super().build_extensions()


def cython_extensions():
    pyx = sorted(glob.glob("rnnfast/*.pyx"))
    if not pyx:
        return []
    from Cython.Build import cythonize

    extensions = cythonize(pyx, compiler_directives={"language_level": "3"})
    if os.name != "nt":
        for ext in extensions:
            ext.extra_compile_args = list(ext.extra_compile_args) + ["-g0"]  # as _C: no debug info
    return extensions


ParallelCompile("RNNFAST_BUILD_JOBS").install()

ext_modules = [
    Pybind11Extension(
        "rnnfast._C",
        # every unit but the instruction-set libraries'
        [s for s in sorted(glob.glob("csrc/kernels/*.cc")) + sorted(glob.glob("csrc/bindings/*.cc"))
         if not s.endswith(("_avx2.cc", "_avx512.cc"))],
        include_dirs=["csrc/include"],
        depends=HEADERS,
        cxx_std=17,
        extra_compile_args=COMMON_FLAGS,
        extra_link_args=["-pthread"],
        define_macros=MACROS,
    )
] + cython_extensions()

setup(
    ext_modules=ext_modules,
    libraries=libraries,
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
