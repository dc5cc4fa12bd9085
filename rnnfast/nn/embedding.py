"""``Embedding``: integer token ids to vectors, with PyTorch's ``padding_idx`` and Keras'
``mask_zero``.

The weight is ``(num_embeddings, embedding_dim)``, initialised N(0, 1) as in PyTorch (the
``padding_idx`` row zero); ``torch.nn.Embedding`` state_dicts load 1:1. The lookup is one
C++ pass on the kernels' threads, which ``forward_dropped`` also uses to apply the
``Dropout`` after the layer while writing the rows (keeping its mask as bits, 1/32 of the
rows' float32 bytes), and ``backward_dropped`` to drop the gradient with those bits while adding
it (what ``Sequential`` does). The row at
``padding_idx`` gets no gradient. The backward adds each token's gradient row into
``weight.grad`` in token order (the values of ``np.add.at``), on the kernels' threads, which
split the columns: the same result at any thread count.

With ``mask_zero=True`` (Keras), id 0 means padding: after each forward, ``mask`` is
``x != 0`` and ``lengths`` gives, for a ``(batch, seq_len)`` input, each row's length (its
last non-zero position + 1) to pass to a recurrent layer with ``batch_first=True``::

    emb = Embedding(vocab, 32, mask_zero=True)
    lstm = LSTM(32, 64, batch_first=True)
    out, (h, c) = lstm(emb(ids), lengths=emb.lengths)

The recurrent kernels take post-padded batches, so ``lengths`` raises ValueError when a row
has padding before a token (pad with ``padding="post"``). A row of only padding gets length 1.
"""
import numpy as np

from rnnfast import _C
from rnnfast.nn.module import (
    Module,
    Parameter,
    as_array,
    check_dtype,
    check_grad,
    check_int,
    make_rng,
    parameter_zeros,
)

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, mask_zero=False, *,
                 dtype=np.float32, device=None, seed=None, rng=None):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.num_embeddings = check_int(num_embeddings, "num_embeddings", 1)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", 1)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"padding_idx: expected an int or None, got "
                                f"{type(padding_idx).__name__}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx: expected an int in [-{self.num_embeddings}, "
                                 f"{self.num_embeddings}), got {padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.mask_zero = bool(mask_zero)
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        self.mask = None
        self.weight = Parameter(parameter_zeros((self.num_embeddings, self.embedding_dim),
                                                self.dtype))
        self.reset_parameters()

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, mask_zero=False):
        """An Embedding holding a copy of ``embeddings`` (2-D float array), frozen by default."""
        weights = np.asarray(embeddings)
        if weights.ndim != 2:
            raise ValueError(f"embeddings: expected a 2-D array, got shape {weights.shape}")
        if weights.dtype.kind != "f":
            raise TypeError(f"embeddings: expected a float array, got dtype {weights.dtype}")
        dtype = weights.dtype if weights.dtype == np.float64 else np.float32
        layer = cls(weights.shape[0], weights.shape[1], padding_idx, mask_zero, dtype=dtype)
        layer.weight.data[...] = weights
        layer.weight.requires_grad = not freeze
        return layer

    def reset_parameters(self):
        self.weight.data[...] = self.rng.standard_normal(self.weight.shape)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, x):
        return self._lookup(x)

    def forward_dropped(self, x, dropout):
        """``dropout.forward(self.forward(x))`` in one pass (the rows and their dropout mask
        written once), keeping what both backwards need: the same values, masks and generator
        draws as the two calls. ``dropout`` is an ``nn.Dropout``."""
        return self._lookup(x, dropout)

    def _lookup(self, x, dropout=None):
        x = as_array(x)
        if x.dtype.kind not in "iu":
            raise TypeError(f"x: expected an integer array of token ids, got dtype {x.dtype}")
        low, high = (x.min(), x.max()) if x.size else (0, 0)
        if low < 0 or high >= self.num_embeddings:
            bad = low if low < 0 else high
            raise ValueError(f"x: token ids must be in 0..{self.num_embeddings - 1} "
                             f"(num_embeddings={self.num_embeddings}), got {bad}")
        self.mask = (x != 0) if self.mask_zero else None
        # the kernels' ids: made once here, not by the forward's and the backward's bindings
        ids = np.asarray(x, dtype=np.int64, order="C")
        shape = x.shape + (self.embedding_dim,)
        seed = None if dropout is None else dropout._draw(shape, self.dtype)
        if seed is None or seed < 0:  # (no dropout, or the layer's own result: eval, p 0 or 1)
            self._keep((ids, None))
            y = _C.embedding_forward(ids, self.weight.data)  # weight.data[x], on the threads
            return y if dropout is None else dropout._dropped(y, seed)
        # the dropout's mask as bits (1/32 of y's float32 bytes), which backward_dropped reads
        # instead of drawing it again, kept with the seed and rate it belongs to
        keep = np.empty((ids.size * self.embedding_dim + 7) // 8, np.uint8) \
            if self.training else None
        self._keep((ids, (seed, dropout.p, keep)))
        return _C.embedding_forward(ids, self.weight.data, dropout.p, seed, keep)

    @property
    def lengths(self):
        """Lengths (int64, (batch,)) of the last ``(batch, seq_len)`` input under ``mask_zero``;
        None without ``mask_zero``."""
        if self.mask is None:
            return None
        if self.mask.ndim != 2:
            raise ValueError(f"lengths: needs a 2-D (batch, seq_len) input, the last one had "
                             f"shape {self.mask.shape}")
        T = self.mask.shape[1]
        nonzero = self.mask[:, ::-1]
        last = np.where(nonzero.any(axis=1), T - nonzero.argmax(axis=1), 1)
        inside = np.arange(T)[None, :] < last[:, None]
        holes = inside & ~self.mask
        holes[last == 1] = False
        if holes.any():
            row = int(np.argmax(holes.any(axis=1)))
            raise ValueError(f"lengths: row {row} has padding (id 0) before a token; recurrent "
                             "layers need post-padded sequences (pad with padding='post')")
        return last.astype(np.int64)

    def backward(self, dy):
        """Adds the gradient into ``weight.grad``; token ids have no gradient (returns None)."""
        return self._scatter(dy)

    def backward_dropped(self, dy, dropout):
        """``self.backward(dropout.backward(dy))`` in one pass (``dy`` dropped row by row while
        it is added, no dropped copy): ``dropout`` is the ``nn.Dropout`` whose forward took this
        layer's last output (as in ``forward_dropped``)."""
        seed, shape, dtype = dropout._saved()
        if seed is None or seed < 0:  # (identity or zeros: the layer's own backward)
            return self._scatter(dropout.backward(dy))
        # the mask this layer's forward stored, when it is this seed's and rate's (not after
        # another forward of the Dropout alone): the same bits as drawing them again
        dropped = self._saved()[1]
        keep = dropped[2] if dropped is not None and dropped[:2] == (seed, dropout.p) else None
        return self._scatter(check_grad(dy, "dy", shape, dtype), dropout.p, seed, keep)

    def _scatter(self, dy, p=0.0, seed=0, keep=None):
        x = self._saved()[0]
        dy = check_grad(dy, "dy", x.shape + (self.embedding_dim,), self.dtype)
        weight = self.weight
        if not weight.requires_grad:
            return None
        grad = weight.grad
        writable = grad is not None and grad.dtype == self.dtype and grad.flags.c_contiguous \
            and grad.flags.writeable and grad.flags.aligned
        fresh = grad is None  # (a new gradient: the kernel's threads clear it as they go)
        if fresh:
            grad = np.empty(weight.data.shape, self.dtype)
        elif not writable:  # (a gradient set from outside: summed into a copy)
            grad = np.array(grad, self.dtype)
        # grad[ids[i]] += rows[i] in token order, columns split between the threads (bitwise
        # np.add.at's result at any thread count)
        _C.embedding_backward(x.reshape(-1), dy.reshape(-1, self.embedding_dim), grad,
                              padding_idx=self.padding_idx, p=p, seed=seed, zero=fresh, keep=keep)
        weight.grad = grad
        return None

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "mask_zero": self.mask_zero,
                "dtype": self.dtype.name}

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.mask_zero:
            s += ", mask_zero=True"
        return s
