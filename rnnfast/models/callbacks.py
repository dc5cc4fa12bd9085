"""Callbacks of ``Sequential.fit`` with Keras' hooks and names.

A callback's hooks get the epoch or batch index and a ``logs`` dict (``loss`` and the metrics
so far; after an epoch also ``val_*``). ``self.model`` is the model being trained; setting
``self.model.stop_training = True`` ends training after the current batch. Raising
``KeyboardInterrupt`` from a hook stops training there too, keeping the weights (as Ctrl-C
does).

Keras' callbacks here: ``EarlyStopping``, ``ReduceLROnPlateau``, ``LearningRateScheduler``,
``TerminateOnNaN``, ``CSVLogger``, ``LambdaCallback`` and ``History`` (what ``fit``
returns). The learning-rate callbacks work with Keras' optimisers
(``rnnfast.models.optimizers``: ``optimizer.learning_rate``) and with rnnfast.optim's (every
parameter group's ``lr``; the first group's is read).
"""
import copy
import csv
import math
import numbers
import os
import warnings

import numpy as np

from rnnfast import optim
from rnnfast.models import optimizers as optimizers_mod

__all__ = ["Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN"]


class Callback:
    """Base class: override any of the hooks."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        """Before the first epoch."""

    def on_train_end(self, logs=None):
        """After the last epoch, or after an interruption."""

    def on_epoch_begin(self, epoch, logs=None):
        """Before each epoch."""

    def on_epoch_end(self, epoch, logs=None):
        """After each epoch (logs: the epoch's loss, metrics, and the validation ones)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch, logs=None):
        """Before each training batch (Keras' older name of on_train_batch_begin)."""

    def on_batch_end(self, batch, logs=None):
        """After each training batch (logs: running means over the epoch so far)."""


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
             "on_batch_begin", "on_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name not in self.HOOKS:
                raise ValueError(f"{name}: not a hook; expected some of {list(self.HOOKS)}")
            if not callable(fn):
                raise TypeError(f"{name}: expected a function, got {type(fn).__name__}")
            setattr(self, name, fn)


class _Monitor(Callback):
    """A callback that watches ``monitor`` in the epoch's logs: ``mode`` "min", "max" or
    "auto" (max for accuracies, min otherwise); an improvement beats the best value by more
    than ``min_delta``."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.mode = mode
        self.best = None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` the best epoch's weights are put back at the end."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False, verbose=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best, self.best_weights, self.wait, self.stopped_epoch = None, None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: monitor {self.monitor!r} is not among the logged "
                           f"values {sorted(logs)}")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and \
                self.stopped_epoch is not None:
            self.model.set_weights(self.best_weights)
        if self.verbose and self.stopped_epoch is not None:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


def get_learning_rate(optimizer):
    """The learning rate of a Keras optimiser (``learning_rate``) or of an rnnfast.optim one
    (its first parameter group's ``lr``)."""
    if isinstance(optimizer, optimizers_mod.Optimizer):
        return float(optimizer.learning_rate)
    if isinstance(optimizer, optim.Optimizer):
        return float(optimizer.param_groups[0]["lr"])
    raise TypeError(f"optimizer: expected a Keras optimiser of rnnfast.models.optimizers or an "
                    f"rnnfast.optim.Optimizer, got {type(optimizer).__name__}")


def set_learning_rate(optimizer, value):
    """Set the learning rate of a Keras optimiser, or of every group of an rnnfast.optim one."""
    get_learning_rate(optimizer)  # the type check
    if isinstance(optimizer, optimizers_mod.Optimizer):
        optimizer.learning_rate = value
    else:
        for group in optimizer.param_groups:
            group["lr"] = float(value)


class ReduceLROnPlateau(_Monitor):
    """Keras' ``ReduceLROnPlateau``: when ``monitor`` has not improved by ``min_delta`` for
    ``patience`` epochs, multiply the learning rate by ``factor`` (< 1), not below ``min_lr``;
    then wait ``cooldown`` epochs before counting again. Adds ``learning_rate`` to the epoch's
    logs (and so to the History). A learning rate given as a schedule cannot be reduced
    (TypeError)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        factor = optim._check_number(factor, "factor")
        if factor >= 1.0:
            raise ValueError(f"factor: ReduceLROnPlateau needs a factor < 1.0, got {factor}")
        self.factor = factor
        self.patience = _count(patience, "patience")
        self.cooldown = _count(cooldown, "cooldown")
        self.min_lr = optim._check_number(min_lr, "min_lr")
        self.verbose = verbose
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = get_learning_rate(self.model.optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: monitor {self.monitor!r} is not among the logged "
                          f"values {sorted(logs)}", UserWarning, stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(float(current)):
            self.best, self.wait = float(current), 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = get_learning_rate(self.model.optimizer)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    set_learning_rate(self.model.optimizer, new_lr)
                    if self.verbose:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return int(value)


class LearningRateScheduler(Callback):
    """Keras' ``LearningRateScheduler(schedule)``: before each epoch, the learning rate becomes
    ``schedule(epoch, lr)`` (or ``schedule(epoch)`` for a function of one argument), epochs
    counted from 0; adds ``learning_rate`` to the epoch's logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a function (epoch, lr) -> lr, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, get_learning_rate(optimizer))
        except TypeError:  # a schedule of the epoch only (Keras' older API)
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr):
            raise ValueError(f"schedule: expected a finite float from the schedule function, "
                             f"got {lr!r} at epoch {epoch}")
        set_learning_rate(optimizer, float(lr))
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)


class TerminateOnNaN(Callback):
    """Keras' ``TerminateOnNaN``: stop training after the first batch whose loss (the running
    mean over the epoch, so any batch's) is NaN or infinite, with a message naming the batch;
    with ``raise_error=True`` raise RuntimeError instead. That batch's update has been applied:
    the weights may hold NaN."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        message = (f"Batch {batch}: invalid loss {float(loss)}, terminating training (the "
                   "weights are those after this batch's update and may hold NaN or inf; check "
                   "the data for NaN / inf values and lower the learning rate)")
        if self.raise_error:
            raise RuntimeError(message)
        print(message)
        self.model.stop_training = True


class CSVLogger(Callback):
    """Keras' ``CSVLogger(filename, separator=",", append=False)``: one row per epoch, the
    column ``epoch`` then the logged values in sorted order (``val_*`` columns added when the
    first epoch has none); ``append`` continues an existing file (without a second header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected one character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        self.append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self.append_header = not f.readline()
        self._close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="",
                             encoding="utf-8")
        self.keys, self.writer = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, _csv_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def _close(self):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()

    def on_train_end(self, logs=None):
        self._close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class History(dict):
    """What ``fit`` returns: a dict of per-epoch lists under Keras' keys (``loss``,
    ``accuracy``, ``val_loss``, ...); also reachable as ``history.history`` (Keras' History
    object). ``epoch`` lists the epoch indices, ``epoch_times`` the seconds each took, and
    ``interrupted`` says whether Ctrl-C (or a KeyboardInterrupt) stopped training."""

    def __init__(self):
        super().__init__()
        self.epoch = []
        self.epoch_times = []
        self.interrupted = False
        self.params = {}

    @property
    def history(self):
        return self

    def record(self, epoch, logs, seconds):
        self.epoch.append(epoch)
        self.epoch_times.append(seconds)
        for key, value in logs.items():
            self.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History({dict.__repr__(self)})"


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks, model, params):
        if callbacks is None:
            callbacks = []
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback objects, got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)
        self.callbacks = callbacks

    def call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)


def copy_logs(logs):
    return {k: (float(v) if isinstance(v, (float, np.floating)) else copy.copy(v))
            for k, v in logs.items()}



def __getattr__(name):
    """``ModelCheckpoint`` and ``BackupAndRestore`` (``rnnfast.models.checkpointing``, which
    imports this module) are reachable here too, as in Keras."""
    if name in ("ModelCheckpoint", "BackupAndRestore"):
        from rnnfast.models import checkpointing
        return getattr(checkpointing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
