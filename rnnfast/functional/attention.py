"""Dot-product (Luong) and additive (Bahdanau) attention, forward and backward, on the
package's GEMM (``rnnfast._C.gemm_batched``: the B products of a batch in one call)::

    out, weights, ctx = dot_attention_forward(query, value, key=None, *, scale=None,
                                              value_mask=None, query_mask=None, causal=False,
                                              dropout_mask=None, training=False)
    grads = dot_attention_backward(ctx, dout=None, dweights=None)
    #       {"query", "value", "key", "scale"}
    out, weights, ctx = additive_attention_forward(query, value, key=None, *, weight=None,
                                                   scale=None, value_mask=None,
                                                   query_mask=None, causal=False,
                                                   dropout_mask=None, training=False)
    grads = additive_attention_backward(ctx, dout=None, dweights=None)
    #       {"query", "value", "key", "weight", "scale"}

Shapes: ``query`` ``(B, Tq, D)``, ``key`` ``(B, Tv, D)`` (None: ``value`` is the key),
``value`` ``(B, Tv, Dv)``; ``out`` ``(B, Tq, Dv)`` and ``weights`` ``(B, Tq, Tv)``. Scores:

- dot: ``scale * <query[b, i], key[b, j]>`` (``scale`` None means 1; Luong's "dot", Keras'
  ``Attention`` with its optional learned scalar);
- additive: ``sum_d weight[d] * tanh(scale * (query[b, i, d] + key[b, j, d]))`` (``weight``
  ``(D,)`` or None for ones, ``scale`` a scalar or None for 1): Bahdanau's ``v^T tanh(q + k)``
  on queries and keys already projected (Keras' ``AdditiveAttention``, whose ``scale`` vector
  is ``weight`` here, and ``Attention(score_mode="concat")``).

``weights`` is the softmax of the scores over the keys each query may attend to:
``value_mask[b, j]`` true (padded source positions are false) and, with ``causal``, ``j <= i``
(Keras' ``use_causal_mask``). The others get weight exactly 0, and a query with no allowed key
gets zero weights and a zero output. ``out[b, i] = sum_j (weights * dropout_mask)[b, i, j]
value[b, j]`` (``dropout_mask``: the multipliers of a dropout on the weights, such as
``keep / (1 - rate)``; None means none), set to 0 where ``query_mask[b, i]`` is false. The
returned ``weights`` are those before dropout (Keras returns them so).

Masks are bool or integer arrays (non-zero = true). All float arrays share one dtype, float32 or
float64, and the results have it. ``training=True`` returns a ctx for the backward, which takes
the gradients of ``out`` and of the returned ``weights`` (either may be None: zeros) and returns
a dict keyed by the forward's argument names: ``"key"`` is None when ``key`` was None (its part
is in ``"value"``), ``"scale"`` / ``"weight"`` None when they were None; ``"scale"`` is a 0-d
array.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from rnnfast import _C
from rnnfast.functional._types import Array, ArrayLike, Context, Gradients

__all__ = [
    "dot_attention_forward",
    "dot_attention_backward",
    "additive_attention_forward",
    "additive_attention_backward",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class AttentionContext:
    """What an attention backward needs (opaque; made by a ``training=True`` forward)."""

    def __init__(self, op, **saved):
        self.op = op
        self.__dict__.update(saved)

    def __repr__(self):
        return f"<AttentionContext of {self.op}_forward>"


def _float_array(a, name, dtype=None):
    arr = np.asarray(a)
    if arr.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of query), got {arr.dtype}")
    return arr


def _shaped(a, name, shape, layout, dtype):
    arr = _float_array(a, name, dtype)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {layout} = {tuple(shape)}, got {arr.shape}")
    return arr


def _mask(m, name, shape, layout):
    if m is None:
        return None
    arr = np.asarray(m)
    if arr.dtype != np.bool_ and arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected a bool or integer array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {layout} = {tuple(shape)}, got {arr.shape}")
    return arr.astype(bool, copy=False)


def _scalar(s, name, dtype):
    if s is None:
        return None
    arr = np.asarray(s)
    if arr.dtype.kind not in "fiu" or arr.size != 1:
        raise TypeError(f"{name}: expected a real scalar or None, got {s!r}")
    value = float(arr.reshape(()))
    return dtype.type(value)


def _check(query, value, key, value_mask, query_mask, dropout_mask, same_depth):
    q = _float_array(query, "query")
    if q.ndim != 3:
        raise ValueError(f"query: expected a 3-D array (batch, Tq, dim), got shape {q.shape}")
    v = _float_array(value, "value", q.dtype)
    if v.ndim != 3 or v.shape[0] != q.shape[0]:
        raise ValueError(f"value: expected a 3-D array (batch, Tv, dim_v) with batch = "
                         f"{q.shape[0]} (query's), got shape {v.shape}")
    B, Tq, D = q.shape
    Tv = v.shape[1]
    if key is None:
        k = v
        if same_depth and v.shape[2] != D:
            raise ValueError(f"value: used as the key, its last axis must be query's dim {D}, "
                             f"got shape {v.shape}")
    else:
        k = _shaped(key, "key", (B, Tv, D), "(batch, Tv, dim)", q.dtype)
    if B == 0 or Tq == 0 or Tv == 0 or D == 0:
        raise ValueError(f"query/value: every size must be >= 1, got query {q.shape}, "
                         f"value {v.shape}")
    vm = _mask(value_mask, "value_mask", (B, Tv), "(batch, Tv)")
    qm = _mask(query_mask, "query_mask", (B, Tq), "(batch, Tq)")
    drop = None if dropout_mask is None else \
        _shaped(dropout_mask, "dropout_mask", (B, Tq, Tv), "(batch, Tq, Tv)", q.dtype)
    return q, v, k, vm, qm, drop


def _allowed(B, Tq, Tv, value_mask, causal):
    """(B or 1, Tq or 1, Tv) bool of the keys each query may attend to, or None for all."""
    allowed = None
    if value_mask is not None:
        allowed = value_mask[:, None, :]
    if causal:
        tri = (np.arange(Tv)[None, :] <= np.arange(Tq)[:, None])[None]
        allowed = tri if allowed is None else allowed & tri
    return allowed


def _softmax_(scores, allowed):
    """In-place masked softmax over the last axis; rows with no allowed key become zeros."""
    if allowed is not None:
        np.putmask(scores, ~np.broadcast_to(allowed, scores.shape), -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    if allowed is not None:
        top[~np.isfinite(top)] = 0
    scores -= top
    np.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    if allowed is not None:
        total[total == 0] = 1
    scores /= total
    return scores


def _attend(op, scores, q, v, k, key, vm, qm, drop, causal, training, **saved):
    """The part both scores share: mask, softmax, weighted sum of the values, query mask; and
    the ctx of ``op`` (with the score's own ``saved`` arrays) when training."""
    B, Tq, Tv = scores.shape
    weights = _softmax_(scores, _allowed(B, Tq, Tv, vm, causal))
    used = weights if drop is None else weights * drop
    out = _C.gemm_batched(used, v, trans_a=False, trans_b=False)
    if qm is not None:
        out *= qm[:, :, None]
    ctx = None
    if training:
        ctx = AttentionContext(op, q=q, k=k, v=v, key_given=key is not None, weights=weights,
                               used=used, drop=drop, qm=qm, **saved)
    return out, weights, ctx


def _key_grads(ctx, grads, dkey):
    """``grads`` with the key's gradient under ``"key"``, or added to the value's when the
    value was the key."""
    if ctx.key_given:
        grads["key"] = dkey
    else:
        grads["value"] = grads["value"] + dkey
    return grads


def _attend_backward(ctx, dout, dweights):
    B, Tq, Tv = ctx.weights.shape
    dtype = ctx.weights.dtype
    grads_w = None
    dvalue = None
    if dout is not None:
        dout = _shaped(dout, "dout", (B, Tq, ctx.v.shape[2]), "(batch, Tq, dim_v)", dtype)
        if ctx.qm is not None:
            dout = dout * ctx.qm[:, :, None]
        dvalue = _C.gemm_batched(ctx.used, dout, trans_a=True, trans_b=False)
        grads_w = _C.gemm_batched(dout, ctx.v, trans_a=False, trans_b=True)
        if ctx.drop is not None:
            grads_w *= ctx.drop
    else:
        dvalue = np.zeros(ctx.v.shape, dtype)
    if dweights is not None:
        dweights = _shaped(dweights, "dweights", (B, Tq, Tv), "(batch, Tq, Tv)", dtype)
        grads_w = dweights.copy() if grads_w is None else grads_w + dweights
    if grads_w is None:
        return np.zeros((B, Tq, Tv), dtype), dvalue
    w = ctx.weights
    dscores = grads_w
    dscores -= np.einsum("bij,bij->bi", grads_w, w)[:, :, None]
    dscores *= w
    return dscores, dvalue


def _check_ctx(ctx, op):
    if ctx is None:
        raise ValueError(f"ctx: got None; call {op}_forward(..., training=True) to keep what "
                         "the backward needs")
    if not isinstance(ctx, AttentionContext):
        raise TypeError(f"ctx: expected the ctx returned by {op}_forward(..., training=True), "
                        f"got {type(ctx)}")
    if ctx.op != op:
        raise ValueError(f"ctx: expected the ctx of {op}_forward, got the ctx of "
                         f"{ctx.op}_forward")


def dot_attention_forward(query: ArrayLike, value: ArrayLike, key: Optional[ArrayLike] = None,
                          *, scale=None, value_mask: Optional[ArrayLike] = None,
                          query_mask: Optional[ArrayLike] = None, causal: bool = False,
                          dropout_mask: Optional[ArrayLike] = None,
                          training: bool = False) -> Tuple[Array, Array, Optional[Context]]:
    """Dot-product (Luong) attention; see the module's doc.

    Args:
        query: ``(B, Tq, D)``, float32 or float64.
        value: ``(B, Tv, Dv)``; also the key when ``key`` is None (then ``Dv = D``).
        key: ``(B, Tv, D)`` or None.
        scale: a scalar multiplying the scores, or None.
        value_mask: ``(B, Tv)`` bool, false at padded keys; or None.
        query_mask: ``(B, Tq)`` bool, false where the output is zeroed; or None.
        causal: query ``i`` attends to keys ``j <= i`` only.
        dropout_mask: ``(B, Tq, Tv)`` multipliers of the weights, or None.
        training: keep what ``dot_attention_backward`` needs and return it as ``ctx``.

    Returns:
        ``(out, weights, ctx)``: ``out`` ``(B, Tq, Dv)``, ``weights`` ``(B, Tq, Tv)``, ``ctx``
        if ``training`` else None.
    """
    q, v, k, vm, qm, drop = _check(query, value, key, value_mask, query_mask, dropout_mask,
                                   True)
    a = _scalar(scale, "scale", q.dtype)
    raw = _C.gemm_batched(q, k, trans_a=False, trans_b=True)
    scores = raw * a if a is not None else raw.copy()
    return _attend("dot_attention", scores, q, v, k, key, vm, qm, drop, causal, training, a=a,
                   raw=raw if a is not None else None)


def dot_attention_backward(ctx: Context, dout: Optional[ArrayLike] = None,
                           dweights: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of a ``dot_attention_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dout: ``(B, Tq, Dv)`` or None (zeros).
        dweights: ``(B, Tq, Tv)``, the gradient of the returned weights, or None (zeros).

    Returns:
        dict with ``"query"``, ``"value"``, ``"key"`` (None when ``key`` was None: its
        gradient is added to ``"value"``) and ``"scale"`` (0-d array, None when None).
    """
    _check_ctx(ctx, "dot_attention")
    ds, dvalue = _attend_backward(ctx, dout, dweights)
    dscale = None
    if ctx.a is not None:
        dscale = np.asarray(np.einsum("bij,bij->", ds, ctx.raw), dtype=ds.dtype)
        ds *= ctx.a
    dq = _C.gemm_batched(ds, ctx.k, trans_a=False, trans_b=False)
    dk = _C.gemm_batched(ds, ctx.q, trans_a=True, trans_b=False)
    return _key_grads(ctx, {"query": dq, "value": dvalue, "key": None, "scale": dscale}, dk)


def additive_attention_forward(query: ArrayLike, value: ArrayLike,
                               key: Optional[ArrayLike] = None, *,
                               weight: Optional[ArrayLike] = None, scale=None,
                               value_mask: Optional[ArrayLike] = None,
                               query_mask: Optional[ArrayLike] = None, causal: bool = False,
                               dropout_mask: Optional[ArrayLike] = None,
                               training: bool = False) -> Tuple[Array, Array, Optional[Context]]:
    """Additive (Bahdanau) attention; see the module's doc.

    Args:
        query: ``(B, Tq, D)``, float32 or float64.
        value: ``(B, Tv, Dv)``; also the key when ``key`` is None (then ``Dv = D``).
        key: ``(B, Tv, D)`` or None.
        weight: ``(D,)``, the vector ``v`` of ``v^T tanh(...)``, or None (ones).
        scale: a scalar multiplying ``query + key`` inside the tanh, or None.
        value_mask, query_mask, causal, dropout_mask, training: as ``dot_attention_forward``.

    Returns:
        ``(out, weights, ctx)`` as ``dot_attention_forward``. The ctx keeps the tanh of every
        (query, key) pair: ``B * Tq * Tv * D`` values.
    """
    q, v, k, vm, qm, drop = _check(query, value, key, value_mask, query_mask, dropout_mask,
                                   True)
    B, Tq, D = q.shape
    Tv = v.shape[1]
    w = None if weight is None else _shaped(weight, "weight", (D,), "(dim,)", q.dtype)
    a = _scalar(scale, "scale", q.dtype)
    t = q[:, :, None, :] + k[:, None, :, :]
    if a is not None:
        t *= a
    np.tanh(t, out=t)
    if w is None:
        scores = t.sum(axis=-1)
    else:
        scores = _C.gemm(t.reshape(-1, D), w.reshape(D, 1)).reshape(B, Tq, Tv)
    return _attend("additive_attention", scores, q, v, k, key, vm, qm, drop, causal, training,
                   a=a, w=w, t=t)


def additive_attention_backward(ctx: Context, dout: Optional[ArrayLike] = None,
                                dweights: Optional[ArrayLike] = None) -> Gradients:
    """Gradients of an ``additive_attention_forward(..., training=True)``.

    Args:
        ctx: the forward's ``ctx``.
        dout: ``(B, Tq, Dv)`` or None (zeros).
        dweights: ``(B, Tq, Tv)``, the gradient of the returned weights, or None (zeros).

    Returns:
        dict with ``"query"``, ``"value"``, ``"key"`` (as ``dot_attention_backward``),
        ``"weight"`` (``(D,)``, None when None) and ``"scale"`` (0-d array, None when None).
    """
    _check_ctx(ctx, "additive_attention")
    ds, dvalue = _attend_backward(ctx, dout, dweights)
    B, Tq, Tv = ds.shape
    D = ctx.q.shape[2]
    t = ctx.t
    dweight = None
    if ctx.w is not None:
        dweight = _C.gemm(t.reshape(-1, D), ds.reshape(-1, 1), trans_a=True).reshape(D)
    # d/d(pre) of w . tanh(pre) = w * (1 - t^2), pre = a (q + k)
    dpre = 1.0 - t * t
    dpre *= ds[..., None]
    if ctx.w is not None:
        dpre *= ctx.w
    dq_pre = dpre.sum(axis=2)
    dk_pre = dpre.sum(axis=1)
    dscale = None
    if ctx.a is not None:
        dscale = np.asarray(np.einsum("bid,bid->", dq_pre, ctx.q) +
                            np.einsum("bjd,bjd->", dk_pre, ctx.k), dtype=ds.dtype)
        dq_pre *= ctx.a
        dk_pre *= ctx.a
    return _key_grads(ctx, {"query": dq_pre, "value": dvalue, "key": None, "weight": dweight,
                            "scale": dscale}, dk_pre)
