"""rnnfast: fused C++ CPU kernels for recurrent networks, with a NumPy API.

- ``rnnfast.functional``: the kernels (RNN, LSTM, GRU forward and backward through time,
  Conv1D, pooling).
- ``rnnfast.reference``: the same operations in plain NumPy float64, the tests' oracle.
- Settings and report: ``set_num_threads``, ``set_isa``, ``show_config`` (also
  ``python -m rnnfast --config``).
"""
from rnnfast._version import __version__
from rnnfast._config import (
    active_isa,
    get_config,
    get_num_threads,
    set_isa,
    set_num_threads,
    show_config,
    supported_isas,
)

__all__ = [
    "__version__",
    "active_isa",
    "get_config",
    "get_num_threads",
    "set_isa",
    "set_num_threads",
    "show_config",
    "supported_isas",
]
