"""Recurrent layers over whole sequences, backed by the fused C++ kernels (``rnnfast._C``).

Shapes (DESIGN.md): x (T, B, I), or (B, T, I) with ``batch_first``; y has x's layout with H
features; states h0, c0, h_n, c_n are (B, H). Weights in PyTorch's layout and gate order:
w_ih (G*H, I), w_hh (G*H, H), b_ih and b_hh (G*H,); G = 1 (RNN), 4 (LSTM: i, f, g, o),
3 (GRU: r, z, n). float32 or float64, one dtype per call. ``lengths`` (B,) gives each
sequence's valid steps in a post-padded batch; ``reverse`` runs each sequence backwards.
``training=True`` returns a ctx for the matching ``*_backward``, which returns a dict of
gradients keyed by the forward's argument names (None for arguments that were None).
All validation happens in the binding, before any kernel runs; the GIL is released inside.
"""
from rnnfast import _C

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
]


def rnn_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, nonlinearity="tanh",
                lengths=None, reverse=False, batch_first=False, training=False):
    """Elman RNN: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``. Returns ``(y, h_n, ctx)``."""
    y, h_n, _, ctx = _C.recurrent_forward(
        "rnn", x, w_ih, w_hh, b_ih, b_hh, h0, None, str(nonlinearity), True, lengths,
        bool(reverse), bool(batch_first), bool(training))
    return y, h_n, ctx


def rnn_backward(ctx, dy=None, dh_n=None):
    """Gradients of an ``rnn_forward(..., training=True)``: dict x, h0, w_ih, w_hh, b_ih, b_hh."""
    return _C.recurrent_backward("rnn", ctx, dy, dh_n, None)


def lstm_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, *, lengths=None,
                 reverse=False, batch_first=False, training=False):
    """LSTM (gates i, f, g, o). Returns ``(y, h_n, c_n, ctx)``."""
    return _C.recurrent_forward(
        "lstm", x, w_ih, w_hh, b_ih, b_hh, h0, c0, "tanh", True, lengths,
        bool(reverse), bool(batch_first), bool(training))


def lstm_backward(ctx, dy=None, dh_n=None, dc_n=None):
    """Gradients of an ``lstm_forward(..., training=True)``: dict x, h0, c0, w_ih, w_hh, b_ih, b_hh."""
    return _C.recurrent_backward("lstm", ctx, dy, dh_n, dc_n)


def gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, reset_after=True,
                lengths=None, reverse=False, batch_first=False, training=False):
    """GRU (gates r, z, n); ``reset_after`` True is PyTorch's cell, False Cho et al.'s.
    Returns ``(y, h_n, ctx)``."""
    y, h_n, _, ctx = _C.recurrent_forward(
        "gru", x, w_ih, w_hh, b_ih, b_hh, h0, None, "tanh", bool(reset_after), lengths,
        bool(reverse), bool(batch_first), bool(training))
    return y, h_n, ctx


def gru_backward(ctx, dy=None, dh_n=None):
    """Gradients of a ``gru_forward(..., training=True)``: dict x, h0, w_ih, w_hh, b_ih, b_hh."""
    return _C.recurrent_backward("gru", ctx, dy, dh_n, None)
