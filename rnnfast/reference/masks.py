"""The zoneout and recurrent dropout masks of a training forward in plain NumPy: the rule the
kernel (``rnnfast._masks.recurrent_masks``, csrc/kernels/recurrent_masks.cc) follows, written
out with ``rnnfast.reference.dropout``'s counter-based generator, and the masks the reference's
forwards draw."""
import numpy as np

from rnnfast._masks import MASK_NAMES, mask_request
from rnnfast.reference.dropout import dropout_bits, splitmix64, threshold32

__all__ = ["recurrent_masks"]


def recurrent_masks(op, T, B, H, *, proj_size=None, zoneout=0.0, recurrent_dropout=0.0,
                    seed=None, dtype=np.float64):
    """The zoneout and recurrent dropout masks a training forward of ``op`` draws.

    op: "rnn", "lstm", "gru", "layer_norm_lstm" or "layer_norm_gru"; T, B, H the forward's
    sizes; proj_size P (the LSTM's ``w_hr.shape[0]``), default H. The masks:

    - ``"zoneout_h"`` (T, B, P), when ``zoneout > 0``: 1.0 where the unit of h keeps its
      previous value (probability ``zoneout``), else 0.0;
    - ``"zoneout_c"`` (T, B, H), likewise for the LSTMs' c;
    - ``"recurrent"`` (G, B, P), when ``recurrent_dropout > 0``: one mask per gate, 0 or
      ``1 / (1 - recurrent_dropout)`` (kept with probability ``1 - recurrent_dropout``), the
      same at every step (time-major layout whatever ``batch_first``).

    Drawn from a counter-based generator (as ``rnnfast.functional.dropout``): ``seed`` an int
    in ``0 .. 2**64 - 1`` (None: 64 fresh bits of the system's entropy); mask k (0, 1, 2 in the
    order above, whichever are drawn) has the seed ``s_k = splitmix64(seed, k)``, and its element
    i (C order) the 32 bits ``u`` of ``splitmix64(s_k, i // 2)``, low half for even i, high half
    for odd i. Kept (1) in a zoneout mask where ``u < ceil(zoneout * 2**32)``; kept
    (``1 / (1 - p)``, computed in float64, then rounded to ``dtype``) in the recurrent mask where
    ``u >= ceil(p * 2**32)``. ``dtype``: float64 (default) or float32 (the functional ops draw
    them in x's). The same seed gives the same masks (the fused ops' C++ kernel gives these
    masks bit for bit, at any thread count). The masks of a given seed changed when they moved
    to this generator (they were drawn from ``np.random.default_rng(seed)`` before).

    Returns a dict (empty when both rates are 0).
    """
    shapes, zoneout, recurrent_dropout, seed, dtype = mask_request(
        op, T, B, H, proj_size, zoneout, recurrent_dropout, seed, dtype)
    rates = {"zoneout_h": zoneout, "zoneout_c": zoneout, "recurrent": recurrent_dropout}
    return {name: draw_mask(seed, name, shape, rates[name], dtype)
            for name, shape in shapes.items()}


def draw_mask(seed, name, shape, p, dtype):
    """One mask of ``recurrent_masks`` (name one of ``MASK_NAMES``) of any shape, with rate p,
    from the call's 64-bit seed."""
    k = MASK_NAMES.index(name)
    u = dropout_bits(splitmix64(seed, k), int(np.prod(shape, dtype=np.int64))).reshape(shape)
    dtype = np.dtype(dtype).type
    if name == "recurrent":
        return np.where(u >= threshold32(p), dtype(1.0 / (1.0 - p)), dtype(0))
    return (u < threshold32(p)).astype(dtype)
