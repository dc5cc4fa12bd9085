"""``pad_sequences``: ragged sequences to one padded array, with Keras' semantics exactly
(``keras.utils.pad_sequences``; the default is pre-padding and pre-truncating, as in Keras)::

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
    array([[0, 0, 1],
           [0, 2, 3],
           [4, 5, 6]], dtype=int32)
    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2, padding="post")
    array([[0, 1],
           [2, 3],
           [5, 6]], dtype=int32)

The loop over the Python lists runs in Cython (``rnnfast._padding``); rows it does not take
(NumPy arrays, nested sequences, values that need NumPy's conversion rules) are converted
here with NumPy, so the result equals ``pad_sequences_python`` (the pure-Python version,
also the fallback when the extension is missing) for every input.

Differences from Keras, all at the edges: ``padding`` / ``truncating`` are checked even when
every sequence is empty, ``maxlen`` must be an int >= 0, ``maxlen=0`` gives an empty
``(len(sequences), 0)`` array (Keras fails on it with ``truncating="pre"``), and an empty list
without ``maxlen`` raises a ValueError saying so.
"""
import numpy as np

try:
    from rnnfast import _padding
except ImportError:  # the Cython extension was not built
    _padding = None

__all__ = ["pad_sequences", "pad_sequences_python"]

_FAST_DTYPES = (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32),
                np.dtype(np.float64))


def _check_options(maxlen, padding, truncating):
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood (padding: expected "pre" or '
                         '"post")')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood (truncating: expected '
                         '"pre" or "post")')
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            raise TypeError(f"maxlen: expected an int or None, got {type(maxlen).__name__}")
        if maxlen < 0:
            raise ValueError(f"maxlen: expected an int >= 0, got {maxlen}")
        maxlen = int(maxlen)
    return maxlen


def _allocate(count, lengths, maxlen, sample_shape, dtype, value):
    if maxlen is None:
        if count == 0:
            raise ValueError("sequences: an empty list has no longest sequence; give maxlen")
        maxlen = int(np.max(lengths))
    dt = np.dtype(dtype)
    is_text = np.issubdtype(dt, np.str_) or np.issubdtype(dt, np.bytes_)
    if isinstance(value, str) and dt != np.dtype(object) and not is_text:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
                         "You should set `dtype=object` for variable length strings.")
    return np.full((count, maxlen) + tuple(sample_shape), value, dtype=dtype), maxlen


def _pad_row(out, idx, seq, maxlen, padding, truncating, sample_shape):
    """One sequence into ``out[idx]`` with NumPy's conversion (Keras' loop body)."""
    if not len(seq) or maxlen == 0:
        return
    kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
    kept = np.asarray(kept, dtype=out.dtype)
    if kept.shape[1:] != tuple(sample_shape):
        raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {idx} is "
                         f"different from expected shape {tuple(sample_shape)}")
    if padding == "post":
        out[idx, :len(kept)] = kept
    else:
        out[idx, -len(kept):] = kept


def _measure_python(sequences):
    lengths, sample_shape, found = [], (), False
    for seq in sequences:
        try:
            n = len(seq)
        except TypeError as exc:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: "
                             f"{seq}") from exc
        if n and not found:
            sample_shape, found = np.asarray(seq).shape[1:], True
        lengths.append(n)
    return np.asarray(lengths, dtype=np.int64), sample_shape


def _check_sequences(sequences):
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable (a list of sequences), got "
                         f"{type(sequences).__name__}")


def pad_sequences_python(sequences, maxlen=None, dtype="int32", padding="pre",
                         truncating="pre", value=0.0):
    """``pad_sequences`` in pure Python and NumPy (the reference of the Cython loop)."""
    _check_sequences(sequences)
    maxlen = _check_options(maxlen, padding, truncating)
    lengths, sample_shape = _measure_python(sequences)
    out, maxlen = _allocate(len(sequences), lengths, maxlen, sample_shape, dtype, value)
    for idx, seq in enumerate(sequences):
        _pad_row(out, idx, seq, maxlen, padding, truncating, sample_shape)
    return out


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (and truncate) ``sequences`` to an array ``(len(sequences), maxlen) + sample_shape``.

    - ``maxlen``: the length of every row; None: the longest sequence's length.
    - ``padding``: ``"pre"`` (pad before each sequence, Keras' default) or ``"post"``.
      Recurrent layers with ``lengths`` (and ``Embedding(mask_zero=True)`` feeding one
      directly) want ``"post"``.
    - ``truncating``: ``"pre"`` (drop values from the start of longer sequences) or ``"post"``.
    - ``dtype``, ``value``: the result's dtype (default int32) and the padding value.
    """
    _check_sequences(sequences)
    maxlen = _check_options(maxlen, padding, truncating)
    if _padding is None:
        return pad_sequences_python(sequences, maxlen, dtype, padding, truncating, value)
    lengths, sample_shape = _padding.measure(sequences)
    out, maxlen = _allocate(len(sequences), lengths, maxlen, sample_shape, dtype, value)
    if sample_shape == () and out.dtype in _FAST_DTYPES and maxlen > 0:
        if out.dtype.kind == "i":
            info = np.iinfo(out.dtype)
            lo, hi = int(info.min), int(info.max)
        else:
            lo, hi = 0, 0
        rows = _padding.fill(out, sequences, lengths, padding == "pre", truncating == "pre",
                             lo, hi)
    else:
        rows = enumerate(sequences)
    for idx, seq in rows:
        _pad_row(out, idx, seq, maxlen, padding, truncating, sample_shape)
    return out
