"""Conv1D and 1-D pooling, backed by the C++ kernels (``rnnfast._C``)::

    y, ctx = conv1d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1,
                            groups=1, channels_last=True, training=False)
    grads  = conv1d_backward(ctx, dy)                  # {"x", "w", "b"}
    y, ctx = max_pool1d_forward(x, *, pool_size, stride=None, padding="valid",
                                channels_last=True, training=False)
    grads  = max_pool1d_backward(ctx, dy)              # {"x"}
    y, ctx = global_max_pool1d_forward(x, *, channels_last=True, training=False)
    grads  = global_max_pool1d_backward(ctx, dy)       # {"x"}
    y, ctx = global_avg_pool1d_forward(x, *, channels_last=True, training=False)
    grads  = global_avg_pool1d_backward(ctx, dy)       # {"x"}

Shapes (DESIGN.md): ``x`` is ``(B, L, C)`` when ``channels_last`` (Keras, what an Embedding
gives) else ``(B, C, L)`` (PyTorch); ``y`` follows ``x``'s layout. ``w`` is PyTorch's
``(C_out, C_in // groups, K)`` and ``b`` is ``(C_out,)`` or None. The global pools reduce over
time and return ``(B, C)`` in either layout (Keras' GlobalMaxPooling1D and
GlobalAveragePooling1D).

Conv padding: ``"valid"``; ``"same"`` (``ceil(L / stride)`` outputs, TensorFlow's split with the
odd padding step on the right); ``"causal"`` (``dilation * (K - 1)`` zeros on the left); an int
(both sides) or a ``(left, right)`` pair. Pool padding: ``"valid"`` or ``"same"``, where padded
positions never win; ``stride=None`` means ``pool_size``. Max pooling sends each gradient to
the first maximum of its window (NaN counts as the maximum) and accumulates where windows
overlap.

``training=True`` returns a ctx for the matching backward, else ``ctx`` is None. A backward
returns a dict of gradients keyed by the forward's argument names (``"b"`` is None when ``b``
was None); ``dy=None`` means zeros. All validation happens in the binding, before any kernel
runs; the GIL is released inside the kernels.
"""
from rnnfast import _C

__all__ = [
    "conv1d_forward",
    "conv1d_backward",
    "max_pool1d_forward",
    "max_pool1d_backward",
    "global_max_pool1d_forward",
    "global_max_pool1d_backward",
    "global_avg_pool1d_forward",
    "global_avg_pool1d_backward",
]


def conv1d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1, groups=1,
                   channels_last=True, training=False):
    """1-D convolution (cross-correlation, as PyTorch and Keras). Returns ``(y, ctx)``."""
    return _C.conv1d_forward(x, w, b, stride, padding, dilation, groups, bool(channels_last),
                             bool(training))


def conv1d_backward(ctx, dy):
    """Gradients of a ``conv1d_forward(..., training=True)``: dict ``x``, ``w``, ``b``."""
    return _C.conv1d_backward(ctx, dy)


def max_pool1d_forward(x, *, pool_size, stride=None, padding="valid", channels_last=True,
                       training=False):
    """Max over windows of ``pool_size`` steps, ``stride`` apart. Returns ``(y, ctx)``."""
    return _C.max_pool1d_forward(x, pool_size, stride, padding, bool(channels_last),
                                 bool(training))


def max_pool1d_backward(ctx, dy):
    """Gradient of a ``max_pool1d_forward(..., training=True)``: dict ``x``."""
    return _C.pool1d_backward("max_pool1d", ctx, dy)


def global_max_pool1d_forward(x, *, channels_last=True, training=False):
    """Max over all time steps: ``y`` is ``(B, C)``. Returns ``(y, ctx)``."""
    return _C.global_pool1d_forward("global_max_pool1d", x, bool(channels_last), bool(training))


def global_max_pool1d_backward(ctx, dy):
    """Gradient of a ``global_max_pool1d_forward(..., training=True)``: dict ``x``."""
    return _C.pool1d_backward("global_max_pool1d", ctx, dy)


def global_avg_pool1d_forward(x, *, channels_last=True, training=False):
    """Mean over all time steps: ``y`` is ``(B, C)``. Returns ``(y, ctx)``."""
    return _C.global_pool1d_forward("global_avg_pool1d", x, bool(channels_last), bool(training))


def global_avg_pool1d_backward(ctx, dy):
    """Gradient of a ``global_avg_pool1d_forward(..., training=True)``: dict ``x``."""
    return _C.pool1d_backward("global_avg_pool1d", ctx, dy)
