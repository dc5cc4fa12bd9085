"""Ctrl-C during fit: a KeyboardInterrupt from a callback, and a real SIGINT, stop training
between batches and keep the weights of the last completed batch; a second Ctrl-C interrupts
at once but never in the middle of a weight update."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from rnnfast import optim
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


# a weight update is never cut in half ---------------------------------------------------------
class SignalInStep(optim.SGD):
    """SGD that receives a SIGINT (a second Ctrl-C) after updating its first parameter."""

    armed = False

    def _update(self, p, grad, g, state):
        super()._update(p, grad, g, state)
        if self.armed:
            self.armed = False
            os.kill(os.getpid(), signal.SIGINT)


def sgd_model(rng, optimizer_cls):
    x = rng.standard_normal((24, 6, 3)).astype(np.float32)
    y = rng.standard_normal((24, 2)).astype(np.float32)
    model = Sequential([L.LSTM(4, seed=0), L.Dense(2, seed=1)], seed=2)
    model.build((None, 6, 3))
    model.compile(loss="mse", optimizer=optimizer_cls(model.parameters(), lr=0.1))
    return model, x, y


def test_a_second_sigint_inside_the_update_waits_for_it_to_finish(rng):
    model, x, y = sgd_model(rng, SignalInStep)
    twin, _, _ = sgd_model(np.random.default_rng(12345), optim.SGD)
    before = model.get_weights()

    class CtrlCTwice(Callback):
        def on_batch_begin(self, batch, logs=None):
            if batch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # the first: stop after this batch
                self.model.optimizer.armed = True   # the second arrives inside the step

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[CtrlCTwice()])
    twin.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0,
             callbacks=[Snapshot(epoch=0, batch=1, how="raise")])
    for now, whole_step, old in zip(model.get_weights(), twin.get_weights(), before):
        np.testing.assert_array_equal(now, whole_step)  # every parameter got batch 1's step
        assert not np.array_equal(now, old)


def test_sigint_during_long_kernel_calls_leaves_whole_batches(rng):
    """Ctrl-C (once, or twice in a row) at random moments of a fit whose time goes to long
    kernel calls: fit returns or raises KeyboardInterrupt, and the weights are those before
    training or after some whole optimiser step."""
    x = rng.standard_normal((64, 300, 8)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    timing = np.random.default_rng(3)
    outcomes = []
    for trial in range(8):
        model = Sequential([L.LSTM(48, return_sequences=True, seed=0), L.LSTM(16, seed=1),
                            L.Dense(1, seed=2)], seed=3)
        model.build((None, 300, 8))
        model.compile(loss="mse", optimizer="adam")
        states = [model.get_weights()]
        step = model.optimizer.step

        def recorded_step():
            step()
            states.append(model.get_weights())

        model.optimizer.step = recorded_step
        delays = [timing.uniform(0.02, 0.4)] + ([timing.uniform(0.001, 0.03)] if trial % 2 else [])
        received = []
        previous = signal.signal(signal.SIGINT, lambda *a: received.append(1))

        def send():
            for delay in delays:
                time.sleep(delay)
                os.kill(os.getpid(), signal.SIGINT)

        sender = threading.Thread(target=send)
        try:
            sender.start()
            try:
                history = model.fit(x, y, epochs=100, batch_size=16, verbose=0)
                outcomes.append("returned")
                assert history.interrupted
            except KeyboardInterrupt:
                outcomes.append("raised")
            sender.join()
        finally:
            signal.signal(signal.SIGINT, previous)
        now = model.get_weights()
        assert any(all(np.array_equal(a, b) for a, b in zip(now, s)) for s in states), \
            f"trial {trial}: the weights are not those of a whole step"
        assert len(states) > 1 or trial % 2
    print(f"\nCtrl-C during long kernel calls: {outcomes}")
    assert "returned" in outcomes
