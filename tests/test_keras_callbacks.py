"""Keras' callbacks of rnnfast.models.callbacks against Keras 3 itself: ReduceLROnPlateau
gives Keras' learning rates for the same monitored values; LearningRateScheduler and
CSVLogger, in the same training of the same model, give Keras' weights, histories and CSV
files; TerminateOnNaN stops where Keras stops, with a message."""
import csv

import numpy as np
import pytest

from keras_oracle import KERAS_WARNINGS, assert_close, keras, randomise
from rnnfast import optim
from rnnfast.models import Sequential, set_keras_weights
from rnnfast.models import callbacks as C
from rnnfast.models import layers as L
from rnnfast.models import optimizers as O

pytestmark = KERAS_WARNINGS


def pair(rng, lr=0.1, metrics=None):
    kmodel = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"),
                               keras.layers.Dense(3, activation="softmax")])
    weights = randomise(kmodel, rng)
    kmodel.compile(optimizer=keras.optimizers.SGD(learning_rate=lr),
                   loss="sparse_categorical_crossentropy", metrics=metrics)
    model = Sequential([L.Input((5,)), L.Dense(6, activation="tanh"),
                        L.Dense(3, activation="softmax")])
    set_keras_weights(model, weights)
    model.compile(optimizer=O.SGD(learning_rate=lr), loss="sparse_categorical_crossentropy",
                  metrics=metrics)
    return kmodel, model


def data(rng, n=30):
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)


def keras_weights_of(model):
    return [w for layer in model.layers for w in (layer.weight.data.T, layer.bias.data)]


SEQUENCES = {
    "plateau": [1.0, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85, 0.85, 0.2, 0.2, 0.2],
    "noisy": [1.0, 1.1, 0.99995, 1.2, 0.8, 0.80001, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7],
}


@pytest.mark.parametrize("seq", sorted(SEQUENCES))
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(patience=1),
    dict(patience=2, factor=0.5, cooldown=2),
    dict(patience=0, factor=0.2, min_lr=0.01),
    dict(patience=1, min_delta=0.05, cooldown=1),
    dict(patience=1, mode="max"),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
def test_reduce_lr_on_plateau_gives_keras_learning_rates(rng, seq, kwargs):
    kmodel, model = pair(rng)
    model.build()
    model._ensure_optimizer()
    ours, theirs = C.ReduceLROnPlateau(**kwargs), keras.callbacks.ReduceLROnPlateau(**kwargs)
    ours.set_model(model)
    theirs.set_model(kmodel)
    ours.on_train_begin()
    theirs.on_train_begin()
    rates = []
    for epoch, value in enumerate(SEQUENCES[seq]):
        logs, klogs = {"val_loss": value}, {"val_loss": value}
        ours.on_epoch_end(epoch, logs)
        theirs.on_epoch_end(epoch, klogs)
        assert logs["learning_rate"] == pytest.approx(klogs["learning_rate"], rel=1e-6)
        rates.append(model.optimizer.learning_rate)
        assert rates[-1] == pytest.approx(float(kmodel.optimizer.learning_rate), rel=1e-6), epoch
    if kwargs.get("patience", 10) <= 2 and kwargs.get("mode") != "max":
        assert rates[-1] < rates[0]  # the sequences have plateaus: the rate was reduced


def test_reduce_lr_on_plateau_in_fit_and_with_rnnfast_optim(rng):
    x, y = data(rng)
    _, model = pair(rng, lr=0.5)
    history = model.fit(x, y, epochs=4, verbose=0,
                        callbacks=[C.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5,
                                                       min_delta=10.0)])
    # the first epoch sets the best value; each later one fails to beat it by min_delta
    assert history["learning_rate"] == [0.5, 0.5, 0.25, 0.125]
    assert model.optimizer.learning_rate == 0.0625
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.4), loss="mse")
    cb = C.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_lr=0.3, min_delta=10.0)
    model.fit(x, np.eye(3)[y], epochs=3, verbose=0, callbacks=[cb])
    assert model.optimizer.param_groups[0]["lr"] == 0.3


def test_reduce_lr_on_plateau_warns_on_a_missing_monitor_and_refuses_schedules(rng):
    x, y = data(rng)
    _, model = pair(rng)
    with pytest.warns(UserWarning, match="monitor 'val_loss' is not among the logged values"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.ReduceLROnPlateau()])
    model.compile(optimizer=O.SGD(learning_rate=O.ExponentialDecay(0.1, 5, 0.5)),
                  loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="learning rate is a schedule"):
        model.fit(x, y, epochs=2, verbose=0,
                  callbacks=[C.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0)])
    with pytest.raises(ValueError, match="factor: ReduceLROnPlateau needs a factor < 1.0"):
        C.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match="patience: expected an int >= 0"):
        C.ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="mode: expected 'auto', 'min' or 'max'"):
        C.ReduceLROnPlateau(mode="up")


@pytest.mark.parametrize("schedule", [
    lambda epoch, lr: lr * 0.5 if epoch else lr,
    lambda epoch: 0.2 / (1 + epoch),
], ids=["epoch_lr", "epoch_only"])
def test_learning_rate_scheduler_trains_as_keras(rng, schedule):
    x, y = data(rng)
    kmodel, model = pair(rng, lr=0.3)
    kh = kmodel.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                    callbacks=[keras.callbacks.LearningRateScheduler(schedule)])
    h = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                  callbacks=[C.LearningRateScheduler(schedule)])
    assert_close(h["learning_rate"], kh.history["learning_rate"], what="learning rates")
    assert_close(h["loss"], kh.history["loss"], what="losses")
    for i, (g, k) in enumerate(zip(keras_weights_of(model), kmodel.get_weights())):
        assert_close(g, k, what=f"weight {i}")


def test_learning_rate_scheduler_errors(rng):
    x, y = data(rng)
    _, model = pair(rng)
    with pytest.raises(ValueError, match="schedule: expected a finite float from the schedule "
                                         "function, got 'fast' at epoch 0"):
        model.fit(x, y, verbose=0, callbacks=[C.LearningRateScheduler(lambda e, lr: "fast")])
    with pytest.raises(TypeError, match="schedule: expected a function"):
        C.LearningRateScheduler(0.1)


def test_terminate_on_nan_stops_where_keras_stops(rng, capsys):
    x, y = data(rng)
    y = y.astype(np.float32)
    x[11, 2] = np.nan  # in the second batch of 8
    kmodel, model = pair(rng)
    kh = kmodel.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                    callbacks=[keras.callbacks.TerminateOnNaN()])
    capsys.readouterr()
    h = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                  callbacks=[C.TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "Batch 1: invalid loss nan, terminating training" in out
    assert model.optimizer.iterations == int(kmodel.optimizer.iterations) == 2
    assert len(h["loss"]) == len(kh.history["loss"]) == 1 and np.isnan(h["loss"][0])
    untrained = Sequential([L.Input((5,)), L.Dense(3, activation="softmax")])
    untrained.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match="Batch 1: invalid loss nan"):
        untrained.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                      callbacks=[C.TerminateOnNaN(raise_error=True)])


def test_without_terminate_on_nan_training_goes_on_as_in_keras(rng):
    x, y = data(rng)
    x[3, 0] = np.inf
    _, model = pair(rng)
    h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert len(h["loss"]) == 2 and model.optimizer.iterations == 8


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_writes_keras_file(rng, tmp_path):
    x, y = data(rng)
    kmodel, model = pair(rng, metrics=["accuracy"])
    for m, cb in ((kmodel, keras.callbacks.CSVLogger(tmp_path / "keras.csv")),
                  (model, C.CSVLogger(tmp_path / "ours.csv"))):
        m.fit(x[:20], y[:20], batch_size=8, epochs=3, shuffle=False, verbose=0,
              validation_data=(x[20:], y[20:]),
              callbacks=[(keras.callbacks if m is kmodel else C).ReduceLROnPlateau(
                  monitor="val_loss", patience=0, min_delta=10.0), cb])
    theirs, ours = read_csv(tmp_path / "keras.csv"), read_csv(tmp_path / "ours.csv")
    assert ours[0] == theirs[0] == ["epoch", "accuracy", "learning_rate", "loss", "val_accuracy",
                                    "val_loss"]
    assert len(ours) == len(theirs) == 4
    for row, krow in zip(ours[1:], theirs[1:]):
        assert row[0] == krow[0]
        assert_close(np.array(row[1:], float), np.array(krow[1:], float), what=str(row))


def test_csv_logger_appends_and_separator(rng, tmp_path):
    x, y = data(rng)
    _, model = pair(rng)
    path = tmp_path / "log.tsv"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[C.CSVLogger(path, separator="\t")])
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[C.CSVLogger(str(path), separator="\t", append=True)])
    rows = read_csv(path)
    assert rows[0] == ["epoch\tloss\tval_loss"]
    assert [r[0].split("\t")[0] for r in rows[1:]] == ["0", "1", "0"]
    assert rows[1][0].endswith("\tNA")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[C.CSVLogger(path)])
    assert len(read_csv(path)) == 2  # not appending: a new file
    with pytest.raises(ValueError, match="separator: expected one character"):
        C.CSVLogger(path, separator="::")


def test_terminate_on_nan_with_a_nan_label(rng, capsys):
    """The issue's case: a NaN label made fit train on with loss nan and NaN weights."""
    x, y = rng.standard_normal((24, 5)), rng.standard_normal((24, 1))
    y[17] = np.nan  # batch 2 of 8
    model = Sequential([L.Input((5,)), L.Dense(1)])
    model.compile(optimizer=O.Adam(), loss="mse")
    before = model.get_weights()
    h = model.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0,
                  callbacks=[C.TerminateOnNaN()])
    assert "Batch 2: invalid loss nan, terminating training" in capsys.readouterr().out
    assert model.optimizer.iterations == 3 and len(h["loss"]) == 1
    assert not all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.isfinite(w).all() for w in before)
