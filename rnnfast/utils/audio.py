"""Mu-law companding of waveforms (ITU-T G.711's curve, as WaveNet uses it)::

    ids = mu_law_encode(x, quantization_channels=256)    # floats in [-1, 1] -> ints 0..255
    x   = mu_law_decode(ids, quantization_channels=256)  # ints -> floats in [-1, 1]

With ``mu = quantization_channels - 1``, encoding compresses ``x`` (clipped to [-1, 1]) by
``f = sign(x) * ln(1 + mu |x|) / ln(1 + mu)`` and rounds ``(f + 1) / 2 * mu`` to the nearest
integer; decoding maps a class ``k`` back to ``f = 2 k / mu - 1`` and expands it by
``x = sign(f) * ((1 + mu) ** |f| - 1) / mu``. Decoding then encoding gives every class back;
encoding then decoding is exact up to half a quantisation step of ``f`` (fine steps near 0,
coarse ones near +-1), the trade WaveNet makes to predict 256 classes instead of 65,536.
"""
import numpy as np

__all__ = ["mu_law_encode", "mu_law_decode"]


def _mu(quantization_channels):
    if isinstance(quantization_channels, bool) or \
            not isinstance(quantization_channels, (int, np.integer)):
        raise TypeError(f"quantization_channels: expected an int, got "
                        f"{type(quantization_channels).__name__}")
    if quantization_channels < 2:
        raise ValueError(f"quantization_channels: expected an int >= 2, got "
                         f"{quantization_channels}")
    return float(quantization_channels - 1)


def mu_law_encode(x, quantization_channels=256):
    """Class ids (int64, ``0..quantization_channels - 1``, ``x``'s shape) of a signal ``x`` in
    [-1, 1] (values outside are clipped). NaN is a ValueError."""
    mu = _mu(quantization_channels)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"x: expected a real numeric array, got dtype {x.dtype}")
    x = np.clip(x.astype(np.float64), -1.0, 1.0)
    if np.isnan(x).any():
        raise ValueError("x: contains NaN")
    f = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((f + 1.0) / 2.0 * mu + 0.5).astype(np.int64)


def mu_law_decode(ids, quantization_channels=256, dtype=np.float64):
    """The signal (``dtype``, in [-1, 1]) of class ids in ``0..quantization_channels - 1``."""
    mu = _mu(quantization_channels)
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids: expected an integer array, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() > mu):
        raise ValueError(f"ids: expected classes in 0..{int(mu)}, got values in "
                         f"{ids.min()}..{ids.max()}")
    f = 2.0 * ids.astype(np.float64) / mu - 1.0
    return (np.sign(f) * np.expm1(np.abs(f) * np.log1p(mu)) / mu).astype(dtype)
