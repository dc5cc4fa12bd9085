"""Build of rnnfast's extension modules.

- ``rnnfast._C``: the C++ kernels (csrc/kernels) and their pybind11 binding (csrc/bindings).
  The whole module is compiled for baseline x86-64 (or the host's baseline elsewhere);
  only translation units named ``*_avx2.cc`` / ``*_avx512.cc`` get the flags of their
  instruction set, and the code picks one of them at run time (csrc/kernels/cpu.cc).
- Cython modules: every ``rnnfast/*.pyx`` (loops over Python objects).

The compiler and the flags of the build are compiled into ``rnnfast._C`` as macros, so
``rnnfast.show_config()`` reports what built the binary it runs. Sources compile in parallel
(``RNNFAST_BUILD_JOBS``, default: every core).
"""
import glob
import os
import platform

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")

# Flags per instruction-set translation unit, keyed by the file-name suffix.
ISA_FLAGS = {
    "_avx2.cc": ["-mavx2", "-mfma", "-mf16c"],
    "_avx512.cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma"],
    "_avx512bf16.cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma",
                       "-mavx512bf16"],
    "_amx.cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma",
                "-mavx512bf16", "-mamx-tile", "-mamx-bf16"],
}
# -fno-math-errno and -fno-trapping-math keep IEEE results (unlike -ffast-math) and let loops
# with selects and math calls vectorise.
COMMON_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden"]


def c_string(text):
    """A C string literal of text, for a -D macro (the compiler is run without a shell)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_info_macros(compiler, ext):
    """Macros recording the flags every translation unit of ext gets, and the ISA units' extras."""
    command = getattr(compiler, "compiler_so_cxx", None) or compiler.compiler_so
    flags = list(command[1:]) + list(ext.extra_compile_args)
    macros = [("RNNFAST_BUILD_FLAGS", c_string(" ".join(flags)))]
    if IS_X86:
        for suffix, isa_flags in ISA_FLAGS.items():
            name = suffix[1:-3].upper()
            macros.append((f"RNNFAST_BUILD_FLAGS_{name}", c_string(" ".join(isa_flags))))
    return macros


class BuildExt(build_ext):
    """build_ext that adds the instruction-set flags to the ISA translation units only and
    records the build's flags in rnnfast._C."""

    def build_extensions(self):
        compiler = self.compiler
        for ext in self.extensions:
            if ext.name == "rnnfast._C" and not any(
                    name == "RNNFAST_BUILD_FLAGS" for name, _ in ext.define_macros):
                ext.define_macros = list(ext.define_macros) + build_info_macros(compiler, ext)
        original_compile = compiler._compile

        def compile_one(obj, src, ext, cc_args, extra_postargs, pp_opts):
            extra = list(extra_postargs)
            for suffix, flags in ISA_FLAGS.items():
                if src.endswith(suffix):
                    extra += flags
            original_compile(obj, src, ext, cc_args, extra, pp_opts)

        compiler._compile = compile_one
        try:
            super().build_extensions()
        finally:
            compiler._compile = original_compile


def kernel_sources():
    sources = sorted(glob.glob("csrc/kernels/*.cc")) + sorted(glob.glob("csrc/bindings/*.cc"))
    if not IS_X86:
        sources = [s for s in sources if not any(s.endswith(k) for k in ISA_FLAGS)]
    return sources


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

define_macros = [("RNNFAST_HAVE_X86_KERNELS", "1")] if IS_X86 else []
ext_modules = [
    Pybind11Extension(
        "rnnfast._C",
        kernel_sources(),
        include_dirs=["csrc/include"],
        depends=sorted(glob.glob("csrc/**/*.h", recursive=True)),
        cxx_std=17,
        extra_compile_args=COMMON_FLAGS,
        extra_link_args=["-pthread"],
        define_macros=define_macros,
    )
] + cython_extensions()

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
