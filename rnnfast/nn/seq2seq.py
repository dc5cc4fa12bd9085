"""An encoder-decoder with attention for translation (``Seq2Seq``), trained with teacher forcing
over all target steps and decoded one step at a time.

Architecture (Luong et al., 2015, with a bidirectional encoder; Bahdanau's additive score as an
option)::

    enc, (h_n, c_n) = encoder(src_embedding(src), lengths)   # bidirectional LSTM, (B, S, 2H)
    h0 = tanh(bridge_h([h_n fwd; h_n bwd]))  c0 = bridge_c([c_n fwd; c_n bwd])   # per layer
    dec, _ = decoder(tgt_embedding(tgt_in), (h0, c0))       # LSTM, (B, T, H)
    keys = key_proj(enc)                                     # once per source
    context, weights = attention(query=dec, keys, values=enc, mask = positions < lengths)
    logits = output(tanh(combine([context; dec])))           # (B, T, tgt_vocab)

- ``attention="dot"``: scores ``dec_t . (W_k enc_s)`` (Luong's "general" score: a dot product
  with projected keys, ``key_proj`` without bias);
- ``attention="additive"``: scores ``v . tanh(W_q dec_t + W_k enc_s + b)`` (Bahdanau's score;
  ``query_proj``, ``key_proj`` and the vector ``v``).

The weights are the softmax over the source's real positions: id 0 is padding, sources are
post-padded (``src_embedding`` has ``mask_zero=True``; its ``lengths`` give each source's
length), and padded positions get weight exactly 0. The attention's context feeds the output
layer, not the decoder LSTM's next input (Luong's form without input feeding): so the decoder
runs over all target steps as one fused call per layer in training, and the same math decodes
one step at a time.

Every LSTM layer and direction is one call of the fused kernels (``rnnfast.nn.LSTM`` on
``rnnfast.functional.stack``); the attention is ``rnnfast.functional``'s ops (the package's
GEMM). Training::

    model = Seq2Seq(src_vocab, tgt_vocab, embedding_dim=64, hidden_size=128)
    logits = model(src, tgt_in)          # src (B, S), tgt_in (B, T) int ids; (B, T, tgt_vocab)
    model.backward(dlogits)              # parameter gradients added to .grad

``tgt_in`` is the target shifted right (a start token first); mask the loss at padded target
steps. ``model.attention_weights`` ``(B, T, S)`` keeps the last forward's weights.

Decoding: ``rnnfast.generation.Seq2SeqDecoder(model, src)`` encodes a batch of sources once
and follows ``rnnfast.generation``'s step protocol (``initial_state``, ``step``, ``reorder``),
so ``generation.greedy`` and ``generation.beam_search`` (the ``k`` hypotheses as one batch, an
end token, length normalisation) decode with it::

    dec = generation.Seq2SeqDecoder(model, src_ids)      # one source: (S,) or (1, S)
    ids = generation.beam_search(dec, [start], max_len, beam_width=5, end_token=end,
                                 length_penalty=1.0)

Each step is one ``T = 1`` call of the decoder's kernels (``generation.RecurrentStep``), one
attention over the cached keys and values, and two small products; its log-probabilities
equal those of the teacher-forced forward on the same prefix.
"""
import numpy as np

from rnnfast import functional as F
from rnnfast.nn.embedding import Embedding
from rnnfast.nn.linear import Linear
from rnnfast.nn.module import (
    Module,
    Parameter,
    as_array,
    check_dtype,
    check_grad,
    check_int,
    make_rng,
)
from rnnfast.nn.recurrent import LSTM

__all__ = ["Seq2Seq"]

_ATTENTION = ("dot", "additive")


def check_ids(ids, name, vocab):
    arr = as_array(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of token ids, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected a 2-D array (batch, steps) of token ids with both "
                         f"sizes >= 1, got shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= vocab:
        bad = arr.min() if arr.min() < 0 else arr.max()
        raise ValueError(f"{name}: token ids must be in 0..{vocab - 1}, got {bad}")
    return arr


class Seq2Seq(Module):
    """Bidirectional-LSTM encoder, LSTM decoder with attention; see the module's doc.

    Args:
        src_vocab, tgt_vocab: vocabulary sizes (id 0 is padding in both).
        embedding_dim: size of both embeddings.
        hidden_size: the decoder's hidden size and each encoder direction's.
        num_layers: LSTM layers of the encoder and of the decoder.
        attention: ``"dot"`` (Luong) or ``"additive"`` (Bahdanau).
        attention_dim: the additive attention's depth (default ``hidden_size``).
    """

    def __init__(self, src_vocab, tgt_vocab, embedding_dim=64, hidden_size=128, num_layers=1,
                 attention="dot", attention_dim=None, *, dtype=np.float32, seed=None, rng=None):
        super().__init__()
        self.src_vocab = check_int(src_vocab, "src_vocab", 2)
        self.tgt_vocab = check_int(tgt_vocab, "tgt_vocab", 2)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", 1)
        self.hidden_size = H = check_int(hidden_size, "hidden_size", 1)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        if attention not in _ATTENTION:
            raise ValueError(f"attention: expected 'dot' or 'additive', got {attention!r}")
        self.attention = attention
        if attention_dim is not None and attention == "dot":
            raise ValueError("attention_dim: only for attention='additive' (the dot score's "
                             "keys have the decoder's hidden_size)")
        self.attention_dim = A = H if attention_dim is None else \
            check_int(attention_dim, "attention_dim", 1)
        self.dtype = dt = check_dtype(dtype)
        rng = make_rng(seed, rng)
        E, L = self.embedding_dim, self.num_layers
        self.src_embedding = Embedding(self.src_vocab, E, padding_idx=0, mask_zero=True,
                                       dtype=dt, rng=rng)
        self.tgt_embedding = Embedding(self.tgt_vocab, E, padding_idx=0, dtype=dt, rng=rng)
        self.encoder = LSTM(E, H, L, batch_first=True, bidirectional=True, dtype=dt, rng=rng)
        self.bridge_h = Linear(2 * H, H, dtype=dt, rng=rng)
        self.bridge_c = Linear(2 * H, H, dtype=dt, rng=rng)
        self.decoder = LSTM(E, H, L, batch_first=True, dtype=dt, rng=rng)
        if attention == "dot":
            self.key_proj = Linear(2 * H, H, bias=False, dtype=dt, rng=rng)
            self.register_parameter("query_proj", None)
            self.register_parameter("v", None)
        else:
            self.key_proj = Linear(2 * H, A, dtype=dt, rng=rng)
            self.query_proj = Linear(H, A, bias=False, dtype=dt, rng=rng)
            bound = 1.0 / np.sqrt(A)
            self.v = Parameter(rng.uniform(-bound, bound, A).astype(dt))
        self.combine = Linear(2 * H + H, H, dtype=dt, rng=rng)
        self.output = Linear(H, self.tgt_vocab, dtype=dt, rng=rng)
        self.attention_weights = None

    # pieces shared by training and decoding ---------------------------------------------------
    def _bridge(self, state):
        """``(L * 2, B, H)`` encoder states -> ``(L, B, 2H)``: each layer's two directions."""
        L, H = self.num_layers, self.hidden_size
        B = state.shape[1]
        return state.reshape(L, 2, B, H).transpose(0, 2, 1, 3).reshape(L, B, 2 * H)

    def _unbridge(self, d):
        L, H = self.num_layers, self.hidden_size
        B = d.shape[1]
        return d.reshape(L, B, 2, H).transpose(0, 2, 1, 3).reshape(2 * L, B, H)

    def _encode(self, src):
        """Encoder outputs ``(B, S, 2H)``, the decoder's initial state, the value mask and
        the attention keys (and the bridge's tanh output, for backward)."""
        emb = self.src_embedding(src)
        lengths = self.src_embedding.lengths
        enc, (h_n, c_n) = self.encoder(emb, lengths=lengths)
        h0 = np.tanh(self.bridge_h(self._bridge(h_n)))
        c0 = self.bridge_c(self._bridge(c_n))
        mask = np.arange(src.shape[1])[None, :] < lengths[:, None]
        keys = self.key_proj(enc)
        return enc, (h0, c0), mask, keys

    def _attend(self, dec, enc, keys, mask, training):
        if self.attention == "dot":
            return F.dot_attention_forward(dec, enc, keys, value_mask=mask, training=training)
        q = self.query_proj(dec)
        return F.additive_attention_forward(q, enc, keys, weight=self.v.data, value_mask=mask,
                                            training=training)

    def _head(self, context, dec):
        """``tanh(combine([context; dec]))`` and the logits."""
        att = np.tanh(self.combine(np.concatenate([context, dec], axis=-1)))
        return att, self.output(att)

    # training ---------------------------------------------------------------------------------
    def forward(self, src, tgt):
        """Logits ``(B, T, tgt_vocab)`` of the teacher-forced decoder.

        Args:
            src: ``(B, S)`` source ids, post-padded with 0.
            tgt: ``(B, T)`` decoder inputs (the target shifted right, a start token first).
        """
        src = check_ids(src, "src", self.src_vocab)
        tgt = check_ids(tgt, "tgt", self.tgt_vocab)
        if src.shape[0] != tgt.shape[0]:
            raise ValueError(f"tgt: expected the batch of src ({src.shape[0]}), got "
                             f"{tgt.shape[0]} rows")
        enc, (h0, c0), mask, keys = self._encode(src)
        dec, _ = self.decoder(self.tgt_embedding(tgt), (h0, c0))
        context, weights, ctx = self._attend(dec, enc, keys, mask, self.training)
        att, logits = self._head(context, dec)
        self.attention_weights = weights
        self._keep({"h0": h0, "att": att, "ctx": ctx, "shape": logits.shape})
        return logits

    def backward(self, dlogits):
        """Parameter gradients of the last training forward are added to ``.grad``; token ids
        have no gradient (returns None)."""
        saved = self._saved()
        dlogits = check_grad(dlogits, "dlogits", saved["shape"], self.dtype)
        H = self.hidden_size
        datt = self.output.backward(dlogits)
        att = saved["att"]
        dcat = self.combine.backward(datt * (1 - att * att))
        dcontext, ddec = dcat[..., :2 * H], dcat[..., 2 * H:]
        if self.attention == "dot":
            grads = F.dot_attention_backward(saved["ctx"], dcontext)
            ddec = ddec + grads["query"]
        else:
            grads = F.additive_attention_backward(saved["ctx"], dcontext)
            self.v.accumulate(grads["weight"])
            ddec = ddec + self.query_proj.backward(grads["query"])
        denc = grads["value"] + self.key_proj.backward(grads["key"])
        demb, (dh0, dc0) = self.decoder.backward(ddec)
        self.tgt_embedding.backward(demb)
        h0 = saved["h0"]
        dh_n = self._unbridge(self.bridge_h.backward(dh0 * (1 - h0 * h0)))
        dc_n = self._unbridge(self.bridge_c.backward(dc0))
        demb, _ = self.encoder.backward(denc, (dh_n, dc_n))
        self.src_embedding.backward(demb)
        return None

    def step_logits(self, y, enc, keys, mask):
        """One decoding step after the decoder LSTM: the logits ``(k, tgt_vocab)`` and the
        attention weights ``(k, S)`` of its output ``y`` ``(k, H)`` over encoded sources
        (``enc``, ``keys``, ``mask`` of ``k`` rows). Keeps nothing (no backward)."""
        dec = y[:, None, :]
        if self.attention == "dot":
            context, weights, _ = F.dot_attention_forward(dec, enc, keys, value_mask=mask)
        else:
            q, _ = F.linear_forward(dec, self.query_proj.weight.data)
            context, weights, _ = F.additive_attention_forward(q, enc, keys, weight=self.v.data,
                                                               value_mask=mask)
        pre, _ = F.linear_forward(np.concatenate([context[:, 0], y], axis=-1),
                                  self.combine.weight.data, self.combine.bias.data)
        logits, _ = F.linear_forward(np.tanh(pre), self.output.weight.data,
                                     self.output.bias.data)
        return logits, weights[:, 0]

    def get_config(self):
        return {"src_vocab": self.src_vocab, "tgt_vocab": self.tgt_vocab,
                "embedding_dim": self.embedding_dim, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "attention": self.attention,
                "attention_dim": self.attention_dim if self.attention == "additive" else None,
                "dtype": self.dtype.name}

    def extra_repr(self):
        return (f"src_vocab={self.src_vocab}, tgt_vocab={self.tgt_vocab}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"attention={self.attention!r}")
