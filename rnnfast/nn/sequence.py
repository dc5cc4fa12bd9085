"""``LastStep``: each sequence's output at its last valid step, for many-to-one models
(Keras' ``return_sequences=False``).

``LastStep(batch_first=False, bidirectional=False).forward(y, lengths=None)`` takes a
recurrent layer's output ``y`` ``(T, B, F)`` (``(B, T, F)`` with ``batch_first``) and returns
``(B, F)``: row b is ``y`` at step ``lengths[b] - 1`` (T - 1 without lengths). With
``bidirectional=True`` the second half of the features (the reverse direction, whose last
step is step 0) is taken at step 0 instead, so the result is the final state of both
directions, ``concatenate([h_n[-2], h_n[-1]], axis=-1)`` of the layer's ``h_n``.
"""
import numpy as np

from rnnfast.nn.module import Module, as_array, as_float_input, check_grad

__all__ = ["LastStep"]


def _check_lengths(lengths, batch, steps):
    lengths = as_array(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths: expected shape (batch,) = ({batch},), got {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"lengths: every entry must be in 1..T = 1..{steps}, got "
                         f"{lengths.min() if lengths.min() < 1 else lengths.max()}")
    return lengths.astype(np.int64)


class LastStep(Module):
    """Select the last valid step of each sequence (respecting ``lengths``)."""

    def __init__(self, batch_first=False, bidirectional=False):
        super().__init__()
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)

    def _index(self, shape, lengths):
        batch, steps = (shape[0], shape[1]) if self.batch_first else (shape[1], shape[0])
        last = np.full(batch, steps - 1) if lengths is None else \
            _check_lengths(lengths, batch, steps) - 1
        return np.arange(batch), last

    def forward(self, x, lengths=None):
        x = as_float_input(x, "x")
        if x.ndim != 3:
            layout = "(batch, seq_len, features)" if self.batch_first else \
                "(seq_len, batch, features)"
            raise ValueError(f"x: expected a 3-D array {layout}, got shape {x.shape}")
        if self.bidirectional and x.shape[2] % 2:
            raise ValueError(f"x: bidirectional needs an even number of features (two halves), "
                             f"got shape {x.shape}")
        rows, last = self._index(x.shape, lengths)
        seq = x if self.batch_first else x.swapaxes(0, 1)  # (B, T, F)
        y = seq[rows, last]
        if self.bidirectional:
            half = x.shape[2] // 2
            y[:, half:] = seq[:, 0, half:]
        self._keep((x.shape, x.dtype, rows, last))
        return y

    def backward(self, dy):
        shape, dtype, rows, last = self._saved()
        batch, features = rows.size, shape[2]
        dy = check_grad(dy, "dy", (batch, features), dtype)
        dx = np.zeros(shape, dtype)
        seq = dx if self.batch_first else dx.swapaxes(0, 1)
        if self.bidirectional:
            half = features // 2
            seq[rows, last, :half] = dy[:, :half]
            seq[:, 0, half:] += dy[:, half:]
        else:
            seq[rows, last] = dy
        return dx

    def get_config(self):
        return {"batch_first": self.batch_first, "bidirectional": self.bidirectional}

    def extra_repr(self):
        return f"batch_first={self.batch_first}, bidirectional={self.bidirectional}"
