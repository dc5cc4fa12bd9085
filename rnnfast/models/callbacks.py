"""Callbacks of ``Sequential.fit`` with Keras' hooks and names.

A callback's hooks get the epoch or batch index and a ``logs`` dict (``loss`` and the metrics
so far; after an epoch also ``val_*``). ``self.model`` is the model being trained; setting
``self.model.stop_training = True`` ends training after the current batch. Raising
``KeyboardInterrupt`` from a hook stops training there too, keeping the weights (as Ctrl-C
does).
"""
import copy

import numpy as np

__all__ = ["Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback"]


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


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` the best epoch's weights are put back at the end."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False, verbose=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.mode = mode
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self.best = None
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best, self.best_weights, self.wait, self.stopped_epoch = None, None, 0, None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

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
