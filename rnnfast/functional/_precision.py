"""The ``precision`` option of the functional ops, and bfloat16 arrays as inputs.

``precision="float32"`` (the default) computes in the arrays' dtype. ``precision="bfloat16"``
(float32 arrays) computes every matrix product from operands rounded to bfloat16 (round to
nearest even), with float32 sums; everything outside the products (biases, gate math, states,
outputs, gradients) stays float32. docs/DECISIONS.md says where values are rounded.

Arrays of the ``bfloat16`` NumPy dtype of ml_dtypes (what JAX and Keras hold) are accepted
wherever a float array is: they are widened to float32 (exactly), without importing ml_dtypes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["widen_bfloat16"]


def widen_bfloat16(a: Any) -> Any:
    """a as float32 if it is an array of a ``bfloat16`` dtype (ml_dtypes), else a unchanged."""
    dtype = getattr(a, "dtype", None)
    # kind first: NumPy 2.4 builds dtype.name in Python (about 11 us), and this runs on every
    # argument of every op; ml_dtypes' bfloat16 is of kind "V".
    if isinstance(dtype, np.dtype) and dtype.kind == "V" and dtype.name == "bfloat16":
        return np.asarray(a, dtype=np.float32)
    return a
