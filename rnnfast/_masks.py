"""The zoneout and recurrent dropout masks of a training forward, drawn in one place.

The NumPy reference (``rnnfast.reference``) and the fused kernels' functional layer
(``rnnfast.functional``) both draw their masks here, so the same seed gives both the same
masks (and a test can give the kernel the reference's). Public as
``rnnfast.reference.recurrent_masks``.
"""
import numpy as np

__all__ = ["recurrent_masks"]


def _check_rate(value, name):
    """A float in [0, 1) (a zoneout or dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a float in [0, 1), got {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value}")
    return float(value)


def _mask_shapes(gates, has_cell_state, T, B, H, P, zoneout, recurrent_dropout):
    """{mask name: shape} of the masks a training forward uses, in drawing order."""
    shapes = {}
    if zoneout > 0:
        shapes["zoneout_h"] = (T, B, P)
        if has_cell_state:
            shapes["zoneout_c"] = (T, B, H)
    if recurrent_dropout > 0:
        shapes["recurrent"] = (gates, B, P)
    return shapes


def recurrent_masks(op, T, B, H, *, proj_size=None, zoneout=0.0, recurrent_dropout=0.0,
                    seed=None):
    """The zoneout and recurrent dropout masks a training forward of ``op`` draws.

    op: "rnn", "lstm", "gru", "layer_norm_lstm" or "layer_norm_gru"; T, B, H the forward's
    sizes; proj_size P (the LSTM's ``w_hr.shape[0]``), default H. From
    ``np.random.default_rng(seed)``, in this order:

    - ``"zoneout_h"`` (T, B, P), when ``zoneout > 0``: 1.0 where the unit of h keeps its
      previous value, ``rng.random((T, B, P)) < zoneout``, else 0.0;
    - ``"zoneout_c"`` (T, B, H), likewise for the LSTMs' c;
    - ``"recurrent"`` (G, B, P), when ``recurrent_dropout > 0``: one mask per gate,
      ``(rng.random((G, B, P)) >= recurrent_dropout) / (1 - recurrent_dropout)``, the
      same at every step (time-major layout whatever ``batch_first``).

    Returns a dict (empty when both rates are 0). The same seed gives the same masks.
    """
    if op not in _CELL_KINDS:
        raise ValueError(f"op: expected one of {sorted(_CELL_KINDS)}, got {op!r}")
    gates, has_cell_state = _CELL_KINDS[op]
    zoneout = _check_rate(zoneout, "zoneout")
    recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
    P = H if proj_size is None else proj_size
    shapes = _mask_shapes(gates, has_cell_state, T, B, H, P, zoneout, recurrent_dropout)
    rng = np.random.default_rng(seed)
    masks = {}
    for name, shape in shapes.items():
        u = rng.random(shape)
        if name == "recurrent":
            masks[name] = (u >= recurrent_dropout) / (1.0 - recurrent_dropout)
        else:
            masks[name] = (u < zoneout).astype(np.float64)
    return masks


# op -> (gates, has a cell state)
_CELL_KINDS = {"rnn": (1, False), "lstm": (4, True), "gru": (3, False),
               "layer_norm_lstm": (4, True), "layer_norm_gru": (3, False)}
