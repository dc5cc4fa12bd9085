"""LayerNorm LSTM and LayerNorm GRU over whole sequences, backed by fused C++ kernels.

The cells of Ba et al., "Layer Normalization" (2016), as Haste's LayerNormLSTM and
LayerNormGRU define them (``rnnfast.reference`` holds the same equations in NumPy): one layer
norm over the whole ``G*H`` vector of ``x W_ih^T`` and one over ``h W_hh^T`` at every step,
each with its own gain and no bias of its own (the cell's biases follow), and for the LSTM a
layer norm of ``c_t`` (gain and bias) before the output tanh. ``LN(v) = (v - mean(v)) /
sqrt(var(v) + eps)`` over the features of each row (biased variance).

Arguments as the plain cells' (``rnnfast.functional.lstm_forward``, ``gru_forward``): shapes,
layouts, ``lengths``, ``reverse``, ``batch_first``, ``training``, and zoneout (``zoneout``,
``seed``, ``masks``): the plain cells' rule and masks, ``rnnfast.reference.recurrent_masks(op,
T, B, H, zoneout=p, seed=seed)`` with op ``"layer_norm_lstm"`` or ``"layer_norm_gru"``, the
same masks as the plain LSTM's or GRU's for the same seed; float32 or float64. The layer norm
parameters are keywords; None means ones for a gain and zeros for a bias, and then its
gradient is None too. The backward returns a dict of gradients keyed by the forward's argument
names.
"""
from __future__ import annotations

from typing import Mapping, Optional, Tuple

from rnnfast import _C
from rnnfast.functional._precision import widen_bfloat16 as _w
from rnnfast.functional._types import Array, ArrayLike, Context, Gradients
from rnnfast.functional.recurrent import _zoneout_masks

__all__ = [
    "layer_norm_lstm_forward",
    "layer_norm_lstm_backward",
    "layer_norm_gru_forward",
    "layer_norm_gru_backward",
]


def layer_norm_lstm_forward(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike,
                            b_ih: Optional[ArrayLike] = None, b_hh: Optional[ArrayLike] = None,
                            h0: Optional[ArrayLike] = None, c0: Optional[ArrayLike] = None, *,
                            ln_ih_weight: Optional[ArrayLike] = None,
                            ln_hh_weight: Optional[ArrayLike] = None,
                            ln_c_weight: Optional[ArrayLike] = None,
                            ln_c_bias: Optional[ArrayLike] = None, eps: float = 1e-5,
                            lengths: Optional[ArrayLike] = None, reverse: bool = False,
                            batch_first: bool = False, training: bool = False,
                            zoneout: float = 0.0, seed: Optional[int] = None,
                            masks: Optional[Mapping[str, ArrayLike]] = None
                            ) -> Tuple[Array, Array, Array, Optional[Context]]:
    """LayerNorm LSTM over whole sequences, gates ``i, f, g, o`` (PyTorch's order).

    ``a = LN(x W_ih^T) * ln_ih_weight + LN(h W_hh^T) * ln_hh_weight + b_ih + b_hh``;
    ``i, f, g, o = sigma, sigma, tanh, sigma(a)``; ``c' = f * c + i * g`` (the state carries
    c' unnormalised); ``h' = o * tanh(LN(c') * ln_c_weight + ln_c_bias)``. With zoneout,
    ``h_t = d_h * h_{t-1} + (1 - d_h) * h'`` and ``c_t = d_c * c_{t-1} + (1 - d_c) * c'`` (h'
    from the new c'), as ``lstm_forward``.

    Args:
        x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``; float32 or float64.
        w_ih: ``(4H, I)``.
        w_hh: ``(4H, H)``.
        b_ih: ``(4H,)`` or None (no bias).
        b_hh: ``(4H,)`` or None (no bias).
        h0: ``(B, H)`` or None (zeros).
        c0: ``(B, H)`` or None (zeros).
        ln_ih_weight: ``(4H,)`` gain of ``LN(x W_ih^T)``, or None (ones).
        ln_hh_weight: ``(4H,)`` gain of ``LN(h W_hh^T)``, or None (ones).
        ln_c_weight: ``(H,)`` gain of ``LN(c')``, or None (ones).
        ln_c_bias: ``(H,)`` bias of ``LN(c')``, or None (zeros).
        eps: added to the variance of every layer norm; a finite float > 0.
        lengths: ``(B,)`` integers in ``1..T``, or None (every sequence has T steps).
        reverse: run each sequence from its last valid step back to its first.
        batch_first: ``x`` and ``y`` are ``(B, T, ...)``.
        training: keep what ``layer_norm_lstm_backward`` needs and return it as ``ctx``.
        zoneout: probability in ``[0, 1)`` that a unit of the state keeps its previous value
            (``training``); at inference the weight of the previous value.
        seed: of the masks, an int in ``0 .. 2**64 - 1`` (None: fresh entropy).
        masks: instead of drawing them, the dict ``recurrent_masks`` returns
            (``"zoneout_h"`` ``(T, B, H)``, ``"zoneout_c"`` ``(T, B, H)``; ``training`` only).

    Returns:
        ``(y, h_n, c_n, ctx)``: ``y`` ``(T, B, H)`` in ``x``'s layout (zeros at padded steps),
        ``h_n`` and ``c_n`` ``(B, H)``, ``ctx`` for ``layer_norm_lstm_backward`` if
        ``training`` else None.
    """
    x, w_hh = _w(x), _w(w_hh)
    rate, zoneout_h, zoneout_c, _ = _zoneout_masks("layer_norm_lstm", x, w_hh, None,
                                                   batch_first, zoneout, seed, masks, training)
    return _C.layer_norm_recurrent_forward(
        "lstm", x, _w(w_ih), w_hh, _w(b_ih), _w(b_hh), _w(h0), _w(c0), _w(ln_ih_weight),
        _w(ln_hh_weight), _w(ln_c_weight), _w(ln_c_bias), eps=eps, lengths=lengths,
        reverse=bool(reverse), batch_first=bool(batch_first), training=bool(training),
        zoneout=rate, zoneout_h=zoneout_h, zoneout_c=zoneout_c)


def layer_norm_lstm_backward(ctx: Context, dy: Optional[ArrayLike] = None,
                             dh_n: Optional[ArrayLike] = None,
                             dc_n: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of a ``layer_norm_lstm_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx`` (usable for any number of backward calls).
        dy: ``y``'s shape, or None (zeros).
        dh_n: ``(B, H)`` or None (zeros).
        dc_n: ``(B, H)`` or None (zeros).

    Returns:
        dict with ``"x"``, ``"h0"``, ``"c0"``, ``"w_ih"``, ``"w_hh"``, ``"b_ih"``, ``"b_hh"``,
        ``"ln_ih_weight"``, ``"ln_hh_weight"``, ``"ln_c_weight"``, ``"ln_c_bias"`` (the shapes
        of the forward's arguments); None for arguments that were None.
    """
    return _C.layer_norm_recurrent_backward("lstm", ctx, _w(dy), _w(dh_n), _w(dc_n))


def layer_norm_gru_forward(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike,
                           b_ih: Optional[ArrayLike] = None, b_hh: Optional[ArrayLike] = None,
                           h0: Optional[ArrayLike] = None, *,
                           ln_ih_weight: Optional[ArrayLike] = None,
                           ln_hh_weight: Optional[ArrayLike] = None, eps: float = 1e-5,
                           lengths: Optional[ArrayLike] = None, reverse: bool = False,
                           batch_first: bool = False, training: bool = False,
                           zoneout: float = 0.0, seed: Optional[int] = None,
                           masks: Optional[Mapping[str, ArrayLike]] = None
                           ) -> Tuple[Array, Array, Optional[Context]]:
    """LayerNorm GRU over whole sequences, gates ``r, z, n`` (PyTorch's order), the n gate as
    ``gru_forward``'s ``reset_after=True``.

    ``gi = LN(x W_ih^T) * ln_ih_weight + b_ih``; ``gh = LN(h W_hh^T) * ln_hh_weight + b_hh``;
    ``r, z = sigma(gi_{r,z} + gh_{r,z})``; ``n = tanh(gi_n + r * gh_n)``;
    ``h' = (1 - z) * n + z * h``. With zoneout, ``h_t = d * h_{t-1} + (1 - d) * h'``, as
    ``gru_forward``.

    Args:
        x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``; float32 or float64.
        w_ih: ``(3H, I)``.
        w_hh: ``(3H, H)``.
        b_ih: ``(3H,)`` or None (no bias).
        b_hh: ``(3H,)`` or None (no bias).
        h0: ``(B, H)`` or None (zeros).
        ln_ih_weight: ``(3H,)`` gain of ``LN(x W_ih^T)``, or None (ones).
        ln_hh_weight: ``(3H,)`` gain of ``LN(h W_hh^T)``, or None (ones).
        eps: added to the variance of every layer norm; a finite float > 0.
        lengths: ``(B,)`` integers in ``1..T``, or None (every sequence has T steps).
        reverse: run each sequence from its last valid step back to its first.
        batch_first: ``x`` and ``y`` are ``(B, T, ...)``.
        training: keep what ``layer_norm_gru_backward`` needs and return it as ``ctx``.
        zoneout: probability in ``[0, 1)`` that a unit of the state keeps its previous value
            (``training``); at inference the weight of the previous value.
        seed: of the masks, an int in ``0 .. 2**64 - 1`` (None: fresh entropy).
        masks: instead of drawing them, the dict ``recurrent_masks`` returns
            (``"zoneout_h"`` ``(T, B, H)``; ``training`` only).

    Returns:
        ``(y, h_n, ctx)``: ``y`` ``(T, B, H)`` in ``x``'s layout, ``h_n`` ``(B, H)``, ``ctx``
        for ``layer_norm_gru_backward`` if ``training`` else None.
    """
    x, w_hh = _w(x), _w(w_hh)
    rate, zoneout_h, zoneout_c, _ = _zoneout_masks("layer_norm_gru", x, w_hh, None, batch_first,
                                                   zoneout, seed, masks, training)
    y, h_n, _, ctx = _C.layer_norm_recurrent_forward(
        "gru", x, _w(w_ih), w_hh, _w(b_ih), _w(b_hh), _w(h0), None, _w(ln_ih_weight),
        _w(ln_hh_weight), None, None, eps=eps, lengths=lengths, reverse=bool(reverse),
        batch_first=bool(batch_first), training=bool(training), zoneout=rate,
        zoneout_h=zoneout_h, zoneout_c=zoneout_c)
    return y, h_n, ctx


def layer_norm_gru_backward(ctx: Context, dy: Optional[ArrayLike] = None,
                            dh_n: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of a ``layer_norm_gru_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``y``'s shape, or None (zeros).
        dh_n: ``(B, H)`` or None (zeros).

    Returns:
        dict with ``"x"``, ``"h0"``, ``"w_ih"``, ``"w_hh"``, ``"b_ih"``, ``"b_hh"``,
        ``"ln_ih_weight"``, ``"ln_hh_weight"`` (the shapes of the forward's arguments); None
        for arguments that were None.
    """
    return _C.layer_norm_recurrent_backward("gru", ctx, _w(dy), _w(dh_n), None)
