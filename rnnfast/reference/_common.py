"""What the reference modules share: the compute dtype rule and the ctx of a forward."""
import numpy as np


class Ctx:
    """What a backward needs, tagged with the name of the op that made it."""

    def __init__(self, op, **saved):
        self.op = op
        self.__dict__.update(saved)


def check_ctx(ctx, op):
    """A ValueError unless ctx is the ctx of ``<op>_forward(..., training=True)``."""
    if not isinstance(ctx, Ctx) or ctx.op != op:
        raise ValueError(f"ctx: expected the ctx of {op}_forward(..., training=True), got {ctx!r}")


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
