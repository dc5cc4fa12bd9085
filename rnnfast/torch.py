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

The classes subclass ``torch.nn.RNNBase`` (not ``torch.nn.LSTM`` itself: Dynamo refuses to
trace those), so torch.nn's constructor checks, ``_flat_weights``, ``all_weights``,
``flatten_parameters``, weight norm and pruning behave as on torch.nn.

The kernels are the PyTorch operators ``torch.ops.rnnfast.recurrent_stack`` and
``recurrent_stack_backward`` (``rnnfast._torch_ops``, registered on import of this module):
``torch.compile(model, fullgraph=True)`` (dynamic T and B), ``torch.export.export`` and
``torch.jit.trace`` see one operator call per recurrent layer stack. In eager mode the same
computations run without the dispatcher: CPU tensors are handed over as NumPy views (no copies
for contiguous tensors), the kernels' result arrays become tensors without copies, and the
kernels' saved activations are kept for the backward pass and freed with the graph. Without
autograd (``torch.no_grad()``, or nothing requiring a gradient) the kernels keep nothing.
``RecurrentFunction`` is one layer and direction.

Fast path and fallback. The kernels run when the input, the initial states and every
parameter are CPU tensors of one dtype, float32, float64 or bfloat16, and no ``torch.func``
transform is active; inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` also with float32
parameters and float32 or bfloat16 inputs. bfloat16 tensors and autocast regions run the
bfloat16 kernels (``precision="bfloat16"``: products from bfloat16 operands with float32 sums,
gate math and cell state in float32) with autocast's semantics: under autocast the input and
states are cast to bfloat16 and the parameters stay float32 (their gradients are float32); the
outputs have the dtype torch.nn gives them: bfloat16 for the RNN and for the LSTM on a tensor,
the parameters' dtype for the GRU and for the LSTM on a ``PackedSequence`` (there torch's
autocast casts only the inner products to bfloat16). Other dtypes, devices, autocast with another dtype (float16) and ``torch.func`` fall back
to torch.nn's own forward with the same parameters and warn once per reason
(``RuntimeWarning``); bad arguments get torch.nn's own errors.

bfloat16 inference packs the weights into bfloat16 at every call (5-10% of a large LSTM call),
unless ``keep_bf16_packings(True)`` was called: then inference (nothing records a gradient)
keeps the packings from call to call while the parameters are unchanged (the kernels'
``weights_token``, derived from each parameter's ``_version``, memory and storage): any write
torch's version counter sees (an optimizer step, ``load_state_dict``, an in-place op on the
parameter or a view of it) and any ``.data =`` assignment repacks, but writes that bypass the
counter, as they bypass autograd's checks (in-place ops on ``p.data`` such as
``p.data.copy_(...)``, writes through a NumPy view), are not seen: off by default, so that
such code never gets results from old weights (docs/DECISIONS.md).

The kernels run ``rnnfast.set_num_threads`` threads (not torch's count), on PyTorch's own
OpenMP threads when it has them (``rnnfast.set_thread_pool``), else on rnnfast's pool.
``torch.func.functional_call``, ``copy.deepcopy``, pickling, ``torch.inference_mode`` and
``DistributedDataParallel`` work as with torch.nn.

``LSTM(..., proj_size=P)`` is torch.nn's LSTM with projections (``weight_hr_l{k}``), on the
kernels too.

Differences from torch.nn, all raising instead of computing something else: backward is
once-differentiable: differentiating a
gradient taken with ``create_graph=True`` raises ``RuntimeError``; ``torch.jit.script`` is not
supported.
"""
import warnings

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnfast import _config
from rnnfast._torch_ops import (EagerStack, autocast_arguments, bf16_autocast,
                                keep_bf16_packings, recurrent_stack, run_stack)

# The kernels run on PyTorch's OpenMP threads, which otherwise spin after each torch op on the
# cores the kernels need (rnnfast.set_thread_pool; 'rnnfast' turns it off).
_config._use_openmp_of(torch)

__all__ = ["RNN", "LSTM", "GRU", "RecurrentFunction", "keep_bf16_packings"]

_FLOAT32 = torch.float32
_FAST_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
# under CPU autocast with bfloat16: the dtypes of the parameters, and of the input and states
_AUTOCAST_DTYPES = (torch.float32, torch.bfloat16)
_warned_fallbacks = set()
# What forward reads on every call, bound once. torch.jit.is_tracing and
# torch.compiler.is_compiling are Python functions that call a second one. Under torch.compile
# each name forward reads is a guard the compiled call checks (after a long kernel, with cold
# caches): one bound function is one guard, `torch._C.f` three (torch, torch._C, f), and
# `torch.ops.rnnfast.recurrent_stack` four.
_is_compiling, _is_exporting = torch.compiler.is_compiling, torch.compiler.is_exporting
_is_tracing = torch._C._is_tracing
_is_grad_enabled, _is_autocast_enabled = torch.is_grad_enabled, torch.is_autocast_enabled
_functorch_active = torch._C._are_functorch_transforms_active
_Tensor = torch.Tensor


def _stack_call(x, h0, c0, weights, masks, lengths, config, need_grad):
    """``(y, h_n, c_n)`` of ``torch.ops.rnnfast.recurrent_stack`` (c_n None without a cell
    state). Compiled programs call the operator; eager calls its computation directly
    (``EagerStack`` when a gradient is needed), which skips the dispatcher's per-call cost.
    Traced (``torch.jit.trace``) and exported programs keep no activations
    (``training=False``): a backward through them runs the forward again, so their graph does
    not depend on grad mode. Under CPU autocast with bfloat16, ``x``, the states and the masks
    are cast to bfloat16 first (``autocast_arguments``; in eager code a float32 ``x`` is not:
    the kernels round it to bfloat16 themselves, the same numbers); the outputs of the GRU,
    and of the LSTM with ``lengths`` (a PackedSequence), are cast back to the parameters'
    dtype, as torch's autocast gives them (float32 outputs of bfloat16 products)."""
    dtype = weights[0].dtype
    if _is_compiling():  # torch.compile, and torch.export (which sets both flags)
        if _is_autocast_enabled("cpu"):  # (outside autocast: no guards on autocast_arguments)
            x, h0, c0, masks = autocast_arguments(x, h0, c0, masks)
        y, h_n, c_n, _ = recurrent_stack(x, h0, c0, weights, masks, lengths, *config,
                                         need_grad and not _is_exporting())
    elif _is_tracing():  # torch.jit.trace (torch.jit.is_tracing outside TorchScript)
        x, h0, c0, masks = autocast_arguments(x, h0, c0, masks)
        y, h_n, c_n, _ = recurrent_stack(x, h0, c0, weights, masks, lengths, *config, False)
    else:
        # eager: a float32 x goes to the kernels as it is (run_stack's `autocast`: they round
        # it as autocast's cast would, so the cast and the copy back to float32 are saved)
        autocast = False
        if bf16_autocast():
            autocast = x.dtype == torch.float32
            x, h0, c0, masks = autocast_arguments(x, h0, c0, masks, cast_x=not autocast)
        if need_grad:
            y, h_n, c_n = EagerStack.apply((config, masks, lengths, autocast), x, h0, c0,
                                           *weights)
        else:
            y, h_n, c_n, _ = run_stack(x, h0, c0, weights, masks, lengths, *config, False,
                                       autocast=autocast)
    if y.dtype != dtype and (config[0] == "gru" or config[0] == "lstm" and lengths is not None):
        y, h_n, c_n = y.to(dtype), h_n.to(dtype), c_n.to(dtype)
    return y, h_n, (c_n if config[0] == "lstm" else None)


def _needs_grad(tensors):
    """True when autograd records: grad mode on and a tensor (None skipped) requires grad."""
    if _is_grad_enabled():
        for t in tensors:
            if t is not None and t.requires_grad:
                return True
    return False


class RecurrentFunction:
    """One recurrent layer in one direction over a whole sequence, on the rnnfast kernels
    (``torch.ops.rnnfast.recurrent_stack`` with one layer).

    ``RecurrentFunction.apply(cell, nonlinearity, lengths, reverse, batch_first,
    x, h0, c0, w_ih, w_hh, b_ih, b_hh)`` with ``cell`` one of "rnn", "lstm", "gru"
    (PyTorch's GRU), ``nonlinearity`` "tanh" or "relu" (RNN only), ``lengths`` an int array
    or tensor (B,) or None, ``x`` (T, B, I) or (B, T, I) with ``batch_first``, states (B, H)
    or None (zeros), weights in torch.nn's layout, the biases both given or both None.
    Returns ``(y, h_n)``, plus ``c_n`` for the LSTM. CPU float32/float64/bfloat16 tensors of
    one dtype (bfloat16: the bfloat16 kernels); under ``torch.autocast("cpu",
    dtype=torch.bfloat16)`` as described in the module's docstring.
    """

    @staticmethod
    def apply(cell, nonlinearity, lengths, reverse, batch_first, x, h0, c0, w_ih, w_hh, b_ih,
              b_hh):
        if (b_ih is None) != (b_hh is None):
            raise ValueError("b_ih, b_hh: expected both tensors or both None, got "
                             f"{'b_hh' if b_ih is None else 'b_ih'} alone")
        if lengths is not None and not isinstance(lengths, torch.Tensor):
            lengths = torch.as_tensor(lengths)
        weights = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
        states = [None if s is None else s.unsqueeze(0) for s in (h0, c0)]
        config = (cell, nonlinearity, w_hh.shape[1], 0, 1, b_ih is not None, False,
                  bool(reverse), bool(batch_first))
        need_grad = _needs_grad((x, *states, *weights))
        y, h_n, c_n = _stack_call(x, *states, weights, [], lengths, config, need_grad)
        return (y, h_n[0]) + (() if c_n is None else (c_n[0],))


class _KernelRNNMixin:
    """What RNN, LSTM and GRU add to torch.nn's classes: ``forward`` on the kernels when they
    apply, else torch.nn's own ``forward`` (which also gives torch.nn's errors)."""

    def forward(self, input, hx=None):
        """torch.nn's forward: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for the LSTM."""
        weights = self._weights()
        parsed = self._parse(input, hx)
        if parsed is None or not self._use_kernels(weights, *parsed):
            return self._torch_forward(input, hx)
        x, states, batched = parsed
        packed = isinstance(input, PackedSequence)
        if packed:
            output, new_states = self._kernel_packed(weights, input, states)
        else:
            output, new_states = self._kernel_layers(weights, x, states, None, self.batch_first)
        if not batched:
            output = output.squeeze(0 if self.batch_first else 1)
            new_states = tuple(s.squeeze(1) for s in new_states)
        return output, (new_states if self.mode == "LSTM" else new_states[0])

    def _weights(self):
        """The parameters in ``_flat_weights_names`` order: from ``_parameters`` (no
        ``Module.__getattr__`` call per weight), else as attributes (weight norm and other
        reparametrisations replace a parameter by a plain attribute)."""
        params, weights = self._parameters, []
        for name in self._flat_weights_names:
            w = params.get(name)
            weights.append(getattr(self, name) if w is None else w)
        return weights

    def _parse(self, input, hx):
        """``(x, states, batched)`` with batched ``x`` and states ``(h0,)`` / ``(h0, c0)`` of
        ``(L * D, B, H)`` (or None), when the arguments are well formed for the kernels (torch.nn
        would accept them as they are); None otherwise: torch.nn's forward then decides (and
        raises its own errors)."""
        if isinstance(input, PackedSequence):
            x, batched = input.data, True
            batch = int(input.batch_sizes[0])
        elif isinstance(input, _Tensor) and input.dim() in (2, 3):
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
            batch = x.size(0 if self.batch_first else 1)
        else:
            return None
        if x.size(-1) != self.input_size or x.numel() == 0:
            return None
        if hx is None:
            return x, None, batched
        states = tuple(hx) if self.mode == "LSTM" and isinstance(hx, (tuple, list)) else (hx,)
        if len(states) != (2 if self.mode == "LSTM" else 1):
            return None
        LD = self.num_layers * (2 if self.bidirectional else 1)
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)  # of h, of c
        result = []
        for state, size in zip(states, sizes):
            expected = (LD, batch, size)
            if not isinstance(state, _Tensor) or state.dim() != (3 if batched else 2):
                return None
            state = state if batched else state.unsqueeze(1)
            if tuple(state.shape) != expected:
                return None
            result.append(state)
        return x, tuple(result), batched

    def _use_kernels(self, params, x, states, batched):
        """True for the kernel path; warns once before a fallback to torch's implementation
        for other dtypes, devices, autocast dtypes or torch.func transforms."""
        dtype = params[0].dtype
        tensors = [x, *(states or ()), *params]
        # (float32 first: one guard under torch.compile, where `in` a tuple guards the tuple)
        if (dtype == _FLOAT32 or dtype in _FAST_DTYPES) and not _functorch_active():
            if not _is_autocast_enabled("cpu"):
                for t in tensors:
                    if not t.is_cpu or t.dtype != dtype:
                        break
                else:
                    return True  # the common case, decided without the checks below
            elif bf16_autocast() and dtype in _AUTOCAST_DTYPES:
                # bfloat16 autocast on CPU tensors: parameters of one dtype, float32 or
                # bfloat16 inputs (the checks below, in one pass over the tensors)
                for t in tensors:
                    if not t.is_cpu or t.dtype not in _AUTOCAST_DTYPES:
                        break
                else:
                    for p in params:
                        if p.dtype != dtype:
                            break
                    else:
                        return True
        device = params[0].device
        autocast = any(torch.amp.is_autocast_available(d) and torch.is_autocast_enabled(d)
                       for d in {"cpu", device.type, x.device.type})
        bf16 = autocast and torch.is_autocast_enabled("cpu") and \
            torch.get_autocast_dtype("cpu") == torch.bfloat16 and \
            {device.type, x.device.type} == {"cpu"}
        if bf16:
            if any(p.dtype != dtype for p in params) or dtype not in _AUTOCAST_DTYPES or \
                    any(t.dtype not in _AUTOCAST_DTYPES for t in tensors):
                bf16 = False  # torch.nn decides (and raises for mixed dtypes)
        elif any(t.dtype != dtype for t in tensors):
            return False  # torch.nn raises its error for mixed dtypes
        functorch = torch._C._are_functorch_transforms_active()
        other = next((t for t in tensors if t.device.type != "cpu"), None)
        if (bf16 or not autocast) and not functorch and other is None and \
                dtype in _FAST_DTYPES:
            return True
        other = params[0] if other is None else other
        if autocast and not bf16:
            key, why = "autocast", ("autocast is enabled with "
                                    f"{torch.get_autocast_dtype(x.device.type)}")
        elif functorch:
            key, why = "torch.func", "a torch.func transform (vmap, grad, ...) is active"
        else:
            key = (other.device.type, other.dtype)
            why = f"tensors are {other.dtype} on {other.device.type}"
        if key not in _warned_fallbacks:
            _warned_fallbacks.add(key)
            warnings.warn(f"rnnfast.torch.{type(self).__name__}: {why}; the rnnfast kernels take "
                          "CPU float32/float64/bfloat16 tensors (and CPU autocast with "
                          "bfloat16) only, so PyTorch's own implementation runs instead "
                          "(warned once)", RuntimeWarning, stacklevel=4)
        return False

    def _kernel_layers(self, weights, x, states, lengths, batch_first):
        """All layers and directions on the kernels; returns (output, (h_n[, c_n]))."""
        masks = []
        if self.dropout > 0 and self.training and self.num_layers > 1:
            # torch's dropout draws, in torch.nn's order (one mask per layer but the last)
            D = 2 if self.bidirectional else 1
            ones = torch.ones(x.shape[:-1] + (D * (self.proj_size or self.hidden_size),),
                              dtype=x.dtype)
            masks = [torch.nn.functional.dropout(ones, self.dropout, True)
                     for _ in range(self.num_layers - 1)]
        h0, c0 = (tuple(states) + (None,))[:2] if states is not None else (None, None)
        need_grad = _needs_grad((x, h0, c0, *weights))
        # torch.nn's mode -> the rnnfast cell and its nonlinearity (compared here, not looked
        # up in a module-level table: each entry read would be a guard under torch.compile)
        mode = self.mode
        config = ("lstm" if mode == "LSTM" else "gru" if mode == "GRU" else "rnn",
                  "relu" if mode == "RNN_RELU" else "tanh", self.hidden_size, self.proj_size,
                  self.num_layers, self.bias, self.bidirectional, False, batch_first)
        y, h_n, c_n = _stack_call(x, h0, c0, weights, masks, lengths, config, need_grad)
        return y, (h_n,) if c_n is None else (h_n, c_n)

    def _kernel_packed(self, weights, packed, states):
        """A PackedSequence on the kernels: unpack, run with lengths, pack as torch.nn does."""
        _, batch_sizes, sorted_indices, unsorted_indices = packed
        padded, lengths = pad_packed_sequence(packed)  # (T, B, I) in the caller's batch order
        output, new_states = self._kernel_layers(weights, padded, states, lengths, False)
        if sorted_indices is not None:
            output = output.index_select(1, sorted_indices)
            lengths = lengths.index_select(0, sorted_indices.cpu())
        data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
        return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices), new_states


class RNN(_KernelRNNMixin, torch.nn.RNNBase):
    """``torch.nn.RNN`` on the rnnfast kernels: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``,
    act = tanh or relu. Returns ``(output, h_n)``."""

    _torch_forward = torch.nn.RNN.forward

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        torch.nn.RNNBase.__init__(self, modes[nonlinearity], input_size, hidden_size,
                                  num_layers, bias, batch_first, dropout, bidirectional,
                                  device=device, dtype=dtype)


class LSTM(_KernelRNNMixin, torch.nn.RNNBase):
    """``torch.nn.LSTM`` on the rnnfast kernels (gates i, f, g, o), with projections when
    ``proj_size`` > 0 (``weight_hr_l{k}``, as in torch.nn). Returns ``(output, (h_n, c_n))``."""

    _torch_forward = torch.nn.LSTM.forward
    get_expected_cell_size = torch.nn.LSTM.get_expected_cell_size
    check_forward_args = torch.nn.LSTM.check_forward_args
    permute_hidden = torch.nn.LSTM.permute_hidden

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        torch.nn.RNNBase.__init__(self, "LSTM", input_size, hidden_size, num_layers, bias,
                                  batch_first, dropout, bidirectional, proj_size, device=device,
                                  dtype=dtype)


class GRU(_KernelRNNMixin, torch.nn.RNNBase):
    """``torch.nn.GRU`` on the rnnfast kernels (gates r, z, n; reset applied after the
    recurrent product, as in torch.nn). Returns ``(output, h_n)``."""

    _torch_forward = torch.nn.GRU.forward

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        torch.nn.RNNBase.__init__(self, "GRU", input_size, hidden_size, num_layers, bias,
                                  batch_first, dropout, bidirectional, device=device,
                                  dtype=dtype)
