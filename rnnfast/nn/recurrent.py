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

Every layer and direction is one call of a fused kernel, run by
``rnnfast.functional.stack.RecurrentStack``; dropout (training mode only) acts on the output of
every layer but the last, as in PyTorch. ``zoneout=p`` (keyword, every layer; Krueger et al.):
in training each unit of h (and of the LSTM's c) keeps its previous value with probability p,
masks drawn from the layer's ``rng``; in evaluation the previous value weighs p.
``recurrent_dropout=p`` (keyword, every layer; Keras' ``recurrent_dropout``, Gal and
Ghahramani's variational dropout): in training each gate's recurrent product uses
``h_{t-1} * m_k`` with its own mask ``m_k`` (0 or ``1 / (1 - p)``, drawn from the layer's ``rng``
once per call and sequence, the same at every step); in evaluation nothing is dropped.

``backward(dy=None, dstate=None)`` returns ``(dx, dstate0)``: ``dstate`` mirrors the state
forward returned (``h_n``, or ``(dh_n, dc_n)`` for an LSTM; ``None`` parts are zeros), and
``dstate0`` mirrors the ``state`` forward was given (``None`` when it was given none). Parameter
gradients are added to ``.grad``. What forward keeps for backward refers to its input and to
the weights without copying them: change neither in place in between.

``precision="bfloat16"`` (float32 layers; the attribute ``precision`` may be changed later)
computes every matrix product, forward and backward, from bfloat16 operands with float32 sums
(``rnnfast.functional``'s ``precision``): parameters, states, outputs and gradients stay float32.
"""
import numpy as np

from rnnfast.functional.stack import RecurrentStack
from rnnfast.nn.module import (
    Module,
    Parameter,
    as_array,
    as_float_input,
    check_dtype,
    check_grad,
    check_layer_precision,
    make_rng,
)

__all__ = ["RNN", "LSTM", "GRU"]


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: the parameters of a ``RecurrentStack``
    (``rnnfast.functional.stack``, which runs the layers and directions), states, dropout.

    A subclass sets ``cell`` (a key of ``rnnfast.functional.stack.CELLS``) and passes its cell
    options to ``__init__``."""

    cell = "rnn"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype=np.float32, device=None, seed=None,
                 rng=None, precision="float32", **cell_options):
        super().__init__()
        if device not in (None, "cpu"):
            raise ValueError(f"device: only 'cpu' is supported, got {device!r}")
        self.stack = RecurrentStack(self.cell, input_size, hidden_size, num_layers, bias=bias,
                                    bidirectional=bidirectional, dropout=dropout, stacklevel=3,
                                    **cell_options)
        self.dtype = check_dtype(dtype)
        self.precision = precision
        self.input_size = self.stack.input_size
        self.hidden_size = self.stack.hidden_size
        self.num_layers = self.stack.num_layers
        self.bias = self.stack.bias
        self.batch_first = bool(batch_first)
        self.dropout = self.stack.dropout
        self.bidirectional = self.stack.bidirectional
        self.zoneout = self.stack.options.get("zoneout", 0.0)
        self.recurrent_dropout = self.stack.options.get("recurrent_dropout", 0.0)
        self.rng = make_rng(seed, rng)
        for name, shape in self.stack.shapes.items():
            setattr(self, name, Parameter(np.zeros(shape, self.dtype)))
        self.reset_parameters()

    @property
    def precision(self):
        """``"float32"`` or ``"bfloat16"``: the precision of the kernels' products."""
        return self.stack.precision

    @precision.setter
    def precision(self, value):
        self.stack.precision = check_layer_precision(value, self.dtype)

    @property
    def num_directions(self):
        return self.stack.num_directions

    @property
    def has_cell_state(self):
        return self.stack.has_cell_state

    def reset_parameters(self, rng=None):
        """PyTorch's initialisation: every weight and bias uniform in +-1/sqrt(hidden_size)."""
        rng = self.rng if rng is None else make_rng(rng=rng)
        bound = 1.0 / np.sqrt(self.hidden_size)
        for _, p in self.named_parameters():
            p.data[...] = rng.uniform(-bound, bound, size=p.shape)

    def weight_arrays(self):
        """``{name: array}`` of every parameter (the arrays themselves, not copies)."""
        return {name: self._parameters[name].data for name in self.stack.shapes}

    # states -------------------------------------------------------------------------------
    def _state_shape(self, batch, unbatched, cell_part=False):
        """h's shape (c's when cell_part): proj_size features (h with a projection) or H."""
        LD, _, H = (self.stack.cell_state_shape if cell_part else self.stack.state_shape)(batch)
        return (LD, H) if unbatched else (LD, batch, H)

    def _check_state_array(self, value, name, batch, unbatched, cell_part=False):
        arr = as_float_input(value, name, self.dtype)
        shape = self._state_shape(batch, unbatched, cell_part)
        if arr.shape != shape:
            size = "proj_size" if self.stack.proj_size and not cell_part else "hidden_size"
            what = f"(num_layers*num_directions, {size})" if unbatched else \
                f"(num_layers*num_directions, batch, {size})"
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
                     self._check_state_array(s, f"{name}[{i}]", batch, unbatched, i == 1)
                     for i, s in enumerate(state))

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
        masks = None
        if self.training and self.dropout > 0:
            out_shape = x.shape[:-1] + (self.stack.output_size,)
            masks = self.stack.dropout_masks(out_shape, self.dtype, self.rng)
        seeds = None
        if self.training and (self.zoneout > 0 or self.recurrent_dropout > 0):
            # one seed per layer and direction
            seeds = [int(v) for v in self.rng.integers(0, 2 ** 63 - 1,
                                                       size=len(self.stack.names))]
        output, h_n, c_n, ctx = self.stack.forward(
            self.weight_arrays(), x, h0, c0, lengths=lengths, batch_first=batch_first,
            training=self.training, masks=masks, seeds=seeds)
        if unbatched:
            output, h_n = output[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        self._keep({"ctx": ctx, "unbatched": unbatched, "batch": batch,
                    "out_shape": output.shape})
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
        dx, dh0, dc0, grads = self.stack.backward(cache["ctx"], dy, dh, dc)
        for name, grad in grads.items():
            self._parameters[name].accumulate(grad)
        if unbatched:
            dx = dx[:, 0]
            dh0 = None if dh0 is None else dh0[:, 0]
            dc0 = None if dc0 is None else dc0[:, 0]
        if dh0 is None:
            return dx, None
        return dx, ((dh0, dc0) if self.has_cell_state else dh0)

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
        if self.zoneout:
            s += f", zoneout={self.zoneout}"
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        if self.precision != "float32":
            s += f", precision={self.precision!r}"
        return s


class RNN(RNNBase):
    """Elman RNN, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with act ``tanh`` or ``relu``."""

    cell = "rnn"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, zoneout=0.0,
                 recurrent_dropout=0.0, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, nonlinearity=nonlinearity, zoneout=zoneout,
                         recurrent_dropout=recurrent_dropout, **kwargs)
        self.nonlinearity = nonlinearity

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """LSTM with PyTorch's gates (i, f, g, o); returns ``output, (h_n, c_n)``.

    ``proj_size`` P > 0 (< hidden_size) is PyTorch's projection: ``h = W_hr (o * tanh(c))``
    with ``weight_hr_l{k}`` (P, hidden_size); the output and h0/h_n then have P features per
    direction (c keeps hidden_size). ``peephole=True`` adds ``weight_peephole_l{k}``
    (3, hidden_size) per layer and direction, rows ``p_i, p_f, p_o`` (ONNX's LSTM with its P
    input): ``i = sigmoid(... + p_i * c)``, ``f = sigmoid(... + p_f * c)``,
    ``o = sigmoid(... + p_o * c')``."""

    cell = "lstm"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, peephole=False, zoneout=0.0,
                 recurrent_dropout=0.0, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size=proj_size, peephole=peephole, zoneout=zoneout,
                         recurrent_dropout=recurrent_dropout, **kwargs)
        self.proj_size = self.stack.proj_size
        self.peephole = self.stack.options["peephole"]

    def extra_repr(self):
        s = super().extra_repr()
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s + (", peephole=True" if self.peephole else "")


class GRU(RNNBase):
    """GRU with PyTorch's gates (r, z, n); ``reset_after=False`` gives Cho et al.'s cell
    (Keras ``reset_after=False``), which PyTorch does not have."""

    cell = "gru"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, reset_after=True, zoneout=0.0,
                 recurrent_dropout=0.0, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, reset_after=reset_after, zoneout=zoneout,
                         recurrent_dropout=recurrent_dropout, **kwargs)
        self.reset_after = self.stack.options["reset_after"]

    def extra_repr(self):
        s = super().extra_repr()
        return s + ("" if self.reset_after else ", reset_after=False")
