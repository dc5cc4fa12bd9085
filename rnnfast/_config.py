"""Process-wide settings of the kernels (thread count, instruction set) and the configuration report.

Environment variables, read once at import:
- ``RNNFAST_NUM_THREADS``: number of threads (default: the cores this process may use).
- ``RNNFAST_ISA``: force ``generic``, ``avx2`` or ``avx512`` (error at import if the CPU or the
  build lacks it).
- ``RNNFAST_THREAD_POOL``: ``rnnfast`` keeps the kernels on the package's own thread pool even
  inside PyTorch (see ``set_thread_pool``); ``auto`` (the default) lets ``import rnnfast.torch``
  move them to PyTorch's OpenMP threads.
"""
from __future__ import annotations

import os
import platform
import sys
from typing import Any, Dict, List, Optional, TextIO

import numpy as np

from rnnfast._version import __version__

try:
    from rnnfast import _C
except ImportError as error:
    _here = os.path.dirname(os.path.abspath(__file__))
    _root = os.path.dirname(_here)
    if os.path.exists(os.path.join(_root, "setup.py")):
        _todo = (f"{_root} is a source tree without its build: there run `pip install -e .` (or "
                 "`python setup.py build_ext --inplace`); to use an installed rnnfast instead, "
                 "run Python from outside the source tree")
    else:
        _todo = "reinstall rnnfast (pip install --force-reinstall rnnfast)"
    raise ImportError(f"cannot import rnnfast._C from {_here} ({error}). {_todo}.") from error


def get_num_threads() -> int:
    """Number of threads the kernels use."""
    return _C.get_num_threads()


MAX_THREADS: int = _C.MAX_THREADS


def set_num_threads(n: int) -> None:
    """Set the number of threads the kernels use: an int in ``1..1024``.

    Raises TypeError for anything but an int (NumPy integers count; bools do not), ValueError
    for a count out of that range; the count in use is then unchanged.
    """
    _C.set_num_threads(n)


THREAD_POOLS = ("rnnfast", "openmp")
_pool_chosen = False  # set_thread_pool or RNNFAST_THREAD_POOL decided: no automatic switch


def get_thread_pool() -> str:
    """Where the kernels' parallel regions run: ``'rnnfast'`` or ``'openmp'`` (see
    ``set_thread_pool``)."""
    return _C.get_thread_pool()[0]


def set_thread_pool(name: str, library: Optional[str] = None) -> None:
    """Run the kernels' parallel regions on ``'rnnfast'``, the package's own thread pool (the
    default), or on ``'openmp'``, the threads of the OpenMP runtime (GNU libgomp) that another
    library, such as PyTorch, has loaded into this process.

    PyTorch's OpenMP threads keep spinning for a while after each torch operation; a kernel that
    starts then on threads of its own finds its cores taken. On those same threads, the spin
    becomes a fast start instead. ``import rnnfast.torch`` therefore selects ``'openmp'`` when
    PyTorch's runtime is loaded, unless the pool was chosen before (this function, or
    ``RNNFAST_THREAD_POOL=rnnfast`` in the environment); ``set_thread_pool('rnnfast')`` turns it
    off. Results are bitwise the same on either pool and at any number of threads the runtime
    grants; ``set_num_threads`` sets the count on both. A child made by ``fork()`` always runs on
    a fresh own pool (the OpenMP threads were the parent's).

    ``library``: path of the runtime, one of those loaded (default: the first loaded).
    Raises ValueError for an unknown name, RuntimeError when ``'openmp'`` is asked for and no
    usable runtime is loaded (the message lists those that are) or in a child made by fork().
    """
    global _pool_chosen
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    if name not in THREAD_POOLS:
        raise ValueError(f"name: expected 'rnnfast' or 'openmp', got {name!r}")
    if name == "rnnfast":
        if library is not None:
            raise ValueError("library: only for the 'openmp' pool")
        _C.use_own_pool()
    else:
        if library is None:
            loaded = _C.loaded_openmp_runtimes()
            library = loaded[0] if loaded else "libgomp"
        _C.use_openmp(os.fspath(library))
    _pool_chosen = True


def _use_openmp_of(module) -> bool:
    """Move the kernels to the OpenMP runtime ``module`` (PyTorch) runs on, unless the pool was
    chosen already; the runtime in ``module``'s directory if there is one, else the first
    loaded. True when the kernels run there now."""
    if _pool_chosen:
        return get_thread_pool() == "openmp"
    loaded = _C.loaded_openmp_runtimes()
    if not loaded:
        return False
    home = os.path.join(os.path.dirname(os.path.realpath(module.__file__)), "")
    own = [path for path in loaded if os.path.realpath(path).startswith(home)]
    _C.use_openmp((own or loaded)[0])
    return True


def active_isa() -> str:
    """The instruction set the kernels dispatch to: ``'generic'``, ``'avx2'`` or ``'avx512'``."""
    return _C.active_isa()


def supported_isas() -> List[str]:
    """Instruction sets this CPU and this build both support, best last (always has 'generic')."""
    return list(_C.supported_isas())


def set_isa(name: str) -> None:
    """Force an instruction set (``'generic'``, ``'avx2'``, ``'avx512'``).

    Raises ValueError, naming the supported ones, if the name is unknown or if this CPU or
    build lacks it. Results are within the numerical contract on every instruction set.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    _C.set_isa(name)


def get_config() -> Dict[str, Any]:
    """The configuration as a dict: versions, instruction sets, threads, and the build.

    Keys: ``version``, ``numpy``, ``python``, ``machine``, ``isa`` (in use), ``isas_supported``
    (by this CPU and build), ``isas_built`` (kernels compiled in), ``threads``,
    ``thread_pool`` (``'rnnfast'`` or ``'openmp'``), ``openmp_runtime`` (path of the OpenMP
    runtime whose threads run the kernels, or None), ``compiler``,
    ``cxx_standard``, ``target``, ``flags`` (of every translation unit), ``isa_flags`` (the
    extra flags of each instruction set's translation units), ``pybind11``.
    """
    build = _C.build_info()
    pool, runtime = _C.get_thread_pool()
    return {
        "version": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "isa": active_isa(),
        "isas_supported": supported_isas(),
        "isas_built": list(build["isa_flags"]),
        "threads": get_num_threads(),
        "thread_pool": pool,
        "openmp_runtime": runtime or None,
        "compiler": build["compiler"],
        "cxx_standard": build["cxx_standard"],
        "target": build["target"],
        "flags": build["flags"],
        "isa_flags": dict(build["isa_flags"]),
        "pybind11": build["pybind11"],
    }


def show_config(file: Optional[TextIO] = None) -> None:
    """Print the configuration (what ``python -m rnnfast --config`` prints) to ``file``
    (default: standard output); attach it to bug reports."""
    out = sys.stdout if file is None else file
    c = get_config()
    standard = f"C++{c['cxx_standard'] // 100 % 100:02d}" if c["cxx_standard"] > 199711 else "C++98"
    lines = [
        f"rnnfast {c['version']}  numpy {c['numpy']}  python {c['python']}",
        f"instruction set: {c['isa']} (supported: {', '.join(c['isas_supported'])})"
        f"  threads: {c['threads']}  machine: {c['machine']}",
        f"thread pool: {c['thread_pool']}"
        + (f" ({c['openmp_runtime']})" if c["openmp_runtime"] else ""),
        f"build: {c['compiler']}, {standard}, pybind11 {c['pybind11']}, target {c['target']},"
        f" kernels: {', '.join(c['isas_built'])}",
        f"flags: {c['flags']}",
    ]
    lines += [f"{isa} flags: {flags}" for isa, flags in c["isa_flags"].items() if flags]
    print("\n".join(lines), file=out)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _init_from_environment() -> None:
    global _pool_chosen
    env_pool = os.environ.get("RNNFAST_THREAD_POOL")
    if env_pool:
        value = env_pool.strip().lower()
        if value not in ("auto", "rnnfast"):
            raise ValueError(f"RNNFAST_THREAD_POOL: expected 'auto' or 'rnnfast', got {env_pool!r}")
        _pool_chosen = value == "rnnfast"
    env_threads = os.environ.get("RNNFAST_NUM_THREADS")
    if env_threads:
        try:
            n = int(env_threads)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_THREADS:
            raise ValueError(f"RNNFAST_NUM_THREADS: expected an integer in 1..{MAX_THREADS}, "
                             f"got {env_threads!r}")
        set_num_threads(n)
    else:
        set_num_threads(min(_default_threads(), MAX_THREADS))
    env_isa = os.environ.get("RNNFAST_ISA")
    if env_isa:
        try:
            set_isa(env_isa.strip().lower())
        except ValueError as e:
            reason = str(e).replace("isa: ", "", 1)
            raise ValueError(f"RNNFAST_ISA={env_isa!r}: {reason} (unset RNNFAST_ISA to use the "
                             "best of them)") from None


_init_from_environment()
