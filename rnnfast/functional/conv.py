"""Conv1D and 1-D pooling, backed by the C++ kernels (``rnnfast._C``)::

    y, ctx = conv1d_forward(x, w, b=None, *, stride=1, padding="valid", dilation=1,
                            groups=1, channels_last=True, training=False,
                            precision="float32", add=None, activation=None,
                            algorithm="auto")
    grads  = conv1d_backward(ctx, dy, *, add=None, pool=None)   # {"x", "w", "b"}
    py, conv_ctx, pool_ctx = conv1d_max_pool1d_forward(x, w, b=None, *, <conv1d_forward's
                            options but add>, pool_size, pool_stride=None, pool_padding="valid")
    y, ctx = max_pool1d_forward(x, *, pool_size, stride=None, padding="valid",
                                channels_last=True, training=False)
    grads  = max_pool1d_backward(ctx, dy)              # {"x"}
    y, ctx = global_max_pool1d_forward(x, *, channels_last=True, training=False)
    grads  = global_max_pool1d_backward(ctx, dy)       # {"x"}
    y, ctx = global_avg_pool1d_forward(x, *, channels_last=True, training=False)
    grads  = global_avg_pool1d_backward(ctx, dy)       # {"x"}
    z      = gated_activation_forward(a)               # WaveNet's tanh(a_f) * sigmoid(a_g)
    da     = gated_activation_backward(a, dz)

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
from __future__ import annotations

from typing import Optional, Tuple

from rnnfast import _C
from rnnfast.functional._precision import widen_bfloat16 as _w
from rnnfast.functional._types import Array, ArrayLike, Context, Gradients, Padding

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


def conv1d_forward(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, *, stride: int = 1,
                   padding: Padding = "valid", dilation: int = 1, groups: int = 1,
                   channels_last: bool = True, training: bool = False,
                   precision: str = "float32", add: Optional[ArrayLike] = None,
                   activation: Optional[str] = None,
                   algorithm: str = "auto") -> Tuple[Array, Optional[Context]]:
    """1-D convolution (cross-correlation, as PyTorch and Keras), plus ``add`` if given, then
    the ``activation`` if given.

    Args:
        x: ``(B, L, C_in)`` if ``channels_last`` else ``(B, C_in, L)``; float32 or float64.
        w: ``(C_out, C_in // groups, K)`` (PyTorch's layout).
        b: ``(C_out,)`` or None (no bias).
        stride: step between outputs, >= 1.
        padding: ``"valid"``, ``"same"``, ``"causal"``, an int or a ``(left, right)`` pair.
        dilation: spacing of the kernel taps, >= 1.
        groups: ``C_in`` and ``C_out`` split into this many independent groups.
        channels_last: the layout of ``x`` and ``y``.
        training: keep what ``conv1d_backward`` needs and return it as ``ctx``.
        precision: ``"float32"`` or ``"bfloat16"`` (float32 arrays only: ``x``, ``w`` and, in
            the backward, ``dy`` rounded to bfloat16 for every product, float32 sums; the bias
            and all outputs stay float32). The backward uses the forward's. Arrays of
            ml_dtypes' bfloat16 are widened to float32.
        add: None, or an array of ``y``'s shape and dtype added to the output in the same pass.
        activation: None, or ``"relu"``: ``max(y, 0)`` applied in the same pass (NumPy's
            maximum: NaN stays NaN); ``ctx`` then also keeps ``y`` and the backward
            differentiates through it (``dy * (y > 0)``).
        algorithm: ``"auto"``, ``"direct"`` or ``"winograd"``. ``"winograd"`` (Winograd's
            minimal filtering: 0.6-0.67x the products, a larger float32 error than the direct
            path's, within DESIGN.md's numerical contract) needs float32 arrays and
            precision, channels last, one group, stride 1, dilation 1 and a kernel of 3 to 7
            taps (any padding); ``"auto"`` takes it for those shapes with at least 48 input
            and output channels, 24 output steps and 256 outputs (batch x steps), else the
            direct GEMM over the patches, which ``"direct"`` always takes. The backward is the
            same for all three.

    Returns:
        ``(y, ctx)``: ``y`` ``(B, L_out, C_out)`` (or ``(B, C_out, L_out)``), ``ctx`` for
        ``conv1d_backward`` if ``training`` else None.
    """
    return _C.conv1d_forward(_w(x), _w(w), _w(b), stride=stride, padding=padding,
                             dilation=dilation, groups=groups,
                             channels_last=bool(channels_last), training=bool(training),
                             precision=precision, add=_w(add), activation=activation,
                             algorithm=algorithm)


def conv1d_backward(ctx: Context, dy: Optional[ArrayLike], *,
                    add: Optional[ArrayLike] = None, pool: Optional[Context] = None) -> Gradients:
    """Gradients of a ``conv1d_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``y``'s shape, or None (zeros); with ``pool``, the pool's output's shape.
        add: None, or an array of ``x``'s shape and dtype added to the returned ``"x"`` in the
            same pass (another path's gradient of ``x``, e.g. a residual connection's).
        pool: None, or the ctx of a ``max_pool1d_forward(y, ..., training=True)`` over this
            convolution's output ``y``: ``dy`` is then the gradient of the pool's output and the
            result that of ``max_pool1d_backward`` followed by this backward. Channels last, one
            group, dilation 1, ``"valid"`` padding and float32 products (finite ``x`` and
            ``w``) sum only the products of each window's winner: 1/pool_size of the work.

    Returns:
        dict with ``"x"``, ``"w"`` and ``"b"`` (the shapes of the forward's arguments; ``"b"`` is
        None when ``b`` was None).
    """
    return _C.conv1d_backward(ctx, _w(dy), add=_w(add), pool=pool)


def conv1d_max_pool1d_forward(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, *,
                              stride: int = 1, padding: Padding = "valid", dilation: int = 1,
                              groups: int = 1, channels_last: bool = True,
                              training: bool = False, precision: str = "float32",
                              activation: Optional[str] = None, pool_size: int,
                              pool_stride: Optional[int] = None, pool_padding: str = "valid",
                              algorithm: str = "auto"
                              ) -> Tuple[Array, Optional[Context], Optional[Context]]:
    """``conv1d_forward`` followed by ``max_pool1d_forward`` over its output, in one pass that
    never stores the convolution's output: each block of it is pooled while in cache. ``py``
    and the pool's winners are those of the two calls, bit for bit.

    Args:
        x, w, b, stride, padding, dilation, groups, channels_last, precision, activation,
            algorithm: as ``conv1d_forward``'s (there is no ``add``).
        training: return both ctxs.
        pool_size, pool_stride, pool_padding: ``max_pool1d_forward``'s ``pool_size``,
            ``stride`` (None: ``pool_size``) and ``padding`` over the convolution's output.

    Returns:
        ``(py, conv_ctx, pool_ctx)``: ``py`` the pool's output ``(B, L_pool, C_out)`` (or
        ``(B, C_out, L_pool)``); with ``training``, the two ctxs for
        ``conv1d_backward(conv_ctx, dpy, pool=pool_ctx)`` (``pool_ctx`` also serves
        ``max_pool1d_backward``), else None and None. With ``activation="relu"`` the
        convolution's output (the ReLU's mask) exists only at the pool's winners, so
        ``conv1d_backward`` refuses ``conv_ctx`` without this ``pool_ctx``.
    """
    return _C.conv1d_max_pool1d_forward(
        _w(x), _w(w), _w(b), stride=stride, padding=padding, dilation=dilation, groups=groups,
        channels_last=bool(channels_last), training=bool(training), precision=precision,
        activation=activation, pool_size=pool_size, pool_stride=pool_stride,
        pool_padding=pool_padding, algorithm=algorithm)


def max_pool1d_forward(x: ArrayLike, *, pool_size: int, stride: Optional[int] = None,
                       padding: str = "valid", channels_last: bool = True,
                       training: bool = False) -> Tuple[Array, Optional[Context]]:
    """Max over windows of ``pool_size`` steps, ``stride`` apart.

    Args:
        x: ``(B, L, C)`` if ``channels_last`` else ``(B, C, L)``; float32 or float64.
        pool_size: steps per window, >= 1.
        stride: steps between windows, or None (``pool_size``).
        padding: ``"valid"`` or ``"same"`` (padded positions never win).
        channels_last: the layout of ``x`` and ``y``.
        training: keep what ``max_pool1d_backward`` needs and return it as ``ctx``.

    Returns:
        ``(y, ctx)``: ``y`` ``(B, L_out, C)`` (or ``(B, C, L_out)``), ``ctx`` for
        ``max_pool1d_backward`` if ``training`` else None.
    """
    return _C.pool1d_forward("max_pool1d", x, pool_size=pool_size, stride=stride, padding=padding,
                             channels_last=bool(channels_last), training=bool(training))


def max_pool1d_backward(ctx: Context, dy: Optional[ArrayLike]) -> Gradients:
    """Gradient of a ``max_pool1d_forward(..., training=True)``.

    Each window's gradient goes to its first maximum; overlapping windows accumulate.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``y``'s shape, or None (zeros).

    Returns:
        dict with ``"x"`` (``x``'s shape).
    """
    return _C.pool1d_backward("max_pool1d", ctx, dy)


def global_max_pool1d_forward(x: ArrayLike, *, channels_last: bool = True,
                              training: bool = False) -> Tuple[Array, Optional[Context]]:
    """Max over all time steps (Keras' GlobalMaxPooling1D).

    Args:
        x: ``(B, L, C)`` if ``channels_last`` else ``(B, C, L)``; float32 or float64.
        channels_last: the layout of ``x``.
        training: keep what ``global_max_pool1d_backward`` needs and return it as ``ctx``.

    Returns:
        ``(y, ctx)``: ``y`` ``(B, C)`` in either layout, ``ctx`` if ``training`` else None.
    """
    return _C.pool1d_forward("global_max_pool1d", x, pool_size=None, stride=None, padding=None,
                             channels_last=bool(channels_last), training=bool(training))


def global_max_pool1d_backward(ctx: Context, dy: Optional[ArrayLike]) -> Gradients:
    """Gradient of a ``global_max_pool1d_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``(B, C)``, or None (zeros).

    Returns:
        dict with ``"x"`` (``x``'s shape; each gradient at its sequence's first maximum).
    """
    return _C.pool1d_backward("global_max_pool1d", ctx, dy)


def global_avg_pool1d_forward(x: ArrayLike, *, channels_last: bool = True,
                              training: bool = False) -> Tuple[Array, Optional[Context]]:
    """Mean over all time steps (Keras' GlobalAveragePooling1D).

    Args:
        x: ``(B, L, C)`` if ``channels_last`` else ``(B, C, L)``; float32 or float64.
        channels_last: the layout of ``x``.
        training: keep what ``global_avg_pool1d_backward`` needs and return it as ``ctx``.

    Returns:
        ``(y, ctx)``: ``y`` ``(B, C)`` in either layout, ``ctx`` if ``training`` else None.
    """
    return _C.pool1d_forward("global_avg_pool1d", x, pool_size=None, stride=None, padding=None,
                             channels_last=bool(channels_last), training=bool(training))


def global_avg_pool1d_backward(ctx: Context, dy: Optional[ArrayLike]) -> Gradients:
    """Gradient of a ``global_avg_pool1d_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``(B, C)``, or None (zeros).

    Returns:
        dict with ``"x"`` (``x``'s shape, ``dy / L`` at every step).
    """
    return _C.pool1d_backward("global_avg_pool1d", ctx, dy)


def gated_activation_forward(a: ArrayLike) -> Array:
    """WaveNet's gated activation ``tanh(a[..., :C]) * sigmoid(a[..., C:])`` in one pass.

    Args:
        a: ``(..., 2C)`` float32 or float64, the filter pre-activations then the gate's.

    Returns:
        ``z`` of shape ``(..., C)``, ``a``'s dtype.
    """
    return _C.gated_activation_forward(a)


def gated_activation_backward(a: ArrayLike, dz: ArrayLike) -> Array:
    """Gradient of ``gated_activation_forward(a)``: both nonlinearities are recomputed from ``a``
    (nothing else is kept).

    Args:
        a: the forward's input ``(..., 2C)``.
        dz: ``(..., C)``, ``a``'s dtype.

    Returns:
        ``da`` of ``a``'s shape.
    """
    return _C.gated_activation_backward(a, dz)
