"""The one rule for the reference's compute dtype."""
import numpy as np


def compute_dtype(dtype):
    """``dtype`` (float64, the oracle's, or float32) as a NumPy dtype; anything else is a
    TypeError. Every array and every operation of a reference call is in this dtype."""
    try:
        resolved = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        resolved = None
    if resolved is None or resolved.type not in (np.float64, np.float32):
        raise TypeError(f"dtype: expected float64 or float32, got {dtype!r}")
    return resolved
