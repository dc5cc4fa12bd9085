"""Stacks of recurrent layers over the fused kernels: layers, directions, names, dropout.

The one place that knows how a multi-layer, optionally bidirectional RNN, LSTM or GRU is put
together from the single-layer kernels of ``rnnfast.functional``: which kernel each cell runs,
the parameters of every layer and direction under PyTorch's ``state_dict`` names
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) and shapes, the loop over layers and
directions (layer ``l`` direction ``d`` is entry ``k = l * D + d`` of the names and states;
direction 1 runs each sequence backwards), inter-layer dropout, and the backward pass through
all of it. ``rnnfast.nn``'s RNN/LSTM/GRU (and through them the Keras-style layers of
``rnnfast.models``), ``rnnfast.torch`` and ``rnnfast.generation`` all run here. It works on
NumPy arrays only: parameters, autograd and the user-facing argument forms stay with the
callers.

A cell is one row of ``CELLS`` (gates, whether the state has a cell part, its parameters and
its kernel options); a new cell (a projection, peepholes, LayerNorm, zoneout) is a new row or
new parameters and options of a row, and every API above gets it at once.

Example::

    stack = RecurrentStack("lstm", input_size=8, hidden_size=16, num_layers=2,
                           bidirectional=True)
    weights = {name: np.zeros(shape, np.float32) for name, shape in stack.shapes.items()}
    y, h_n, c_n, ctx = stack.forward(weights, x, training=True)   # x (T, B, 8)
    dx, dh0, dc0, grads = stack.backward(ctx, dy)                 # grads keyed by name
"""
import functools
import warnings
from typing import Any, Callable, Dict, Mapping, NamedTuple, Tuple

import numpy as np

from rnnfast import functional as F
from rnnfast._checks import check_int, check_precision, check_probability
from rnnfast._masks import _check_rate

__all__ = ["CELLS", "LSTM_PARAMS", "PLAIN_PARAMS", "Cell", "Param", "RecurrentStack", "StackContext", "cell_backward",
           "cell_forward", "cell_options", "param_name"]


class Param(NamedTuple):
    """One parameter of every layer and direction."""

    #: the name before the ``_l{layer}[_reverse]`` suffix (PyTorch's ``state_dict`` name)
    prefix: str
    #: the kernel's argument name, and the key of its gradient
    key: str
    #: ``shape(layer_input, hidden_size, gates, options)`` -> the array's shape
    shape: Callable[[int, int, int, Mapping[str, Any]], Tuple[int, ...]]
    #: present only when the stack has biases
    bias: bool
    #: present only when this option of the cell is set (then passed to the kernel by
    #: keyword); "" for every stack
    option: str = ""


def _input_weight_shape(layer_input, hidden, gates, options):
    return (gates * hidden, layer_input)


def _recurrent_weight_shape(layer_input, hidden, gates, options):
    return (gates * hidden, options.get("proj_size") or hidden)


def _bias_shape(layer_input, hidden, gates, options):
    return (gates * hidden,)


#: The parameters of the plain cells, in PyTorch's order.
PLAIN_PARAMS = (
    Param("weight_ih", "w_ih", _input_weight_shape, False),
    Param("weight_hh", "w_hh", _recurrent_weight_shape, False),
    Param("bias_ih", "b_ih", _bias_shape, True),
    Param("bias_hh", "b_hh", _bias_shape, True),
)


def _projection_shape(layer_input, hidden, gates, options):
    return (options["proj_size"], hidden)


def _peephole_shape(layer_input, hidden, gates, options):
    return (3, hidden)


#: The LSTM's: the plain ones, its projection (PyTorch's weight_hr, when proj_size > 0) and
#: its peepholes (ONNX's P, rows p_i, p_f, p_o).
LSTM_PARAMS = PLAIN_PARAMS + (
    Param("weight_hr", "w_hr", _projection_shape, False, "proj_size"),
    Param("weight_peephole", "w_peephole", _peephole_shape, False, "peephole"),
)


def _check_proj_size(value):
    return check_int(value, "proj_size", 0)


def _hidden_shape(layer_input, hidden, gates, options):
    return (hidden,)


#: The LayerNorm cells' gains of their two layer norms over the G*H gates (beside the plain
#: parameters, with or without biases).
LAYER_NORM_PARAMS = (
    Param("ln_ih_weight", "ln_ih_weight", _bias_shape, False),
    Param("ln_hh_weight", "ln_hh_weight", _bias_shape, False),
)
#: The LayerNorm LSTM's layer norm of c: gain and bias.
LAYER_NORM_C_PARAMS = (
    Param("ln_c_weight", "ln_c_weight", _hidden_shape, False),
    Param("ln_c_bias", "ln_c_bias", _hidden_shape, False),
)


def _check_eps(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < value < float("inf"):
        raise ValueError(f"eps: expected a finite float > 0, got {value!r}")
    return float(value)


def _check_nonlinearity(value):
    if value not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {value!r}")
    return value


def _check_zoneout(value):
    """zoneout: a float in [0, 1) (1 would freeze the state)."""
    return _check_rate(value, "zoneout")


def _check_recurrent_dropout(value):
    """recurrent_dropout: a float in [0, 1) (1 would drop every recurrent input)."""
    return _check_rate(value, "recurrent_dropout")


def _check_flag(name, value):
    """A bool option (a str or a number is refused, not read as its truth value)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {value!r} of type {type(value).__name__}")
    return bool(value)


def _flag(name):
    """The check of the bool option ``name`` (a partial: a stack's cell table pickles)."""
    return functools.partial(_check_flag, name)


#: Zoneout and recurrent dropout (kernel options of every plain cell; ``forward``'s ``seeds``
#: draw their masks).
ZONEOUT_OPTION = {"zoneout": (0.0, _check_zoneout),
                  "recurrent_dropout": (0.0, _check_recurrent_dropout)}


class Cell(NamedTuple):
    """What a stack needs to know of one cell. Its kernels are ``rnnfast.functional``'s
    ``<name>_forward(x, <params' keys>..., h0[, c0], **options, lengths=, reverse=,
    batch_first=, training=)`` and ``<name>_backward(ctx, dy, dh_n[, dc_n])``."""

    name: str
    #: G: the weights have ``G * hidden_size`` rows
    gates: int
    #: the state is ``(h, c)`` (LSTM), not ``h`` alone
    has_cell_state: bool
    params: Tuple[Param, ...]
    #: the cell's options (keywords of its forward kernel): name -> (default, check)
    options: Mapping[str, Tuple[Any, Callable[[Any], Any]]]
    #: the options that only decide which parameters exist (not kernel keywords)
    param_options: Tuple[str, ...] = ()
    #: the precisions its kernels compute in (``rnnfast.functional``'s ``precision``)
    precisions: Tuple[str, ...] = ("float32", "bfloat16")


CELLS: Dict[str, Cell] = {
    "rnn": Cell("rnn", 1, False, PLAIN_PARAMS,
                {"nonlinearity": ("tanh", _check_nonlinearity), **ZONEOUT_OPTION}),
    "lstm": Cell("lstm", 4, True, LSTM_PARAMS,
                 {"proj_size": (0, _check_proj_size), "peephole": (False, _flag("peephole")),
                  **ZONEOUT_OPTION},
                 ("proj_size", "peephole")),
    "gru": Cell("gru", 3, False, PLAIN_PARAMS,
                {"reset_after": (True, _flag("reset_after")), **ZONEOUT_OPTION}),
    "layer_norm_lstm": Cell("layer_norm_lstm", 4, True,
                            PLAIN_PARAMS + LAYER_NORM_PARAMS + LAYER_NORM_C_PARAMS,
                            {"eps": (1e-5, _check_eps), "zoneout": ZONEOUT_OPTION["zoneout"]},
                            precisions=("float32",)),
    "layer_norm_gru": Cell("layer_norm_gru", 3, False, PLAIN_PARAMS + LAYER_NORM_PARAMS,
                           {"eps": (1e-5, _check_eps), "zoneout": ZONEOUT_OPTION["zoneout"]},
                           precisions=("float32",)),
}


class _KernelCall(NamedTuple):
    """How a cell's arguments go to its forward kernel, worked out once per cell, options and
    precision (``_kernel_call``) rather than on every call."""

    #: the kernel's name in ``rnnfast.functional``
    name: str
    #: the keys of the parameters passed by position (the plain four), in order
    positional: Tuple[str, ...]
    #: the keys of the parameters passed by keyword
    keywords: Tuple[str, ...]
    #: the kernel keywords fixed by the options and the precision
    fixed: Mapping[str, Any]
    #: the kernel takes ``seed`` in training (zoneout or recurrent dropout)
    seeded: bool
    has_cell_state: bool


def _kernel_call(cell, options, precision):
    """The ``_KernelCall`` of ``cell`` with kernel ``options`` in ``precision`` (ValueError for a
    precision the cell does not compute in)."""
    if precision not in cell.precisions:
        raise ValueError(f"precision: the {cell.name} cell computes in "
                         f"{' or '.join(cell.precisions)} only, got {precision!r}")
    fixed = dict(options)
    if len(cell.precisions) > 1:
        fixed["precision"] = precision
    return _KernelCall(cell.name + "_forward",
                       tuple(param.key for param in cell.params if param in PLAIN_PARAMS),
                       tuple(param.key for param in cell.params if param not in PLAIN_PARAMS),
                       fixed, bool(options.get("zoneout") or options.get("recurrent_dropout")),
                       cell.has_cell_state)


def _run_kernel(call, x, args, keywords, h0, c0, lengths, reverse, batch_first, training, seed,
                weights_token=None):
    """``call``'s kernel on ``x``: ``args`` the positional parameters, ``keywords`` the others
    (a dict this function may add to). Returns ``(y, h_n, c_n or None, ctx)``. The kernel is
    looked up in ``rnnfast.functional`` at each call, so a function replaced there (a test's
    spy) is the one that runs."""
    if training and call.seeded:
        keywords["seed"] = seed
    if weights_token is not None:
        keywords["weights_token"] = weights_token
    kernel = getattr(F, call.name)
    if call.has_cell_state:
        return kernel(x, *args, h0, c0, **keywords, **call.fixed, lengths=lengths,
                      reverse=reverse, batch_first=batch_first, training=training)
    y, h_n, ctx = kernel(x, *args, h0, **keywords, **call.fixed, lengths=lengths,
                         reverse=reverse, batch_first=batch_first, training=training)
    return y, h_n, None, ctx


def cell_forward(cell, x, weights, h0, c0, options, *, lengths=None, reverse=False,
                 batch_first=False, training=False, precision="float32", seed=None):
    """One layer and direction of ``cell`` (a ``Cell``) on its kernel: ``weights`` keyed by
    ``Param.key`` (missing: None; the plain four by position, the others by keyword),
    ``options`` the kernel's (``RecurrentStack.kernel_options``), ``precision`` the kernels'
    (one of ``cell.precisions``; ValueError otherwise), ``seed`` that of the zoneout and recurrent
    dropout masks (passed only with either in training). Returns
    ``(y, h_n, c_n or None, ctx)``. The kernel is looked up in ``rnnfast.functional`` at each
    call, so a function replaced there (a test's spy) is the one that runs."""
    call = _kernel_call(cell, options, precision)
    return _run_kernel(call, x, [weights.get(key) for key in call.positional],
                       {key: weights.get(key) for key in call.keywords}, h0, c0, lengths,
                       reverse, batch_first, training, seed)


def cell_backward(cell, ctx, dy=None, dh_n=None, dc_n=None):
    """The gradients of a ``cell_forward(..., training=True)``, keyed by ``Param.key``,
    ``"x"``, ``"h0"`` (and ``"c0"``)."""
    states = (dh_n, dc_n) if cell.has_cell_state else (dh_n,)
    return getattr(F, cell.name + "_backward")(ctx, dy, *states)


def param_name(prefix, layer, direction=0):
    """PyTorch's ``state_dict`` name of a parameter: ``weight_ih_l0``, ``bias_hh_l1_reverse``."""
    return f"{prefix}_l{layer}" + ("_reverse" if direction else "")


def cell_options(cell, **given):
    """The options of ``CELLS[cell]``: the ``given`` ones checked, the others their defaults;
    TypeError for an option the cell does not have."""
    spec = CELLS[cell]
    unknown = set(given) - set(spec.options)
    if unknown:
        raise TypeError(f"{sorted(unknown)[0]}: not an option of the {cell} cell (its "
                        f"options: {sorted(spec.options) or 'none'})")
    return {name: check(given.get(name, default))
            for name, (default, check) in spec.options.items()}


class StackContext(NamedTuple):
    """What a training forward keeps for ``RecurrentStack.backward`` (opaque to callers)."""

    ctxs: list          # the kernel ctx of every layer and direction, index k
    masks: list         # per layer: the dropout mask its input was multiplied by, or None
    has_h0: bool
    has_c0: bool


def _stacked(arrays):
    """The (B, H) arrays of every layer and direction as one (L * D, B, H) array (a view of
    the only one when there is one)."""
    if len(arrays) == 1:
        return arrays[0][None]
    out = np.empty((len(arrays),) + arrays[0].shape, arrays[0].dtype)
    for k, a in enumerate(arrays):
        out[k] = a
    return out


class RecurrentStack:
    """The description of a recurrent stack, and its forward and backward passes.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"`` (a key of ``CELLS``).
        input_size: features of the first layer's input.
        hidden_size: H, the features of each direction's state and output.
        num_layers: stacked layers; layer ``l > 0`` reads the ``D * H`` outputs of ``l - 1``.
        bias: whether the layers have the bias parameters.
        bidirectional: D = 2 directions per layer, the second running backwards.
        reverse: (one direction only) every layer runs each sequence backwards.
        dropout: the probability of inter-layer dropout (the masks are given to ``forward``);
            warns, as PyTorch does, when it is > 0 with one layer.
        stacklevel: the ``warnings.warn`` stack level of that warning, counted from the caller
            of this constructor (1).
        precision: ``"float32"`` (the default) or ``"bfloat16"``: the products of every layer,
            forward and backward, from bfloat16 operands with float32 sums (float32 arrays;
            ``rnnfast.functional``'s ``precision``). An attribute that may be changed later.
        **options: the cell's options (``nonlinearity`` for "rnn", ``reset_after`` for "gru",
            ``proj_size`` and ``peephole`` for "lstm"; ``zoneout`` and
            ``recurrent_dropout`` for all three, whose training masks ``forward``'s ``seeds``
            draw). With ``proj_size`` P > 0 (< H, as in
            PyTorch) every layer's h, output and ``h0``/``h_n`` have P features.

    Attributes:
        cell: the ``Cell``.
        names: for each ``k = layer * D + direction``, the names of its parameters in
            ``cell.params`` order (those with ``bias`` only when ``bias``, those with an
            ``option`` only when that option is set).
        shapes: ``{name: shape}`` of every parameter, in the order of ``names``.
        params: the ``Param`` s every layer and direction has (``cell.params`` without the
            biases when ``bias`` is False).
        options: the cell's options, defaults filled in.
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, *, bias=True,
                 bidirectional=False, reverse=False, dropout=0.0, stacklevel=1,
                 precision="float32", **options):
        if cell not in CELLS:
            raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
        self.cell = CELLS[cell]
        self.input_size = check_int(input_size, "input_size", 1)
        self.hidden_size = check_int(hidden_size, "hidden_size", 1)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.bias = bool(bias)
        self.bidirectional = bool(bidirectional)
        self.reverse = bool(reverse)
        if self.reverse and self.bidirectional:
            raise ValueError("reverse: only for one direction (bidirectional=False)")
        self.dropout = check_probability(dropout, "dropout")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={self.dropout} and num_layers={self.num_layers}",
                          UserWarning, stacklevel=stacklevel + 1)
        self.options = cell_options(cell, **options)
        self.precision = check_precision(precision)
        #: the options the kernels take (without those that only decide the parameters)
        self.kernel_options = {k: v for k, v in self.options.items()
                               if k not in self.cell.param_options}
        self.proj_size = self.options.get("proj_size", 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected an int < hidden_size ({self.hidden_size}), "
                             f"got {self.proj_size}")
        self.params = tuple(p for p in self.cell.params if (self.bias or not p.bias)
                            and (not p.option or self.options[p.option]))
        self.names = []
        self.shapes = {}
        D, H, G = self.num_directions, self.hidden_size, self.cell.gates
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else D * self.state_size
            for direction in range(D):
                names = [param_name(param.prefix, layer, direction) for param in self.params]
                for name, param in zip(names, self.params):
                    self.shapes[name] = param.shape(layer_input, H, G, self.options)
                self.names.append(names)
        # per k: (kernel argument, parameter name) of each parameter
        self._keys = [[(param.key, name) for param, name in zip(self.params, names)]
                      for names in self.names]
        # the kernel calls' argument lists, per precision (built at first use: ``precision``
        # may change; the options may not)
        self._calls = {}

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def has_cell_state(self):
        return self.cell.has_cell_state

    @property
    def state_size(self):
        """Features of h (and of each direction's output): ``proj_size``, or H."""
        return self.proj_size or self.hidden_size

    @property
    def output_size(self):
        """Features of the stack's output (and of every layer's): ``D * state_size``."""
        return self.num_directions * self.state_size

    def state_shape(self, batch):
        """``(num_layers * D, batch, state_size)``: the shape of h0 and h_n."""
        return (self.num_layers * self.num_directions, batch, self.state_size)

    def cell_state_shape(self, batch):
        """``(num_layers * D, batch, H)``: the shape of c0 and c_n."""
        return (self.num_layers * self.num_directions, batch, self.hidden_size)

    def __getstate__(self):
        # the kernel-call cache is rebuilt on use: a pickle holds the stack's definition only
        state = dict(self.__dict__)
        state.pop("_calls", None)
        return state

    def __setstate__(self, state):
        # also reads pickles written before the cache existed
        self.__dict__.update(state)
        self._calls = {}

    def _kernel_calls(self):
        """``(call, positional, keywords)`` for the current precision: the ``_KernelCall`` and,
        per k, the parameter names the kernel takes by position (None for one the stack does not
        have) and the ``(key, name)`` pairs it takes by keyword."""
        plan = self._calls.get(self.precision)
        if plan is None:
            call = _kernel_call(self.cell, self.kernel_options, self.precision)
            positional, keywords = [], []
            for keys in self._keys:
                name_of = dict(keys)
                positional.append(tuple(name_of.get(key) for key in call.positional))
                keywords.append(tuple((key, name_of[key]) for key in call.keywords
                                      if key in name_of))
            plan = self._calls[self.precision] = (call, positional, keywords)
        return plan

    def dropout_masks(self, shape, dtype, rng):
        """Inter-layer dropout masks drawn from a NumPy ``Generator``, one per layer after the
        first: ``keep / (1 - dropout)`` with ``keep = rng.random(shape) >= dropout`` (zeros for
        ``dropout == 1``, no draw). None without dropout or with one layer. ``shape`` is the
        output's (``x.shape[:-1] + (D * H,)``)."""
        if self.dropout == 0 or self.num_layers == 1:
            return None
        dtype = np.dtype(dtype)
        masks = []
        for _ in range(self.num_layers - 1):
            if self.dropout >= 1.0:
                masks.append(np.zeros(shape, dtype))
            else:
                keep = rng.random(shape) >= self.dropout
                masks.append(keep.astype(dtype) / dtype.type(1.0 - self.dropout))
        return masks

    def forward(self, weights, x, h0=None, c0=None, *, lengths=None, batch_first=False,
                training=False, masks=None, seeds=None, weights_token=None):
        """All layers and directions.

        Args:
            weights: ``{name: array}`` with every name of ``names`` (more keys are ignored).
            x: ``(T, B, input_size)``, or ``(B, T, input_size)`` with ``batch_first``.
            h0: ``state_shape(B)`` (or a sequence of ``(B, state_size)`` arrays, index k), or
                None.
            c0: ``cell_state_shape(B)`` likewise (LSTM only), or None.
            lengths: ``(B,)`` valid steps of each sequence (post-padded batch), or None.
            batch_first: ``x`` and the output are batch-major.
            training: keep what ``backward`` needs and return it as ``ctx``.
            masks: None, or one array (or None) per layer after the first, of the output's
                shape: layer ``l``'s input is multiplied by ``masks[l - 1]`` (see
                ``dropout_masks``).
            seeds: with zoneout or recurrent dropout in training, the seed of each layer and
                direction's masks (index k; see ``rnnfast.reference.recurrent_masks``), or None (fresh
                entropy).
            weights_token: with ``precision="bfloat16"``, the recurrent kernels'
                ``weights_token`` for every layer and direction (``new_weights_token()``: the
                caller's promise that the weights hold the values they held at earlier calls
                with this token, whose bfloat16 packings are then reused), or None.

        Returns:
            ``(y, h_n, c_n, ctx)``: ``y`` in ``x``'s layout with ``output_size`` features,
            ``h_n`` ``state_shape(B)``, ``c_n`` ``cell_state_shape(B)`` (None without a cell
            state), ``ctx`` for
            ``backward`` when ``training`` else None.
        """
        L, D = self.num_layers, self.num_directions
        if masks is not None and len(masks) != L - 1:
            raise ValueError(f"masks: expected {L - 1} masks (one per layer after the first), "
                             f"got {len(masks)}")
        call, positional, keywords = self._kernel_calls()
        if seeds is not None and len(seeds) != L * D:
            raise ValueError(f"seeds: expected {L * D} seeds (one per layer and direction), "
                             f"got {len(seeds)}")
        h_n, c_n, ctxs, layer_masks = [], [], [], [None]
        layer_input = x
        for layer in range(L):
            mask = None if layer == 0 or masks is None else masks[layer - 1]
            if mask is not None:
                if mask.shape != layer_input.shape:
                    raise ValueError(f"masks[{layer - 1}]: expected the output's shape "
                                     f"{layer_input.shape}, got {mask.shape}")
                layer_input = layer_input * mask
            if layer:
                layer_masks.append(mask)
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                y, h, c, ctx = _run_kernel(
                    call, layer_input,
                    [None if name is None else weights[name] for name in positional[k]],
                    {key: weights[name] for key, name in keywords[k]},
                    None if h0 is None else h0[k], None if c0 is None else c0[k], lengths,
                    self.reverse or direction == 1, batch_first, training,
                    None if seeds is None else seeds[k], weights_token)
                outputs.append(y)
                h_n.append(h)
                c_n.append(c)
                ctxs.append(ctx)
            layer_input = outputs[0] if D == 1 else np.concatenate(outputs, axis=-1)
        ctx = StackContext(ctxs, layer_masks, h0 is not None, c0 is not None) \
            if training else None
        return (layer_input, _stacked(h_n), _stacked(c_n) if self.cell.has_cell_state else None,
                ctx)

    def backward(self, ctx, dy=None, dh_n=None, dc_n=None):
        """Gradients of a ``forward(..., training=True)``.

        Args:
            ctx: the forward's ``ctx`` (usable for any number of backward calls).
            dy: the output's shape, or None (zeros).
            dh_n: ``state_shape(B)`` (or a sequence of ``(B, H)`` arrays or None, index k), or
                None (zeros).
            dc_n: likewise (LSTM), or None.

        Returns:
            ``(dx, dh0, dc0, grads)``: ``dx`` like ``x``; ``dh0`` and ``dc0`` like ``h0`` and
            ``c0`` (None when the forward was given none); ``grads`` ``{name: array}`` for
            every parameter.
        """
        D, H = self.num_directions, self.state_size
        grads, dh0, dc0 = {}, [None] * len(ctx.ctxs), [None] * len(ctx.ctxs)
        grad_out = dy
        for layer in reversed(range(self.num_layers)):
            dx = None
            for direction in range(D):
                k = layer * D + direction
                dy_k = grad_out
                if grad_out is not None and D > 1:
                    dy_k = grad_out[..., direction * H:(direction + 1) * H]
                g = cell_backward(self.cell, ctx.ctxs[k], dy_k,
                                  None if dh_n is None else dh_n[k],
                                  None if dc_n is None else dc_n[k])
                for param, name in zip(self.params, self.names[k]):
                    grads[name] = g[param.key]
                if dx is None:
                    dx = g["x"]
                else:
                    dx += g["x"]
                dh0[k], dc0[k] = g["h0"], g.get("c0")
            if ctx.masks[layer] is not None:
                dx *= ctx.masks[layer]
            grad_out = dx
        return (grad_out, _stacked(dh0) if ctx.has_h0 else None,
                _stacked(dc0) if ctx.has_c0 else None, grads)
