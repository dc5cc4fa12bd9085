"""A training run with checkpoints, for the kill tests (imported by them, and run by them as a
child process: ``python checkpoint_child.py <folder> <hook> <k>``).

The child prints READY once imported, then trains with a BackupAndRestore backup per epoch and
two ModelCheckpoints (one file rewritten every other batch, one file per epoch), saves its final
weights to ``<folder>/final.npz`` and prints DONE. With ``hook`` "fsync" or "replace" it prints
SAVING and sleeps just before the ``k``-th call of ``os.fsync`` / ``os.replace`` (inside an
atomic save), so that a kill can land there.
"""
import os
import sys
import time

import numpy as np

from rnnfast.models import BackupAndRestore, ModelCheckpoint, Sequential
from rnnfast.models import layers as L

EPOCHS = 4
BATCHES = 6  # per epoch (96 training samples in batches of 16)
SAVE_FREQ = 2  # batches between two saves of last.keras


def make_model():
    model = Sequential([L.Embedding(40, 8, seed=0), L.Dropout(0.2, seed=1), L.LSTM(16, seed=2),
                        L.Dense(4, activation="softmax", seed=3)], seed=4)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    return model


def data():
    rng = np.random.default_rng(3)
    return rng.integers(1, 40, (120, 12)), rng.integers(0, 4, 120)


def train(folder, checkpoint_files=True):
    """Train (resuming from the folder's backup, if any) to the end; returns the model.
    ``checkpoint_files``: also write the ModelCheckpoint files (which do not change the
    training)."""
    model = make_model()
    x, y = data()
    callbacks = [BackupAndRestore(os.path.join(folder, "backup"))]
    if checkpoint_files:
        callbacks += [ModelCheckpoint(os.path.join(folder, "last.keras"), save_freq=SAVE_FREQ),
                      ModelCheckpoint(os.path.join(folder, "epoch-{epoch}.keras"))]
    model.fit(x, y, epochs=EPOCHS, batch_size=16, validation_split=0.2, verbose=0,
              callbacks=callbacks)
    return model


def _pause_at(name, k):
    real = getattr(os, name)
    calls = [0]

    def wrapper(*args):
        calls[0] += 1
        if calls[0] == k:
            print("SAVING", flush=True)
            time.sleep(5)  # the parent kills the process here
        return real(*args)

    setattr(os, name, wrapper)


if __name__ == "__main__":
    folder, hook, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if hook in ("fsync", "replace"):
        _pause_at(hook, k)
    print("READY", flush=True)
    start = time.perf_counter()
    model = train(folder)
    model.save_weights(os.path.join(folder, "final.npz"))
    print(f"DONE {time.perf_counter() - start:.3f}", flush=True)
