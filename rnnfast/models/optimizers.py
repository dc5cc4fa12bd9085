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
- ``Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``
- ``Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``
- ``Lion(learning_rate=0.001, beta_1=0.9, beta_2=0.99)``

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
import inspect
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
from rnnfast.nn.module import Parameter
from rnnfast.nn.serialization import is_finite_number

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "ExponentialDecay",
           "CosineDecay", "PiecewiseConstantDecay", "schedules", "resolve", "create",
           "get_config", "from_config", "copy_state"]

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
    def _clip_scales(self, grads):
        """Keras' clipping (BaseOptimizer._clip_gradients): ``(grads, scales)``, where the
        clipped gradient ``i`` is ``grads[i] * mul / div`` for ``scales[i] = (mul, div)``
        (numbers of its dtype), ``grads[i]`` itself for None (``clipvalue`` clips here)."""
        if self.clipnorm is not None:
            scales = []
            for g in grads:
                norm = optim._p_norm(g, 2)
                scales.append((g.dtype.type(self.clipnorm),
                               g.dtype.type(max(norm, self.clipnorm))))
            return grads, scales
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(optim._p_norm(g, 2) ** 2 for g in grads))
            scale = self.global_clipnorm * min(1.0 / total if total else math.inf,
                                               1.0 / self.global_clipnorm)
            if not math.isfinite(total):
                scale = math.nan
            return grads, [(g.dtype.type(scale), g.dtype.type(1)) for g in grads]
        if self.clipvalue is not None:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads, [None] * len(grads)

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
        grads, scales = self._clip_scales(grads)
        lr = self.learning_rate
        if self.weight_decay is not None:
            for p in params:
                p.data *= p.data.dtype.type(1 - self.weight_decay * lr)
        self._update_all(params, grads, scales, lr)
        self.iterations += 1

    def _update_all(self, params, grads, scales, lr):
        """``_update_scaled`` of every parameter in order (an optimiser may update them all in
        one call)."""
        for p, g, scale in zip(params, grads, scales):
            self._update_scaled(p.data, g, scale, self.state[id(p)], p.data.dtype.type(lr))

    def _update_scaled(self, w, g, scale, slots, lr):
        """``_update`` with the gradient ``g * mul / div`` (``scale = (mul, div)``; None: g);
        an optimiser may fuse the product into its update."""
        if scale is not None:
            g = g * scale[0] / scale[1]
        self._update(w, g, slots, lr)

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
        self._adam(w, g, None, slots, lr)

    def _update_scaled(self, w, g, scale, slots, lr):
        if type(self)._update is not Adam._update:  # a subclass with a rule of its own
            super()._update_scaled(w, g, scale, slots, lr)
        else:
            self._adam(w, g, scale, slots, lr)

    def _update_all(self, params, grads, scales, lr):
        # one kernel call for all of them (the same updates, in the same order)
        if type(self)._update is not Adam._update or \
                type(self)._update_scaled is not Adam._update_scaled or \
                type(self)._adam is not Adam._adam:
            super()._update_all(params, grads, scales, lr)
            return
        optim._adam_update_many(
            [self._adam_args(p.data, g, scale, self.state[id(p)], p.data.dtype.type(lr))
             for p, g, scale in zip(params, grads, scales)], "keras")

    def _adam(self, w, g, scale, slots, lr):
        w, g, m, v, v_max, c = self._adam_args(w, g, scale, slots, lr)
        optim._adam_update(w, g, m, v, v_max, rule="keras", **dict(zip(optim._ADAM_CONSTANTS, c)))

    def _adam_args(self, w, g, scale, slots, lr):
        """This parameter's kernel update ``(w, g, m, v, v_max or None, constants)``."""
        # m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2 (amsgrad: then its running maximum);
        # w -= alpha m / (sqrt(v) + epsilon), with g the clipped gradient g * mul / div: one
        # pass, each operation rounded as the NumPy expressions in rnnfast/optimizer.h round it.
        # The constants depend on the step, not on the parameter: made once per step and dtype
        key = (w.dtype, self.iterations, lr, self.beta_1, self.beta_2, self.epsilon)
        kept = self.__dict__.get("_step_constants")
        if kept is None or kept[0] != key:
            one, t = w.dtype.type(1), w.dtype.type(self.iterations + 1)
            b1, b2 = w.dtype.type(self.beta_1), w.dtype.type(self.beta_2)
            alpha = lr * np.sqrt(one - b2 ** t) / (one - b1 ** t)
            kept = (key, (b1, one - b1, b2, one - b2, alpha, w.dtype.type(self.epsilon), 1.0))
            self._step_constants = kept
        mul, div = (1.0, 1.0) if scale is None else scale
        return (w, g, slots["momentum"], slots["velocity"],
                slots["velocity_hat"] if self.amsgrad else None, kept[1] + (mul, div))

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
    optimiser keeps (arrays of the parameter's shape and dtype). ValueError naming the part.
    Keras' optimisers (``"keras": true``) are checked the same way (``_keras_from_config``)."""
    if isinstance(config, dict) and config.get("keras") is True:
        return _keras_from_config(config, arrays, params, where)
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
    if isinstance(source, Optimizer):  # Keras': its options and step count are attributes
        target.__dict__.update({k: v for k, v in source.__dict__.items()
                                if k not in ("params", "param_groups", "state")})
    for g_src, g_dst in zip(source.param_groups, target.param_groups):
        g_dst.update({k: v for k, v in g_src.items() if k != "params"})
    target.state.clear()
    target.state.update(source.state)


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


def _keras_from_config(config, arrays, params, where="optimizer"):
    """A Keras optimiser saved by ``_keras_config``, checked: the class from a fixed table, its
    arguments (numbers finite; the constructor checks their ranges), the step count, and per
    parameter exactly the slots the optimiser keeps, of the parameter's shape and dtype."""
    if set(config) != {"class", "keras", "config", "iterations"}:
        _fail(where, "expected {'class', 'keras', 'config', 'iterations'}")
    cls = KERAS_CLASSES.get(config["class"]) if isinstance(config["class"], str) else None
    if cls is None:
        _fail(where, f"unknown class {str(config['class'])[:40]!r}; known: "
                     f"{sorted(KERAS_CLASSES)}")
    args = config["config"]
    if not isinstance(args, dict):
        _fail(where, "config: expected a dict")
    for key, value in args.items():
        if key == "learning_rate" and isinstance(value, dict):
            continue
        if key != "name" and value is not None and not isinstance(value, bool) and \
                not is_finite_number(value):
            _fail(where, f"{str(key)[:40]}: expected a finite number, got {str(value)[:40]}")
    try:
        opt = cls.from_config(args)
    except (TypeError, ValueError, KeyError) as exc:
        _fail(where, f"{cls.__name__}: {exc}")
    iterations = config["iterations"]
    if isinstance(iterations, bool) or not isinstance(iterations, int) or \
            not 0 <= iterations <= 2 ** 53:
        _fail(where, "iterations: expected an int >= 0")
    if not params:
        _fail(where, "the model has no parameters")
    opt.build(params)
    opt.iterations = iterations
    seen = set()
    for key, value in arrays.items():
        index, _, name = key.partition("/")
        if not index.isdigit() or int(index) >= len(params):
            _fail(where, f"array {key[:40]!r}: not a parameter index")
        p = params[int(index)]
        slots = opt.state[id(p)]
        if name not in slots:
            _fail(where, f"array {key[:40]!r}: a {cls.__name__} keeps {sorted(slots)}")
        if not isinstance(value, np.ndarray) or value.shape != p.shape or \
                value.dtype != p.dtype:
            _fail(where, f"array {key[:40]!r}: expected shape {p.shape} and dtype {p.dtype}")
        slots[name] = np.array(value)
        seen.add(key)
    missing = [f"{i}/{name}" for i, p in enumerate(params) for name in opt.state[id(p)]
               if f"{i}/{name}" not in seen]
    if missing:
        _fail(where, f"missing arrays {missing[:3]}")
    return opt


# Keras' Adamax, Nadam and Lion (after the classes above; their update rules are those of Keras 3's
# torch backend, operation for operation) -----------------------------------------------------
class Adamax(Optimizer):
    """Keras' ``Adamax``: ``m += (1 - beta_1) * (g - m)``, ``u = max(beta_2 * u, |g|)``,
    ``w -= lr * m / ((1 - beta_1^t) * (u + epsilon))``."""

    _slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.beta_1 = _fraction(beta_1, "beta_1", "Adamax")
        self.beta_2 = _fraction(beta_2, "beta_2", "Adamax")
        self.epsilon = optim._check_number(epsilon, "epsilon")

    def _update(self, w, g, slots, lr):
        one, t = w.dtype.type(1), w.dtype.type(self.iterations + 1)
        b1_power = w.dtype.type(self.beta_1) ** t
        m, u = slots["momentum"], slots["norm"]
        m *= w.dtype.type(self.beta_1)
        m += (one - w.dtype.type(self.beta_1)) * g
        u *= w.dtype.type(self.beta_2)
        np.maximum(u, np.abs(g), out=u)
        w -= (m * lr) / ((u + w.dtype.type(self.epsilon)) * (one - b1_power))

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Keras' ``Nadam`` (Adam with Nesterov momentum and Keras' momentum schedule
    ``u_t = beta_1 * (1 - 0.5 * 0.96^t)``): ``m += (1 - beta_1) * (g - m)``,
    ``v += (1 - beta_2) * (g^2 - v)``, ``m_hat = u_{t+1} m / (1 - prod u_1..u_{t+1}) +
    (1 - u_t) g / (1 - prod u_1..u_t)``, ``w -= lr * m_hat / (sqrt(v / (1 - beta_2^t)) +
    epsilon)``. The product of the ``u`` is kept in the first parameter's dtype, as Keras keeps
    it (recomputed from ``iterations`` after a load)."""

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.beta_1 = _fraction(beta_1, "beta_1", "Nadam")
        self.beta_2 = _fraction(beta_2, "beta_2", "Nadam")
        self.epsilon = optim._check_number(epsilon, "epsilon")
        self._u_product = None  # (iterations it is the product for, value)

    def _u(self, step, dtype):
        return dtype.type(self.beta_1) * (dtype.type(1) - dtype.type(0.5) *
                                          dtype.type(0.96) ** dtype.type(step))

    def _product(self, dtype):
        """The product of ``u_1 .. u_iterations`` in ``dtype`` (Keras' ``_u_product``)."""
        if self._u_product is None or self._u_product[0] != self.iterations or \
                self._u_product[1].dtype != dtype:
            value = dtype.type(1)
            for step in range(1, self.iterations + 1):
                value = value * self._u(step, dtype)
            self._u_product = (self.iterations, value)
        return self._u_product[1]

    def step(self):
        if self.params:
            dtype = self.params[0].data.dtype
            product = self._product(dtype) * self._u(self.iterations + 1, dtype)
            self._step_product = product
        before = self.iterations
        super().step()
        if self.iterations != before:
            self._u_product = (self.iterations, self._step_product)

    def _update(self, w, g, slots, lr):
        dt = w.dtype
        one, t = dt.type(1), dt.type(self.iterations + 1)
        b1, b2 = dt.type(self.beta_1), dt.type(self.beta_2)
        u_t, u_next = self._u(self.iterations + 1, dt), self._u(self.iterations + 2, dt)
        product = dt.type(self._step_product)
        product_next = product * u_next
        m, v = slots["momentum"], slots["velocity"]
        m *= b1
        m += (one - b1) * g
        v *= b2
        v += (one - b2) * (g * g)
        m_hat = (m * u_next) / (one - product_next) + (g * (one - u_t)) / (one - product)
        v_hat = v / (one - b2 ** t)
        w -= (m_hat * lr) / (np.sqrt(v_hat) + dt.type(self.epsilon))

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Keras' ``Lion``: ``w -= lr * sign(beta_1 * m + (1 - beta_1) * g)``, then
    ``m = beta_2 * m + (1 - beta_2) * g``. ``beta_1`` in (0, 1] (Keras: 0 would make it
    SignSGD)."""

    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name,
                         **kwargs)
        self.beta_1 = _fraction(beta_1, "beta_1", "Lion")
        if self.beta_1 <= 0:
            raise ValueError(f"Lion: beta_1: expected a number in (0, 1] (0 makes Lion SignSGD), "
                             f"got {self.beta_1}")
        self.beta_2 = _fraction(beta_2, "beta_2", "Lion")

    def _update(self, w, g, slots, lr):
        one = w.dtype.type(1)
        b1, b2 = w.dtype.type(self.beta_1), w.dtype.type(self.beta_2)
        m = slots["momentum"]
        c = m * b1
        c += (one - b1) * g
        w -= np.sign(c) * lr
        m *= b2
        m += (one - b2) * g

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2}


KERAS_CLASSES.update({cls.__name__: cls for cls in (Adamax, Nadam, Lion)})
__all__ += ["Adamax", "Nadam", "Lion"]
