"""Keras' checkpoint callbacks, written with atomic saves (``rnnfast.models.saving``): a crash,
a full disk, SIGKILL or Ctrl-C during a save leaves the previous file intact.

- ``ModelCheckpoint(filepath, monitor="val_loss", save_best_only=False, save_weights_only=False,
  mode="auto", save_freq="epoch", initial_value_threshold=None, verbose=0)``: saves the model
  (``model.save``) or its weights (``model.save_weights``) after every epoch (or every
  ``save_freq`` batches), to ``filepath`` formatted with ``epoch`` (from 1), ``batch`` (from 1,
  with a batch ``save_freq``) and the logs, e.g. ``"ckpt/model-{epoch:02d}-{val_loss:.2f}.keras"``.
  With ``save_best_only`` only when ``monitor`` improved (``mode`` "min", "max", or "auto":
  "max" for accuracies). Weights holding NaN or inf are not saved (a warning says so), so a
  diverging run never overwrites a good checkpoint.
- ``BackupAndRestore(backup_dir, save_freq="epoch", delete_checkpoint=True)``: after every
  epoch saves the model, its optimiser state, the random generators' states and the epoch to
  ``backup_dir/latest.model``; when ``fit`` starts and a backup exists (an earlier run was
  killed or interrupted), it restores all of them and ``fit`` resumes at the next epoch, so
  the final weights equal those of an uninterrupted run bit for bit (same data, same thread
  count). The backup is deleted when ``fit`` completes (``delete_checkpoint``).
"""
import math
import os
import warnings

import numpy as np

from rnnfast.models import saving
from rnnfast.models.callbacks import Callback

__all__ = ["ModelCheckpoint", "BackupAndRestore"]


def _save_freq(save_freq):
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer)) or \
            save_freq < 1:
        raise ValueError(f"save_freq: expected 'epoch' or a number of batches >= 1, got "
                         f"{save_freq!r}")
    return int(save_freq)


def _finite_weights(model):
    return all(np.all(np.isfinite(p.data)) for p in model.parameters())


class ModelCheckpoint(Callback):
    """Save the model (or its weights) during ``fit``; see the module's docstring."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        filepath = os.fspath(filepath)
        if not isinstance(filepath, str) or not filepath:
            raise TypeError(f"filepath: expected a path, got {filepath!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a log name such as 'val_loss', got "
                            f"{type(monitor).__name__}")
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"
        self.filepath = filepath
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = mode
        self.save_freq = _save_freq(save_freq)
        self.best = (math.inf if mode == "min" else -math.inf) \
            if initial_value_threshold is None else float(initial_value_threshold)
        self.last_saved = None
        self._epoch = 0
        self._batches = 0

    def _improved(self, value):
        return value < self.best if self.mode == "min" else value > self.best

    def _path(self, epoch, batch, logs):
        try:
            fields = dict(logs)
            fields["epoch"] = epoch + 1
            if batch is not None:
                fields["batch"] = batch + 1
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise KeyError(f"ModelCheckpoint: cannot format the filepath {self.filepath!r} "
                           f"with epoch, batch and the logs {sorted(logs)} ({exc!r})") from None

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"ModelCheckpoint: can save the best model only with "
                              f"{self.monitor} available (logged: {sorted(logs)}); skipping",
                              UserWarning, stacklevel=3)
                return
            value = float(value)
            if not self._improved(value):
                return
        if not _finite_weights(self.model):
            warnings.warn("ModelCheckpoint: the weights hold NaN or inf; not saved (the "
                          "previous checkpoint is kept)", UserWarning, stacklevel=3)
            return
        path = self._path(epoch, batch, logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.save_best_only:
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        self.last_saved = path

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)


class BackupAndRestore(Callback):
    """Back up the training state after every epoch and resume from it; see the module's
    docstring."""

    FILENAME = "latest.model"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        backup_dir = os.fspath(backup_dir)
        if not isinstance(backup_dir, str) or not backup_dir:
            raise TypeError(f"backup_dir: expected a folder path, got {backup_dir!r}")
        if save_freq != "epoch":
            raise ValueError(f"save_freq: only 'epoch' is supported (a backup in the middle of "
                             f"an epoch cannot resume bit for bit), got {save_freq!r}")
        self.backup_dir = backup_dir
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.path = os.path.join(backup_dir, self.FILENAME)
        self.resumed_epoch = None
        self._completed = False

    def on_train_begin(self, logs=None):
        self._completed = False
        self.resumed_epoch = None
        if not os.path.exists(self.path):
            return
        if self.model.optimizer is None:
            raise ValueError("BackupAndRestore: the model must be compiled and built before "
                             "fit restores its backup")
        training = saving.restore_state(self.model, self.path)
        if training is None:
            raise ValueError(f"backup_dir: {self.path} is not a backup (no epoch in it)")
        self.resumed_epoch = training["epoch"]
        self.model._initial_epoch = training["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        if not _finite_weights(self.model):
            warnings.warn("BackupAndRestore: the weights hold NaN or inf; the backup is not "
                          "updated", UserWarning, stacklevel=3)
        else:
            saving.save_model(self.model, self.path, training={"epoch": epoch + 1})
        self._completed = epoch + 1 >= self.params.get("epochs", 0) or self.model.stop_training

    def on_train_end(self, logs=None):
        if self._completed and self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)
