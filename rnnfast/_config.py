"""Process-wide settings of the kernels: thread count and instruction set.

Environment variables, read once at import:
- ``RNNFAST_NUM_THREADS``: number of threads (default: the cores this process may use).
- ``RNNFAST_ISA``: force ``generic``, ``avx2`` or ``avx512`` (error if the CPU lacks it).
"""
import os

from rnnfast import _C


def get_num_threads() -> int:
    """Number of threads the kernels use."""
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads the kernels use (n >= 1)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def active_isa() -> str:
    """The instruction set the kernels dispatch to: 'generic', 'avx2' or 'avx512'."""
    return _C.active_isa()


def supported_isas() -> list:
    """Instruction sets this CPU and build support, best last."""
    return list(_C.supported_isas())


def set_isa(name: str) -> None:
    """Force an instruction set ('generic', 'avx2', 'avx512'); ValueError if unsupported."""
    _C.set_isa(name)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _init_from_environment() -> None:
    env_threads = os.environ.get("RNNFAST_NUM_THREADS")
    if env_threads:
        try:
            n = int(env_threads)
        except ValueError:
            raise ValueError(f"RNNFAST_NUM_THREADS: expected an integer >= 1, got {env_threads!r}") from None
        set_num_threads(n)
    else:
        set_num_threads(_default_threads())
    env_isa = os.environ.get("RNNFAST_ISA")
    if env_isa:
        set_isa(env_isa.strip().lower())


_init_from_environment()
