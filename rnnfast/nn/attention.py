"""Keras' attention layers over the attention ops (``rnnfast.functional``), with Keras' call
convention (published by ``rnnfast.models.layers``, with the other Keras-style layers)::

    att = Attention(use_scale=False, score_mode="dot", dropout=0.0)     # Luong
    att = AdditiveAttention(use_scale=True, dropout=0.0)                 # Bahdanau
    out = att([query, value])            # or [query, value, key]
    out, scores = att([query, value], mask=[query_mask, value_mask],
                      return_attention_scores=True, use_causal_mask=False)
    dquery, dvalue = att.backward(dout)  # [dquery, dvalue, dkey] for three inputs;
                                         # backward(dout, dscores) when scores were returned

``query`` is ``(batch, Tq, dim)``, ``value`` ``(batch, Tv, dim_v)``, ``key`` ``(batch, Tv,
dim)`` (``value`` when absent); masks are ``(batch, Tq)`` and ``(batch, Tv)`` bools, false at
padded positions (either may be None). Scores, as in Keras 3:

- ``Attention``, ``score_mode="dot"``: ``query . key`` (times the learned scalar ``scale``,
  initialised to 1, with ``use_scale``);
- ``Attention``, ``score_mode="concat"``: ``concat_score_weight * sum(tanh(scale * (query +
  key)))`` (``scale`` only with ``use_scale``; both learned scalars start at 1);
- ``AdditiveAttention``: ``sum(scale * tanh(query + key))`` with the learned vector ``scale``
  ``(dim,)`` (Glorot-uniform) when ``use_scale`` (the default), else ones.

The weights are the softmax over the allowed keys; ``use_causal_mask`` lets query ``i`` see keys
``j <= i`` only; the output is 0 at masked queries. Dropout (rate ``dropout``) acts on the
weights in training mode (``train()``, the default, or ``training=True`` in the call), and the
returned scores are the weights before dropout, as in Keras. Unlike Keras, a query whose keys are
all masked gets zero weights (Keras spreads it over the masked keys).
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.module import (
    Module,
    Parameter,
    _to_numpy,
    as_float_input,
    check_dtype,
    check_probability,
    make_rng,
)

__all__ = ["Attention", "AdditiveAttention"]


class _BaseAttention(Module):
    def __init__(self, use_scale, dropout, seed, rng, dtype, name):
        super().__init__()
        self.use_scale = bool(use_scale)
        self.dropout = check_probability(dropout, "dropout")
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        self.name = name

    def _inputs(self, inputs, mask):
        kind = type(self).__name__
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"inputs: {kind} takes a list [query, value] or [query, value, key], "
                             f"got {type(inputs).__name__}"
                             + (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple))
                                else ""))
        arrays = [as_float_input(a, n, self.dtype) for a, n in zip(inputs, ("query", "value",
                                                                             "key"))]
        q_mask = v_mask = None
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
                raise ValueError(f"mask: {kind} takes a list [query_mask, value_mask], got "
                                 f"{type(mask).__name__}")
            q_mask, v_mask = mask[0], mask[1]
        return arrays, q_mask, v_mask

    def _dropout_mask(self, shape, training):
        active = self.training if training is None else bool(training)
        if not active or self.dropout == 0.0:
            return None
        keep = self.rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout) \
            if self.dropout < 1.0 else np.zeros(shape, self.dtype)

    def forward(self, inputs, mask=None, return_attention_scores=False, use_causal_mask=False,
                training=None):
        (q, v, *k), q_mask, v_mask = self._inputs(inputs, mask)
        key = k[0] if k else None
        self._build(q.shape[-1] if q.ndim == 3 else None)
        shape = (q.shape[0], q.shape[1], v.shape[1]) if q.ndim == 3 and v.ndim == 3 else None
        drop = self._dropout_mask(shape, training) if shape else None
        out, scores, ctx = self._op(q, v, key, value_mask=v_mask, query_mask=q_mask,
                                    causal=bool(use_causal_mask), dropout_mask=drop,
                                    training=self.training)
        self._keep((ctx, len(inputs), bool(return_attention_scores)))
        return (out, scores) if return_attention_scores else out

    def backward(self, dout, dscores=None):
        """Gradients of the inputs, ``[dquery, dvalue]`` or ``[dquery, dvalue, dkey]``; the
        parameters' gradients are added to their ``.grad``. ``dscores`` is the gradient of the
        returned attention scores (None: zeros)."""
        ctx, n_inputs, _ = self._saved()
        grads = self._op_backward(ctx, dout, dscores)
        out = [grads["query"], grads["value"]]
        if n_inputs == 3:
            out.append(grads["key"])
        return out

    def _build(self, dim):
        """Create the parameters that depend on the query's depth (none by default)."""

    def get_weights(self):
        """Keras' ``get_weights()``: copies of ``scale`` (when ``use_scale``) then
        ``concat_score_weight`` (``Attention(score_mode="concat")``), in Keras' order and shapes
        (``Attention``: scalars ``()``; ``AdditiveAttention``: ``scale`` ``(dim,)``, none before
        it is built, as in Keras)."""
        return [p.data.copy() for p in self.parameters()]

    def set_weights(self, weights):
        """Set the weights from a list like ``get_weights()``'s (an unbuilt
        ``AdditiveAttention`` is built from the first array's length); nothing is written
        unless every array fits."""
        kind = type(self).__name__
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights: expected a list of arrays (Keras' get_weights()), got "
                            f"{type(weights).__name__}")
        arrays = [np.asarray(w) for w in weights]
        for i, a in enumerate(arrays):
            if a.dtype == object or a.dtype.kind not in "fiub":
                raise TypeError(f"weights[{i}]: expected a numeric array, got dtype {a.dtype}")
        if arrays and not self.parameters() and arrays[0].ndim == 1:
            self._build(arrays[0].shape[0])
        params = self.parameters()
        if len(arrays) != len(params):
            raise ValueError(f"weights: this {kind} has {len(params)} weight(s), got "
                             f"{len(arrays)} array(s)")
        for i, (p, a) in enumerate(zip(params, arrays)):
            if a.shape != p.shape:
                raise ValueError(f"weights[{i}]: expected shape {p.shape} (this {kind}'s "
                                 f"weight {i}), got {a.shape}")
        for p, a in zip(params, arrays):
            p.data[...] = a


class Attention(_BaseAttention):
    """Keras' ``Attention(use_scale=False, score_mode="dot", dropout=0.0, seed=None)``:
    dot-product (Luong) attention; ``score_mode="concat"`` scores with ``tanh(q + k)``."""

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, *, rng=None,
                 dtype=np.float32, name=None):
        super().__init__(use_scale, dropout, seed, rng, dtype, name)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"score_mode: expected 'dot' or 'concat', got {score_mode!r}")
        self.score_mode = score_mode
        self.register_parameter("scale", Parameter(np.ones((), self.dtype))
                                if self.use_scale else None)
        self.register_parameter("concat_score_weight", Parameter(np.ones((), self.dtype))
                                if score_mode == "concat" else None)

    def _op(self, q, v, key, **kw):
        scale = None if self.scale is None else self.scale.data
        if self.score_mode == "dot":
            return F.dot_attention_forward(q, v, key, scale=scale, **kw)
        weight = np.full(q.shape[-1], self.concat_score_weight.data, self.dtype) \
            if q.ndim == 3 else None
        return F.additive_attention_forward(q, v, key, weight=weight, scale=scale, **kw)

    def _op_backward(self, ctx, dout, dscores):
        if self.score_mode == "dot":
            grads = F.dot_attention_backward(ctx, dout, dscores)
        else:
            grads = F.additive_attention_backward(ctx, dout, dscores)
            self.concat_score_weight.accumulate(np.asarray(grads["weight"].sum(),
                                                           self.dtype))
        if self.scale is not None:
            self.scale.accumulate(grads["scale"])
        return grads

    def get_config(self):
        return {"use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout}

    def extra_repr(self):
        return f"use_scale={self.use_scale}, score_mode={self.score_mode!r}"


class AdditiveAttention(_BaseAttention):
    """Keras' ``AdditiveAttention(use_scale=True, dropout=0.0)``: Bahdanau's
    ``v^T tanh(query + key)`` on queries and keys already projected (put ``Dense`` layers before
    it for ``W_1 q`` and ``W_2 k``); ``scale`` is the learned ``v``, created at the first call
    (or ``build(dim)``, or a loaded state_dict)."""

    def __init__(self, use_scale=True, dropout=0.0, seed=None, *, rng=None, dtype=np.float32,
                 name=None):
        super().__init__(use_scale, dropout, seed, rng, dtype, name)
        self.dim = None
        self.register_parameter("scale", None)

    def build(self, dim):
        """Create ``scale`` ``(dim,)`` for queries of depth ``dim`` (once)."""
        self._build(dim)
        return self

    def _build(self, dim):
        if self.dim is not None or dim is None:
            return
        self.dim = int(dim)
        if self.use_scale:
            limit = np.sqrt(6.0 / (2 * self.dim))       # Glorot-uniform, fan_in = fan_out = dim
            self.scale = Parameter(self.rng.uniform(-limit, limit, self.dim).astype(self.dtype))

    def _build_from_state(self, state_dict, prefix):
        key = prefix + "scale"
        if self.dim is None and self.use_scale and key in state_dict:
            shape = _to_numpy(state_dict[key], key).shape
            if len(shape) != 1:
                raise ValueError(f"state_dict[{key!r}]: expected shape (dim,), got {shape}")
            self._build(shape[0])

    def _op(self, q, v, key, **kw):
        weight = None if self.scale is None else self.scale.data
        return F.additive_attention_forward(q, v, key, weight=weight, **kw)

    def _op_backward(self, ctx, dout, dscores):
        grads = F.additive_attention_backward(ctx, dout, dscores)
        if self.scale is not None:
            self.scale.accumulate(grads["weight"])
        return grads

    def get_config(self):
        return {"use_scale": self.use_scale, "dropout": self.dropout}

    def extra_repr(self):
        return f"use_scale={self.use_scale}, dim={self.dim}"
