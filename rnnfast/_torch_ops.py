"""PyTorch operators over ``rnnfast.functional.stack.RecurrentStack`` (imported by
``rnnfast.torch``; ``import rnnfast`` never imports this module or torch).

Two operators, registered with ``torch.library`` for the CPU backend, with fake (meta)
implementations for tracing and the backward as the autograd formula of the forward:

``torch.ops.rnnfast.recurrent_stack(x, h0, c0, weights, masks, lengths, cell, nonlinearity,
hidden_size, proj_size, num_layers, bias, bidirectional, reverse, batch_first, training)``
    every layer and direction of a stack (``proj_size`` > 0: an LSTM with projections, whose
    h, h0, h_n and y have ``proj_size`` features per direction, 0: none); returns
    ``(y, h_n, c_n, saved)``: ``c_n`` is an
    empty tensor for cells without a cell state, ``saved`` is what the backward needs when
    ``training`` (else an empty tensor).
``torch.ops.rnnfast.recurrent_stack_backward(saved, x, h0, c0, weights, dy, dh_n, dc_n)``
    ``(dx, dh0, dc0, dweights)``; ``dh0`` / ``dc0`` are empty tensors when ``h0`` / ``c0``
    are None.

``saved`` is a one-element int64 tensor whose memory belongs to the object that holds the
forward's kernel contexts (the saved activations, never copied): the contexts live exactly as
long as that tensor, which autograd, a compiled graph or the caller keeps for the backward pass
and frees after it, as PyTorch frees its own saved tensors. The backward finds the contexts by
the tensor's memory, so it takes the very tensor the forward returned; a copy of it (or a
tensor of other origin) is a ``RuntimeError`` saying so.

The backward operator is not differentiable: asking for a second derivative through it raises
``RuntimeError`` (never a silent zero). Under ``torch.func.vmap`` both operators run once per
vmapped entry (``register_vmap``).
"""
import functools
import weakref
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from rnnfast.functional.stack import RecurrentStack

__all__ = ["EagerStack", "backward_stack", "recurrent_stack", "recurrent_stack_backward",
           "run_stack", "stack_of", "SECOND_DERIVATIVE_ERROR"]

SECOND_DERIVATIVE_ERROR = (
    "rnnfast.torch: second derivatives are not supported (the kernels' backward pass is not "
    "itself differentiable): a gradient taken with create_graph=True through an rnnfast.torch "
    "layer cannot be differentiated again; use torch.nn's layers for double backward")


@functools.lru_cache(maxsize=256)
def stack_of(cell, nonlinearity, input_size, hidden_size, proj_size, num_layers, bias,
             bidirectional, reverse):
    """The ``RecurrentStack`` of a configuration (built once; masks are given, so no dropout)."""
    options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    if proj_size:
        options["proj_size"] = proj_size
    return RecurrentStack(cell, input_size, hidden_size, num_layers, bias=bias,
                          bidirectional=bidirectional, reverse=reverse, **options)


def numpy_view(tensor):
    """A NumPy array over the tensor's memory (a copy only when it is not contiguous)."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.resolve_neg().resolve_conj().numpy()


class _Saved:
    """Owns a training forward's ``StackContext``; ``np.asarray`` of it is one int64 zero in
    memory this object owns, so the ``saved`` tensor made from it keeps the context alive."""

    __slots__ = ("stack", "ctx", "_cell", "__weakref__")

    def __init__(self, stack, ctx):
        self.stack = stack
        self.ctx = ctx
        self._cell = np.zeros(1, np.int64)

    @property
    def __array_interface__(self):
        return {"version": 3, "shape": (1,), "typestr": self._cell.dtype.str,
                "data": (self._cell.ctypes.data, False)}


_LIVE = weakref.WeakValueDictionary()  # data pointer of a `saved` tensor -> its _Saved


def _saved_tensor(stack, ctx):
    holder = _Saved(stack, ctx)
    tensor = torch.from_numpy(np.asarray(holder))
    _LIVE[tensor.data_ptr()] = holder
    return tensor


def _empty(like):
    return like.new_empty((0,))


def _run(x, h0, c0, weights, masks, lengths, cell, nonlinearity, hidden_size, proj_size,
         num_layers, bias, bidirectional, reverse, batch_first, training):
    """stack.forward on NumPy views of the tensors: ``(stack, (y, h_n, c_n, ctx))``."""
    stack = stack_of(cell, nonlinearity, x.shape[-1], hidden_size, proj_size, num_layers, bias,
                     bidirectional, reverse)
    arrays = [numpy_view(w) for w in weights]
    if len(arrays) != len(stack.shapes):
        raise ValueError(f"weights: expected {len(stack.shapes)} tensors "
                         f"({', '.join(stack.shapes)}), got {len(arrays)}")
    return stack, stack.forward(
        dict(zip(stack.shapes, arrays)), numpy_view(x), numpy_view(h0), numpy_view(c0),
        lengths=None if lengths is None else lengths.cpu().numpy(), batch_first=batch_first,
        training=training, masks=[numpy_view(m) for m in masks] if masks else None)


def run_stack(*args):
    """The forward operator's computation on CPU tensors (its arguments; also called directly
    by ``rnnfast.torch`` in eager inference, where it skips the dispatcher)."""
    stack, (y, h_n, c_n, ctx) = _run(*args)
    training = args[-1]
    y, h_n = torch.from_numpy(y), torch.from_numpy(h_n)
    c_n = _empty(y) if c_n is None else torch.from_numpy(c_n)
    saved = _saved_tensor(stack, ctx) if training else torch.empty(0, dtype=torch.int64)
    return y, h_n, c_n, saved


@torch.library.custom_op("rnnfast::recurrent_stack", mutates_args=(), device_types="cpu")
def recurrent_stack(x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor],
                    weights: List[Tensor], masks: List[Tensor], lengths: Optional[Tensor],
                    cell: str, nonlinearity: str, hidden_size: int, proj_size: int,
                    num_layers: int, bias: bool, bidirectional: bool, reverse: bool,
                    batch_first: bool, training: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every layer and direction of a recurrent stack on the rnnfast kernels."""
    return run_stack(x, h0, c0, weights, masks, lengths, cell, nonlinearity, hidden_size,
                     proj_size, num_layers, bias, bidirectional, reverse, batch_first, training)


@recurrent_stack.register_fake
def _recurrent_stack_fake(x, h0, c0, weights, masks, lengths, cell, nonlinearity, hidden_size,
                          proj_size, num_layers, bias, bidirectional, reverse, batch_first,
                          training):
    D = 2 if bidirectional else 1
    batch = x.shape[0] if batch_first else x.shape[1]
    state_size = proj_size or hidden_size
    y = x.new_empty(tuple(x.shape[:-1]) + (D * state_size,))
    h_n = x.new_empty((num_layers * D, batch, state_size))
    c_n = x.new_empty((num_layers * D, batch, hidden_size) if cell == "lstm" else (0,))
    saved = x.new_empty((1 if training else 0,), dtype=torch.int64)
    return y, h_n, c_n, saved


@torch.library.custom_op("rnnfast::recurrent_stack_backward", mutates_args=(),
                         device_types="cpu")
def recurrent_stack_backward(saved: Tensor, dy: Optional[Tensor], dh_n: Optional[Tensor],
                             dc_n: Optional[Tensor], x: Tensor, h0: Optional[Tensor],
                             c0: Optional[Tensor], weights: List[Tensor], masks: List[Tensor],
                             lengths: Optional[Tensor], cell: str, nonlinearity: str,
                             hidden_size: int, proj_size: int, num_layers: int, bias: bool,
                             bidirectional: bool, reverse: bool, batch_first: bool
                             ) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
    """The gradients of ``recurrent_stack`` at the given inputs (the arguments after the
    upstream gradients are the forward's): from the activations ``saved`` holds when it is
    the forward's own ``saved`` output, still alive; else the forward runs again."""
    return backward_stack(saved, dy, dh_n, dc_n, x, h0, c0, weights, masks, lengths, cell,
                          nonlinearity, hidden_size, proj_size, num_layers, bias, bidirectional,
                          reverse, batch_first)


def backward_stack(saved, dy, dh_n, dc_n, x, h0, c0, weights, *config):
    """The backward operator's computation (its arguments; also run directly by
    ``EagerStack``)."""
    holder = _LIVE.get(saved.data_ptr()) if saved.numel() == 1 else None
    if holder is None:
        stack, (_, _, _, ctx) = _run(x, h0, c0, weights, *config, True)
    else:
        stack, ctx = holder.stack, holder.ctx
    dx, dh0, dc0, by_name = stack.backward(
        ctx, numpy_view(dy), numpy_view(dh_n),
        numpy_view(dc_n) if stack.has_cell_state else None)
    dx = torch.from_numpy(dx)
    return (dx, _empty(dx) if dh0 is None else torch.from_numpy(dh0),
            _empty(dx) if dc0 is None else torch.from_numpy(dc0),
            [torch.from_numpy(by_name[name]) for name in stack.shapes])


@recurrent_stack_backward.register_fake
def _recurrent_stack_backward_fake(saved, dy, dh_n, dc_n, x, h0, c0, weights, *config):
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            _empty(x) if h0 is None else torch.empty_like(h0),
            _empty(x) if c0 is None else torch.empty_like(c0),
            [torch.empty_like(w) for w in weights])


def _setup_context(ctx, inputs, output):
    x, h0, c0, weights, masks, lengths, cell, *config = inputs
    ctx.config = (cell, *config[:-1])  # without `training`
    ctx.is_lstm = cell == "lstm"
    ctx.has_states = (h0 is not None, c0 is not None)
    ctx.num_weights = len(weights)
    ctx.num_masks = len(masks)
    ctx.mark_non_differentiable(output[3])
    ctx.set_materialize_grads(False)
    # x and the weights: the kernels' contexts read them in place; saving them lets autograd
    # refuse a backward after they were modified in place.
    ctx.save_for_backward(output[3], x, h0, c0, lengths, *weights, *masks)


def _backward(ctx, dy, dh_n, dc_n, dsaved):
    saved, x, h0, c0, lengths, *rest = ctx.saved_tensors
    weights, masks = rest[:ctx.num_weights], rest[ctx.num_weights:]
    dx, dh0, dc0, dweights = torch.ops.rnnfast.recurrent_stack_backward(
        saved, dy, dh_n, dc_n if ctx.is_lstm else None, x, h0, c0, weights, masks, lengths,
        *ctx.config)
    has_h0, has_c0 = ctx.has_states
    return (dx, dh0 if has_h0 else None, dc0 if has_c0 else None, list(dweights),
            [None] * ctx.num_masks) + (None,) * 11


recurrent_stack.register_autograd(_backward, setup_context=_setup_context)


def _refuse_second_derivative(ctx, *grads):
    raise RuntimeError(SECOND_DERIVATIVE_ERROR)


def _setup_backward_context(ctx, inputs, output):
    pass


recurrent_stack_backward.register_autograd(_refuse_second_derivative,
                                           setup_context=_setup_backward_context)


class EagerStack(torch.autograd.Function):
    """The forward operator with its autograd formula as a plain ``torch.autograd.Function``:
    what eager training runs (the same computations as the operators, without the dispatcher's
    per-call cost, which is larger than a short sequence's kernels). Compiled, exported and
    traced programs see the operators instead.

    ``EagerStack.apply(config, masks, lengths, x, h0, c0, *weights)`` with ``config`` the
    operator's arguments from ``cell`` to ``batch_first``; returns ``(y, h_n, c_n)``
    (``c_n`` an empty tensor without a cell state)."""

    @staticmethod
    def forward(ctx, config, masks, lengths, x, h0, c0, *weights):
        y, h_n, c_n, saved = run_stack(x, h0, c0, list(weights), masks, lengths, *config, True)
        ctx.config, ctx.masks, ctx.lengths = config, masks, lengths
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(saved, x, h0, c0, *weights)
        if config[0] != "lstm":
            ctx.mark_non_differentiable(c_n)
        return y, h_n, c_n

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        saved, x, h0, c0, *weights = ctx.saved_tensors
        args = (saved, dy, dh_n, dc_n if ctx.config[0] == "lstm" else None, x, h0, c0, weights,
                ctx.masks, ctx.lengths, *ctx.config)
        if torch.is_grad_enabled():  # create_graph=True: the operator, whose gradient raises
            dx, dh0, dc0, dweights = torch.ops.rnnfast.recurrent_stack_backward(*args)
        else:
            dx, dh0, dc0, dweights = backward_stack(*args)
        return (None, None, None, dx, dh0 if h0 is not None else None,
                dc0 if c0 is not None else None, *dweights)
