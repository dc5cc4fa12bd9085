"""Optimisers, gradient clipping and learning-rate schedules over ``rnnfast.nn.Parameter``s,
with PyTorch's update rules, defaults and interface (``torch.optim``):

    opt = Adam(model.parameters(), lr=1e-3)
    sched = CosineAnnealingLR(opt, T_max=epochs)
    for epoch in range(epochs):
        opt.zero_grad(); ...backward...; clip_grad_norm_(model.parameters(), 1.0); opt.step()
        sched.step()

``params`` is an iterable of Parameters or of dicts (parameter groups: ``{"params": [...],
"lr": ...}`` with per-group options). A step skips parameters whose ``.grad`` is None and
updates ``.data`` in place in its dtype.
"""
import math

import numpy as np

from rnnfast import _C
from rnnfast.nn.module import Parameter

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "clip_grad_norm_",
    "clip_grad_value_",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
]


def _check_number(value, name, minimum=0.0, maximum=None, open_max=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    too_big = maximum is not None and (value >= maximum if open_max else value > maximum)
    if not value >= minimum or too_big:
        upper = "" if maximum is None else f" and {'<' if open_max else '<='} {maximum}"
        raise ValueError(f"{name}: expected a number >= {minimum}{upper}, got {value}")
    return value


def _param_list(params, name="params"):
    if isinstance(params, Parameter):
        raise TypeError(f"{name}: expected an iterable of Parameters, got a single Parameter "
                        "(wrap it in a list)")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{name}: expected an iterable of Parameters, got "
                        f"{type(params).__name__}") from None
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{name}: expected rnnfast.nn.Parameter objects, got "
                            f"{type(p).__name__}")
    return params


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and ``step``."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}
        self.param_groups = []
        if isinstance(params, (Parameter, dict)):
            raise TypeError(f"params: expected an iterable of Parameters or of dicts (parameter "
                            f"groups), got a {type(params).__name__}")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"params: expected an iterable of Parameters or of dicts, got "
                            f"{type(params).__name__}") from None
        if not groups:
            raise ValueError("params: the optimiser got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        seen = set()
        for group in groups:
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError("params: expected Parameters or dicts with a 'params' entry")
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"params: unknown option(s) {sorted(unknown)} in a parameter "
                                 f"group; expected some of {sorted(defaults)}")
            full = dict(defaults)
            full.update(group)
            full["params"] = _param_list(group["params"])
            for p in full["params"]:
                if id(p) in seen:
                    raise ValueError("params: some parameters appear in more than one group")
                seen.add(id(p))
            self._check_group(full)
            self.param_groups.append(full)

    def _check_group(self, group):
        """Validates a group's options (subclasses), raising ValueError naming the option."""

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def _gradients(self):
        """(parameter, gradient in its dtype, group, state) of every parameter that has a
        gradient, in order; the gradient negated where the group maximizes."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.shape != p.data.shape:
                    raise ValueError(f"grad: expected shape {p.data.shape}, got {grad.shape}")
                if group.get("maximize", False):
                    grad = -grad
                yield (p, np.asarray(grad, dtype=p.data.dtype), group,
                       self.state.setdefault(id(p), {}))

    def step(self):
        """One update of every parameter that has a gradient."""
        for p, grad, group, state in self._gradients():
            self._update(p, grad, group, state)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 decay."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=bool(nesterov),
                                      maximize=bool(maximize)))

    def _check_group(self, g):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            g[name] = _check_number(g[name], name)
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening = 0")

    def _update(self, p, grad, g, state):
        if g["weight_decay"]:
            grad = grad + g["weight_decay"] * p.data
        if g["momentum"]:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= g["momentum"]
                buf += (1 - g["dampening"]) * grad
            grad = grad + g["momentum"] * buf if g["nesterov"] else buf
        p.data -= g["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba) with optional AMSGrad and L2 weight decay added to the gradient."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=bool(amsgrad), maximize=bool(maximize)))

    def _check_group(self, g):
        for name in ("lr", "eps", "weight_decay"):
            g[name] = _check_number(g[name], name)
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        g["betas"] = tuple(_check_number(b, f"betas[{i}]", 0.0, 1.0, open_max=True)
                           for i, b in enumerate(betas))

    def step(self):
        """One update of every parameter that has a gradient, all in one kernel call (each
        parameter's update as ``_update`` makes it, in the same order)."""
        if type(self)._update is not Adam._update:  # a subclass with a rule of its own
            return super().step()
        _adam_update_many([self._adam_args(*args) for args in self._gradients()], "torch")

    def _update(self, p, grad, g, state):
        w, grad, m, v, v_max, c = self._adam_args(p, grad, g, state)
        _adam_update(w, grad, m, v, v_max, rule="torch", **dict(zip(_ADAM_CONSTANTS, c)))

    def _adam_args(self, p, grad, g, state):
        """The weight decay applied, the state made or stepped: the arguments of this
        parameter's kernel update ``(w, g, m, v, v_max or None, constants)``."""
        beta1, beta2 = g["betas"]
        if g["weight_decay"]:
            if self.decoupled:
                p.data *= 1 - g["lr"] * g["weight_decay"]
            else:
                grad = grad + g["weight_decay"] * p.data
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if g["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        step = state["step"]
        # m += (grad - m) * (1 - beta1); v = beta2 v + (1 - beta2) grad^2 (amsgrad: then its
        # running maximum); p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps):
        # one pass, each operation rounded as these NumPy expressions round it
        # (csrc/include/rnnfast/optimizer.h)
        return (p.data, grad, state["exp_avg"], state["exp_avg_sq"],
                state["max_exp_avg_sq"] if g["amsgrad"] else None,
                (beta1, 1 - beta1, beta2, 1 - beta2, g["lr"] / (1 - beta1 ** step), g["eps"],
                 math.sqrt(1 - beta2 ** step), 1.0, 1.0))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): ``p *= 1 - lr * weight_decay``."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop (Hinton) with PyTorch's options: smoothing ``alpha``, ``momentum``, ``centered``."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=bool(centered),
                                      maximize=bool(maximize)))

    def _check_group(self, g):
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            g[name] = _check_number(g[name], name)

    def _update(self, p, grad, g, state):
        alpha = g["alpha"]
        if g["weight_decay"]:
            grad = grad + g["weight_decay"] * p.data
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p.data)
            if g["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if g["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        state["step"] += 1
        sq = state["square_avg"]
        sq *= alpha
        sq += (1 - alpha) * grad * grad
        if g["centered"]:
            ga = state["grad_avg"]
            ga += (grad - ga) * (1 - alpha)
            avg = np.sqrt(sq - ga * ga) + g["eps"]
        else:
            avg = np.sqrt(sq) + g["eps"]
        if g["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= g["momentum"]
            buf += grad / avg
            p.data -= g["lr"] * buf
        else:
            p.data -= g["lr"] * grad / avg


# the constants of an Adam update, in the order of ``_C.adam_update_many``'s tuples
_ADAM_CONSTANTS = ("beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "lr", "eps",
                   "bias2_sqrt", "grad_mul", "grad_div")


def _adam_update_many(updates, rule):
    """``_adam_update`` of every ``(w, g, m, v, v_max, constants)`` of ``updates`` (constants
    in ``_ADAM_CONSTANTS`` order), in one kernel call when every array can be updated in place
    (the same results as one call each, in this order), else one call each."""
    if not updates:
        return
    ws, gs, ms, vs, v_maxs, constants = zip(*updates)
    try:
        _C.adam_update_many(ws, gs, ms, vs, v_maxs, constants, rule=rule)
        return
    except ValueError:  # (checked before any update: nothing was changed)
        pass
    for w, g, m, v, v_max, c in updates:
        _adam_update(w, g, m, v, v_max, rule=rule, **dict(zip(_ADAM_CONSTANTS, c)))


def _adam_update(w, g, m, v, v_max, **coefficients):
    """One Adam step in place over ``w``, ``m``, ``v`` (and ``v_max``, or None) from ``g`` by
    the one-pass kernel (``_C.adam_update``: ``rule`` and the constants). Arrays it cannot
    update in place (another memory layout, byte order, or memory shared between them) are
    updated through C-contiguous copies."""
    try:
        _C.adam_update(w, g, m, v, v_max, **coefficients)
    except ValueError:
        outs = [w, m, v] + ([] if v_max is None else [v_max])
        copies = [np.array(a, dtype=a.dtype.newbyteorder("="), order="C") for a in outs]
        _C.adam_update(copies[0], np.array(g), copies[1], copies[2],
                       copies[3] if v_max is not None else None, **coefficients)
        for a, c in zip(outs, copies):
            a[...] = c


# gradient clipping ------------------------------------------------------------------------
def _sum_squares(x):
    """``sum(x ** 2)`` over every element of a gradient, accumulated in float64, in one pass
    without a copy (``_C.sum_squares``; NumPy's dot product would wake its BLAS threads, which
    then spin on the cores the package's kernels use next)."""
    x = np.asarray(x)
    if x.dtype.char not in "fd":
        x = x.astype(np.float64)
    return _C.sum_squares(x)


def _p_norm(x, p):
    """The p-norm of all elements of x (float64 sums; ufuncs only for p != 2)."""
    if p == 2:
        return math.sqrt(_sum_squares(x))
    return float(np.sum(np.abs(x.astype(np.float64)) ** p) ** (1.0 / p))


def _with_grads(parameters):
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    return [p for p in _param_list(parameters, "parameters") if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does (``norm_type`` a p > 0 or ``inf``). Returns the
    norm before clipping (a float)."""
    max_norm = _check_number(max_norm, "max_norm")
    norm_type = _check_number(norm_type, "norm_type")
    if norm_type == 0:
        raise ValueError("norm_type: expected a positive number or inf, got 0")
    params = _with_grads(parameters)
    if not params:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.abs(p.grad).max(initial=0.0)) for p in params)
    else:
        norms = np.array([_p_norm(p.grad, norm_type) for p in params])
        total = _p_norm(norms, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           "gradients is non-finite, so it cannot be clipped")
    coef = min(max_norm / (total + 1e-6), 1.0)
    if coef != 1.0:  # (a product by 1 changes nothing)
        for p in params:
            p.grad *= p.grad.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place."""
    clip_value = _check_number(clip_value, "clip_value")
    for p in _with_grads(parameters):
        np.clip(p.grad, -clip_value, clip_value, out=p.grad)


# learning-rate schedules ------------------------------------------------------------------
class LRScheduler:
    """Sets each group's ``lr`` from its initial value and the epoch count ``last_epoch``;
    call ``step()`` once per epoch, after ``optimizer.step()``."""

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an rnnfast.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, epoch):
        raise NotImplementedError(f"{type(self).__name__} must define lr_at(base_lr, epoch)")

    def step(self):
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)


class StepLR(LRScheduler):
    """``lr = initial_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)):
            raise TypeError(f"step_size: expected an int, got {type(step_size).__name__}")
        if step_size < 1:
            raise ValueError(f"step_size: expected an int >= 1, got {step_size}")
        self.step_size = int(step_size)
        self.gamma = _check_number(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if isinstance(T_max, bool) or not isinstance(T_max, (int, np.integer)):
            raise TypeError(f"T_max: expected an int, got {type(T_max).__name__}")
        if T_max < 1:
            raise ValueError(f"T_max: expected an int >= 1, got {T_max}")
        self.T_max = int(T_max)
        self.eta_min = _check_number(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine
