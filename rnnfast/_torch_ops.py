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

bfloat16. When ``x`` is a bfloat16 tensor the stack runs with ``precision="bfloat16"``
(products from bfloat16 operands, float32 sums and gate math): bfloat16 inputs are widened to
float32 (exactly), the weights may be bfloat16 or float32, the outputs are bfloat16, and every
gradient has the dtype of its input. Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the
forward operator's autocast rule (``autocast_arguments``) casts ``x``, the states and the masks
to bfloat16 and leaves the weights as they are (float32 parameters get float32 gradients);
eager code skips the cast of a float32 ``x`` (``run_stack``'s ``autocast``: the kernels round it
the same way themselves).

The backward operator is not differentiable: asking for a second derivative through it raises
``RuntimeError`` (never a silent zero). The operators have no batching rule: ``torch.func.vmap``
over them raises PyTorch's "Batching rule not implemented" ``RuntimeError`` (the layers of
``rnnfast.torch`` run torch.nn's implementation under ``torch.func`` transforms instead).

Both operators are defined with ``torch.library.Library`` (a schema and one kernel per dispatch
key: CPU, fake/Meta, Autograd, AutocastCPU), not ``torch.library.custom_op``, for the cost of a
call from a compiled graph (see the comment above ``_LIB``).
"""
import functools
import weakref

import numpy as np
import torch

from rnnfast.functional._precision import new_weights_token
from rnnfast.functional.stack import RecurrentStack

__all__ = ["EagerStack", "autocast_arguments", "backward_stack", "bf16_autocast", "recurrent_stack",
           "recurrent_stack_backward", "run_stack", "stack_of", "weights_token",
           "keep_bf16_packings", "SECOND_DERIVATIVE_ERROR"]

SECOND_DERIVATIVE_ERROR = (
    "rnnfast.torch: second derivatives are not supported (the kernels' backward pass is not "
    "itself differentiable): a gradient taken with create_graph=True through an rnnfast.torch "
    "layer cannot be differentiated again; use torch.nn's layers for double backward")


@functools.lru_cache(maxsize=256)
def stack_of(cell, nonlinearity, input_size, hidden_size, proj_size, num_layers, bias,
             bidirectional, reverse, precision="float32"):
    """The ``RecurrentStack`` of a configuration (built once; masks are given, so no dropout)."""
    options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    if proj_size:
        options["proj_size"] = proj_size
    return RecurrentStack(cell, input_size, hidden_size, num_layers, bias=bias,
                          bidirectional=bidirectional, reverse=reverse, precision=precision,
                          **options)


_NUMPY_DTYPES = (torch.float32, torch.float64)


def numpy_view(tensor):
    """A NumPy array over the tensor's memory (a copy only when it is not contiguous; bfloat16
    tensors are widened to a float32 copy, exactly)."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    if tensor.dtype in _NUMPY_DTYPES:
        try:  # the common case in one call (a negative-bit view raises: resolved below)
            array = tensor.numpy()
            if array.flags.c_contiguous:
                return array
        except RuntimeError:
            pass
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.resolve_neg().resolve_conj().numpy()


class _Saved(np.ndarray):
    """A one-element int64 array (a zero) that owns a training forward's ``StackContext``
    (attributes ``stack`` and ``ctx``, set by ``_saved_tensor``): the ``saved`` tensor made
    from it with ``torch.from_numpy`` keeps it, and so the context, alive."""


# data pointer of a `saved` tensor -> a weak reference to its _Saved, removed when that dies
# (a plain dict of weakref.ref: no Python call per entry, as a WeakValueDictionary makes three)
_LIVE = {}


def _forget(ref, ptr):
    if _LIVE.get(ptr) is ref:
        del _LIVE[ptr]


def _saved_tensor(stack, ctx):
    holder = np.zeros(1, np.int64).view(_Saved)
    holder.stack, holder.ctx = stack, ctx
    tensor = torch.from_numpy(holder)
    ptr = tensor.data_ptr()
    _LIVE[ptr] = weakref.ref(holder, functools.partial(_forget, ptr=ptr))
    return tensor


def _live(saved):
    """The _Saved behind a `saved` tensor, or None (a copy, an empty or a freed one)."""
    ref = _LIVE.get(saved.data_ptr()) if saved.numel() == 1 else None
    return None if ref is None else ref()


# zero-element arrays that empty outputs are made from with torch.from_numpy: the path the
# kernels' results take anyway, so after a long kernel (cold caches) an empty output costs no
# code path of its own (a torch.empty and a new_empty cost ~80 us together there, measured
# after the LSTM kernel of bench/torch_compiled_vs_eager.py). Each call gets a new tensor; the
# shared storage holds no element, and from_numpy tensors cannot be resized.
_EMPTY_ARRAYS = {torch.float32: np.empty(0, np.float32), torch.float64: np.empty(0, np.float64),
                 torch.int64: np.empty(0, np.int64)}


def _empty(like, dtype=None):
    """A new zero-element tensor of ``dtype`` (default ``like``'s), on the CPU."""
    dtype = like.dtype if dtype is None else dtype
    array = _EMPTY_ARRAYS.get(dtype)
    return like.new_empty((0,), dtype=dtype) if array is None else torch.from_numpy(array)


def _tensor(array, dtype):
    """A kernel's result array as a tensor of ``dtype`` (no copy when the dtypes agree)."""
    tensor = torch.from_numpy(array)
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


# torch's functions and dtypes autocast_arguments uses, bound here: compiled code that calls it
# then guards on these objects alone, not on this module's `torch` being rnnfast.torch's
# `torch` (an aliasing guard Dynamo evaluates in Python on every call).
_autocast_enabled, _autocast_dtype = torch.is_autocast_enabled, torch.get_autocast_dtype
_BFLOAT16, _FLOAT32, _INT64 = torch.bfloat16, torch.float32, torch.int64


def bf16_autocast():
    """True inside a ``torch.autocast("cpu", dtype=torch.bfloat16)`` region."""
    return _autocast_enabled("cpu") and _autocast_dtype("cpu") == _BFLOAT16


def autocast_arguments(x, h0, c0, masks, cast_x=True):
    """``(x, h0, c0, masks)`` as the forward operator takes them under autocast: cast to
    bfloat16 inside a ``torch.autocast("cpu", dtype=torch.bfloat16)`` region (the weights are
    not cast: float32 parameters stay float32, so do their gradients), unchanged otherwise.
    ``cast_x=False`` leaves ``x`` as it is (the eager path, ``run_stack(..., autocast=True)``,
    hands a float32 ``x`` to the kernels, which round it to bfloat16 themselves)."""
    if not bf16_autocast():
        return x, h0, c0, masks

    def cast(t):
        return t if t is None or t.dtype != _FLOAT32 else t.to(_BFLOAT16)
    return cast(x) if cast_x else x, cast(h0), cast(c0), [cast(m) for m in masks]


def _views(tensors):
    """``numpy_view`` of each tensor (None stays None), in one call: the common case, a
    contiguous float tensor, costs no Python call of its own (the operators' Python calls run
    after a long kernel, with cold caches, and under a compiled graph)."""
    arrays = []
    for t in tensors:
        if t is None:
            arrays.append(None)
            continue
        try:
            array = t.detach().numpy()
        except (RuntimeError, TypeError):  # bfloat16, a negative or conjugate bit: numpy_view
            array = None
        arrays.append(array if array is not None and array.flags.c_contiguous
                      else numpy_view(t))
    return arrays


def _tensors(arrays, dtypes):
    """Each kernel result array as a tensor of its dtype (``_tensor``, in one call)."""
    out = []
    for array, dtype in zip(arrays, dtypes):
        tensor = torch.from_numpy(array)
        out.append(tensor if tensor.dtype == dtype else tensor.to(dtype))
    return out


class _Sighting:
    """What ``weights_token`` saw of a list of weights at its last call: each tensor's
    ``(_version, data_ptr)`` and a weak reference to its storage, and the token given for
    them (0 before the second call that sees the same)."""

    __slots__ = ("key", "state", "storages", "token")


# id of the first weight -> its _Sighting (removed when that tensor dies)
_SIGHTINGS = {}
# keep_bf16_packings: off by default (writes through p.data would not be seen)
_KEEP_PACKINGS = [False]


def keep_bf16_packings(enabled: bool = True) -> bool:
    """Keep the bfloat16 packings of the weights across inference calls (``True``) or pack
    them at every call (``False``, the default); returns the previous setting.

    Kept, they are reused while every parameter has the ``_version``, memory and storage it
    had: optimizer steps, ``load_state_dict``, in-place ops on a parameter or a view of it
    (under ``torch.no_grad()``) and ``.data =`` are seen and repack. **Writes that bypass
    torch's version counter are not seen** (``p.data.copy_(...)``, an EMA's
    ``p.data.mul_(d)``, writes through a NumPy or DLPack view): with such code, leave this
    off or write the parameters under ``torch.no_grad()`` instead. Saves the packing, 5-10%
    of a large or xl LSTM inference call on a bfloat16 hardware path."""
    if not isinstance(enabled, bool):
        raise TypeError(f"keep_bf16_packings: expected True or False, got {enabled!r}")
    before, _KEEP_PACKINGS[0] = _KEEP_PACKINGS[0], enabled
    if not enabled:
        _SIGHTINGS.clear()
    return before


def _forget_sighting(ref, key):
    sighting = _SIGHTINGS.get(key)
    if sighting is not None and sighting.key is ref:
        del _SIGHTINGS[key]


def weights_token(weights):
    """A ``weights_token`` for a bfloat16 inference call on these weights (float32 tensors),
    or None. The token stands for the weights' current values: it is given again only while
    every tensor has the ``_version``, memory and storage it had (torch bumps ``_version`` at
    every in-place write through the tensor, a view or ``detach()`` of it: optimizer steps,
    ``load_state_dict``, ``copy_``; ``.data =`` and ``set_`` give it another storage; a
    storage still alive, the same object, holds its memory, so no other tensor can have
    taken the address meanwhile). Weights the kernels would not read in place (another
    dtype, not contiguous) get none: their float32 copies die with the call; nor do
    inference tensors (no ``_version``). The first call that sees the weights so gets none
    either: weights that change at every call (a reparametrisation's, computed in each
    forward) are then packed as without a token and never fill the kernels' cache of
    packings. Nothing is held but weak references."""
    state = []
    for w in weights:
        if w.dtype != _FLOAT32 or not w.is_contiguous() or w.is_neg() or w.is_inference():
            return None
        state.append((w._version, w.data_ptr()))
    state = tuple(state)
    first = weights[0]
    sighting = _SIGHTINGS.get(id(first))
    if sighting is not None and sighting.key() is first and sighting.state == state:
        for w, storage in zip(weights, sighting.storages):
            if w.untyped_storage() is not storage():
                break
        else:
            if not sighting.token:
                sighting.token = new_weights_token()
            return sighting.token
    sighting = _Sighting()
    key = id(first)
    sighting.key = weakref.ref(first, functools.partial(_forget_sighting, key=key))
    sighting.state, sighting.token = state, 0
    sighting.storages = [weakref.ref(w.untyped_storage()) for w in weights]
    _SIGHTINGS[key] = sighting
    return None


def _run(x, h0, c0, weights, masks, lengths, cell, nonlinearity, hidden_size, proj_size,
         num_layers, bias, bidirectional, reverse, batch_first, training, autocast=False):
    """stack.forward on NumPy views of the tensors: ``(stack, (y, h_n, c_n, ctx))``; in
    bfloat16 for a bfloat16 ``x`` or with ``autocast`` (``run_stack``). With
    ``keep_bf16_packings(True)``, inference in bfloat16 passes the kernels a token for the
    weights' current values (``weights_token``), so that their bfloat16 packings are made once,
    not at every call."""
    bf16 = autocast or x.dtype == _BFLOAT16
    stack = stack_of(cell, nonlinearity, x.shape[-1], hidden_size, proj_size, num_layers, bias,
                     bidirectional, reverse, "bfloat16" if bf16 else "float32")
    keep = _KEEP_PACKINGS[0] and bf16 and not training and weights
    token = weights_token(weights) if keep else None
    x, h0, c0, *arrays = _views((x, h0, c0, *weights))
    if len(arrays) != len(stack.shapes):
        raise ValueError(f"weights: expected {len(stack.shapes)} tensors "
                         f"({', '.join(stack.shapes)}), got {len(arrays)}")
    return stack, stack.forward(
        dict(zip(stack.shapes, arrays)), x, h0, c0,
        lengths=None if lengths is None else lengths.cpu().numpy(), batch_first=batch_first,
        training=training, masks=_views(masks) if masks else None, weights_token=token)


def run_stack(*args, autocast=False):
    """The forward operator's computation on CPU tensors (its arguments; also called directly
    by ``rnnfast.torch`` in eager inference, where it skips the dispatcher).

    ``autocast=True`` (eager code under bfloat16 autocast, with the states and masks already
    cast by ``autocast_arguments(..., cast_x=False)``): a float32 ``x`` is computed on as if
    autocast had cast it to bfloat16, and the outputs are bfloat16, without that cast and the
    float32 copy the kernels would otherwise get back from it (two passes over ``x`` and a new
    buffer per call): the kernels round ``x`` to bfloat16 exactly as the cast does (round to
    nearest even, subnormals kept), so the results are the same bit for bit."""
    stack, (y, h_n, c_n, ctx) = _run(*args, autocast=autocast)
    training, dtype = args[-1], (_BFLOAT16 if autocast else args[0].dtype)
    if c_n is None:
        y, h_n = _tensors((y, h_n), (dtype, dtype))
        c_n = _empty(y)
    else:
        y, h_n, c_n = _tensors((y, h_n, c_n), (dtype, dtype, dtype))
    saved = _saved_tensor(stack, ctx) if training else _empty(y, _INT64)
    return y, h_n, c_n, saved


# The operators are defined with torch.library.Library (schema, one kernel per dispatch key)
# rather than torch.library.custom_op: a custom_op call passes through three Python wrappers
# (autograd, redispatch, backend checks), about 17 us per call warm and several times that after
# a long kernel has evicted the caches, on every call of a compiled graph. Here the Autograd
# kernel runs the CPU computation itself when no gradient is needed and nothing but the CPU
# kernel would run below it (``_autograd_kernel``): ~6 us, the dispatcher's own cost.
_LIB = torch.library.Library("rnnfast", "DEF")  # noqa: TOR901 (the operators live as long as it)
_CONFIG_SCHEMA = ("Tensor[] masks, Tensor? lengths, str cell, str nonlinearity, "
                  "SymInt hidden_size, SymInt proj_size, SymInt num_layers, bool bias, "
                  "bool bidirectional, bool reverse, bool batch_first")
_LIB.define("recurrent_stack(Tensor x, Tensor? h0, Tensor? c0, Tensor[] weights, "
            f"{_CONFIG_SCHEMA}, bool training) -> (Tensor, Tensor, Tensor, Tensor)",
            tags=(torch.Tag.pt2_compliant_tag,))
_LIB.define("recurrent_stack_backward(Tensor saved, Tensor? dy, Tensor? dh_n, Tensor? dc_n, "
            f"Tensor x, Tensor? h0, Tensor? c0, Tensor[] weights, {_CONFIG_SCHEMA}) "
            "-> (Tensor, Tensor, Tensor, Tensor[])", tags=(torch.Tag.pt2_compliant_tag,))
recurrent_stack = torch.ops.rnnfast.recurrent_stack.default
recurrent_stack_backward = torch.ops.rnnfast.recurrent_stack_backward.default


def backward_stack(saved, dy, dh_n, dc_n, x, h0, c0, weights, *config, autocast=False,
                   empty_states=True):
    """The backward operator's computation (its arguments; also run directly by
    ``EagerStack``): the gradients of ``recurrent_stack`` at the given inputs (the arguments
    after the upstream gradients are the forward's), from the activations ``saved`` holds when
    it is the forward's own ``saved`` output, still alive; else the forward runs again.
    ``autocast``: that of ``run_stack``; ``dx`` is then rounded to bfloat16 and widened to
    ``x``'s dtype, the gradient autocast's cast of ``x`` gives (as without ``autocast``).
    ``empty_states=False`` (``EagerStack``, which returns no gradient for an absent state):
    ``dh0`` / ``dc0`` are None instead of empty tensors when ``h0`` / ``c0`` are None."""
    holder = _live(saved)
    if holder is None:
        stack, (_, _, _, ctx) = _run(x, h0, c0, weights, *config, True, autocast=autocast)
    else:
        stack, ctx = holder.stack, holder.ctx
    dy, dh_n, dc_n = _views((dy, dh_n, dc_n if stack.has_cell_state else None))
    dx, dh0, dc0, by_name = stack.backward(ctx, dy, dh_n, dc_n)
    dx, *dweights = _tensors([dx] + [by_name[name] for name in stack.shapes],
                             [_BFLOAT16 if autocast else x.dtype] + [w.dtype for w in weights])
    if autocast:
        dx = dx.to(x.dtype)
    if dh0 is not None:
        dh0 = _tensor(dh0, h0.dtype)
    elif empty_states:
        dh0 = _empty(dx)
    if dc0 is not None:
        dc0 = _tensor(dc0, c0.dtype)
    elif empty_states:
        dc0 = _empty(dx)
    return dx, dh0, dc0, dweights


_LIB.impl("recurrent_stack", run_stack, "CPU")
_LIB.impl("recurrent_stack_backward", backward_stack, "CPU")


@torch.library.register_fake("rnnfast::recurrent_stack", lib=_LIB)
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


@torch.library.register_fake("rnnfast::recurrent_stack_backward", lib=_LIB)
def _recurrent_stack_backward_fake(saved, dy, dh_n, dc_n, x, h0, c0, weights, *config):
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            x.new_empty((0,)) if h0 is None else torch.empty_like(h0),
            x.new_empty((0,)) if c0 is None else torch.empty_like(c0),
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
    dx, dh0, dc0, dweights = recurrent_stack_backward(
        saved, dy, dh_n, dc_n if ctx.is_lstm else None, x, h0, c0, weights, masks, lengths,
        *ctx.config)
    has_h0, has_c0 = ctx.has_states
    return (dx, dh0 if has_h0 else None, dc0 if has_c0 else None, list(dweights),
            [None] * ctx.num_masks) + (None,) * 11


def _refuse_second_derivative(ctx, *grads):
    raise RuntimeError(SECOND_DERIVATIVE_ERROR)


def _setup_backward_context(ctx, inputs, output):
    """Saves nothing: the backward operator's own backward only raises (no second derivative)."""


_AFTER_AUTOGRAD = torch._C._after_autograd_keyset - torch._C.DispatchKeySet(
    torch._C.DispatchKey.ADInplaceOrView) - torch._C.DispatchKeySet(
    torch._C.DispatchKey.BackendSelect)  # (both fall through for these operators)


def _autograd_kernel(op, compute, backward, setup_context):
    """The operator's Autograd kernel: with a gradient to record, torch.library's own autograd
    wrapper (``backward`` and ``setup_context`` as ``register_autograd`` takes them); without
    one, ``compute`` directly when the next kernel is the CPU kernel (plain CPU tensors, no
    tracing, functionalization or dispatch mode), else the next kernel."""
    from torch._library.autograd import Info, make_autograd_impl
    with_grad = make_autograd_impl(op, Info(backward, setup_context))
    any_requires_grad, is_grad_enabled = torch._C._any_requires_grad, torch.is_grad_enabled
    cpu, below = torch._C.DispatchKey.CPU, torch._C._AutoDispatchBelowAutograd
    # raw keyset -> whether the CPU kernel is next: one binding call per call instead of three
    # (~30 us less right after a long kernel, when the caches are cold; ~1 us warm)
    cpu_next = {}

    def kernel(keyset, *args):
        if is_grad_enabled() and any_requires_grad(*args):
            return with_grad(keyset, *args)
        raw = keyset.raw_repr()
        direct = cpu_next.get(raw)
        if direct is None:
            direct = cpu_next[raw] = (keyset & _AFTER_AUTOGRAD).highestPriorityTypeId() == cpu
        if direct:
            return compute(*args)
        with below():
            return op.redispatch(keyset & _AFTER_AUTOGRAD, *args)
    return kernel


_LIB.impl("recurrent_stack", _autograd_kernel(recurrent_stack, run_stack, _backward,
                                              _setup_context), "Autograd", with_keyset=True)
_LIB.impl("recurrent_stack_backward",
          _autograd_kernel(recurrent_stack_backward, backward_stack, _refuse_second_derivative,
                           _setup_backward_context), "Autograd", with_keyset=True)


def _recurrent_stack_autocast(keyset, x, h0, c0, weights, masks, *config):
    """The forward operator under CPU autocast: ``autocast_arguments``, then the operator with
    autocast off (as ``torch.library.register_autocast`` does, without casting the weights)."""
    x, h0, c0, masks = autocast_arguments(x, h0, c0, masks)
    with torch._C._ExcludeDispatchKeyGuard(
            torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)):
        return recurrent_stack(x, h0, c0, weights, masks, *config)


_LIB.impl("recurrent_stack", _recurrent_stack_autocast, "AutocastCPU", with_keyset=True)


class EagerStack(torch.autograd.Function):
    """The forward operator with its autograd formula as a plain ``torch.autograd.Function``:
    what eager training runs (the same computations as the operators, without the dispatcher's
    per-call cost, which is larger than a short sequence's kernels). Compiled, exported and
    traced programs see the operators instead.

    ``EagerStack.apply((config, masks, lengths, autocast), x, h0, c0, *weights)`` with
    ``config`` the operator's arguments from ``cell`` to ``batch_first`` and ``autocast``
    ``run_stack``'s (the four in one tuple: ``Function.apply`` walks every argument);
    returns ``(y, h_n, c_n)`` (``c_n`` an empty tensor without a cell state)."""

    @staticmethod
    def forward(ctx, options, x, h0, c0, *weights):
        config, masks, lengths, autocast = options
        y, h_n, c_n, saved = run_stack(x, h0, c0, weights, masks, lengths, *config, True,
                                       autocast=autocast)
        ctx.config, ctx.masks, ctx.lengths, ctx.autocast = config, masks, lengths, autocast
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
            if ctx.autocast:  # (a bfloat16 x: what the operator computes on under autocast)
                args = args[:4] + (x.to(_BFLOAT16),) + args[5:]
            dx, dh0, dc0, dweights = recurrent_stack_backward(*args)
        else:
            dx, dh0, dc0, dweights = backward_stack(*args, autocast=ctx.autocast,
                                                    empty_states=False)
        return (None, dx, dh0 if h0 is not None else None, dc0 if c0 is not None else None,
                *dweights)
