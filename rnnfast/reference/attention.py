"""Dot-product (Luong) and additive (Bahdanau) attention in plain NumPy float64: the oracle of
``rnnfast.functional.attention``. Written for clarity, not speed; same signatures::

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

With ``query`` ``(B, Tq, D)``, ``key`` ``(B, Tv, D)`` (``value`` when None) and ``value``
``(B, Tv, Dv)``, the scores ``s[b, i, j]`` are

- dot:      ``scale * <query[b, i], key[b, j]>`` (``scale`` None means 1);
- additive: ``sum_d weight[d] * tanh(scale * (query[b, i, d] + key[b, j, d]))`` (``weight``
  None means ones, ``scale`` None means 1): Keras' AdditiveAttention (``weight`` is its
  ``scale`` vector) and Attention(score_mode="concat").

The weights are the softmax of the scores over ``j`` among the allowed keys: ``value_mask[b, j]``
True and, with ``causal``, ``j <= i``. Other keys get weight 0; a query with no allowed key gets
all-zero weights (and output 0). ``out[b, i] = sum_j weights[b, i, j] * dropout_mask[b, i, j] *
value[b, j]`` (``dropout_mask`` None means ones: the multipliers of dropout on the weights), then
0 where ``query_mask[b, i]`` is False. ``weights`` is returned before dropout, as Keras does.
"""
import numpy as np

from rnnfast.reference._common import Ctx as _Ctx, check_ctx as _check_ctx

__all__ = [
    "dot_attention_forward",
    "dot_attention_backward",
    "additive_attention_forward",
    "additive_attention_backward",
]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _allowed(B, Tq, Tv, value_mask, causal):
    """(B, Tq, Tv) bool: which keys each query may attend to."""
    allowed = np.ones((B, Tq, Tv), dtype=bool)
    if value_mask is not None:
        allowed &= np.asarray(value_mask, dtype=bool)[:, None, :]
    if causal:
        allowed &= np.arange(Tv)[None, :] <= np.arange(Tq)[:, None]
    return allowed


def _softmax_attend(scores, value, allowed, query_mask, dropout_mask):
    """weights (masked softmax), out, and what the backward of this part needs."""
    s = np.where(allowed, scores, -np.inf)
    top = s.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(allowed, np.exp(s - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    weights = np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0)
    drop = np.ones_like(weights) if dropout_mask is None else _f64(dropout_mask)
    qm = np.ones(weights.shape[:2], dtype=bool) if query_mask is None else \
        np.asarray(query_mask, dtype=bool)
    out = np.einsum("bij,bjd->bid", weights * drop, value) * qm[:, :, None]
    return out, weights, drop, qm


def _softmax_attend_backward(ctx, dout, dweights):
    B, Tq, Tv = ctx.weights.shape
    dout = np.zeros((B, Tq, ctx.value.shape[2])) if dout is None else _f64(dout)
    dout = dout * ctx.qm[:, :, None]
    dvalue = np.einsum("bij,bid->bjd", ctx.weights * ctx.drop, dout)
    dw = np.einsum("bid,bjd->bij", dout, ctx.value) * ctx.drop
    if dweights is not None:
        dw = dw + _f64(dweights)
    w = ctx.weights
    dscores = w * (dw - (dw * w).sum(axis=-1, keepdims=True))
    return dscores, dvalue


def _forward(op, query, value, key, scale, weight, value_mask, query_mask, causal,
             dropout_mask, training):
    q, v = _f64(query), _f64(value)
    k = v if key is None else _f64(key)
    B, Tq, _ = q.shape
    Tv = v.shape[1]
    a = 1.0 if scale is None else float(np.asarray(scale, dtype=np.float64))
    t = None
    if op == "dot_attention":
        scores = a * np.einsum("bid,bjd->bij", q, k)
    else:
        wv = np.ones(q.shape[2]) if weight is None else _f64(weight)
        t = np.tanh(a * (q[:, :, None, :] + k[:, None, :, :]))        # (B, Tq, Tv, D)
        scores = t @ wv
    allowed = _allowed(B, Tq, Tv, value_mask, causal)
    out, weights, drop, qm = _softmax_attend(scores, v, allowed, query_mask, dropout_mask)
    ctx = None
    if training:
        ctx = _Ctx(op, q=q, k=k, value=v, key_given=key is not None, scale=scale, a=a,
                   weight=weight, t=t, weights=weights, drop=drop, qm=qm, raw=scores)
    return out, weights, ctx


def dot_attention_forward(query, value, key=None, *, scale=None, value_mask=None,
                          query_mask=None, causal=False, dropout_mask=None, training=False):
    return _forward("dot_attention", query, value, key, scale, None, value_mask, query_mask,
                    causal, dropout_mask, training)


def dot_attention_backward(ctx, dout=None, dweights=None):
    _check_ctx(ctx, "dot_attention")
    ds, dvalue = _softmax_attend_backward(ctx, dout, dweights)
    dq = ctx.a * np.einsum("bij,bjd->bid", ds, ctx.k)
    dk = ctx.a * np.einsum("bij,bid->bjd", ds, ctx.q)
    grads = {"query": dq, "value": dvalue, "key": None, "scale": None}
    if ctx.key_given:
        grads["key"] = dk
    else:
        grads["value"] = dvalue + dk
    if ctx.scale is not None:
        # scores = a * raw dot products
        grads["scale"] = np.float64((ds * np.einsum("bid,bjd->bij", ctx.q, ctx.k)).sum())
    return grads


def additive_attention_forward(query, value, key=None, *, weight=None, scale=None,
                               value_mask=None, query_mask=None, causal=False,
                               dropout_mask=None, training=False):
    return _forward("additive_attention", query, value, key, scale, weight, value_mask,
                    query_mask, causal, dropout_mask, training)


def additive_attention_backward(ctx, dout=None, dweights=None):
    _check_ctx(ctx, "additive_attention")
    ds, dvalue = _softmax_attend_backward(ctx, dout, dweights)
    wv = np.ones(ctx.q.shape[2]) if ctx.weight is None else _f64(ctx.weight)
    # d tanh(a (q + k)) = (1 - t^2) * a * d(q + k)
    dpre = ds[..., None] * wv * (1.0 - ctx.t ** 2)                     # (B, Tq, Tv, D)
    dq = ctx.a * dpre.sum(axis=2)
    dk = ctx.a * dpre.sum(axis=1)
    grads = {"query": dq, "value": dvalue, "key": None, "weight": None, "scale": None}
    if ctx.key_given:
        grads["key"] = dk
    else:
        grads["value"] = dvalue + dk
    if ctx.weight is not None:
        grads["weight"] = np.einsum("bij,bijd->d", ds, ctx.t)
    if ctx.scale is not None:
        qk = ctx.q[:, :, None, :] + ctx.k[:, None, :, :]
        grads["scale"] = np.float64((dpre * qk).sum())
    return grads
