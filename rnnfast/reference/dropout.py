"""Inverted dropout with a counter-based mask in plain NumPy: the oracle of the kernel's tests
(``rnnfast.functional.dropout``, which documents the mask)::

    y = dropout(x, p, seed)
"""
import numpy as np

__all__ = ["dropout", "dropout_bits", "splitmix64", "threshold32"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(seed, j):
    """SplitMix64's outputs number ``j`` (uint64 array, from 0) of the sequence started at
    ``seed``: ``mix(seed + (j + 1) * gamma)`` (csrc/include/rnnfast/counter_rng.h)."""
    j = np.asarray(j, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (j + np.uint64(1)) * _GAMMA  # wraps modulo 2**64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dropout_bits(seed, n):
    """The 32 random bits (uint32, ``(n,)``) of elements ``0 .. n-1``: SplitMix64's outputs
    ``splitmix64(seed, j)``, each split into its low (element ``2j``) and high (element
    ``2j + 1``) halves."""
    z = splitmix64(seed, np.arange((n + 1) // 2, dtype=np.uint64))
    halves = np.empty((z.size, 2), np.uint32)
    halves[:, 0] = z & np.uint64(0xFFFFFFFF)
    halves[:, 1] = z >> np.uint64(32)
    return halves.reshape(-1)[:n]


def threshold32(p):
    """``ceil(p * 2**32)`` (uint32, at most ``2**32 - 1``): a 32-bit draw falls below it with
    probability p (to ``2**-32``)."""
    return np.uint32(min(int(np.ceil(p * 2.0 ** 32)), 2 ** 32 - 1))


def dropout(x, p, seed):
    """``x * (keep ? 1 / (1 - p) : 0)``, ``keep = bits >= ceil(p * 2**32)``, in ``x``'s dtype."""
    x = np.asarray(x)
    dtype = x.dtype.type
    keep = dropout_bits(seed, x.size).reshape(x.shape) >= threshold32(p)
    return x * np.where(keep, dtype(1.0) / dtype(1.0 - p), dtype(0.0))
