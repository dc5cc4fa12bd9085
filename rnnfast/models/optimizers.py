"""Keras' optimisers and the optimiser of ``Sequential.compile``.

Keras' classes, built without parameters and bound to the model's by ``compile`` (or the
first ``fit``), with Keras' names, defaults and update rules (those of Keras 3 on its torch
backend)::

    model.compile(optimizer=Adam(learning_rate=1e-3, clipnorm=1.0), loss="mse")
    model.compile(optimizer=SGD(learning_rate=ExponentialDecay(0.1, 100, 0.9), momentum=0.9),
                  loss="mse")

- ``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``
- ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)``
- ``AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
  amsgrad=False)``
- ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``
- ``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``

and, on each of them, ``weight_decay`` (``p -= p * weight_decay * learning_rate`` before the
update), ``clipnorm`` (each gradient's norm), ``global_clipnorm`` (all together),
``clipvalue`` (each element; at most one of the three) and ``name``. ``learning_rate`` is a
number, a schedule (``rnnfast.models.schedules``: ``ExponentialDecay``, ``CosineDecay``,
``PiecewiseConstantDecay``, called with ``iterations``, the number of updates so far) or a
function without arguments; ``optimizer.learning_rate`` reads the current value and can be set
(not when it is a schedule, as in Keras). Keras' ``use_ema``, ``loss_scale_factor`` and
``gradient_accumulation_steps`` are not supported: other values than their defaults raise
ValueError naming the optimiser and the argument.

``compile`` also takes a Keras name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``: as
before, rnnfast.optim's optimiser with Keras' defaults: ``"sgd"`` SGD(lr=0.01); ``"adam"``
Adam(lr=1e-3, eps=1e-7); ``"adamw"`` AdamW(lr=1e-3, eps=1e-7, weight_decay=0.004);
``"rmsprop"`` RMSprop(lr=1e-3, alpha=0.9 (Keras' rho), eps=1e-7), whose update rules are
PyTorch's), an ``rnnfast.optim.Optimizer`` over the model's parameters, or a factory
``params -> Optimizer``. ``get_config`` / ``from_config`` write and read back the optimiser
and its state for ``save`` / ``load``.
"""
import functools
import math
import numbers

import numpy as np

from rnnfast import optim
from rnnfast.models import schedules
from rnnfast.models.schedules import (
    CosineDecay,
    ExponentialDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "ExponentialDecay",
           "CosineDecay", "PiecewiseConstantDecay", "schedules", "resolve", "create",
           "get_config", "from_config"]

KERAS_DEFAULTS = {
    "sgd": (optim.SGD, {"lr": 0.01}),
    "adam": (optim.Adam, {"lr": 1e-3, "eps": 1e-7}),
    "adamw": (optim.AdamW, {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004}),
    "rmsprop": (optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
}
CLASSES = {cls.__name__: cls for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop)}


# Keras' optimisers ---------------------------------------------------------------------------
_UNSUPPORTED = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                "loss_scale_factor": None, "gradient_accumulation_steps": None}


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


class Optimizer(optim.Optimizer):
    """Base of Keras' optimisers: built without parameters, bound to them by ``build(params)``
    (``compile`` / the first ``fit`` do it); ``step()`` clips the gradients, applies the
    weight decay and then the update of every parameter that has a gradient, and counts
    ``iterations``."""

    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        cls = type(self).__name__
        for key, value in kwargs.items():
            if key not in _UNSUPPORTED:
                raise TypeError(f"{cls}: unexpected argument {key!r}")
            if value != _UNSUPPORTED[key]:
                raise ValueError(f"{cls}: {key}={value!r} is not supported (only the default, "
                                 f"{_UNSUPPORTED[key]!r})")
        self.defaults = {}
        self.state = {}
        self.param_groups = []
        self.params = None
        self.iterations = 0
        self.name = _snake(cls) if name is None else str(name)
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else \
            optim._check_number(weight_decay, "weight_decay")
        self.clipnorm = self._clip_arg(clipnorm, "clipnorm")
        self.clipvalue = self._clip_arg(clipvalue, "clipvalue")
        self.global_clipnorm = self._clip_arg(global_clipnorm, "global_clipnorm")
        if sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError(f"{cls}: clipnorm, clipvalue, global_clipnorm: give at most one of "
                             "them")

    @staticmethod
    def _clip_arg(value, name):
        if value is None:
            return None
        value = optim._check_number(value, name)
        if not 0 < value < math.inf:
            raise ValueError(f"{name}: expected a positive number or None, got {value}")
        return value

    @property
    def clips(self):
        """Whether this optimiser clips the gradients."""
        return any(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm))

    # learning rate ----------------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate of the next update (a schedule's value at ``iterations``)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return float(lr(self.iterations))
        if callable(lr):
            return float(lr())
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, LearningRateSchedule) or callable(value):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(f"learning_rate: this {type(self).__name__}'s learning rate is a "
                            f"schedule ({type(self._learning_rate).__name__}); it cannot be set "
                            "to a number")
        self._learning_rate = optim._check_number(value, "learning_rate")

    # binding --------------------------------------------------------------------------------
    def build(self, params):
        """Bind the optimiser to ``params`` (a list of Parameters) and create its slots; a
        second call with the same parameters does nothing."""
        params = optim._param_list(params)
        if not params:
            raise ValueError("params: the optimiser got an empty parameter list")
        if self.params is not None:
            if {id(p) for p in self.params} == {id(p) for p in params}:
                return self
            if self.iterations:
                raise ValueError(f"optimizer: this {type(self).__name__} has already updated "
                                 f"other parameters ({self.iterations} steps); give the model a "
                                 "new one")
        self.params = params
        self.param_groups = [{"params": params}]
        self.state = {id(p): {k: self._slot_init(k) * np.ones_like(p.data)
                              for k in self._slot_names} for p in params}
        return self

    def _slot_init(self, name):
        return 0.0

    # one step -------------------------------------------------------------------------------
    def _clip(self, grads):
        """Keras' clipping (BaseOptimizer._clip_gradients)."""
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = optim._p_norm(g.astype(np.float64), 2)
                out.append(g * g.dtype.type(self.clipnorm) / g.dtype.type(max(norm,
                                                                                self.clipnorm)))
            return out
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(optim._p_norm(g.astype(np.float64), 2) ** 2 for g in grads))
            scale = self.global_clipnorm * min(1.0 / total if total else math.inf,
                                               1.0 / self.global_clipnorm)
            if not math.isfinite(total):
                scale = math.nan
            return [g * g.dtype.type(scale) for g in grads]
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def step(self):
        """One update of every bound parameter that has a gradient."""
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__}: not bound to parameters yet; pass it to "
                               "compile() (or call build(params))")
        params, grads = [], []
        for p in self.params:
            if p.grad is None:
                continue
            if p.grad.shape != p.data.shape:
                raise ValueError(f"grad: expected shape {p.data.shape}, got {p.grad.shape}")
            params.append(p)
            grads.append(np.asarray(p.grad, dtype=p.data.dtype))
        if not params:
            return
        grads = self._clip(grads)
        lr = self.learning_rate
        if self.weight_decay is not None:
            for p in params:
                p.data *= p.data.dtype.type(1 - self.weight_decay * lr)
        for p, g in zip(params, grads):
            self._update(p.data, g, self.state[id(p)], p.data.dtype.type(lr))
        self.iterations += 1

    def _update(self, w, g, slots, lr):
        raise NotImplementedError(f"{type(self).__name__} must define _update")

    # configuration --------------------------------------------------------------------------
    def _own_config(self):
        return {}

    def get_config(self):
        """Keras' constructor arguments (a schedule as ``{"class_name", "config"}``)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise TypeError(f"{type(self).__name__}: a learning rate given as a function cannot "
                            "be written as data")
        config = {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                  "global_clipnorm": self.global_clipnorm}
        config.update(self._own_config())
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        lr = self._learning_rate
        shown = "<function>" if callable(lr) and not isinstance(lr, LearningRateSchedule) \
            else repr(lr)
        options = {"weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                   "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
                   **self._own_config()}
        args = "".join(f", {k}={v!r}" for k, v in options.items() if v is not None)
        return f"{type(self).__name__}(learning_rate={shown}{args})"


def _fraction(value, name, cls, maximum=1.0):
    value = optim._check_number(value, name)
    if value > maximum:
        raise ValueError(f"{cls}: {name}: expected a number in [0, {maximum}], got {value}")
    return value


class SGD(Optimizer):
    """Keras' ``SGD``: ``m = momentum * m - lr * g; w += m`` (with ``nesterov``:
    ``w += momentum * m - lr * g``); ``w -= lr * g`` without momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.momentum = _fraction(momentum, "momentum", "SGD")
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum else ()

    def _update(self, w, g, slots, lr):
        if not self.momentum:
            w -= lr * g
            return
        m = slots["momentum"]
        m *= w.dtype.type(self.momentum)
        m -= lr * g
        if self.nesterov:
            w -= lr * g
            w += w.dtype.type(self.momentum) * m
        else:
            w += m

    def _own_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras' ``Adam``: ``m += (1 - beta_1) * (g - m)``, ``v += (1 - beta_2) * (g^2 - v)``,
    ``w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`` (``v`` its
    running maximum with ``amsgrad``): Keras' epsilon is added to ``sqrt(v)`` before the bias
    correction, PyTorch's after it."""

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        cls = type(self).__name__
        self.beta_1 = _fraction(beta_1, "beta_1", cls)
        self.beta_2 = _fraction(beta_2, "beta_2", cls)
        self.epsilon = optim._check_number(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)
        if self.amsgrad:
            self._slot_names = ("momentum", "velocity", "velocity_hat")

    def _update(self, w, g, slots, lr):
        one, t = w.dtype.type(1), w.dtype.type(self.iterations + 1)
        b1, b2 = w.dtype.type(self.beta_1), w.dtype.type(self.beta_2)
        alpha = lr * np.sqrt(one - b2 ** t) / (one - b1 ** t)
        m, v = slots["momentum"], slots["velocity"]
        m *= b1
        m += (one - b1) * g
        v *= b2
        v += (one - b2) * (g * g)
        if self.amsgrad:
            np.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
            v = slots["velocity_hat"]
        w -= (m * alpha) / (np.sqrt(v) + w.dtype.type(self.epsilon))

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Keras' ``AdamW``: Adam with the decoupled weight decay ``w -= w * weight_decay * lr``
    (0.004 by default) before each update."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay: expected a number, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name, **kwargs)


class RMSprop(Optimizer):
    """Keras' ``RMSprop``: ``v = rho * v + (1 - rho) * g^2``, ``w -= lr * g / sqrt(v +
    epsilon)`` (``v - mean(g)^2`` with ``centered``; the steps accumulated with ``momentum``):
    Keras' epsilon is inside the square root, PyTorch's outside."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.rho = _fraction(rho, "rho", "RMSprop")
        self.momentum = _fraction(momentum, "momentum", "RMSprop")
        self.epsilon = optim._check_number(epsilon, "epsilon")
        self.centered = bool(centered)
        self._slot_names = ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + \
            (("average_gradient",) if self.centered else ())

    def _update(self, w, g, slots, lr):
        one, rho = w.dtype.type(1), w.dtype.type(self.rho)
        v = slots["velocity"]
        v *= rho
        v += (one - rho) * (g * g)
        denominator = v + w.dtype.type(self.epsilon)
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            a += (one - rho) * g
            denominator -= a * a
        increment = (g * lr) / np.sqrt(denominator)
        if self.momentum > 0:
            m = slots["momentum"]
            m *= w.dtype.type(self.momentum)
            m += increment
            w -= m
        else:
            w -= increment

    def _own_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    """Keras' ``Adagrad``: ``acc += g^2`` (from ``initial_accumulator_value``),
    ``w -= lr * g / sqrt(acc + epsilon)``."""

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.initial_accumulator_value = optim._check_number(initial_accumulator_value,
                                                             "initial_accumulator_value")
        self.epsilon = optim._check_number(epsilon, "epsilon")

    def _slot_init(self, name):
        return self.initial_accumulator_value

    def _update(self, w, g, slots, lr):
        acc = slots["accumulator"]
        acc += g * g
        w -= (g * lr) / np.sqrt(acc + w.dtype.type(self.epsilon))

    def _own_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


KERAS_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def resolve(identifier):
    """An Optimizer (returned as is: rnnfast.optim's over the model's parameters, or one of
    Keras' classes above, bound by ``create``) or a factory ``params -> Optimizer``."""
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        raise TypeError(f"optimizer: {identifier.__name__} is Keras' class; give an instance, "
                        f"e.g. {identifier.__name__}(learning_rate=...)")
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
    if isinstance(spec, Optimizer):
        return spec.build(params)
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
    optimisers of other classes than rnnfast.optim's and Keras' above (and for a Keras one whose
    learning rate is a function)."""
    if isinstance(opt, Optimizer):
        return _keras_config(opt, params)
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
    if config.get("keras"):
        return _keras_from_config(config, arrays, params)
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


def _keras_config(opt, params):
    if type(opt) is not KERAS_CLASSES.get(type(opt).__name__) or (
            callable(opt._learning_rate) and
            not isinstance(opt._learning_rate, LearningRateSchedule)):
        return None, {}
    index = {id(p): i for i, p in enumerate(params)}
    arrays = {}
    for p in opt.params or []:
        for key, value in opt.state[id(p)].items():
            arrays[f"{index[id(p)]}/{key}"] = value
    return {"class": type(opt).__name__, "keras": True, "config": opt.get_config(),
            "iterations": opt.iterations}, arrays


def _keras_from_config(config, arrays, params):
    cls = KERAS_CLASSES.get(config["class"])
    if cls is None:
        raise ValueError(f"optimizer: unknown class {config['class']!r} in the saved model")
    opt = cls.from_config(config["config"]).build(params)
    opt.iterations = int(config["iterations"])
    for key, value in arrays.items():
        i, name = key.split("/", 1)
        opt.state[id(params[int(i)])][name] = np.array(value)
    return opt
