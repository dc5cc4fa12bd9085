"""The affine map of fully connected layers on the package's GEMM (``rnnfast._C``)::

    y, ctx = linear_forward(x, w, b=None, *, training=False)   # y = x w^T + b
    grads  = linear_backward(ctx, dy)                          # {"x", "w", "b"}

``x`` is ``(..., in_features)`` (any number of leading axes, so a sequence ``(T, B, F)`` is
mapped step by step), ``w`` PyTorch's ``(out_features, in_features)``, ``b`` ``(out_features,)``
or None; ``y`` is ``(..., out_features)``. The products run on the package's GEMM and thread
pool (``rnnfast.set_num_threads``), not on NumPy's BLAS, whose idle threads keep spinning on the
cores the recurrent kernels use next (bench/RESULTS.md). What ``training=True`` keeps for the
backward refers to ``x`` and ``w`` without copying them: change neither in place in between.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from rnnfast import _C
from rnnfast.functional._types import Array, ArrayLike, Context, Gradients

__all__ = ["linear_forward", "linear_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class _LinearCtx(NamedTuple):
    x2: np.ndarray      # x as (rows, in_features)
    x_shape: tuple
    w: np.ndarray
    has_bias: bool


def _float_array(value, name, dtype=None, of="x"):
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if dtype is None:
        if arr.dtype not in _FLOATS:
            raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    elif arr.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of {of}), got {arr.dtype}")
    return arr


def linear_forward(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, *,
                   training: bool = False) -> Tuple[Array, Optional[Context]]:
    """``y = x w^T + b`` over the last axis of ``x``.

    Args:
        x: ``(..., in_features)``, at least 1-D; float32 or float64.
        w: ``(out_features, in_features)`` (PyTorch's layout), ``x``'s dtype.
        b: ``(out_features,)`` or None (no bias), ``x``'s dtype.
        training: keep what ``linear_backward`` needs and return it as ``ctx``.

    Returns:
        ``(y, ctx)``: ``y`` ``(..., out_features)``, ``ctx`` for ``linear_backward`` if
        ``training`` else None.
    """
    x = _float_array(x, "x")
    if x.ndim < 1:
        raise ValueError(f"x: expected an array of at least 1 dimension (..., in_features), "
                         f"got shape {x.shape}")
    w = _float_array(w, "w", x.dtype)
    if w.ndim != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(f"w: expected shape (out_features, in_features) with in_features = "
                         f"{x.shape[-1]} from x = {x.shape}, got {w.shape}")
    if b is not None:
        b = _float_array(b, "b", x.dtype)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b: expected shape (out_features,) = ({w.shape[0]},), got "
                             f"{b.shape}")
    x2 = x.reshape(-1, x.shape[-1])
    y = _C.gemm(x2, w, trans_b=True).reshape(x.shape[:-1] + (w.shape[0],))
    if b is not None:
        y += b
    return y, (_LinearCtx(x2, x.shape, w, b is not None) if training else None)


def linear_backward(ctx: Context, dy: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of a ``linear_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx`` (usable for any number of backward calls).
        dy: ``y``'s shape ``(..., out_features)`` and dtype, or None (zeros).

    Returns:
        dict with ``"x"`` (``x``'s shape), ``"w"`` ``(out_features, in_features)`` and ``"b"``
        ``(out_features,)`` (None when the forward had no bias): ``dx = dy w``,
        ``dw = dy^T x`` and ``db = dy`` summed over the leading axes.
    """
    if ctx is None:
        raise ValueError("ctx: got None; call linear_forward(..., training=True)")
    if not isinstance(ctx, _LinearCtx):
        raise TypeError(f"ctx: expected the ctx returned by linear_forward(..., training=True), "
                        f"got {type(ctx)}")
    out_features = ctx.w.shape[0]
    shape = ctx.x_shape[:-1] + (out_features,)
    if dy is None:
        dy = np.zeros(shape, ctx.w.dtype)
    dy = _float_array(dy, "dy", ctx.w.dtype, of="the forward's x")
    if dy.shape != shape:
        raise ValueError(f"dy: expected shape (..., out_features) = {shape}, got {dy.shape}")
    dy2 = dy.reshape(-1, out_features)
    return {"x": _C.gemm(dy2, ctx.w).reshape(ctx.x_shape),
            "w": _C.gemm(dy2, ctx.x2, trans_a=True),
            "b": dy2.sum(axis=0) if ctx.has_bias else None}
