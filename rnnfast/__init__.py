"""rnnfast: fused C++ CPU kernels for recurrent networks, with a NumPy API.

- ``rnnfast.functional``: the kernels (RNN, LSTM, GRU forward and backward through time,
  Conv1D, pooling).
- ``rnnfast.reference``: the same operations in plain NumPy float64, the tests' oracle.
- ``rnnfast.nn``, ``rnnfast.losses``, ``rnnfast.optim``: layers, losses and optimisers.
- ``rnnfast.models``: Keras' Sequential workflow; ``rnnfast.utils``: padding, tokenizer,
  time-series windows; ``rnnfast.generation``: step-by-step decoding (greedy, sampling, beam).
- Settings and report: ``set_num_threads``, ``set_thread_pool``, ``set_isa``, ``show_config`` (also
  ``python -m rnnfast --config``).
"""
from rnnfast._version import __version__
from rnnfast._config import (
    active_isa,
    get_config,
    get_num_threads,
    get_thread_pool,
    set_isa,
    set_num_threads,
    set_thread_pool,
    show_config,
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
    "active_isa",
    "get_config",
    "get_num_threads",
    "get_thread_pool",
    "set_isa",
    "set_num_threads",
    "set_thread_pool",
    "show_config",
    "supported_isas",
]
