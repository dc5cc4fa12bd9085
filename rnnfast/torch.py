"""``torch.nn.RNN``, ``LSTM`` and ``GRU`` drop-ins backed by rnnfast's fused CPU kernels.

Needs PyTorch (``pip install rnnfast[torch]``); ``import rnnfast`` alone never imports it.

``RNN``, ``LSTM`` and ``GRU`` here take torch.nn's constructor arguments, hold their
parameters under torch.nn's names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) with
torch.nn's initialisation (uniform in ±1/sqrt(hidden_size), drawn in the same order, so one
seed gives the same weights), load and give ``state_dict`` s 1:1 with torch.nn, and return
from ``forward(input, hx=None)`` what torch.nn returns: batched ``(T, B, I)`` /
``(B, T, I)`` and unbatched ``(T, I)`` tensors, or a ``PackedSequence`` (given back as a
``PackedSequence`` with the same sorting indices). Inter-layer dropout applies in training
mode to the output of every layer but the last, as in torch.nn.

Each layer and direction is one call of the fused kernel, all of them run by
``rnnfast.functional.stack.RecurrentStack`` inside one ``torch.autograd.Function``: CPU
tensors are handed over as NumPy views (no copies for contiguous tensors), the kernels' ctx is
kept for the backward pass, and the kernels' result arrays become tensors without copies
(``torch.from_numpy``; the states stacked over layers are copies). Without autograd
(``torch.no_grad()``, or nothing requiring a gradient) the kernels run in inference mode and
keep nothing. ``RecurrentFunction`` is the same for one layer and direction.

Fast path and fallback. The kernels run when the input, the initial states and every
parameter are CPU tensors of one dtype, float32 or float64, and autocast is off. Anything
else (float16, bfloat16, CUDA or any other device, autocast) falls back to PyTorch's own
implementation (``torch._VF``, what torch.nn calls) with the same parameters, and warns once
per process for each device type and dtype (``RuntimeWarning``). An input or state whose
dtype differs from the parameters' raises ``TypeError`` (except under autocast). An empty
batch (B = 0) gives torch's empty results without a warning.

The kernels run ``rnnfast.set_num_threads`` threads (not torch's count), on PyTorch's own
OpenMP threads when it has them (``rnnfast.set_thread_pool``), else on rnnfast's pool.
``torch.func.functional_call``, ``copy.deepcopy``, pickling, ``torch.inference_mode`` and
``DistributedDataParallel`` work as with torch.nn; ``torch.compile`` runs the layers eagerly
(Dynamo breaks the graph at the kernel call).

Differences from torch.nn, all raising instead of computing something else:
``proj_size > 0`` is a ``ValueError``; wrong shapes are ``ValueError`` (torch.nn raises
``RuntimeError`` for some of them); backward is once-differentiable: differentiating a
gradient taken with ``create_graph=True`` raises ``RuntimeError``;
TorchScript is not supported. The kernel's ctx (the saved activations) is freed by the
backward pass unless it retains the graph, like torch's saved tensors.
"""
import math
import numbers
import warnings

import torch
from torch import _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnfast import _config
from rnnfast.functional.stack import (
    CELLS,
    RecurrentStack,
    cell_backward,
    cell_forward,
    cell_options,
)

# The kernels run on PyTorch's OpenMP threads, which otherwise spin after each torch op on the
# cores the kernels need (rnnfast.set_thread_pool; 'rnnfast' turns it off).
_config._use_openmp_of(torch)

__all__ = ["RNN", "LSTM", "GRU", "RecurrentFunction"]

_FAST_DTYPES = (torch.float32, torch.float64)
# torch.nn's mode: (rnnfast cell, its options)
_CELLS = {"RNN_TANH": ("rnn", {"nonlinearity": "tanh"}),
          "RNN_RELU": ("rnn", {"nonlinearity": "relu"}),
          "LSTM": ("lstm", {}), "GRU": ("gru", {"reset_after": True})}
_VF_FUNCTIONS = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}
_STATE_NAMES = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")
_WEIGHT_KEYS = _STATE_NAMES[3:]
_warned_fallbacks = set()


def _numpy_view(tensor):
    """A NumPy array over the tensor's memory (a copy only when it is not contiguous)."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.resolve_neg().resolve_conj().numpy()


def _keep_graph():
    """Whether the running backward pass keeps the graph (``retain_graph=True``); True when
    torch cannot tell, which keeps the kernel's ctx alive as long as the graph."""
    keep = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if keep is None else bool(keep())


class _NoSecondDerivative(torch.autograd.Function):
    """Hands the gradients of a backward run under ``create_graph=True`` on, with a graph
    whose backward raises: the kernels' gradients are not differentiable themselves."""

    @staticmethod
    def forward(ctx, grads, *anchors):
        return tuple(grads)

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise RuntimeError("rnnfast.torch: second derivatives are not supported (the kernels' "
                           "backward pass is not itself differentiable): a gradient taken with "
                           "create_graph=True through an rnnfast.torch layer cannot be "
                           "differentiated again; use torch.nn's layers for double backward")


def _forward(ctx, run, tensors):
    """The forward of the Functions below: ``run(arrays) -> (output arrays, kernel ctx)`` on
    NumPy views of ``tensors``; keeps what ``_backward`` needs."""
    outputs, kernel_ctx = run([_numpy_view(t) for t in tensors])
    ctx.kernel_ctx = kernel_ctx
    # The kernels' ctx reads x and the weights in place: saving them lets autograd refuse a
    # backward after they were modified in place.
    ctx.save_for_backward(*tensors)
    ctx.set_materialize_grads(False)
    return tuple(torch.from_numpy(a) for a in outputs)


def _backward(ctx, run, grad_outputs):
    """The backward of the Functions below: ``run(kernel ctx, grad arrays)`` gives the
    gradient arrays of the tensors given to ``_forward`` (None where there is none)."""
    saved = ctx.saved_tensors  # raises if an input was modified in place since the forward
    grads = run(ctx.kernel_ctx, [_numpy_view(g) for g in grad_outputs])
    if not _keep_graph():
        ctx.kernel_ctx = None  # frees the saved activations now, as torch frees its own
    skip = len(ctx.needs_input_grad) - len(saved)
    result = tuple(torch.from_numpy(g) if need and g is not None else None
                   for g, need in zip(grads, ctx.needs_input_grad[skip:]))
    if torch.is_grad_enabled():  # create_graph=True: differentiating these must fail loudly
        anchors = [t for t in saved if t is not None and t.requires_grad]
        if anchors:
            result = _NoSecondDerivative.apply(result, *anchors)
    return (None,) * skip + tuple(result)


class RecurrentFunction(torch.autograd.Function):
    """One recurrent layer in one direction over a whole sequence, on the rnnfast kernels.

    ``RecurrentFunction.apply(cell, nonlinearity, lengths, reverse, batch_first,
    x, h0, c0, w_ih, w_hh, b_ih, b_hh)`` with ``cell`` one of "rnn", "lstm", "gru"
    (PyTorch's GRU), ``nonlinearity`` "tanh" or "relu" (RNN only), ``lengths`` a NumPy int
    array (B,) or None, ``x`` (T, B, I) or (B, T, I) with ``batch_first``, states (B, H) or
    None (zeros), weights in torch.nn's layout. Returns ``(y, h_n)``, plus ``c_n`` for the LSTM.
    Contiguous CPU float32/float64 tensors of one dtype only.
    """

    @staticmethod
    def forward(ctx, cell, nonlinearity, lengths, reverse, batch_first,
                x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        spec = CELLS[cell]
        options = cell_options(cell, **({"nonlinearity": nonlinearity} if cell == "rnn" else {}))

        def run(arrays):
            x, h0, c0, *weights = arrays
            y, h_n, c_n, kernel_ctx = cell_forward(
                spec, x, dict(zip(_WEIGHT_KEYS, weights)), h0, c0, options, lengths=lengths,
                reverse=reverse, batch_first=batch_first, training=True)
            return (y, h_n) + ((c_n,) if spec.has_cell_state else ()), kernel_ctx

        ctx.cell = spec
        return _forward(ctx, run, (x, h0, c0, w_ih, w_hh, b_ih, b_hh))

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        def run(kernel_ctx, grads):
            g = cell_backward(ctx.cell, kernel_ctx, *grads)
            return [g.get(name) for name in _STATE_NAMES]

        return _backward(ctx, run, (dy, dh_n, dc_n)[:3 if ctx.cell.has_cell_state else 2])


class _StackFunction(torch.autograd.Function):
    """A whole ``RecurrentStack`` (every layer and direction) on the rnnfast kernels:
    ``apply(stack, lengths, batch_first, masks, x, h0, c0, *weights)`` with the weights in
    ``stack.shapes`` order, states ``stack.state_shape(B)`` or None, ``masks`` the inter-layer
    dropout masks (NumPy) or None. Returns ``(y, h_n)``, plus ``c_n`` for the LSTM."""

    @staticmethod
    def forward(ctx, stack, lengths, batch_first, masks, x, h0, c0, *weights):
        def run(arrays):
            x, h0, c0, *weights = arrays
            y, h_n, c_n, kernel_ctx = stack.forward(
                dict(zip(stack.shapes, weights)), x, h0, c0, lengths=lengths,
                batch_first=batch_first, training=True, masks=masks)
            return (y, h_n) + ((c_n,) if stack.has_cell_state else ()), kernel_ctx

        ctx.stack = stack
        return _forward(ctx, run, (x, h0, c0, *weights))

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        stack = ctx.stack

        def run(kernel_ctx, grads):
            dx, dh0, dc0, by_name = stack.backward(kernel_ctx, *grads)
            return [dx, dh0, dc0] + [by_name[name] for name in stack.shapes]

        return _backward(ctx, run, (dy, dh_n, dc_n)[:3 if stack.has_cell_state else 2])


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


class _RecurrentBase(torch.nn.Module):
    """What RNN, LSTM and GRU share: parameters, validation and the two execution paths."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None,
                 dtype=None):
        super().__init__()
        _check_bool("bias", bias)
        _check_bool("batch_first", batch_first)
        _check_bool("bidirectional", bidirectional)
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError(f"dropout: expected a number in [0, 1] (the probability of an "
                             f"element being zeroed), got {dropout!r}")
        cell, options = _CELLS[mode]
        self._stack = RecurrentStack(cell, input_size, hidden_size, num_layers, bias=bias,
                                     bidirectional=bidirectional, dropout=dropout, stacklevel=3,
                                     **options)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        for name, shape in self._stack.shapes.items():
            setattr(self, name, torch.nn.Parameter(torch.empty(shape, device=device,
                                                               dtype=dtype)))
        self._flat_weights_names = list(self._stack.shapes)
        self._all_weights = self._stack.names
        self.reset_parameters()

    def reset_parameters(self):
        """torch.nn's initialisation: every parameter uniform in ±1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            torch.nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self):
        """Kept for torch.nn compatibility; the parameters need no flattening here."""

    @property
    def all_weights(self):
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _flat_weights(self):
        return [getattr(self, name) for name in self._flat_weights_names]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # forward: parse and check the arguments, then run on the kernels or on torch.

    def forward(self, input, hx=None):
        """torch.nn's forward: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for the LSTM."""
        is_lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        if packed:
            x, batch_sizes, sorted_indices, unsorted_indices = input
            batch, batched = int(batch_sizes[0]), True
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"input: expected a Tensor or a PackedSequence, got "
                                f"{type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"input: expected a 3-D (batched) or 2-D (unbatched) tensor, "
                                 f"got shape {tuple(input.shape)}")
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
            batch = x.size(0 if self.batch_first else 1)
            batch_sizes = sorted_indices = unsorted_indices = None
        if x.size(-1) != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features (input_size) in the "
                             f"last dimension, got shape {tuple(x.shape)}")
        states = self._parse_states(hx, batched, batch)
        if batch == 0:  # an empty batch gives empty results, as torch computes them
            output, new_states = self._torch_layers(x, states)
        elif self._use_kernels(x, states):
            if packed:
                output, new_states = self._kernel_packed(input, states)
            else:
                output, new_states = self._kernel_layers(x, states, None, self.batch_first)
        else:
            if packed:
                output, new_states = self._torch_packed(input, states)
            else:
                output, new_states = self._torch_layers(x, states)
        if not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            new_states = tuple(s.squeeze(1) for s in new_states)
        return output, (new_states if is_lstm else new_states[0])

    def _parse_states(self, hx, batched, batch):
        """The initial states as a tuple of (L*D, B, H) tensors ((h0,) or (h0, c0)), or None."""
        if hx is None:
            return None
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h_0, c_0) of tensors, got "
                                f"{type(hx).__name__}")
            states = tuple(hx)
        else:
            states = (hx,)
        names = self._state_names()
        expected = self._stack.state_shape(batch)
        result = []
        for name, state in zip(names, states):
            if not isinstance(state, torch.Tensor):
                raise TypeError(f"{name}: expected a Tensor, got {type(state).__name__}")
            if state.dim() != (3 if batched else 2):
                raise ValueError(f"{name}: expected a {3 if batched else 2}-D tensor for "
                                 f"{'batched 3-D' if batched else 'unbatched 2-D'} input, got "
                                 f"shape {tuple(state.shape)}")
            state = state if batched else state.unsqueeze(1)
            if tuple(state.shape) != expected:
                want = expected if batched else (expected[0], expected[2])
                got = tuple(state.shape) if batched else (state.shape[0], state.shape[2])
                raise ValueError(f"{name}: expected shape {want} (num_layers * num_directions, "
                                 f"{'batch, ' if batched else ''}hidden_size), got {got}")
            result.append(state)
        return tuple(result)

    def _state_names(self):
        return ("hx[0] (h_0)", "hx[1] (c_0)") if self.mode == "LSTM" else ("hx",)

    def _use_kernels(self, x, states):
        """True for the kernel path; warns once before a fallback to torch's implementation."""
        params = self._flat_weights()
        dtype, device = params[0].dtype, params[0].device
        autocast = any(torch.amp.is_autocast_available(d) and torch.is_autocast_enabled(d)
                       for d in {"cpu", device.type, x.device.type})
        if not autocast:
            named = [("input", x), *zip(self._state_names(), states or ())]
            for name, tensor in named:
                if tensor.dtype != dtype:
                    raise TypeError(f"{name}: expected dtype {dtype} (the parameters' dtype), "
                                    f"got {tensor.dtype}; convert it with .to({dtype}) or the "
                                    f"module with .to({tensor.dtype})")
        tensors = [x, *(states or ()), *params]
        other = next((t for t in tensors if t.device.type != "cpu" or t.dtype != dtype), None)
        if not autocast and other is None and dtype in _FAST_DTYPES:
            return True
        other = params[0] if other is None else other
        key = "autocast" if autocast else (other.device.type, other.dtype)
        if key not in _warned_fallbacks:
            _warned_fallbacks.add(key)
            why = ("autocast is enabled" if autocast
                   else f"tensors are {other.dtype} on {other.device.type}")
            warnings.warn(f"rnnfast.torch.{type(self).__name__}: {why}; the rnnfast kernels take "
                          "CPU float32/float64 tensors only, so PyTorch's own implementation "
                          "runs instead (warned once)", RuntimeWarning, stacklevel=3)
        return False

    def _kernel_layers(self, x, states, lengths, batch_first):
        """All layers and directions on the kernels; returns (output, (h_n[, c_n]))."""
        stack = self._stack
        masks = None
        if self.dropout > 0 and self.training and self.num_layers > 1:
            # torch's dropout draws, in torch.nn's order (one mask per layer but the last)
            ones = torch.ones(x.shape[:-1] + (stack.output_size,), dtype=x.dtype)
            masks = [torch.nn.functional.dropout(ones, self.dropout, True).numpy()
                     for _ in range(self.num_layers - 1)]
        h0, c0 = (tuple(states) + (None,))[:2] if states is not None else (None, None)
        tensors = (x, h0, c0, *self._flat_weights())
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
            results = _StackFunction.apply(stack, lengths, batch_first, masks, *tensors)
        else:
            x, h0, c0, *weights = [_numpy_view(t) for t in tensors]
            results = stack.forward(dict(zip(stack.shapes, weights)), x, h0, c0,
                                    lengths=lengths, batch_first=batch_first, masks=masks)[:3]
            results = [torch.from_numpy(a) for a in results if a is not None]
        return results[0], tuple(results[1:])

    def _kernel_packed(self, packed, states):
        """A PackedSequence on the kernels: unpack, run with lengths, pack as torch.nn does."""
        _, batch_sizes, sorted_indices, unsorted_indices = packed
        padded, lengths = pad_packed_sequence(packed)  # (T, B, I) in the caller's batch order
        output, new_states = self._kernel_layers(padded, states, lengths.numpy(), False)
        if sorted_indices is not None:
            output = output.index_select(1, sorted_indices)
            lengths = lengths.index_select(0, sorted_indices.cpu())
        data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
        return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices), new_states

    def _zero_states(self, like, batch):
        shape = self._stack.state_shape(batch)
        count = 2 if self.mode == "LSTM" else 1
        return tuple(torch.zeros(shape, dtype=like.dtype, device=like.device)
                     for _ in range(count))

    def _call_vf(self, *args):
        result = getattr(_VF, _VF_FUNCTIONS[self.mode])(*args)
        return result[0], tuple(result[1:])

    def _torch_args(self):
        return (self._flat_weights(), self.bias, self.num_layers, self.dropout, self.training,
                self.bidirectional)

    def _torch_layers(self, x, states):
        """The fallback: torch's implementation (what torch.nn calls), same parameters."""
        if states is None:
            states = self._zero_states(x, x.size(0 if self.batch_first else 1))
        hx = states if self.mode == "LSTM" else states[0]
        return self._call_vf(x, hx, *self._torch_args(), self.batch_first)

    def _torch_packed(self, packed, states):
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        if states is None:
            states = self._zero_states(data, int(batch_sizes[0]))
        elif sorted_indices is not None:
            states = tuple(s.index_select(1, sorted_indices) for s in states)
        hx = states if self.mode == "LSTM" else states[0]
        output, new_states = self._call_vf(data, batch_sizes, hx, *self._torch_args())
        if unsorted_indices is not None:
            new_states = tuple(s.index_select(1, unsorted_indices) for s in new_states)
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), new_states


class RNN(_RecurrentBase):
    """``torch.nn.RNN`` on the rnnfast kernels: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``,
    act = tanh or relu. Returns ``(output, h_n)``."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(modes[nonlinearity], input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device, dtype)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class LSTM(_RecurrentBase):
    """``torch.nn.LSTM`` on the rnnfast kernels (gates i, f, g, o), without projections.
    Returns ``(output, (h_n, c_n))``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        if proj_size != 0:
            raise ValueError(f"proj_size: rnnfast.torch.LSTM has no projections, expected 0, got "
                             f"{proj_size!r}; use torch.nn.LSTM for proj_size > 0")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)


class GRU(_RecurrentBase):
    """``torch.nn.GRU`` on the rnnfast kernels (gates r, z, n; reset applied after the
    recurrent product, as in torch.nn). Returns ``(output, h_n)``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)
