"""Multi-layer, optionally bidirectional RNN, LSTM and GRU layers with PyTorch's interface.

``RNN``, ``LSTM`` and ``GRU`` take ``torch.nn``'s constructor arguments, keep their parameters
under PyTorch's names (``weight_ih_l0``, ``weight_hh_l0_reverse``, ``bias_ih_l1``, ...) with
PyTorch's shapes and initialisation (uniform in +-1/sqrt(hidden_size)), so a torch
``state_dict`` loads 1:1, and return what PyTorch returns:

- ``RNN`` / ``GRU``: ``output, h_n = layer(x, state=None, lengths=None)``
- ``LSTM``: ``output, (h_n, c_n) = layer(x, state=None, lengths=None)``

Shapes: x is ``(T, B, input_size)``, or ``(B, T, input_size)`` with ``batch_first``, or
``(T, input_size)`` unbatched; output has x's layout with ``num_directions * hidden_size``
features; states are ``(num_layers * num_directions, B, hidden_size)`` (``(L*D, H)``
unbatched), index ``layer * num_directions + direction``. ``lengths`` (B,) gives each sequence's
true length in a post-padded batch, as ``pack_padded_sequence`` does in PyTorch: outputs past a
sequence's end are zero, ``h_n`` holds the state at its last valid step, and the reverse
direction starts at that step. Unlike ``pad_packed_sequence``, the output keeps all T steps.

Every layer and direction is one call of a fused kernel (``rnnfast.functional``); dropout
(training mode only) acts on the output of every layer but the last, as in PyTorch.

``backward(dy=None, dstate=None)`` returns ``(dx, dstate0)``: ``dstate`` mirrors the state
forward returned (``h_n``, or ``(dh_n, dc_n)`` for an LSTM; ``None`` parts are zeros), and
``dstate0`` mirrors the ``state`` forward was given (``None`` when it was given none). Parameter
gradients are added to ``.grad``. What forward keeps for backward refers to its input and to
the weights without copying them: change neither in place in between.
"""
import warnings

import numpy as np

from rnnfast import functional as F
from rnnfast.nn.module import (
    Module,
    Parameter,
    as_array,
    as_float_input,
    check_dtype,
    check_grad,
    check_int,
    check_probability,
    make_rng,
)

__all__ = ["RNN", "LSTM", "GRU"]


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: parameters, stacking, directions, dropout.

    A subclass sets ``gates`` and ``has_cell_state`` and defines the kernel calls
    ``_cell_forward(x, w, h0, c0, **options) -> (y, h_n, c_n or None, ctx)`` and
    ``_cell_backward(ctx, dy, dh_n, dc_n) -> gradient dict``."""

    gates = 1
    has_cell_state = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, device=None, seed=None,
                 rng=None):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.input_size = check_int(input_size, "input_size", 1)
        self.hidden_size = check_int(hidden_size, "hidden_size", 1)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_probability(dropout, "dropout")
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        self.rng = make_rng(seed, rng)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={self.dropout} and num_layers={self.num_layers}",
                          UserWarning, stacklevel=2)
        D, H, GH = self.num_directions, self.hidden_size, self.gates * self.hidden_size
        self._weight_names = []  # per layer*D + direction: [w_ih, w_hh, b_ih, b_hh] names
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else D * H
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                shapes = [(GH, layer_input), (GH, H)]
                if self.bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    shapes += [(GH,), (GH,)]
                for name, shape in zip(names, shapes):
                    setattr(self, name, Parameter(np.zeros(shape, self.dtype)))
                self._weight_names.append(names)
        self.reset_parameters()

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def reset_parameters(self, rng=None):
        """PyTorch's initialisation: every weight and bias uniform in +-1/sqrt(hidden_size)."""
        rng = self.rng if rng is None else make_rng(rng=rng)
        bound = 1.0 / np.sqrt(self.hidden_size)
        for _, p in self.named_parameters():
            p.data[...] = rng.uniform(-bound, bound, size=p.shape)

    def _weights(self, k):
        """w_ih, w_hh, b_ih, b_hh arrays of layer-direction k (biases None without bias)."""
        arrays = [self._parameters[n].data for n in self._weight_names[k]]
        return arrays if self.bias else arrays + [None, None]

    # states -------------------------------------------------------------------------------
    def _state_shape(self, batch, unbatched):
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        return (LD, H) if unbatched else (LD, batch, H)

    def _check_state_array(self, value, name, batch, unbatched):
        arr = as_float_input(value, name, self.dtype)
        shape = self._state_shape(batch, unbatched)
        if arr.shape != shape:
            what = "(num_layers*num_directions, hidden_size)" if unbatched else \
                "(num_layers*num_directions, batch, hidden_size)"
            raise ValueError(f"{name}: expected shape {what} = {shape}, got {arr.shape}")
        return arr[:, None, :] if unbatched else arr

    def _split_state(self, state, batch, unbatched, name="state"):
        """The (h, c) arrays (L*D, B, H) of a state argument (c is None without a cell state).
        In a ``dstate`` either part of an LSTM's (h, c) may be None (zeros)."""
        if state is None:
            return None, None
        if not self.has_cell_state:
            if isinstance(state, (tuple, list)):
                raise TypeError(f"{name}: expected an array h of shape "
                                f"{self._state_shape(batch, unbatched)}, got a "
                                f"{type(state).__name__}")
            return self._check_state_array(state, name, batch, unbatched), None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"{name}: expected a tuple (h, c) of two arrays of shape "
                            f"{self._state_shape(batch, unbatched)}, got {type(state).__name__}")
        allow_none = name == "dstate"
        return tuple(None if s is None and allow_none else
                     self._check_state_array(s, f"{name}[{i}]", batch, unbatched)
                     for i, s in enumerate(state))

    def _dropout_mask(self, shape):
        if self.dropout >= 1.0:
            return np.zeros(shape, self.dtype)
        keep = self.rng.random(shape) >= self.dropout
        return keep.astype(self.dtype) / self.dtype.type(1.0 - self.dropout)

    # forward / backward -------------------------------------------------------------------
    def forward(self, x, state=None, lengths=None):
        x = as_float_input(x, "x", self.dtype)
        if x.ndim not in (2, 3):
            layout = "(batch, seq_len, input_size)" if self.batch_first else \
                "(seq_len, batch, input_size)"
            raise ValueError(f"x: expected a 3-D array {layout} or a 2-D unbatched array "
                             f"(seq_len, input_size), got shape {x.shape}")
        unbatched = x.ndim == 2
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected {self.input_size} features (input_size) on the last "
                             f"axis, got shape {x.shape}")
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths: must be None for an unbatched (2-D) x")
            x, batch_first = x[:, None, :], False
        else:
            batch_first = self.batch_first
        batch = x.shape[0] if batch_first else x.shape[1]
        h0, c0 = self._split_state(state, batch, unbatched)
        if lengths is not None:
            lengths = as_array(lengths)
        D, H = self.num_directions, self.hidden_size
        h_n = np.empty((self.num_layers * D, batch, H), self.dtype)
        c_n = np.empty_like(h_n) if self.has_cell_state else None
        ctxs, masks = [], []
        layer_input = x
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and self.training and self.dropout > 0:
                mask = self._dropout_mask(layer_input.shape)
                layer_input = layer_input * mask
            masks.append(mask)
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                y, h, c, ctx = self._cell_forward(
                    layer_input, self._weights(k), None if h0 is None else h0[k],
                    None if c0 is None else c0[k], lengths=lengths, reverse=direction == 1,
                    batch_first=batch_first, training=self.training)
                outputs.append(y)
                ctxs.append(ctx)
                h_n[k] = h
                if c_n is not None:
                    c_n[k] = c
            layer_input = outputs[0] if D == 1 else np.concatenate(outputs, axis=2)
        output = layer_input
        if unbatched:
            output, h_n = output[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        self._keep({"ctxs": ctxs, "masks": masks, "unbatched": unbatched, "batch": batch,
                    "has_state": state is not None, "out_shape": output.shape})
        if self.has_cell_state:
            return output, (h_n, c_n)
        return output, h_n

    def backward(self, dy=None, dstate=None):
        """Gradients of the last training forward: ``(dx, dstate0)``; parameter grads accumulate."""
        cache = self._saved()
        unbatched, batch = cache["unbatched"], cache["batch"]
        if dy is not None:
            dy = check_grad(dy, "dy", cache["out_shape"], self.dtype)
            if unbatched:
                dy = dy[:, None, :]
        dh, dc = self._split_state(dstate, batch, unbatched, "dstate")
        D, H = self.num_directions, self.hidden_size
        dh0 = np.empty((self.num_layers * D, batch, H), self.dtype) if cache["has_state"] else None
        dc0 = np.empty_like(dh0) if cache["has_state"] and self.has_cell_state else None
        grad_out = dy
        for layer in reversed(range(self.num_layers)):
            dx = None
            for direction in range(D):
                k = layer * D + direction
                dy_k = grad_out
                if grad_out is not None and D > 1:
                    dy_k = grad_out[..., direction * H:(direction + 1) * H]
                grads = self._cell_backward(cache["ctxs"][k], dy_k,
                                            None if dh is None else dh[k],
                                            None if dc is None else dc[k])
                for name, key in zip(self._weight_names[k], ("w_ih", "w_hh", "b_ih", "b_hh")):
                    self._parameters[name].accumulate(grads[key])
                if dx is None:
                    dx = grads["x"]
                else:
                    dx += grads["x"]
                if dh0 is not None:
                    dh0[k] = grads["h0"]
                if dc0 is not None:
                    dc0[k] = grads["c0"]
            if cache["masks"][layer] is not None:
                dx *= cache["masks"][layer]
            grad_out = dx
        if unbatched:
            grad_out = grad_out[:, 0]
            dh0 = None if dh0 is None else dh0[:, 0]
            dc0 = None if dc0 is None else dc0[:, 0]
        if dh0 is None:
            return grad_out, None
        return grad_out, ((dh0, dc0) if self.has_cell_state else dh0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s


class RNN(RNNBase):
    """Elman RNN, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with act ``tanh`` or ``relu``."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kwargs)
        self.nonlinearity = nonlinearity

    def _cell_forward(self, x, w, h0, c0, **options):
        y, h, ctx = F.rnn_forward(x, *w, h0, nonlinearity=self.nonlinearity, **options)
        return y, h, None, ctx

    def _cell_backward(self, ctx, dy, dh, dc):
        return F.rnn_backward(ctx, dy, dh)

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """LSTM with PyTorch's gates (i, f, g, o); returns ``output, (h_n, c_n)``."""

    gates = 4
    has_cell_state = True

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, **kwargs):
        if proj_size != 0:
            raise ValueError(f"proj_size: only 0 (no projection) is supported, got {proj_size!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kwargs)

    def _cell_forward(self, x, w, h0, c0, **options):
        return F.lstm_forward(x, *w, h0, c0, **options)

    def _cell_backward(self, ctx, dy, dh, dc):
        return F.lstm_backward(ctx, dy, dh, dc)


class GRU(RNNBase):
    """GRU with PyTorch's gates (r, z, n); ``reset_after=False`` gives Cho et al.'s cell
    (Keras ``reset_after=False``), which PyTorch does not have."""

    gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, reset_after=True, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kwargs)
        self.reset_after = bool(reset_after)

    def _cell_forward(self, x, w, h0, c0, **options):
        y, h, ctx = F.gru_forward(x, *w, h0, reset_after=self.reset_after, **options)
        return y, h, None, ctx

    def _cell_backward(self, ctx, dy, dh, dc):
        return F.gru_backward(ctx, dy, dh)

    def extra_repr(self):
        s = super().extra_repr()
        return s + ("" if self.reset_after else ", reset_after=False")
