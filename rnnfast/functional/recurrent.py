"""Recurrent layers over whole sequences, backed by the fused C++ kernels (``rnnfast._C``).

Shapes (DESIGN.md): x (T, B, I), or (B, T, I) with ``batch_first``; y has x's layout with H
features; states h0, c0, h_n, c_n are (B, H). Weights in PyTorch's layout and gate order:
w_ih (G*H, I), w_hh (G*H, H), b_ih and b_hh (G*H,); G = 1 (RNN), 4 (LSTM: i, f, g, o),
3 (GRU: r, z, n). float32 or float64, one dtype per call (arrays of ml_dtypes' bfloat16 are
widened to float32). ``precision="bfloat16"`` (float32 only) computes every matrix product,
forward and backward, from operands rounded to bfloat16 with float32 sums; the gate math, the
states and the outputs stay float32. ``lengths`` (B,) gives each
sequence's valid steps in a post-padded batch; ``reverse`` runs each sequence backwards.
``training=True`` returns a ctx for the matching ``*_backward``, which returns a dict of
gradients keyed by the forward's argument names (None for arguments that were None).
All validation happens in the binding, before any kernel runs; the GIL is released inside.

Zoneout (Krueger et al., 2016; docs/DECISIONS.md "Cell variants"): with ``zoneout`` p > 0 and
``training=True`` each unit of h (and of the LSTM's c, with its own mask) keeps its previous
value where its mask is 1, ``h_t = d * h_{t-1} + (1 - d) * h~_t``; the masks are
``rnnfast.reference.recurrent_masks(op, T, B, H, zoneout=p, seed=seed)`` (time-major, drawn
with probability p), or the ``masks`` given. At inference d is p itself (the expectation).
With a projection the mask of h is ``(T, B, P)``.

Recurrent dropout (Keras' ``recurrent_dropout``, Gal and Ghahramani's variational dropout; docs/
DESIGN.md "Recurrent dropout"): with ``recurrent_dropout`` p > 0 and ``training=True``, gate k's
recurrent product is ``(h_{t-1} * m_k) W_hh_k^T``, where ``m`` ``(G, B, H)`` (``(G, B, P)`` with
a projection) holds 0 or ``1 / (1 - p)``, drawn once per call (the same at every step, one
independent mask per gate, as Keras 3 does): ``recurrent_masks(op, T, B, H,
recurrent_dropout=p, seed=seed)["recurrent"]`` (one draw with the zoneout masks, zoneout first),
or ``masks["recurrent"]``. The carried state and the GRU's ``z * h`` are not dropped. At
inference nothing is dropped.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import numpy as np

from rnnfast import _C
from rnnfast.functional._precision import is_bfloat16, widen_bfloat16 as _w
from rnnfast.functional._types import Array, ArrayLike, Context, Gradients
from rnnfast._masks import _check_rate, recurrent_masks

def _mask_array(name: str, m: Any, dtype: Any) -> Array:
    """A given or drawn mask in x's dtype; what is not a float array is refused by name."""
    if isinstance(m, (str, bytes)) or np.asarray(m).dtype.kind not in "fiub":
        raise TypeError(f"masks[{name!r}]: expected a float array, got {type(m).__name__}")
    return np.ascontiguousarray(m, dtype=dtype)


def _token(weights_token: Optional[int], w_ih: Any, w_hh: Any) -> Any:
    """weights_token for the binding, or None where w_ih or w_hh is of ml_dtypes' bfloat16
    (widened to a float32 copy, freed after the call: its address can be another copy's)."""
    if weights_token is None or is_bfloat16(w_ih) or is_bfloat16(w_hh):
        return None
    return weights_token


def _widened(*arrays: Any) -> Tuple[Any, ...]:
    """The arrays with each bfloat16 one widened (``widen_bfloat16``), in one call: plain
    float32/float64 ndarrays and None, the usual arguments, are passed as they are without a
    call per argument (this runs on every call of every op; at a batch of 1 the whole call
    takes microseconds)."""
    for a in arrays:
        if a is not None and (a.__class__ is not np.ndarray or a.dtype.__class__ not in _PLAIN):
            return tuple(_w(b) for b in arrays)
    return arrays


_PLAIN = frozenset({np.dtype(np.float32).__class__, np.dtype(np.float64).__class__})


def _zoneout_masks(op: str, x: Any, w_hh: Any, w_hr: Any, batch_first: bool, zoneout: Any,
                   seed: Any, masks: Optional[Mapping[str, ArrayLike]], training: bool,
                   recurrent_dropout: Any = 0.0) -> Tuple[Any, Any, Any, Any]:
    """The binding's last four arguments ``(zoneout, zoneout_h, zoneout_c, recurrent_mask)``:
    the zoneout rate, and in training the masks of h (and c) and the recurrent dropout masks
    in x's dtype, drawn by the C++ ``recurrent_masks`` (the reference's masks, bit for bit)
    unless ``masks`` gives them (None where there is none). What cannot be drawn (malformed
    shapes, a bad zoneout rate) is left to the binding to report."""
    # The usual call (no masks, no recurrent dropout, no zoneout in training) has nothing to
    # draw or check here: the binding checks the zoneout rate.
    if masks is None and recurrent_dropout.__class__ is float and recurrent_dropout == 0.0 and \
            (not training or (zoneout.__class__ is float and zoneout == 0.0)):
        return zoneout, None, None, None
    out = _drawn_masks(op, x, w_hh, w_hr, batch_first, zoneout, seed, masks, training,
                       recurrent_dropout)
    return zoneout, out.get("zoneout_h"), out.get("zoneout_c"), out.get("recurrent_mask")


def _drawn_masks(op: str, x: Any, w_hh: Any, w_hr: Any, batch_first: bool, zoneout: Any,
                 seed: Any, masks: Optional[Mapping[str, ArrayLike]], training: bool,
                 recurrent_dropout: Any) -> dict:
    """``_zoneout_masks``' masks when there may be some, by the binding's keyword names."""
    out: dict = {}
    recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
    if masks is not None:
        if not training:
            raise ValueError("masks: only for training=True (inference uses the zoneout "
                             "expectation and drops nothing)")
        if not isinstance(masks, Mapping):
            raise TypeError(f"masks: expected a dict like recurrent_masks returns, got "
                            f"{type(masks).__name__}")
        unknown = set(masks) - {"zoneout_h", "zoneout_c", "recurrent"}
        if unknown:
            raise ValueError(f"masks: unexpected key {sorted(unknown)[0]!r} (expected "
                             f"'zoneout_h', for the LSTM 'zoneout_c', and 'recurrent')")
        if ("recurrent" in masks) != (recurrent_dropout > 0):
            raise ValueError("masks: 'recurrent' is given exactly when recurrent_dropout > 0 "
                             f"(got recurrent_dropout={recurrent_dropout} and the keys "
                             f"{sorted(masks)})")
    zoned = training and not isinstance(zoneout, bool) and \
        isinstance(zoneout, (int, float, np.integer, np.floating)) and zoneout > 0
    dropped = training and recurrent_dropout > 0
    if not zoned and not dropped:
        if masks is not None:
            out.update({name: masks.get(name) for name in ("zoneout_h", "zoneout_c")})
        return out
    xa, wa = np.asarray(x), np.asarray(w_hh)
    dtype = xa.dtype if xa.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if masks is None:
        if xa.ndim != 3 or wa.ndim != 2 or (zoned and not 0 < zoneout < 1):
            return out
        T, B = xa.shape[1::-1] if batch_first else xa.shape[:2]
        proj = None if w_hr is None else np.shape(w_hr)[0]
        H = wa.shape[1] if w_hr is None else np.shape(w_hr)[1]
        masks = recurrent_masks(op, T, B, H, proj_size=proj, zoneout=zoneout if zoned else 0.0,
                                recurrent_dropout=recurrent_dropout, seed=seed, dtype=dtype)
    names = ("zoneout_h", "zoneout_c") if zoned else ()
    for name in names + (("recurrent",) if dropped else ()):
        m = masks.get(name)
        key = "recurrent_mask" if name == "recurrent" else name
        out[key] = None if m is None else _mask_array(name, m, dtype)
    if not zoned and masks is not None:
        out.update({name: masks.get(name) for name in ("zoneout_h", "zoneout_c")})
    return out


__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
]


def rnn_forward(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: Optional[ArrayLike] = None,
                b_hh: Optional[ArrayLike] = None, h0: Optional[ArrayLike] = None, *,
                nonlinearity: str = "tanh", lengths: Optional[ArrayLike] = None,
                reverse: bool = False, batch_first: bool = False,
                training: bool = False, precision: str = "float32", zoneout: float = 0.0,
                recurrent_dropout: float = 0.0, seed: Optional[int] = None, masks: Optional[Mapping[str, ArrayLike]] = None,
                weights_token: Optional[int] = None) -> Tuple[Array, Array, Optional[Context]]:
    """Elman RNN over whole sequences: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    Args:
        x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``; float32 or float64.
        w_ih: ``(H, I)``.
        w_hh: ``(H, H)``.
        b_ih: ``(H,)`` or None (no bias).
        b_hh: ``(H,)`` or None (no bias).
        h0: ``(B, H)`` or None (zeros).
        nonlinearity: ``"tanh"`` or ``"relu"``.
        lengths: ``(B,)`` integers in ``1..T``, or None (every sequence has T steps).
        reverse: run each sequence from its last valid step back to its first.
        batch_first: ``x`` and ``y`` are ``(B, T, ...)``.
        training: keep what ``rnn_backward`` needs and return it as ``ctx``.
        precision: ``"float32"`` or ``"bfloat16"`` (products from bfloat16 operands, float32
            sums; float32 arrays only); the backward uses the forward's.
        zoneout: probability in ``[0, 1)`` that a unit of the state keeps its previous value
            (``training``); at inference the weight of the previous value (see above).
        recurrent_dropout: probability in ``[0, 1)`` of dropping a unit of h in each gate's
            recurrent product (Keras' ``recurrent_dropout``; ``training`` only, see above).
        seed: of the masks, an int in ``0 .. 2**64 - 1`` (None: fresh entropy).
        masks: instead of drawing them, the dict ``recurrent_masks`` returns
            (``"zoneout_h"`` ``(T, B, H)``, LSTM also ``"zoneout_c"``; ``"recurrent"``
            ``(G, B, H)``; ``training`` only).
        weights_token: with ``precision="bfloat16"``, an int in ``1 .. 2**64 - 1`` naming the
            current values of ``w_ih`` and ``w_hh`` (``new_weights_token()``): the bfloat16
            packings of those arrays are kept and reused by later calls given the same
            arrays and token (see ``new_weights_token``). Take a new token whenever the
            values may have changed. None (or 0): packed at every call.

    Returns:
        ``(y, h_n, ctx)``: ``y`` ``(T, B, H)`` in ``x``'s layout (zeros at padded steps),
        ``h_n`` ``(B, H)`` (each sequence's state at its last valid step), ``ctx`` for
        ``rnn_backward`` if ``training`` else None.
    """
    token = _token(weights_token, w_ih, w_hh)
    x, w_ih, w_hh, b_ih, b_hh, h0 = _widened(x, w_ih, w_hh, b_ih, b_hh, h0)
    y, h_n, _, ctx = _C.recurrent_forward_positional(
        "rnn", x, w_ih, w_hh, b_ih, b_hh, h0, None, nonlinearity, True, lengths, bool(reverse),
        bool(batch_first), bool(training), precision, None, None,
        *_zoneout_masks("rnn", x, w_hh, None, batch_first, zoneout, seed, masks, training,
                        recurrent_dropout), token)
    return y, h_n, ctx


def rnn_backward(ctx: Context, dy: Optional[ArrayLike] = None,
                 dh_n: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of an ``rnn_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx`` (usable for any number of backward calls).
        dy: ``y``'s shape, or None (zeros).
        dh_n: ``(B, H)`` or None (zeros).

    Returns:
        dict with ``"x"`` (``x``'s shape), ``"h0"`` ``(B, H)``, ``"w_ih"``, ``"w_hh"``,
        ``"b_ih"``, ``"b_hh"`` (the shapes of the forward's arguments); None for arguments that
        were None.
    """
    return _C.recurrent_backward("rnn", ctx, *_widened(dy, dh_n), None)


def lstm_forward(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: Optional[ArrayLike] = None,
                 b_hh: Optional[ArrayLike] = None, h0: Optional[ArrayLike] = None,
                 c0: Optional[ArrayLike] = None, *, w_hr: Optional[ArrayLike] = None,
                 w_peephole: Optional[ArrayLike] = None, lengths: Optional[ArrayLike] = None,
                 reverse: bool = False, batch_first: bool = False,
                 training: bool = False, precision: str = "float32", zoneout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Optional[int] = None, masks: Optional[Mapping[str, ArrayLike]] = None,
                 weights_token: Optional[int] = None
                 ) -> Tuple[Array, Array, Array, Optional[Context]]:
    """LSTM over whole sequences, gates ``i, f, g, o`` (PyTorch's order).

    ``c' = f * c + i * g``, ``h' = o * tanh(c')``. With a projection (PyTorch's
    ``proj_size`` P), ``h' = W_hr (o * tanh(c'))`` has P features: it is the output and the
    next step's h (so ``w_hh`` is ``(4H, P)``, ``h0`` and ``h_n`` ``(B, P)``). With peepholes (ONNX's LSTM with its P
    input): ``i = sigmoid(... + p_i * c)``, ``f = sigmoid(... + p_f * c)``,
    ``o = sigmoid(... + p_o * c')``.

    Args:
        x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``; float32 or float64.
        w_ih: ``(4H, I)``.
        w_hh: ``(4H, H)``, or ``(4H, P)`` with ``w_hr``.
        b_ih: ``(4H,)`` or None (no bias).
        b_hh: ``(4H,)`` or None (no bias).
        h0: ``(B, H)`` (``(B, P)`` with ``w_hr``) or None (zeros).
        c0: ``(B, H)`` or None (zeros).
        w_hr: ``(P, H)``, PyTorch's ``weight_hr``, or None (no projection).
        w_peephole: ``(3, H)``, rows ``p_i, p_f, p_o``, or None (no peepholes).
        lengths: ``(B,)`` integers in ``1..T``, or None (every sequence has T steps).
        reverse: run each sequence from its last valid step back to its first.
        batch_first: ``x`` and ``y`` are ``(B, T, ...)``.
        training: keep what ``lstm_backward`` needs and return it as ``ctx``.
        precision: ``"float32"`` or ``"bfloat16"`` (products from bfloat16 operands, float32
            sums; float32 arrays only); the backward uses the forward's.
        zoneout: probability in ``[0, 1)`` that a unit of the state keeps its previous value
            (``training``); at inference the weight of the previous value (see above).
        recurrent_dropout: probability in ``[0, 1)`` of dropping a unit of h in each gate's
            recurrent product (Keras' ``recurrent_dropout``; ``training`` only, see above).
        seed: of the masks, an int in ``0 .. 2**64 - 1`` (None: fresh entropy).
        masks: instead of drawing them, the dict ``recurrent_masks`` returns
            (``"zoneout_h"`` ``(T, B, H)``, LSTM also ``"zoneout_c"``; ``"recurrent"``
            ``(G, B, H)``; ``training`` only).
        weights_token: with ``precision="bfloat16"``, an int in ``1 .. 2**64 - 1`` naming the
            current values of ``w_ih`` and ``w_hh`` (``new_weights_token()``): the bfloat16
            packings of those arrays are kept and reused by later calls given the same
            arrays and token (see ``new_weights_token``). Take a new token whenever the
            values may have changed. None (or 0): packed at every call.

    Returns:
        ``(y, h_n, c_n, ctx)``: ``y`` ``(T, B, H)`` in ``x``'s layout, ``h_n`` and ``c_n``
        ``(B, H)`` (``y`` and ``h_n`` with P features with ``w_hr``), ``ctx`` for
        ``lstm_backward`` if ``training`` else None.
    """
    token = _token(weights_token, w_ih, w_hh)
    x, w_ih, w_hh, b_ih, b_hh, h0, c0, w_peephole, w_hr = _widened(
        x, w_ih, w_hh, b_ih, b_hh, h0, c0, w_peephole, w_hr)
    return _C.recurrent_forward_positional(
        "lstm", x, w_ih, w_hh, b_ih, b_hh, h0, c0, "tanh", True, lengths, bool(reverse),
        bool(batch_first), bool(training), precision, w_peephole, w_hr,
        *_zoneout_masks("lstm", x, w_hh, w_hr, batch_first, zoneout, seed, masks, training,
                        recurrent_dropout), token)


def lstm_backward(ctx: Context, dy: Optional[ArrayLike] = None, dh_n: Optional[ArrayLike] = None,
                  dc_n: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of an ``lstm_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``y``'s shape, or None (zeros).
        dh_n: ``h_n``'s shape ``(B, H)`` (``(B, P)`` with ``w_hr``), or None (zeros).
        dc_n: ``(B, H)`` or None (zeros).

    Returns:
        dict with ``"x"``, ``"h0"``, ``"c0"``, ``"w_ih"``, ``"w_hh"``, ``"b_ih"``, ``"b_hh"``,
        ``"w_hr"``, ``"w_peephole"`` (the shapes of the forward's arguments); None for arguments that were
        None.
    """
    return _C.recurrent_backward("lstm", ctx, *_widened(dy, dh_n, dc_n))


def gru_forward(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike, b_ih: Optional[ArrayLike] = None,
                b_hh: Optional[ArrayLike] = None, h0: Optional[ArrayLike] = None, *,
                reset_after: bool = True, lengths: Optional[ArrayLike] = None,
                reverse: bool = False, batch_first: bool = False,
                training: bool = False, precision: str = "float32", zoneout: float = 0.0,
                recurrent_dropout: float = 0.0, seed: Optional[int] = None, masks: Optional[Mapping[str, ArrayLike]] = None,
                weights_token: Optional[int] = None) -> Tuple[Array, Array, Optional[Context]]:
    """GRU over whole sequences, gates ``r, z, n`` (PyTorch's order).

    ``reset_after=True`` is PyTorch's (and cuDNN's, Keras' default) cell,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; ``reset_after=False`` is Cho et al.'s,
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``. Then ``h' = (1 - z) * n + z * h``.

    Args:
        x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``; float32 or float64.
        w_ih: ``(3H, I)``.
        w_hh: ``(3H, H)``.
        b_ih: ``(3H,)`` or None (no bias).
        b_hh: ``(3H,)`` or None (no bias).
        h0: ``(B, H)`` or None (zeros).
        reset_after: where the reset gate applies (see above).
        lengths: ``(B,)`` integers in ``1..T``, or None (every sequence has T steps).
        reverse: run each sequence from its last valid step back to its first.
        batch_first: ``x`` and ``y`` are ``(B, T, ...)``.
        training: keep what ``gru_backward`` needs and return it as ``ctx``.
        precision: ``"float32"`` or ``"bfloat16"`` (products from bfloat16 operands, float32
            sums; float32 arrays only); the backward uses the forward's.
        zoneout: probability in ``[0, 1)`` that a unit of the state keeps its previous value
            (``training``); at inference the weight of the previous value (see above).
        recurrent_dropout: probability in ``[0, 1)`` of dropping a unit of h in each gate's
            recurrent product (Keras' ``recurrent_dropout``; ``training`` only, see above).
        seed: of the masks, an int in ``0 .. 2**64 - 1`` (None: fresh entropy).
        masks: instead of drawing them, the dict ``recurrent_masks`` returns
            (``"zoneout_h"`` ``(T, B, H)``, LSTM also ``"zoneout_c"``; ``"recurrent"``
            ``(G, B, H)``; ``training`` only).
        weights_token: with ``precision="bfloat16"``, an int in ``1 .. 2**64 - 1`` naming the
            current values of ``w_ih`` and ``w_hh`` (``new_weights_token()``): the bfloat16
            packings of those arrays are kept and reused by later calls given the same
            arrays and token (see ``new_weights_token``). Take a new token whenever the
            values may have changed. None (or 0): packed at every call.

    Returns:
        ``(y, h_n, ctx)``: ``y`` ``(T, B, H)`` in ``x``'s layout, ``h_n`` ``(B, H)``, ``ctx``
        for ``gru_backward`` if ``training`` else None.
    """
    token = _token(weights_token, w_ih, w_hh)
    x, w_ih, w_hh, b_ih, b_hh, h0 = _widened(x, w_ih, w_hh, b_ih, b_hh, h0)
    y, h_n, _, ctx = _C.recurrent_forward_positional(
        "gru", x, w_ih, w_hh, b_ih, b_hh, h0, None, "tanh", bool(reset_after), lengths,
        bool(reverse), bool(batch_first), bool(training), precision, None, None,
        *_zoneout_masks("gru", x, w_hh, None, batch_first, zoneout, seed, masks, training,
                        recurrent_dropout), token)
    return y, h_n, ctx


def gru_backward(ctx: Context, dy: Optional[ArrayLike] = None,
                 dh_n: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of a ``gru_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dy: ``y``'s shape, or None (zeros).
        dh_n: ``(B, H)`` or None (zeros).

    Returns:
        dict with ``"x"``, ``"h0"``, ``"w_ih"``, ``"w_hh"``, ``"b_ih"``, ``"b_hh"`` (the shapes
        of the forward's arguments); None for arguments that were None.
    """
    return _C.recurrent_backward("gru", ctx, *_widened(dy, dh_n), None)
