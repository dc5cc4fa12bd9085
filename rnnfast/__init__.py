"""rnnfast: fused C++ CPU kernels for recurrent networks, with a NumPy API.

- ``rnnfast.functional``: the kernels (RNN, LSTM, GRU forward and backward through time).
- ``rnnfast.reference``: the same operations in plain NumPy float64, the tests' oracle.
"""
from rnnfast._config import (
    active_isa,
    get_num_threads,
    set_isa,
    set_num_threads,
    supported_isas,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "active_isa",
    "get_num_threads",
    "set_isa",
    "set_num_threads",
    "supported_isas",
]
