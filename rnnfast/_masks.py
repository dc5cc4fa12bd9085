"""The zoneout and recurrent dropout masks of a training forward.

One rule (docs/DECISIONS.md "Cell variants", "Masks"), two implementations that give the same
masks bit for bit: ``recurrent_masks`` here draws them with the C++ kernel
(csrc/kernels/recurrent_masks.cc; the fused ops' functional layer, ``rnnfast.functional``, uses
it), ``rnnfast.reference.recurrent_masks`` in plain NumPy (the reference's forwards use it, and
the tests check the two against each other). The arguments are checked here for both.
"""
import operator
import os

import numpy as np

from rnnfast import _C

__all__ = ["recurrent_masks"]

# The masks in their fixed order: mask k draws from the k-th seed derived from the call's seed.
MASK_NAMES = ("zoneout_h", "zoneout_c", "recurrent")


def _check_rate(value, name):
    """A float in [0, 1) (a zoneout or dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float in [0, 1), got {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value}")
    return float(value)


def _check_size(value, name):
    """An int >= 0 (a size of the forward)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int >= 0, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value}")
    return int(value)


def seed64(seed):
    """The masks' 64-bit seed: ``seed`` itself (an int in ``0 .. 2**64 - 1``), or for None 64
    fresh bits of the operating system's entropy."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an int in 0..2**64-1 or None, got "
                        f"{type(seed).__name__}")
    seed = operator.index(seed)
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed: expected an int in 0..2**64-1 or None, got {seed}")
    return seed


def _mask_shapes(gates, has_cell_state, T, B, H, P, zoneout, recurrent_dropout):
    """{mask name: shape} of the masks a training forward uses, in ``MASK_NAMES`` order."""
    shapes = {}
    if zoneout > 0:
        shapes["zoneout_h"] = (T, B, P)
        if has_cell_state:
            shapes["zoneout_c"] = (T, B, H)
    if recurrent_dropout > 0:
        shapes["recurrent"] = (gates, B, P)
    return shapes


def mask_request(op, T, B, H, proj_size, zoneout, recurrent_dropout, seed, dtype):
    """The checked arguments of ``recurrent_masks``: ({mask name: shape}, zoneout,
    recurrent_dropout, 64-bit seed, dtype), with clear errors naming what is wrong."""
    if op not in _CELL_KINDS:
        raise ValueError(f"op: expected one of {sorted(_CELL_KINDS)}, got {op!r}")
    gates, has_cell_state = _CELL_KINDS[op]
    T, B, H = _check_size(T, "T"), _check_size(B, "B"), _check_size(H, "H")
    P = H if proj_size is None else _check_size(proj_size, "proj_size")
    zoneout = _check_rate(zoneout, "zoneout")
    recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64):
        given = repr(dtype) if resolved is None else resolved
        raise TypeError(f"dtype: expected float32 or float64, got {given}")
    dtype = resolved
    shapes = _mask_shapes(gates, has_cell_state, T, B, H, P, zoneout, recurrent_dropout)
    return shapes, zoneout, recurrent_dropout, seed64(seed), dtype


def recurrent_masks(op, T, B, H, *, proj_size=None, zoneout=0.0, recurrent_dropout=0.0,
                    seed=None, dtype=np.float64):
    """``rnnfast.reference.recurrent_masks`` (which states the rule), drawn by the C++ kernel:
    the same masks, bit for bit, at any thread count."""
    shapes, zoneout, recurrent_dropout, seed, dtype = mask_request(
        op, T, B, H, proj_size, zoneout, recurrent_dropout, seed, dtype)
    if not shapes:
        return {}
    drawn = _C.recurrent_masks(*(shapes.get(name) for name in MASK_NAMES), zoneout=zoneout,
                               recurrent_dropout=recurrent_dropout, seed=seed,
                               dtype=dtype.name)
    return {name: m for name, m in zip(MASK_NAMES, drawn) if m is not None}


# op -> (gates, has a cell state)
_CELL_KINDS = {"rnn": (1, False), "lstm": (4, True), "gru": (3, False),
               "layer_norm_lstm": (4, True), "layer_norm_gru": (3, False)}
