"""Inverted dropout with a counter-based mask, backed by the C++ kernel (``rnnfast._C``)::

    y  = dropout(x, p, seed)      # training forward
    dx = dropout(dy, p, seed)     # its backward: the same mask, recomputed

Element ``i`` (C order) is kept when 32 bits of the SplitMix64 sequence started at ``seed`` (its
output ``j`` gives element ``2j`` its low and ``2j + 1`` its high 32 bits), read as an unsigned
integer, are at least ``ceil(p * 2**32)``: a drop probability within ``2**-32`` of ``p``. Kept
elements are multiplied by ``1 / (1 - p)`` (computed in ``x``'s dtype), dropped ones by 0. The
mask depends on ``(seed, i)`` only: the same at any thread count, and nothing is kept for the
backward. ``rnnfast.reference.dropout`` computes the same values in NumPy.
"""
from __future__ import annotations

from rnnfast import _C
from rnnfast.functional._types import Array, ArrayLike

__all__ = ["dropout"]


def dropout(x: ArrayLike, p: float, seed: int) -> Array:
    """``x`` with each element dropped (zeroed) with probability ``p``, the rest scaled by
    ``1 / (1 - p)``; the mask is a function of ``seed`` and the element's index.

    Args:
        x: float32 or float64 array of any shape.
        p: drop probability in ``[0, 1)`` (``p = 1``, every element dropped, is zeros).
        seed: an int in ``0 .. 2**64 - 1``; the same seed and size give the same mask.

    Returns:
        A new array of ``x``'s shape and dtype. The backward of a dropout is this same call on
        the output's gradient.
    """
    return _C.dropout(x, float(p), seed)
