"""The affine map ``y = x w^T + b`` in plain NumPy: the oracle of ``rnnfast.functional``'s
``linear_forward`` / ``linear_backward`` (same signatures, plus ``dtype``: float64, the
default, or float32 for the forward and its backward)."""
import numpy as np

from rnnfast.reference._common import compute_dtype

__all__ = ["linear_forward", "linear_backward"]


class _Ctx:
    def __init__(self, x, w, has_bias):
        self.x, self.w, self.has_bias = x, w, has_bias


def linear_forward(x, w, b=None, *, training=False, dtype=np.float64):
    dtype = compute_dtype(dtype)
    x = np.asarray(x, dtype=dtype)
    w = np.asarray(w, dtype=dtype)
    y = x @ w.T
    if b is not None:
        y = y + np.asarray(b, dtype=dtype)
    return y, (_Ctx(x, w, b is not None) if training else None)


def linear_backward(ctx, dy=None):
    if not isinstance(ctx, _Ctx):
        raise ValueError(f"ctx: expected the ctx of linear_forward(..., training=True), "
                         f"got {ctx!r}")
    shape = ctx.x.shape[:-1] + ctx.w.shape[:1]
    dy = np.zeros(shape, ctx.w.dtype) if dy is None else np.asarray(dy, dtype=ctx.w.dtype)
    rows_dy, rows_x = dy.reshape(-1, shape[-1]), ctx.x.reshape(-1, ctx.x.shape[-1])
    return {"x": dy @ ctx.w,
            "w": rows_dy.T @ rows_x,
            "b": rows_dy.sum(axis=0) if ctx.has_bias else None}
