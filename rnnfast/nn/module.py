"""``Parameter`` and ``Module``: the PyTorch-like base of every layer, over NumPy arrays.

A ``Parameter`` holds a NumPy array ``.data`` and its gradient ``.grad`` (``None`` until a
backward accumulates into it). A ``Module`` registers the ``Parameter`` and ``Module``
objects assigned to its attributes, as ``torch.nn.Module`` does, which gives
``named_parameters()``, ``state_dict()`` and ``load_state_dict()`` with PyTorch's dotted names.

The training contract of every layer:

- ``forward(x)`` (also ``layer(x)``) in training mode (the default, ``train()``) keeps what its
  ``backward`` needs, overwriting what the previous forward kept; in ``eval()`` mode it keeps
  nothing and dropout is off.
- ``backward(dy)`` returns the gradient with respect to the last forward's input and *adds* the
  parameter gradients to ``.grad`` (so clear them with ``zero_grad()`` between steps).
- Float inputs of another float dtype are cast to a layer's parameter dtype (as Keras does);
  inputs that are not floats raise ``TypeError``.
"""
import contextlib
import contextvars
from collections import namedtuple

import numpy as np

from rnnfast._checks import check_int, check_precision, check_probability  # noqa: F401 (used by the layers)

__all__ = ["Parameter", "Module", "IncompatibleKeys", "parameter_budget"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype):
    """The parameter dtype of a layer: float32 or float64, else TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}")
    return dt


def check_layer_precision(precision, dtype):
    """A layer's ``precision`` (``"float32"`` or ``"bfloat16"``); bfloat16 needs float32
    parameters (``dtype``), else ValueError naming both."""
    precision = check_precision(precision)
    if precision == "bfloat16" and np.dtype(dtype) != np.float32:
        raise ValueError(f"precision: 'bfloat16' needs a float32 layer, got dtype={np.dtype(dtype)}")
    return precision


def make_rng(seed=None, rng=None):
    """A ``np.random.Generator`` from a ``seed`` (int or None) or a given generator."""
    if rng is not None:
        if seed is not None:
            raise ValueError("seed and rng: give at most one of them")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed: expected an int or None, got {type(seed).__name__}")
    return np.random.default_rng(seed)


def check_build_size(value, name, built_size, layer, unit):
    """``value`` as an int >= 1 for ``build``; ValueError naming it if the layer was already built
    (``built_size`` not None) for another size ("this <layer> was built for <n> <unit>")."""
    value = check_int(value, name, 1)
    if built_size is not None and value != built_size:
        raise ValueError(f"{name}: this {layer} was built for {built_size} {unit}, got {value}")
    return value


def as_array(x):
    """A NumPy array of ``x`` (an array-like, or a CPU torch.Tensor without importing torch)."""
    if x.__class__ is np.ndarray:
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_float_input(x, name, dtype=None):
    """``x`` as a NumPy float array (cast to ``dtype`` when given); TypeError for non-floats."""
    arr = as_array(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def check_grad(dy, name, shape, dtype):
    """An upstream gradient of the given shape, cast to dtype."""
    dy = as_float_input(dy, name, dtype)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the shape of the forward's "
                         f"output), got {dy.shape}")
    return dy


def _to_numpy(value, key):
    """A state_dict value (NumPy array, torch.Tensor, list, ...) as a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        try:
            value = value.detach().cpu().numpy()
        except TypeError as exc:
            raise TypeError(f"state_dict[{key!r}]: cannot convert to a NumPy array "
                            f"({exc})") from None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state_dict[{key!r}]: expected an array, got {type(value).__name__} "
                        f"({exc})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"state_dict[{key!r}]: expected a real numeric array, got dtype "
                        f"{arr.dtype}")
    return arr


def keras_input_shape(input_shape):
    """Keras' ``input_shape`` argument of a layer (one sample's shape, without the batch axis;
    None for a free size) as a tuple, or None; a Sequential builds from its first layer's."""
    if input_shape is None:
        return None
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    try:
        shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape: expected a tuple of ints or None (one sample's shape, "
                        f"without the batch axis), got {input_shape!r}") from None
    if not shape or any(d is not None and d < 1 for d in shape):
        raise ValueError(f"input_shape: expected one sample's shape without the batch axis "
                         f"(sizes >= 1 or None), got {input_shape!r}")
    return shape


_BUDGET = contextvars.ContextVar("rnnfast_parameter_budget", default=None)


@contextlib.contextmanager
def parameter_budget(elements, what="the file"):
    """While active, creating Parameters of more than ``elements`` elements in all raises
    ValueError before their arrays are copied or filled: the guard of a loader building layers
    from configs it does not trust (``what`` names where the budget comes from)."""
    token = _BUDGET.set([int(elements), what])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _spend(size, spend=True):
    budget = _BUDGET.get()
    if budget is None:
        return
    if size > budget[0]:
        raise ValueError(f"the configuration asks for a parameter of {size:,} elements, more "
                         f"than {budget[1]} holds ({budget[0]:,} elements left)")
    if spend:
        budget[0] -= size


def credit_parameter_budget(elements):
    """Add ``elements`` to the active ``parameter_budget`` (if any): for a layer that creates
    parameters it drops at once (a Keras-style recurrent core creates, then drops, PyTorch's
    ``b_hh``), so that only what it keeps is spent."""
    budget = _BUDGET.get()
    if budget is not None:
        budget[0] += int(elements)


def parameter_zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` for a new Parameter, checked against the active
    ``parameter_budget`` before anything is allocated."""
    _spend(int(np.prod(shape, dtype=object)), spend=False)
    return np.zeros(shape, dtype)


class Parameter:
    """A trainable array: ``.data`` (NumPy float array) and ``.grad`` (same shape, or None)."""

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=True):
        if isinstance(data, np.ndarray):
            _spend(data.size)
        data = np.array(data, copy=True)
        if data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"data: expected a float32 or float64 array, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def accumulate(self, grad, owned=False):
        """Add ``grad`` to ``.grad`` (creating it); nothing when ``requires_grad`` is False.
        ``owned``: the caller gives ``grad`` away (a new array of a kernel's, which nothing else
        refers to): when ``.grad`` is None and ``grad`` is an array of the parameter's dtype
        that owns its memory, ``.grad`` becomes ``grad`` itself instead of a copy."""
        if not self.requires_grad:
            return
        grad = np.asarray(grad)
        if grad.shape != self.data.shape:
            raise ValueError(f"grad: expected shape {self.data.shape}, got {grad.shape}")
        if self.grad is None:
            if owned and grad.dtype == self.data.dtype and grad.base is None and \
                    grad.flags.writeable:
                self.grad = grad
            else:
                self.grad = grad.astype(self.data.dtype, copy=True)
        else:
            self.grad += grad

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class KerasWeightless:
    """Keras' ``get_weights()`` / ``set_weights()`` of a layer without weights (Dropout,
    Flatten, Activation, Masking, pooling, merge layers): ``[]``, and only ``[]`` is taken."""

    def get_weights(self):
        return []

    def set_weights(self, weights):
        if not isinstance(weights, (list, tuple)) or len(weights):
            shown = f"{len(weights)} arrays" if isinstance(weights, (list, tuple)) else \
                type(weights).__name__
            raise ValueError(f"weights: {type(self).__name__} has no weights; expected [], got "
                             f"{shown}")


class _Structure:
    """The state of every Module's registrations: ``token`` is replaced by a new object whenever
    an entry of any module's ``_parameters`` or ``_modules`` changes (``_Registry``). A module's
    lists of its sub-modules and parameters are kept with the token they were made under and
    made again when it is no longer the current one (a copied or unpickled module's lists hold
    another object, so they are made again too)."""

    token = object()


class _Registry(dict):
    """The ``_parameters`` / ``_modules`` dict of a Module: every change (through any of
    dict's methods) replaces ``_Structure.token``."""

    __slots__ = ()

    def __setitem__(self, key, value):
        _Structure.token = object()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        _Structure.token = object()
        dict.__delitem__(self, key)

    def __ior__(self, other):
        _Structure.token = object()
        return dict.__ior__(self, other)

    def pop(self, *args):
        _Structure.token = object()
        return dict.pop(self, *args)

    def popitem(self):
        _Structure.token = object()
        return dict.popitem(self)

    def clear(self):
        _Structure.token = object()
        dict.clear(self)

    def update(self, *args, **kwargs):
        _Structure.token = object()
        dict.update(self, *args, **kwargs)

    def setdefault(self, key, default=None):
        _Structure.token = object()
        return dict.setdefault(self, key, default)


def _is_symbolic(x):
    """True for a symbolic tensor of a functional model, or a list holding one."""
    if isinstance(x, (list, tuple)):
        return any(getattr(item, "_rnnfast_symbolic", False) is True for item in x)
    return getattr(x, "_rnnfast_symbolic", False) is True


class Module:
    """Base class of the layers: registration of parameters and sub-modules, modes, state."""

    def __init__(self):
        object.__setattr__(self, "_parameters", _Registry())
        object.__setattr__(self, "_modules", _Registry())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)

    # registration -------------------------------------------------------------------------
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError("call Module.__init__() before assigning attributes")
        modules = self.__dict__["_modules"]
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            params.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{name}: expected a Parameter or None, got {type(value).__name__}")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"{name}: expected a Module or None, got {type(value).__name__}")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_parameter(self, name, param):
        """Register a Parameter (or None, for an absent one such as ``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param: expected a Parameter or None, got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    # traversal ----------------------------------------------------------------------------
    def _walk(self):
        """``(name, module)`` for this module and every sub-module, depth first, each once."""
        seen = set()
        stack = [("", self)]
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m)
                        for k, m in module._modules.items() if m is not None]
            stack = children + stack

    def _tree(self):
        """``(sub-modules, parameters)``: the ``(name, module)`` pairs ``named_modules()``
        lists after this module and the ``(name, Parameter)`` pairs of ``named_parameters()``
        (each once), kept until any module's registrations change (``_Structure``); this
        module itself is not in them (no reference cycle)."""
        kept = self.__dict__.get("_tree_kept")
        if kept is not None and kept[0] is _Structure.token:
            return kept[1], kept[2]
        token = _Structure.token
        modules = list(self._walk())
        seen = set()
        params = []
        for mod_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                params.append(((f"{mod_name}.{name}" if mod_name else name), param))
        object.__setattr__(self, "_tree_kept", (token, modules[1:], params, {}))
        return modules[1:], params

    def _modules_with(self, method):
        """The modules of ``named_modules()`` (in its order) that have a callable attribute
        ``method``, e.g. the layers with ``regularization_penalty``: worked out once and kept
        with ``_tree``'s lists (a module given such an attribute of its own later, with no
        registration changed, is not seen)."""
        self._tree()
        kept = self.__dict__["_tree_kept"][3]
        found = kept.get(method)
        if found is None:
            # this module as a flag, not in the tuple (no reference cycle)
            found = kept[method] = (callable(getattr(self, method, None)), tuple(
                m for _, m in self._tree()[0] if callable(getattr(m, method, None))))
        return ((self,) + found[1]) if found[0] else found[1]

    def named_modules(self, prefix=""):
        """``(name, module)`` for this module and every sub-module, depth first."""
        yield prefix, self
        for name, module in self._tree()[0]:
            yield (f"{prefix}.{name}" if prefix else name), module

    def children(self):
        return [m for m in self._modules.values() if m is not None]

    def named_parameters(self, prefix="", recurse=True):
        """``(name, Parameter)`` pairs with PyTorch's dotted names, each parameter once."""
        if not recurse:
            seen = set()
            for name, param in self._parameters.items():
                if param is not None and id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{prefix}.{name}" if prefix else name), param
            return
        for name, param in self._tree()[1]:
            yield (f"{prefix}.{name}" if prefix else name), param

    def parameters(self, recurse=True):
        return [p for _, p in (self._tree()[1] if recurse else
                               self.named_parameters(recurse=False))]

    # gradients and modes ------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Clear the gradients: ``None`` (PyTorch's default) or zeros."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze (True) every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def set_precision(self, precision):
        """Set the ``precision`` (``"float32"`` or ``"bfloat16"``: the kernels' products) of
        this module and of every sub-module that has one (recurrent and convolution layers,
        which need float32 parameters for bfloat16); returns self (per-model precision)."""
        precision = check_precision(precision)
        layers = [m for _, m in self.named_modules() if "precision" in m.__dict__ or
                  isinstance(getattr(type(m), "precision", None), property)]
        for m in layers:
            check_layer_precision(precision, m.dtype)
        for m in layers:
            m.precision = precision
        return self

    def train(self, mode=True):
        """Training mode (forward keeps what backward needs, dropout on); returns self."""
        mode = bool(mode)
        object.__setattr__(self, "training", mode)
        if not mode:
            object.__setattr__(self, "_cache", None)
        for _, module in self._tree()[0]:
            object.__setattr__(module, "training", mode)
            if not mode:
                object.__setattr__(module, "_cache", None)
        return self

    def eval(self):
        """Inference mode (nothing kept for backward, dropout off); returns self."""
        return self.train(False)

    def _saved(self):
        """What the last training-mode forward kept for backward, or a clear RuntimeError."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward pass to differentiate; "
                               "call forward() in training mode (layer.train()) first")
        return self._cache

    def _keep(self, cache):
        object.__setattr__(self, "_cache", cache if self.training else None)

    # state --------------------------------------------------------------------------------
    def state_dict(self):
        """``{name: array}``: copies of every parameter under its PyTorch name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def _build_from_state(self, state_dict, prefix):
        """Hook for layers with lazily created parameters (``Dense``): create them from
        the shapes in a state_dict before it is loaded."""

    def _upgrade_state_dict(self, state_dict, prefix):
        """Hook for layers whose parameters changed form: the mapping to load (``state_dict``
        itself, or a new mapping with this layer's entries under ``prefix`` rewritten)."""
        return state_dict

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, torch tensors, lists, ...) into the parameters, cast to their dtype.

        Every shape must match; with ``strict`` the keys must match exactly. Nothing is
        modified unless everything checks. Returns ``(missing_keys, unexpected_keys)``."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        for name, module in self.named_modules():
            module._build_from_state(state_dict, f"{name}." if name else "")
        for name, module in self.named_modules():
            state_dict = module._upgrade_state_dict(state_dict, f"{name}." if name else "")
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in own]
        if strict and (missing or unexpected):
            lines = [f"load_state_dict of {type(self).__name__}: keys do not match"]
            if missing:
                lines.append(f"missing keys: {missing}")
            if unexpected:
                lines.append(f"unexpected keys: {unexpected}")
            lines.append(f"expected keys: {list(own)}")
            raise ValueError("; ".join(lines))
        arrays = {}
        for key, param in own.items():
            if key not in state_dict:
                continue
            arr = _to_numpy(state_dict[key], key)
            if arr.shape != param.shape:
                raise ValueError(f"state_dict[{key!r}]: expected shape {param.shape}, "
                                 f"got {arr.shape}")
            arrays[key] = arr
        for key, arr in arrays.items():
            own[key].data[...] = arr
        return IncompatibleKeys(missing, unexpected)

    # configuration (Keras' pattern) ------------------------------------------------------
    def get_config(self):
        """The constructor arguments that rebuild this layer (JSON data), for saving; layers
        that can be saved override it."""
        raise TypeError(f"{type(self).__name__} has no get_config(): it cannot be saved")

    @classmethod
    def from_config(cls, config):
        """The layer ``get_config()`` describes (its weights freshly initialised)."""
        return cls(**config)

    # calling and printing -----------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    #: set by rnnfast.models.functional: builds a graph node when a layer is called on symbolic
    #: tensors (Keras' functional API) instead of arrays
    symbolic_call = None

    def __call__(self, *args, **kwargs):
        if args and Module.symbolic_call is not None and _is_symbolic(args[0]):
            return Module.symbolic_call(self, *args, **kwargs)
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = [(k, m) for k, m in self._modules.items() if m is not None]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, module in children:
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
