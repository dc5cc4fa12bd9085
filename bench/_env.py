"""The benchmarks' environment: which rnnfast is measured, thread counts, machine facts."""
import importlib
import importlib.util
import os
import platform
import resource
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_THREADS = 2
THREADS_ENV = "RNNFAST_BENCH_THREADS"

# The count of the last set_threads() call: peers that create their own thread pool per run
# (ONNX Runtime's sessions) read it through current_threads().
_current_threads = None


def use_inplace_build() -> None:
    """Measure this checkout when it holds an in-place build, else the installed package.

    ``python setup.py build_ext --inplace`` leaves ``rnnfast/_C*.so`` in the checkout; a script
    run as ``python bench/compare.py`` would not see it, since only ``bench/`` is on its path.
    Call before the first ``import rnnfast``; ``machine_info()`` reports which one was loaded.
    """
    package = REPO_ROOT / "rnnfast"
    built = list(package.glob("_C*.so")) + list(package.glob("_C*.pyd"))
    if built and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def threads_from_env(value=None) -> int:
    """The thread count: ``value`` if given, else ``$RNNFAST_BENCH_THREADS``, else 2."""
    source = "--bench-threads"
    if value is None:
        value = os.environ.get(THREADS_ENV)
        source = THREADS_ENV
    if value is None or value == "":
        return DEFAULT_THREADS
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{source}: expected an integer >= 1, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{source}: expected an integer >= 1, got {n}")
    return n


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def set_threads(n: int) -> None:
    """One thread count for every library measured: rnnfast's pool and PyTorch's now, and
    ONNX Runtime's sessions created from now on (``current_threads()``)."""
    global _current_threads
    import rnnfast

    rnnfast.set_num_threads(n)
    _current_threads = n
    if torch_available():
        import torch

        torch.set_num_threads(n)


def current_threads() -> int:
    """The count of the last ``set_threads()``, else the one from the environment."""
    return threads_from_env() if _current_threads is None else _current_threads


def _lscpu() -> dict:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _version(module_name: str) -> str:
    if importlib.util.find_spec(module_name) is None:
        return "not installed"
    return getattr(importlib.import_module(module_name), "__version__", "unknown")


def machine_info() -> dict:
    """CPU, cores, date and library versions, for the header of every result."""
    import rnnfast

    cpu = _lscpu()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cores = None
    if cpu.get("Core(s) per socket", "").isdigit() and cpu.get("Socket(s)", "").isdigit():
        cores = int(cpu["Core(s) per socket"]) * int(cpu["Socket(s)"])
    return {
        "cpu_model": cpu.get("Model name") or platform.processor() or "unknown",
        "physical_cores": cores,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
        "rnnfast": rnnfast.__version__,
        "rnnfast_path": str(Path(rnnfast.__file__).resolve().parent),
        "rnnfast_isa": rnnfast.active_isa(),
        "rnnfast_bf16_isa": rnnfast.active_bf16_isa(),
        "load_average_1min": load_average(),
    }


def load_average():
    """The 1-minute load average (None where unsupported): other work skews the timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
