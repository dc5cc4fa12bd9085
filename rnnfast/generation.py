"""Generation with recurrent models: one time step at a time, and decoders over it.

Single steps (state in, state out), on the fused kernels with ``T = 1``::

    stepper = RecurrentStep(layer)            # rnnfast.nn.RNN/LSTM/GRU or a Keras-style layer
    y, state = stepper(x_t)                   # x_t (batch, input_size); state None = zeros
    y, state = stepper(x_next, state)

The state has the layer's own form: ``h`` (or ``(h, c)``) of shape
``(num_layers, batch, hidden)`` for ``rnnfast.nn`` layers, ``(batch, units)`` for the Keras-style
layers of ``rnnfast.models.layers``. A step runs one kernel call per stacked layer on the
layer's own weight arrays; nothing is allocated beyond the kernel's results (and the stacked
state of a multi-layer ``rnnfast.nn`` layer). Bidirectional layers cannot be stepped: their
reverse direction starts at the end of the sequence.

Language models: ``LanguageModel(model)`` runs a ``Sequential`` made of an ``Embedding`` (or a
recurrent layer fed one-hot tokens), unidirectional recurrent layers and per-step layers
(Dense, Dropout, activations, LayerNorm, TimeDistributed) one token at a time, giving
log-probabilities of the next token. ``WindowLanguageModel(model, window)`` instead re-runs the
whole model on the last ``window`` tokens (pre-padded with 0), as a model trained on
fixed windows expects. Both follow one protocol, which any object can implement::

    log_probs, state = lm.step(tokens, state)   # tokens (k,) ints; log_probs (k, vocab)
    state = lm.initial_state(k)
    state = lm.reorder(state, index)            # keep the rows ``index`` (beam search)

Encoder-decoders: ``Seq2SeqDecoder(model, src)`` encodes sources once with an
``rnnfast.nn.Seq2Seq`` and follows the same protocol, the start token as the prompt (one
source, any number of rows: beam search's hypotheses run as one batch).

Decoders (``prompt`` is a non-empty list of token ids; they return the generated ids):

- ``greedy(lm, prompt, steps)``: the most likely token at each step;
- ``sample(lm, prompt, steps, temperature=1.0, top_k=None, seed=None)``: draws from
  ``softmax(log_probs / temperature)`` with a seeded generator;
- ``beam_search(lm, prompt, steps, beam_width=5)``: keeps the ``beam_width`` most likely
  continuations; ``return_all=True`` gives every final beam with its log-probability.

All stop early at ``end_token`` (which is included in the result).
"""
import numpy as np

from rnnfast import nn
from rnnfast.nn.module import as_array, check_int, make_rng
from rnnfast.nn.recurrent import RNNBase
from rnnfast.nn.seq2seq import check_ids

__all__ = [
    "RecurrentStep",
    "step",
    "LanguageModel",
    "WindowLanguageModel",
    "Seq2SeqDecoder",
    "prime",
    "greedy",
    "sample",
    "beam_search",
]

_BIDIRECTIONAL = ("layer: a bidirectional layer cannot run step by step (its reverse direction "
                  "starts at the end of the sequence)")


def _recurrent_of(layer):
    """``(rnn, stacked)``: the ``rnnfast.nn`` RNN/LSTM/GRU that computes ``layer``, and whether
    the state keeps its layers axis. An ``rnnfast.nn`` layer is its own (stacked state); any
    other layer takes part through a ``recurrent_module()`` method that returns its
    one-layer ``rnnfast.nn`` layer (the Keras-style layers; state ``(batch, units)``)."""
    if getattr(layer, "bidirectional", False):
        raise ValueError(_BIDIRECTIONAL)
    if isinstance(layer, RNNBase):
        rnn, stacked = layer, True
    elif callable(getattr(layer, "recurrent_module", None)):
        rnn, stacked = layer.recurrent_module(), False
    else:
        raise TypeError(f"layer: expected an RNN, LSTM or GRU layer, got "
                        f"{type(layer).__name__}")
    return rnn, stacked


class RecurrentStep:
    """One time step of a (unidirectional) recurrent layer: ``y, state = stepper(x, state)``."""

    def __init__(self, layer):
        rnn, self.stacked = _recurrent_of(layer)
        self.rnn = rnn
        self.dtype = rnn.dtype
        self.has_cell = rnn.has_cell_state
        self.weights = rnn.weight_arrays()

    def initial_state(self, batch):
        """Zeros in the layer's state form."""
        H, L = self.rnn.hidden_size, self.rnn.num_layers
        shape = (L, batch, H) if self.stacked else (batch, H)
        h = np.zeros(shape, self.dtype)
        return (h, np.zeros_like(h)) if self.has_cell else h

    def _split(self, state, batch):
        """The (h0, c0) arrays (num_layers, batch, H) of a state (None: zeros)."""
        L, H = self.rnn.num_layers, self.rnn.hidden_size
        if state is None:
            return None, None
        parts = tuple(state) if self.has_cell else (state,)
        if self.has_cell and len(parts) != 2:
            raise TypeError("state: expected a tuple (h, c)")
        want = (L, batch, H) if self.stacked else (batch, H)
        arrays = []
        for i, part in enumerate(parts):
            arr = np.asarray(part)
            if arr.shape != want:
                raise ValueError(f"state{f'[{i}]' if self.has_cell else ''}: expected shape "
                                 f"{want}, got {arr.shape}")
            arr = arr.astype(self.dtype, copy=False)
            arrays.append(arr if self.stacked else arr[None])
        return arrays[0], (arrays[1] if self.has_cell else None)

    def __call__(self, x, state=None):
        x = np.asarray(x)
        if x.dtype != self.dtype:
            if x.dtype.kind not in "fiub":
                raise TypeError(f"x: expected a numeric array, got dtype {x.dtype}")
            x = x.astype(self.dtype)
        if x.ndim != 2 or x.shape[1] != self.rnn.input_size:
            raise ValueError(f"x: expected shape (batch, input_size) = (batch, "
                             f"{self.rnn.input_size}), got {x.shape}")
        h0, c0 = self._split(state, x.shape[0])
        # (T=1, B, I), time-major, a view
        y, h_n, c_n, _ = self.rnn.stack.forward(self.weights, x[None], h0, c0)
        if not self.stacked:
            h_n, c_n = h_n[0], (None if c_n is None else c_n[0])
        return y[0], ((h_n, c_n) if self.has_cell else h_n)


def step(layer, x, state=None):
    """One time step of ``layer`` (see ``RecurrentStep``): returns ``(y, new_state)``."""
    return RecurrentStep(layer)(x, state)


# language models ------------------------------------------------------------------------------
def _log_softmax(z):
    z = z.astype(np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _ends_in_softmax(layer):
    """Whether ``layer`` (or the layer it wraps) gives probabilities: an ``nn.Softmax``, or a
    layer whose ``activation`` is one (a Dense, a Keras-style Activation)."""
    if isinstance(layer, nn.TimeDistributed):
        return _ends_in_softmax(layer.layer)
    return isinstance(layer, nn.Softmax) or isinstance(getattr(layer, "activation", None),
                                                       nn.Softmax)


#: Layers that act on each time step alone; others declare it with ``per_step = True``.
_PER_STEP = (nn.Linear, nn.Dropout, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softmax, nn.LayerNorm)


class LanguageModel:
    """A Sequential run one token at a time (see the module's docstring)."""

    def __init__(self, model):
        if not _is_model(model):
            raise TypeError(f"model: expected a Sequential, got {type(model).__name__}")
        if not model.layers:
            raise ValueError("model: the model has no layers")
        model.eval()
        self.model = model
        self.plan = []
        layers = list(model.layers)
        first = layers[0]
        if isinstance(first, nn.Embedding):
            self.embedding = first.weight.data
            layers = layers[1:]
        else:
            self.embedding = None
        steppers = 0
        for name, layer in zip(model.layer_names[len(model.layers) - len(layers):], layers):
            inner = layer.layer if isinstance(layer, nn.TimeDistributed) else layer
            if callable(getattr(layer, "recurrent_module", None)):
                self.plan.append(("step", RecurrentStep(layer)))
                steppers += 1
            elif isinstance(inner, _PER_STEP) or getattr(inner, "per_step", False):
                if not isinstance(inner, nn.Dropout):
                    self.plan.append(("layer", inner))
            else:
                raise ValueError(f"model: layer '{name}' ({type(layer).__name__}) cannot run one "
                                 "step at a time; use WindowLanguageModel for this model")
        if not steppers:
            raise ValueError("model: no recurrent layer to run step by step")
        if self.embedding is None:
            first_step = self.plan[0]
            if first_step[0] != "step":
                raise ValueError("model: without an Embedding the first layer must be "
                                 "recurrent (fed one-hot tokens)")
            self.one_hot_size = first_step[1].rnn.input_size
        self.vocab_size = self.embedding.shape[0] if self.embedding is not None else \
            self.one_hot_size
        self.outputs_probabilities = _ends_in_softmax(model.layers[-1])
        self.num_states = steppers

    def initial_state(self, batch=1):
        return [None] * self.num_states

    def reorder(self, state, index):
        index = np.asarray(index)

        def take(s):
            if s is None:
                return None
            if isinstance(s, tuple):
                return tuple(take(p) for p in s)
            return s[index] if s.ndim == 2 else s[:, index]
        return [take(s) for s in state]

    def step(self, tokens, state):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens: expected a 1-D integer array, got {tokens!r}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: ids must be in 0..{self.vocab_size - 1}")
        if self.embedding is not None:
            x = self.embedding[tokens]
        else:
            x = np.zeros((tokens.size, self.one_hot_size), np.float32)
            x[np.arange(tokens.size), tokens] = 1
        new_state, k = [], 0
        for kind, op in self.plan:
            if kind == "step":
                x, s = op(x, state[k])
                new_state.append(s)
                k += 1
            else:
                x = op.forward(x)
        if self.outputs_probabilities:
            with np.errstate(divide="ignore"):
                return np.log(x.astype(np.float64)), new_state
        return _log_softmax(x), new_state


class WindowLanguageModel:
    """A Sequential re-run on the last ``window`` tokens (pre-padded with ``pad``) at every
    step, as a model trained on fixed windows (``pad_sequences(..., maxlen=window)``) expects;
    ``one_hot=True`` feeds ``to_categorical`` windows of ``vocab_size`` (models without an
    Embedding)."""

    def __init__(self, model, window, one_hot=False, vocab_size=None, pad=0):
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window: expected an int >= 1, got {window!r}")
        if one_hot and vocab_size is None:
            raise ValueError("vocab_size: needed with one_hot=True")
        self.model = model
        self.window = int(window)
        self.one_hot = bool(one_hot)
        self.vocab_size = vocab_size
        self.pad = int(pad)
        self.outputs_probabilities = _ends_in_softmax(model.layers[-1])

    def initial_state(self, batch=1):
        return np.full((batch, self.window), self.pad, np.int64)

    def reorder(self, state, index):
        return state[np.asarray(index)]

    def step(self, tokens, state):
        tokens = np.asarray(tokens)
        state = np.concatenate([state[:, 1:], tokens[:, None].astype(np.int64)], axis=1)
        x = state
        if self.one_hot:
            x = np.zeros(state.shape + (self.vocab_size,), np.float32)
            np.put_along_axis(x, state[..., None], 1, axis=-1)
        out = self.model.predict(x, batch_size=max(len(state), 1))
        if out.ndim == 3:
            out = out[:, -1]
        if self.outputs_probabilities:
            with np.errstate(divide="ignore"):
                return np.log(out.astype(np.float64)), state
        return _log_softmax(out), state


class Seq2SeqDecoder:
    """Step-by-step decoding of an ``rnnfast.nn.Seq2Seq`` over encoded sources (``src``
    ``(S,)`` one source, or ``(N, S)``, post-padded with 0), with the protocol of the
    decoders below::

        state = dec.initial_state(k)          # k rows: N sources, or k copies of one source
        log_probs, state = dec.step(tokens, state)      # tokens (k,); log_probs (k, tgt_vocab)
        state = dec.reorder(state, index)     # keep the rows ``index`` (beam search)

    The sources are encoded once, in eval mode, when it is made (make a new one after training
    further); a step is one ``T = 1`` call of the decoder LSTM's kernels (``RecurrentStep``)
    and ``Seq2Seq.step_logits``. The state is the decoder's ``(h, c)`` ``(num_layers, k, H)``
    and each row's source index. ``weights`` holds the last step's attention weights
    ``(k, S)``.
    """

    def __init__(self, model, src):
        if not isinstance(model, nn.Seq2Seq):
            raise TypeError(f"model: expected a Seq2Seq, got {type(model).__name__}")
        src = as_array(src)
        if src.ndim == 1:
            src = src[None]
        src = check_ids(src, "src", model.src_vocab)
        self.model = model
        was_training = model.training
        model.eval()
        try:
            self.enc, (h0, c0), self.mask, self.keys = model._encode(src)
        finally:
            model.train(was_training)
        self.h0, self.c0 = h0, c0
        self.sources = src.shape[0]
        self._step = RecurrentStep(model.decoder)
        self.embedding = model.tgt_embedding.weight.data
        self.weights = None
        self._rows = None
        self._memory = None

    def initial_state(self, batch=1):
        """The decoder's first state for ``batch`` rows: one per source, or (one source)
        ``batch`` copies of it."""
        batch = check_int(batch, "batch", 1)
        if batch == self.sources:
            rows = np.arange(batch)
        elif self.sources == 1:
            rows = np.zeros(batch, np.int64)
        else:
            raise ValueError(f"batch: expected {self.sources} (one row per source) or a "
                             f"decoder over one source, got {batch}")
        return self.h0[:, rows], self.c0[:, rows], rows

    def reorder(self, state, index):
        index = np.asarray(index)
        h, c, rows = state
        return h[:, index], c[:, index], rows[index]

    def _memory_of(self, rows):
        if self._rows is None or not np.array_equal(rows, self._rows):
            self._rows = rows.copy()
            self._memory = (self.enc[rows], self.keys[rows], self.mask[rows])
        return self._memory

    def step(self, tokens, state):
        """Log-probabilities ``(k, tgt_vocab)`` (float64) of the next token after ``tokens``,
        and the new state."""
        m = self.model
        tokens = np.asarray(tokens)
        h, c, rows = state
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu" or tokens.shape[0] != rows.shape[0]:
            raise ValueError(f"tokens: expected a 1-D integer array of {rows.shape[0]} ids (one "
                             f"per row of the state), got {tokens!r}")
        if tokens.min() < 0 or tokens.max() >= m.tgt_vocab:
            raise ValueError(f"tokens: ids must be in 0..{m.tgt_vocab - 1}")
        y, (h, c) = self._step(self.embedding[tokens], (h, c))
        logits, self.weights = self.model.step_logits(y, *self._memory_of(rows))
        return _log_softmax(logits), (h, c, rows)


# decoders -------------------------------------------------------------------------------------
def _is_model(model):
    """A Sequential, or any model with the same ``layers``, ``layer_names`` and ``eval()``."""
    return isinstance(getattr(model, "layers", None), list) and \
        hasattr(model, "layer_names") and callable(getattr(model, "eval", None))


def _as_lm(lm):
    if _is_model(lm):
        return LanguageModel(lm)
    for method in ("step", "initial_state", "reorder"):
        if not callable(getattr(lm, method, None)):
            raise TypeError(f"lm: expected a Sequential or an object with step(), "
                            f"initial_state() and reorder(), got {type(lm).__name__}")
    return lm


def _check_prompt(prompt):
    ids = np.asarray(prompt)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"prompt: expected a non-empty list of token ids, got {prompt!r}")
    return ids.astype(np.int64)


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    return int(steps)


def prime(lm, prompt, batch=1):
    """Feed ``prompt`` to ``lm`` (``batch`` copies): the log-probabilities of the next token
    ``(batch, vocab)`` and the state after the prompt."""
    lm = _as_lm(lm)
    ids = _check_prompt(prompt)
    state = lm.initial_state(batch)
    log_probs = None
    for token in ids:
        log_probs, state = lm.step(np.full(batch, token, np.int64), state)
    return log_probs, state


def _decode(lm, prompt, steps, end_token, choose):
    lm = _as_lm(lm)
    steps = _check_steps(steps)
    out = []
    if steps == 0:
        return out
    log_probs, state = prime(lm, prompt)
    for t in range(steps):
        token = int(choose(log_probs[0]))
        out.append(token)
        if token == end_token or t == steps - 1:
            break
        log_probs, state = lm.step(np.array([token]), state)
    return out


def greedy(lm, prompt, steps, end_token=None):
    """``steps`` tokens after ``prompt``, each the most likely one (ties: the lowest id)."""
    return _decode(lm, prompt, steps, end_token, np.argmax)


def sample(lm, prompt, steps, temperature=1.0, top_k=None, seed=None, rng=None,
           end_token=None):
    """``steps`` tokens drawn from ``softmax(log_probs / temperature)`` (only the ``top_k``
    most likely with ``top_k``); ``temperature=0`` is greedy. Reproducible with ``seed``."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            temperature < 0:
        raise ValueError(f"temperature: expected a number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or
                              top_k < 1):
        raise ValueError(f"top_k: expected an int >= 1 or None, got {top_k!r}")
    gen = make_rng(seed, rng)
    if temperature == 0:
        return greedy(lm, prompt, steps, end_token)

    def choose(log_probs):
        z = log_probs / temperature
        if top_k is not None and top_k < z.size:
            cut = np.partition(z, -top_k)[-top_k]
            z = np.where(z >= cut, z, -np.inf)
        p = np.exp(z - z.max())
        p /= p.sum()
        return gen.choice(p.size, p=p)
    return _decode(lm, prompt, steps, end_token, choose)


def beam_search(lm, prompt, steps, beam_width=5, end_token=None, length_penalty=0.0,
                return_all=False):
    """The most likely continuation of ``prompt`` found by keeping ``beam_width`` candidates
    per step. Beams that produced ``end_token`` stop growing. Final beams are ranked by
    ``log_prob / len ** length_penalty``. Returns the best ids, or with ``return_all`` a list
    of ``(ids, log_prob)`` for every final beam, best first."""
    lm = _as_lm(lm)
    steps = _check_steps(steps)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) or \
            beam_width < 1:
        raise ValueError(f"beam_width: expected an int >= 1, got {beam_width!r}")
    if steps == 0:
        return [([], 0.0)] if return_all else []
    log_probs, state = prime(lm, prompt)
    beams, scores, done = [[]], np.zeros(1), np.zeros(1, bool)
    for t in range(steps):
        cand = scores[:, None] + log_probs
        if done.any():
            cand[done] = -np.inf
            cand[done, end_token] = scores[done]
        flat = cand.ravel()
        order = np.argsort(-flat, kind="stable")[:beam_width]
        order = order[np.isfinite(flat[order])]
        if order.size == 0:
            break
        rows, tokens = np.divmod(order, cand.shape[1])
        beams = [beams[r] if done[r] else beams[r] + [int(v)] for r, v in zip(rows, tokens)]
        scores = flat[order]
        done = np.array([done[r] or (end_token is not None and v == end_token)
                         for r, v in zip(rows, tokens)])
        if done.all() or t == steps - 1:
            break
        state = lm.reorder(state, rows)
        log_probs, state = lm.step(tokens.astype(np.int64), state)
    ranked = sorted(zip(beams, scores),
                    key=lambda bs: -bs[1] / max(len(bs[0]), 1) ** length_penalty)
    if return_all:
        return [(ids, float(score)) for ids, score in ranked]
    return ranked[0][0]
