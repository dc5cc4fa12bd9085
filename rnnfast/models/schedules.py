"""Keras' learning-rate schedules (``keras.optimizers.schedules``), the ``learning_rate`` of
the optimisers of ``rnnfast.models.optimizers``: called with the optimiser's step count (0
for the first update), they give that update's learning rate::

    lr = ExponentialDecay(1e-2, decay_steps=100, decay_rate=0.9)
    model.compile(optimizer=Adam(learning_rate=lr), loss="mse")

- ``ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase=False)``:
  ``initial_learning_rate * decay_rate ** (step / decay_steps)`` (the exponent floored with
  ``staircase``).
- ``CosineDecay(initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
  warmup_steps=0)``: without warm-up ``initial * ((1 - alpha) * (1 + cos(pi * s /
  decay_steps)) / 2 + alpha)`` with ``s = min(step, decay_steps)``; with ``warmup_target`` a
  linear rise from ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps`` steps,
  then the cosine decay from ``warmup_target``.
- ``PiecewiseConstantDecay(boundaries, values)``: ``values[0]`` while ``step <=
  boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``,
  ``values[-1]`` after the last boundary.
"""
import math
import numbers

__all__ = ["LearningRateSchedule", "ExponentialDecay", "CosineDecay", "PiecewiseConstantDecay",
           "serialize", "deserialize"]


def _number(value, name, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if positive and not value > 0:
        raise ValueError(f"{name}: expected a number > 0, got {value}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


class LearningRateSchedule:
    """Base class: ``schedule(step)`` is the learning rate of update ``step`` (0, 1, ...)."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must define get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate")
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay to ``alpha * initial_learning_rate`` over ``decay_steps`` steps, after an
    optional linear warm-up to ``warmup_target`` over ``warmup_steps`` steps."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _number(decay_steps, "decay_steps", positive=True)
        self.alpha = _number(alpha, "alpha")
        self.name = name
        self.warmup_target = None if warmup_target is None else \
            _number(warmup_target, "warmup_target")
        self.warmup_steps = _number(warmup_steps, "warmup_steps")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected a number >= 0, got {warmup_steps}")
        if self.warmup_target is not None and self.warmup_steps == 0:
            raise ValueError("warmup_steps: expected a number > 0 with warmup_target")

    def _decay(self, step, start):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = float(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * step / self.warmup_steps + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant learning rate per interval of steps between ``boundaries``."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError("boundaries, values: expected lists of numbers")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"boundaries, values: expected one value more than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        self.boundaries = [_number(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries: expected strictly increasing numbers, got "
                             f"{list(boundaries)}")
        self.values = [_number(v, f"values[{i}]") for i, v in enumerate(values)]
        self.name = name

    def __call__(self, step):
        step = float(step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, CosineDecay, PiecewiseConstantDecay)}


def serialize(schedule):
    """``{"class_name", "config"}`` of one of this module's schedules (JSON-able)."""
    if type(schedule).__name__ not in _CLASSES or _CLASSES[type(schedule).__name__] \
            is not type(schedule):
        raise TypeError(f"schedule: cannot serialize a {type(schedule).__name__}; known "
                        f"schedules: {sorted(_CLASSES)}")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """The schedule ``serialize`` described."""
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"schedule: unknown class {config.get('class_name')!r}; known "
                         f"schedules: {sorted(_CLASSES)}")
    return cls.from_config(config["config"])
