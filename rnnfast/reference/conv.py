"""Conv1D and 1-D pooling in plain NumPy: the oracle of the kernels' tests.

Written for clarity, not speed; same signatures as ``rnnfast.functional``, plus ``dtype``
on every forward: float64 (the default, the oracle) or float32, in which every array and
operation of the forward and of its backward is computed (the error a straightforward float32
implementation makes, the yardstick of the float32 kernels' tests)::

    y, ctx = conv1d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1,
                            groups=1, channels_last=True, training=False, dtype=np.float64,
                            activation=None)         # or "relu": max(y, 0)
    grads  = conv1d_backward(ctx, dy)                  # {"x", "w", "b"}
    py, conv_ctx, pool_ctx = conv1d_max_pool1d_forward(x, w, b=None, *, <conv1d_forward's
                            options>, pool_size, pool_stride=None, pool_padding="valid")
    y, ctx = max_pool1d_forward(x, *, pool_size, stride=None, padding="valid",
                                channels_last=True, training=False)
    grads  = max_pool1d_backward(ctx, dy)              # {"x"}
    y, ctx = global_max_pool1d_forward(x, *, channels_last=True, training=False)
    grads  = global_max_pool1d_backward(ctx, dy)       # {"x"}
    y, ctx = global_avg_pool1d_forward(x, *, channels_last=True, training=False)
    grads  = global_avg_pool1d_backward(ctx, dy)       # {"x"}

``x`` is ``(B, L, C)`` when ``channels_last`` else ``(B, C, L)``; ``w`` is PyTorch's
``(C_out, C_in // groups, K)``. Internally everything runs in the ``(B, C, L)`` layout.
The global pools reduce over time and return ``(B, C)`` in either layout.
"""
import numpy as np

from rnnfast.reference._common import Ctx as _Ctx, check_ctx as _check_ctx, compute_dtype

__all__ = [
    "conv1d_forward",
    "conv1d_backward",
    "conv1d_max_pool1d_forward",
    "max_pool1d_forward",
    "max_pool1d_backward",
    "global_max_pool1d_forward",
    "global_max_pool1d_backward",
    "global_avg_pool1d_forward",
    "global_avg_pool1d_backward",
]


def _to_ncl(a, channels_last, dtype):
    a = np.asarray(a, dtype=dtype)
    return a.transpose(0, 2, 1) if channels_last else a


def _from_ncl(a, channels_last):
    return np.ascontiguousarray(a.transpose(0, 2, 1) if channels_last else a)


def _ceil_div(a, b):
    return -(-a // b)


def _same_padding(length, stride, span):
    """TensorFlow's "same": output ceil(L / stride); the odd pad element goes right."""
    out = _ceil_div(length, stride)
    total = max((out - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def _conv_padding(padding, length, kernel_size, stride, dilation):
    span = dilation * (kernel_size - 1) + 1
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            return _same_padding(length, stride, span)
        if padding == "causal":
            return span - 1, 0
        raise ValueError(f"padding: expected 'valid', 'same', 'causal', an int or a pair, got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        return int(padding), int(padding)
    left, right = padding
    return int(left), int(right)


# ---------------------------------------------------------------- Conv1D


def conv1d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1, groups=1,
                   channels_last=True, training=False, dtype=np.float64, activation=None):
    assert activation in (None, "relu")
    dtype = compute_dtype(dtype)
    x = _to_ncl(x, channels_last, dtype)
    w = np.asarray(w, dtype=dtype)
    batch, c_in, length = x.shape
    c_out, c_group, kernel_size = w.shape
    assert c_in == c_group * groups and c_out % groups == 0
    left, right = _conv_padding(padding, length, kernel_size, stride, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    l_out = (xp.shape[2] - dilation * (kernel_size - 1) - 1) // stride + 1
    assert l_out >= 1
    # taps[t, k]: the padded input position that output t reads with kernel tap k.
    taps = np.arange(l_out)[:, None] * stride + np.arange(kernel_size)[None, :] * dilation
    patches = xp[:, :, taps]  # (B, C_in, L_out, K)
    out_group = c_out // groups
    y = np.empty((batch, c_out, l_out), dtype=dtype)
    for g in range(groups):
        ci = slice(g * c_group, (g + 1) * c_group)
        co = slice(g * out_group, (g + 1) * out_group)
        y[:, co, :] = np.einsum("bclk,ock->bol", patches[:, ci], w[co])
    if b is not None:
        y += np.asarray(b, dtype=dtype)[None, :, None]
    if activation == "relu":
        y = np.maximum(y, 0)
    ctx = None
    if training:
        ctx = _Ctx("conv1d", patches=patches, w=w, has_bias=b is not None, groups=groups,
                   taps=taps, left=left, length=length, padded_length=xp.shape[2],
                   channels_last=channels_last, relu_mask=y > 0 if activation else None)
    return _from_ncl(y, channels_last), ctx


def conv1d_backward(ctx, dy):
    _check_ctx(ctx, "conv1d")
    patches, w, groups = ctx.patches, ctx.w, ctx.groups
    batch, c_in, l_out, _ = patches.shape
    c_out, c_group, _ = w.shape
    out_group = c_out // groups
    dy = (np.zeros((batch, c_out, l_out), dtype=w.dtype) if dy is None
          else _to_ncl(dy, ctx.channels_last, w.dtype))
    if ctx.relu_mask is not None:
        dy = dy * ctx.relu_mask
    dw = np.empty_like(w)
    dpatches = np.empty_like(patches)
    for g in range(groups):
        ci = slice(g * c_group, (g + 1) * c_group)
        co = slice(g * out_group, (g + 1) * out_group)
        dw[co] = np.einsum("bol,bclk->ock", dy[:, co], patches[:, ci])
        dpatches[:, ci] = np.einsum("bol,ock->bclk", dy[:, co], w[co])
    dxp = np.zeros((batch, c_in, ctx.padded_length), dtype=w.dtype)
    np.add.at(dxp, (slice(None), slice(None), ctx.taps), dpatches)
    dx = dxp[:, :, ctx.left:ctx.left + ctx.length]
    db = dy.sum(axis=(0, 2)) if ctx.has_bias else None
    return {"x": _from_ncl(dx, ctx.channels_last), "w": dw, "b": db}


# ---------------------------------------------------------------- MaxPool1D


def _pool_windows(length, pool_size, stride, padding):
    """(start, stop) of each window in input positions, clipped to the real input."""
    if padding == "valid":
        left, l_out = 0, (length - pool_size) // stride + 1
    elif padding == "same":
        left, _ = _same_padding(length, stride, pool_size)
        l_out = _ceil_div(length, stride)
    else:
        raise ValueError(f"padding: expected 'valid' or 'same', got {padding!r}")
    assert l_out >= 1
    starts = np.arange(l_out) * stride - left
    return [(max(s, 0), min(s + pool_size, length)) for s in starts]


def _argmax_over_time(x, lo, hi):
    """Position of the first maximum of x[:, :, lo:hi] (NaN counts as the maximum)."""
    return np.argmax(x[:, :, lo:hi], axis=2) + lo


def max_pool1d_forward(x, *, pool_size, stride=None, padding="valid", channels_last=True,
                       training=False, dtype=np.float64):
    x = _to_ncl(x, channels_last, compute_dtype(dtype))
    stride = pool_size if stride is None else stride
    windows = _pool_windows(x.shape[2], pool_size, stride, padding)
    arg = np.stack([_argmax_over_time(x, lo, hi) for lo, hi in windows], axis=2)  # (B, C, L_out)
    y = np.take_along_axis(x, arg, axis=2)
    ctx = _Ctx("max_pool1d", arg=arg, length=x.shape[2], channels_last=channels_last,
               dtype=x.dtype) if training else None
    return _from_ncl(y, channels_last), ctx


def max_pool1d_backward(ctx, dy):
    _check_ctx(ctx, "max_pool1d")
    batch, channels, l_out = ctx.arg.shape
    dx = np.zeros((batch, channels, ctx.length), dtype=ctx.dtype)
    if dy is not None:
        dy = _to_ncl(dy, ctx.channels_last, ctx.dtype)
        bi, ci, _ = np.indices(ctx.arg.shape)
        np.add.at(dx, (bi, ci, ctx.arg), dy)  # overlapping windows accumulate
    return {"x": _from_ncl(dx, ctx.channels_last)}


def conv1d_max_pool1d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1, groups=1,
                              channels_last=True, training=False, dtype=np.float64,
                              activation=None, pool_size, pool_stride=None,
                              pool_padding="valid"):
    """The two forwards, one after the other: (py, conv ctx, pool ctx); the gradient of both
    is ``conv1d_backward(conv_ctx, max_pool1d_backward(pool_ctx, dpy)["x"])``."""
    y, conv_ctx = conv1d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups, channels_last=channels_last, training=training,
                                 dtype=dtype, activation=activation)
    py, pool_ctx = max_pool1d_forward(y, pool_size=pool_size, stride=pool_stride,
                                      padding=pool_padding, channels_last=channels_last,
                                      training=training, dtype=dtype)
    return py, conv_ctx, pool_ctx


# ---------------------------------------------------------------- global pooling over time


def global_max_pool1d_forward(x, *, channels_last=True, training=False, dtype=np.float64):
    x = _to_ncl(x, channels_last, compute_dtype(dtype))
    arg = np.argmax(x, axis=2)  # (B, C): first maximum
    y = np.take_along_axis(x, arg[:, :, None], axis=2)[:, :, 0]
    ctx = _Ctx("global_max_pool1d", arg=arg, length=x.shape[2], channels_last=channels_last,
               dtype=x.dtype) if training else None
    return y, ctx


def global_max_pool1d_backward(ctx, dy):
    _check_ctx(ctx, "global_max_pool1d")
    batch, channels = ctx.arg.shape
    dx = np.zeros((batch, channels, ctx.length), dtype=ctx.dtype)
    if dy is not None:
        np.put_along_axis(dx, ctx.arg[:, :, None], np.asarray(dy, dtype=ctx.dtype)[:, :, None],
                          axis=2)
    return {"x": _from_ncl(dx, ctx.channels_last)}


def global_avg_pool1d_forward(x, *, channels_last=True, training=False, dtype=np.float64):
    x = _to_ncl(x, channels_last, compute_dtype(dtype))
    y = x.mean(axis=2)
    ctx = _Ctx("global_avg_pool1d", shape=x.shape, channels_last=channels_last,
               dtype=x.dtype) if training else None
    return y, ctx


def global_avg_pool1d_backward(ctx, dy):
    _check_ctx(ctx, "global_avg_pool1d")
    batch, channels, length = ctx.shape
    dx = np.zeros(ctx.shape, dtype=ctx.dtype)
    if dy is not None:
        dx += np.asarray(dy, dtype=ctx.dtype)[:, :, None] / length
    return {"x": _from_ncl(dx, ctx.channels_last)}
