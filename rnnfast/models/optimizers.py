"""The optimiser of ``Sequential.compile``: a Keras name (with Keras' defaults), an
``rnnfast.optim.Optimizer`` over the model's parameters, or a factory ``params -> Optimizer``
(an optimiser class, or ``functools.partial(optim.Adam, lr=1e-2)``); and its configuration
and state for ``save`` / ``load``.

Keras' defaults by name: ``"sgd"`` SGD(lr=0.01); ``"adam"`` Adam(lr=1e-3, eps=1e-7);
``"adamw"`` AdamW(lr=1e-3, eps=1e-7, weight_decay=0.004); ``"rmsprop"`` RMSprop(lr=1e-3,
alpha=0.9 (Keras' rho), eps=1e-7). The update rules are PyTorch's (``rnnfast.optim``).
"""
import functools
import inspect

import numpy as np

from rnnfast import optim
from rnnfast.nn.module import Parameter
from rnnfast.nn.serialization import is_finite_number

__all__ = ["resolve", "create", "get_config", "from_config", "copy_state"]

KERAS_DEFAULTS = {
    "sgd": (optim.SGD, {"lr": 0.01}),
    "adam": (optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "adamw": (optim.AdamW, {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004}),
    "rmsprop": (optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
}
CLASSES = {cls.__name__: cls for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop)}


def resolve(identifier):
    """An Optimizer (returned as is) or a factory ``params -> Optimizer``."""
    if isinstance(identifier, optim.Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in KERAS_DEFAULTS:
            raise ValueError(f"optimizer: unknown name {identifier!r}; expected one of "
                             f"{sorted(KERAS_DEFAULTS)}, an rnnfast.optim.Optimizer, or a "
                             "function params -> Optimizer")
        cls, defaults = KERAS_DEFAULTS[key]
        return functools.partial(cls, **defaults)
    if callable(identifier):
        return identifier
    raise TypeError(f"optimizer: expected a name such as 'adam', an rnnfast.optim.Optimizer or a "
                    f"function params -> Optimizer, got {type(identifier).__name__}")


def _param_ids(opt):
    return {id(p) for group in opt.param_groups for p in group["params"]}


def create(spec, params):
    """The optimiser of ``spec`` (from ``resolve``) over exactly ``params``."""
    opt = spec if isinstance(spec, optim.Optimizer) else spec(params)
    if not isinstance(opt, optim.Optimizer):
        raise TypeError(f"optimizer: the factory returned {type(opt).__name__}, expected an "
                        "rnnfast.optim.Optimizer")
    if _param_ids(opt) != {id(p) for p in params}:
        raise ValueError("optimizer: its parameters are not this model's parameters; build the "
                         "model before creating the optimizer (model.build(input_shape)), or "
                         "pass a name or an optimizer class to compile()")
    return opt


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def get_config(opt, params):
    """``(config, arrays)``: the optimiser's class, groups (options and parameter indices) and
    state; arrays (NumPy) separately, keyed ``"<parameter index>/<name>"``. None for
    optimisers of other classes than rnnfast.optim's."""
    if type(opt).__name__ not in CLASSES or CLASSES[type(opt).__name__] is not type(opt):
        return None, {}
    index = {id(p): i for i, p in enumerate(params)}
    groups = []
    for group in opt.param_groups:
        options = {k: _jsonable(v) for k, v in group.items() if k != "params"}
        groups.append({"params": [index[id(p)] for p in group["params"]], "options": options})
    state, arrays = {}, {}
    for i, p in enumerate(params):
        entries = opt.state.get(id(p))
        if not entries:
            continue
        scalars = {}
        for key, value in entries.items():
            if isinstance(value, np.ndarray):
                arrays[f"{i}/{key}"] = value
            else:
                scalars[key] = _jsonable(value)
        state[str(i)] = scalars
    return {"class": type(opt).__name__, "groups": groups, "state": state}, arrays


def _fail(where, message):
    raise ValueError(f"{where}: optimizer: {message}")


def _first_step_state(cls, options, dtype):
    """The state entries an optimiser of ``cls`` with ``options`` keeps per parameter after a
    step: ``{name: is_array}`` (found by one step on a throwaway parameter)."""
    p = Parameter(np.zeros(1, dtype))
    p.grad = np.ones(1, dtype)
    opt = cls([p], **options)
    opt.step()
    return {k: isinstance(v, np.ndarray) for k, v in opt.state.get(id(p), {}).items()}


def _options(cls, options, where):
    """A group's options checked as data (numbers finite, flags booleans); the optimiser's own
    checks then validate their ranges."""
    if not isinstance(options, dict):
        _fail(where, "group options: expected a dict")
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if name not in ("self", "params")}
    out = {}
    for key, value in options.items():
        if key not in defaults:
            _fail(where, f"unknown option {str(key)[:40]!r} of {cls.__name__}; expected some "
                         f"of {sorted(defaults)}")
        if isinstance(defaults[key], bool):
            if not isinstance(value, bool):
                _fail(where, f"{key}: expected true or false, got {str(value)[:40]}")
            out[key] = value
            continue
        if isinstance(defaults[key], tuple) and isinstance(value, list):
            value = tuple(value)
        items = value if isinstance(value, tuple) else (value,)
        if not all(is_finite_number(v) for v in items):
            _fail(where, f"{key}: expected finite numbers, got {str(value)[:40]}")
        out[key] = value
    return out


def from_config(config, arrays, params, where="optimizer"):
    """The optimiser saved by ``get_config`` over ``params`` (the model's, in order), every
    part checked: the class by name from a fixed table, each group's options, a partition of
    the parameters into the groups, and per parameter the state entries a step of that
    optimiser keeps (arrays of the parameter's shape and dtype). ValueError naming the part."""
    if not isinstance(config, dict) or set(config) != {"class", "groups", "state"}:
        _fail(where, "expected {'class', 'groups', 'state'}")
    cls = CLASSES.get(config["class"]) if isinstance(config["class"], str) else None
    if cls is None:
        _fail(where, f"unknown class {str(config['class'])[:40]!r}; known: {sorted(CLASSES)}")
    groups = config["groups"]
    if not isinstance(groups, list) or not 1 <= len(groups) <= max(len(params), 1):
        _fail(where, f"expected 1 to {len(params)} parameter groups")
    built, owner, seen = [], {}, set()
    for g, group in enumerate(groups):
        if not isinstance(group, dict) or set(group) != {"params", "options"} or \
                not isinstance(group["params"], list):
            _fail(where, f"groups[{g}]: expected {{'params': [...], 'options': {{...}}}}")
        for i in group["params"]:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(params) or \
                    i in seen:
                _fail(where, f"groups[{g}].params: {str(i)[:20]} is not a new index below "
                             f"{len(params)}")
            seen.add(i)
            owner[i] = g
        built.append({"params": [params[i] for i in group["params"]],
                      **_options(cls, group["options"], where)})
    if len(seen) != len(params):
        _fail(where, f"the groups hold {len(seen)} of the model's {len(params)} parameters")
    try:
        opt = cls(built)
    except (TypeError, ValueError) as exc:
        _fail(where, str(exc))
    state = config["state"]
    if not isinstance(state, dict):
        _fail(where, "state: expected a dict")
    by_param = {}
    for key, value in arrays.items():
        index, _, name = key.partition("/")
        by_param.setdefault(int(index), {})[name] = value
    for index in by_param:
        if str(index) not in state:
            _fail(where, f"arrays of parameter {index} without its state entry")
    for key, scalars in state.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(params)) or \
                not isinstance(scalars, dict):
            _fail(where, f"state: {str(key)[:20]!r} is not a parameter index")
        i = int(key)
        p, group = params[i], opt.param_groups[owner[i]]
        options = {k: v for k, v in group.items() if k != "params"}
        expected = _first_step_state(cls, options, p.dtype)
        entries = dict(scalars)
        entries.update(by_param.get(i, {}))
        if set(entries) != set(expected):
            _fail(where, f"state of parameter {i}: entries {sorted(entries)}, a {cls.__name__} "
                         f"with these options keeps {sorted(expected)}")
        for name, is_array in expected.items():
            value = entries[name]
            if is_array:
                if not isinstance(value, np.ndarray) or value.shape != p.shape or \
                        value.dtype != p.dtype:
                    _fail(where, f"state of parameter {i}: {name} must be an array of shape "
                                 f"{p.shape} and dtype {p.dtype}")
                entries[name] = np.array(value)
            elif isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 <= value <= 2 ** 53:
                _fail(where, f"state of parameter {i}: {name} must be an int >= 0")
        opt.state[id(p)] = entries
    return opt


def copy_state(source, target):
    """Give ``target`` the options and state of ``source``, an optimiser of the same class over
    the same parameters in the same groups (``from_config`` over the model's parameters)."""
    def groups(opt):
        return [sorted(id(p) for p in g["params"]) for g in opt.param_groups]

    if type(source) is not type(target) or groups(source) != groups(target):
        raise ValueError(f"optimizer: the saved {type(source).__name__} does not match the "
                         f"model's {type(target).__name__} (class or parameter groups)")
    for g_src, g_dst in zip(source.param_groups, target.param_groups):
        g_dst.update({k: v for k, v in g_src.items() if k != "params"})
    target.state.clear()
    target.state.update(source.state)
