"""rnnfast: fused C++ CPU kernels for recurrent networks, with a NumPy API.

- ``rnnfast.functional``: the kernels (RNN, LSTM, GRU forward and backward through time,
  Conv1D, pooling).
- ``rnnfast.reference``: the same operations in plain NumPy float64, the tests' oracle.
- ``rnnfast.nn``, ``rnnfast.losses``, ``rnnfast.optim``: layers, losses and optimisers.
- ``rnnfast.models``: Keras' Sequential workflow; ``rnnfast.utils``: padding, tokenizer,
  time-series windows; ``rnnfast.generation``: step-by-step decoding (greedy, sampling, beam).
- Settings and report: ``set_num_threads``, ``set_isa``, ``show_config`` (also
  ``python -m rnnfast --config``).
"""
import importlib.machinery as _machinery
import os as _os
import sys as _sys


def _load_from_installed_copy_if_unbuilt():
    """In a source checkout, ./rnnfast has no compiled ``_C`` and, when Python runs in the
    repository root (``python -m rnnfast``, or subprocesses of the tests), shadows the installed
    package. Then take every submodule from the installed copy found further on sys.path."""
    def built(folder):
        return any(_os.path.exists(_os.path.join(folder, "_C" + suffix))
                   for suffix in _machinery.EXTENSION_SUFFIXES)

    here = _os.path.dirname(_os.path.abspath(__file__))
    if built(here):
        return
    for entry in _sys.path:
        candidate = _os.path.join(_os.path.abspath(entry or _os.getcwd()), "rnnfast")
        if candidate != here and built(candidate):
            __path__[:] = [candidate]
            return


_load_from_installed_copy_if_unbuilt()

from rnnfast._version import __version__  # noqa: E402
from rnnfast._config import (  # noqa: E402
    active_bf16_isa,
    active_isa,
    get_config,
    get_num_threads,
    set_bf16_isa,
    set_isa,
    set_num_threads,
    show_config,
    supported_bf16_isas,
    supported_isas,
)

# Submodules load on first use (``rnnfast.models``, ...), so ``import rnnfast`` stays light.
_LAZY_SUBMODULES = ("functional", "reference", "nn", "losses", "optim", "models", "utils",
                    "generation")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"rnnfast.{name}")
    raise AttributeError(f"module 'rnnfast' has no attribute {name!r}")


__all__ = [
    "__version__",
    "active_bf16_isa",
    "active_isa",
    "get_config",
    "get_num_threads",
    "set_bf16_isa",
    "set_isa",
    "set_num_threads",
    "show_config",
    "supported_bf16_isas",
    "supported_isas",
]
