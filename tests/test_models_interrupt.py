"""Ctrl-C during fit: a KeyboardInterrupt from a callback, and a real SIGINT, stop training
between batches and keep the weights of the last completed batch."""
import os
import signal

import numpy as np
import pytest

from rnnfast.models import Callback, Sequential
from rnnfast.models import layers as L


def model_and_data(rng):
    x = rng.standard_normal((40, 5, 3)).astype(np.float32)
    y = rng.standard_normal((40, 1)).astype(np.float32)
    model = Sequential([L.LSTM(4, seed=0), L.Dense(1, seed=1)], seed=2)
    model.compile(loss="mse", optimizer="adam")
    return model, x, y


class Snapshot(Callback):
    """Keeps the weights after every batch; interrupts (or signals) at a chosen batch."""

    def __init__(self, epoch, batch, how):
        super().__init__()
        self.at = (epoch, batch)
        self.how = how
        self.epoch = 0
        self.weights = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_begin(self, batch, logs=None):
        if self.how == "signal" and (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the batch runs

    def on_batch_end(self, batch, logs=None):
        self.weights.append(self.model.get_weights())
        if self.how == "raise" and (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("how", ["raise", "signal"])
def test_interrupt_stops_between_batches_and_keeps_weights(rng, capsys, how):
    model, x, y = model_and_data(rng)
    snap = Snapshot(epoch=1, batch=2, how=how)
    history = model.fit(x, y, epochs=4, batch_size=8, callbacks=[snap], verbose=2)
    assert history.interrupted
    assert len(history["loss"]) == 1  # epoch 0 completed; epoch 1 was cut short
    assert len(snap.weights) == 5 + 3  # epoch 0's batches, then batches 0..2 of epoch 1
    for now, kept in zip(model.get_weights(), snap.weights[-1]):
        np.testing.assert_array_equal(now, kept)
    out = capsys.readouterr().out
    assert "Training interrupted at epoch 2/4, batch 3/5" in out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the model trains on afterwards


def test_a_second_sigint_interrupts_at_once(rng):
    model, x, y = model_and_data(rng)

    class Twice(Callback):
        def on_batch_begin(self, batch, logs=None):
            os.kill(os.getpid(), signal.SIGINT)

        def on_batch_end(self, batch, logs=None):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=2, batch_size=8, callbacks=[Twice()], verbose=0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
