"""The optimiser of ``Sequential.compile``: a Keras name (with Keras' defaults), an
``rnnfast.optim.Optimizer`` over the model's parameters, or a factory ``params -> Optimizer``
(an optimiser class, or ``functools.partial(optim.Adam, lr=1e-2)``); and its configuration
and state for ``save`` / ``load``.

Keras' defaults by name: ``"sgd"`` SGD(lr=0.01); ``"adam"`` Adam(lr=1e-3, eps=1e-7);
``"adamw"`` AdamW(lr=1e-3, eps=1e-7, weight_decay=0.004); ``"rmsprop"`` RMSprop(lr=1e-3,
alpha=0.9 (Keras' rho), eps=1e-7). The update rules are PyTorch's (``rnnfast.optim``).
"""
import functools

import numpy as np

from rnnfast import optim

__all__ = ["resolve", "create", "get_config", "from_config"]

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


def from_config(config, arrays, params):
    """The optimiser saved by ``get_config`` over ``params`` (the model's, in order)."""
    cls = CLASSES.get(config["class"])
    if cls is None:
        raise ValueError(f"optimizer: unknown class {config['class']!r} in the saved model")
    opt = cls([{"params": [params[i] for i in g["params"]]} for g in config["groups"]])
    for group, saved in zip(opt.param_groups, config["groups"]):
        for key, value in saved["options"].items():
            group[key] = tuple(value) if isinstance(value, list) else value
    for i, p in enumerate(params):
        entries = dict(config["state"].get(str(i), {}))
        prefix = f"{i}/"
        for key, value in arrays.items():
            if key.startswith(prefix):
                entries[key[len(prefix):]] = np.array(value)
        if entries:
            opt.state[id(p)] = entries
    return opt
