"""The ``precision`` option of the functional ops, and bfloat16 arrays as inputs.

``precision="float32"`` (the default) computes in the arrays' dtype. ``precision="bfloat16"``
(float32 arrays) computes every matrix product from operands rounded to bfloat16 (round to
nearest even), with float32 sums; everything outside the products (biases, gate math, states,
outputs, gradients) stays float32. docs/DECISIONS.md says where values are rounded.

Arrays of the ``bfloat16`` NumPy dtype of ml_dtypes (what JAX and Keras hold) are accepted
wherever a float array is: they are widened to float32 (exactly), without importing ml_dtypes.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["is_bfloat16", "new_weights_token", "widen_bfloat16"]

_tokens = itertools.count(1)


def new_weights_token() -> int:
    """A token for the ``weights_token`` argument of the recurrent forwards: an int no earlier
    call of this function in the process returned.

    With ``precision="bfloat16"`` a forward packs ``w_ih`` and ``w_hh`` into the bfloat16 layout
    of its products at every call (LSTM inference at T=50, B=64, I=H=512: 5-8% of the call).
    Given a token, it keeps those packings (for the arrays it was given, by address) and later
    calls with the same arrays and token reuse them. The token is the caller's promise that the
    values are the same: the kernels cannot see a write into the arrays (checking them would
    cost about as much as packing them). Take a new token after changing the weights in place,
    and for other arrays (a freed array's address can be another's)::

        token = F.new_weights_token()
        y = F.lstm_forward(x, w_ih, w_hh, b_ih, b_hh, precision="bfloat16", weights_token=token)
        w_ih -= lr * dw_ih                 # the weights changed:
        token = F.new_weights_token()      # a new token

    At most 16 packings (256 MiB) are kept, the least recently used dropped first. Only the
    bfloat16 hardware paths (``active_bf16_isa()`` amx or avx512_bf16) pack; elsewhere the
    token changes nothing.

    Args:
        none.

    Returns:
        an int in ``1 .. 2**64 - 1``, one more than the last one returned.
    """
    return next(_tokens)


def is_bfloat16(a: Any) -> bool:
    """Whether a is an array of a ``bfloat16`` dtype (ml_dtypes)."""
    dtype = getattr(a, "dtype", None)
    # kind first: NumPy 2.4 builds dtype.name in Python (about 11 us), and this runs on every
    # argument of every op; ml_dtypes' bfloat16 is of kind "V".
    return isinstance(dtype, np.dtype) and dtype.kind == "V" and dtype.name == "bfloat16"


def widen_bfloat16(a: Any) -> Any:
    """a as float32 if it is an array of a ``bfloat16`` dtype (ml_dtypes), else a unchanged."""
    if is_bfloat16(a):
        return np.asarray(a, dtype=np.float32)
    return a
