"""Atomic saves at exactly the path given, ModelCheckpoint and BackupAndRestore (bit-for-bit
resume of an interrupted fit)."""
import os
import stat
import warnings

import numpy as np
import pytest

from rnnfast import optim
from rnnfast.models import (
    BackupAndRestore,
    Callback,
    ModelCheckpoint,
    Sequential,
    callbacks,
    load_model,
    saving,
)
from rnnfast.models import layers as L


def make_model(seed=0, optimizer="adam"):
    model = Sequential([L.Embedding(20, 4, seed=seed), L.Dropout(0.3, seed=seed + 1),
                        L.LSTM(5, seed=seed + 2), L.Dense(3, activation="softmax",
                                                          seed=seed + 3)], seed=seed + 4)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer,
                  metrics=["accuracy"])
    return model


def data(n=48):
    rng = np.random.default_rng(7)
    return rng.integers(1, 20, (n, 6)), rng.integers(0, 3, n)


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


# atomic writes at the path given -------------------------------------------------------------
@pytest.mark.parametrize("name", ["m.keras", "m", "m.npz", "model.h5"])
def test_save_writes_exactly_the_path_given(tmp_path, name):
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=1, verbose=0)
    path = model.save(tmp_path / name)
    assert path == str(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert same_weights(load_model(tmp_path / name), model)
    assert same_weights(Sequential.load(str(tmp_path / name)), model)
    weights = tmp_path / ("w-" + name)
    assert model.save_weights(weights) == str(weights)
    other = make_model(seed=5)
    other.build((None, 6))
    other.load_weights(weights)
    assert same_weights(other, model)
    third = make_model(seed=6)
    third.build((None, 6))
    third.load_weights(tmp_path / name)  # a model file's weights, as Keras allows
    assert same_weights(third, model)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    model = make_model()
    model.build((None, 6))
    model.save(path)
    before = path.read_bytes()

    def half_then_fail(f):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        saving.atomic_write(path, half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        saving.atomic_write(path, lambda f: (f.write(b"x"), (_ for _ in ()).throw(
            KeyboardInterrupt)))
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename")))
    with pytest.raises(OSError, match="rename"):
        model.save(path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temporary files


def test_nan_weights_are_not_saved_and_keep_the_previous_file(tmp_path):
    model = make_model()
    model.build((None, 6))
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()
    model.layers[-1].weight.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="dense.weight holds NaN or inf; not saved"):
        model.save(path)
    with pytest.raises(ValueError, match="holds NaN or inf"):
        model.save_weights(tmp_path / "w")
    assert path.read_bytes() == before


def test_file_modes_and_folders(tmp_path):
    model = make_model()
    model.build((None, 6))
    new = tmp_path / "new.keras"
    model.save(new)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666 & ~mask
    os.chmod(new, 0o600)
    model.save(new)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o600  # an existing file keeps its mode
    with pytest.raises(FileNotFoundError, match="the folder .*missing.* does not exist"):
        model.save(tmp_path / "missing" / "m.keras")
    with pytest.raises(IsADirectoryError):
        model.save(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.keras")


def test_unsavable_names_are_refused_at_save(tmp_path):
    bad = Sequential([L.Input((3,))])
    layer = L.Dense(2)
    layer.name = "my layer"
    bad.add(layer)
    with pytest.raises(ValueError, match="name 'my layer.weight' cannot be saved"):
        bad.save(tmp_path / "m")
    assert not list(tmp_path.iterdir())


# ModelCheckpoint --------------------------------------------------------------------------
def test_model_checkpoint_patterns_and_best_only(tmp_path):
    x, y = data()
    model = make_model()
    every = ModelCheckpoint(tmp_path / "e{epoch:02d}-{val_loss:.3f}.keras")
    best = ModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss",
                           save_best_only=True)
    best_acc = ModelCheckpoint(str(tmp_path / "acc-{epoch}.keras"), monitor="val_accuracy",
                               save_best_only=True)
    assert best_acc.mode == "max" and best.mode == "min"
    seen = []
    record = Callback()
    record.on_epoch_end = lambda epoch, logs: seen.append((logs["val_loss"],
                                                           logs["val_accuracy"]))
    history = model.fit(x, y, epochs=5, batch_size=8, validation_split=0.25, verbose=0,
                        callbacks=[record, every, best, best_acc])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if n.startswith("e")] == \
        [f"e{i + 1:02d}-{v:.3f}.keras" for i, (v, _) in enumerate(seen)]
    losses = history["val_loss"]
    assert best.best == min(losses)
    # the best file holds the best epoch's model: reload and evaluate it
    kept = load_model(tmp_path / "best.keras")
    assert kept.evaluate(x[36:], y[36:], verbose=0)[0] == pytest.approx(min(losses), rel=1e-6)
    improved, top = [], -np.inf
    for i, (_, acc) in enumerate(seen):
        if acc > top:
            improved.append(f"acc-{i + 1}.keras")
            top = acc
    assert [n for n in names if n.startswith("acc")] == sorted(improved)


def test_model_checkpoint_weights_only_batches_and_errors(tmp_path):
    x, y = data()
    model = make_model()
    ckpt = ModelCheckpoint(tmp_path / "w-{epoch}-{batch}.npz", save_weights_only=True,
                           save_freq=4, monitor="loss")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[ckpt])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["w-1-4.npz", "w-2-2.npz", "w-2-6.npz"]  # every 4 of 6 batches an epoch
    other = make_model(seed=9)
    other.build((None, 6))
    other.load_weights(tmp_path / "w-2-6.npz")
    assert same_weights(other, model)
    with pytest.raises(ValueError, match="mode"):
        ModelCheckpoint("x", mode="best")
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint("x", save_freq=0)
    with pytest.raises(KeyError, match="cannot format the filepath"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[ModelCheckpoint(tmp_path / "{val_loss}.keras")])
    with pytest.warns(UserWarning, match="only with val_loss available"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[ModelCheckpoint(tmp_path / "b.keras", save_best_only=True)])
    assert not (tmp_path / "b.keras").exists()


def test_model_checkpoint_keeps_the_last_good_file_when_weights_turn_nan(tmp_path):
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "m.keras")])
    good = (tmp_path / "m.keras").read_bytes()

    class Poison(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.layers[-1].bias.data[:] = np.nan

    with pytest.warns(UserWarning, match="NaN or inf; not saved"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[Poison(), ModelCheckpoint(tmp_path / "m.keras")])
    assert (tmp_path / "m.keras").read_bytes() == good


def test_exported_from_callbacks():
    assert callbacks.ModelCheckpoint is ModelCheckpoint
    assert callbacks.BackupAndRestore is BackupAndRestore


# BackupAndRestore -------------------------------------------------------------------------
class StopAt(Callback):
    """Ctrl-C (a KeyboardInterrupt) at a given epoch and batch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("stop", [(0, 2), (2, 0), (3, 4)])
def test_backup_and_restore_resumes_bit_for_bit(tmp_path, optimizer, stop):
    x, y = data()
    fit = dict(epochs=5, batch_size=8, validation_split=0.25, verbose=0)
    reference = make_model(optimizer=optimizer)
    reference.fit(x, y, **fit)
    backup = tmp_path / "backup"
    first = make_model(optimizer=optimizer)
    history = first.fit(x, y, callbacks=[BackupAndRestore(backup), StopAt(*stop)], **fit)
    assert history.interrupted
    assert (backup / "latest.model").exists() == (stop[0] > 0)  # a backup per completed epoch
    again = make_model(optimizer=optimizer)
    user_optimizer = again.optimizer
    restore = BackupAndRestore(backup)
    history = again.fit(x, y, callbacks=[restore], **fit)
    assert restore.resumed_epoch == (stop[0] or None)
    assert history.epoch == list(range(stop[0], 5))
    assert again.optimizer is user_optimizer  # the state was restored in place
    assert same_weights(again, reference)
    assert not (backup / "latest.model").exists()  # deleted once fit completed


def test_backup_and_restore_checks(tmp_path):
    x, y = data()
    backup = tmp_path / "backup"
    model = make_model()
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[BackupAndRestore(backup, delete_checkpoint=False), StopAt(1, 1)])
    assert (backup / "latest.model").exists()
    other = Sequential([L.Embedding(20, 4), L.GRU(5), L.Dense(3, activation="softmax")])
    other.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match="another configuration"):
        other.fit(x, y, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup)])
    with pytest.raises(ValueError, match="save_freq: only 'epoch'"):
        BackupAndRestore(backup, save_freq=10)
    (backup / "latest.model").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a valid archive"):
        make_model().fit(x, y, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup)])
    model.save(backup / "latest.model")  # a model file without an epoch
    with pytest.raises(ValueError, match="is not a backup"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup)])


def test_restore_state_optimizer_groups_and_generators(tmp_path):
    x, y = data()
    model = make_model()
    model.build((None, 6))
    params = model.parameters()
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=optim.Adam([{"params": params[:2], "lr": 0.01},
                                        {"params": params[2:]}]))
    model.fit(x, y, epochs=2, verbose=0)
    path = saving.save_model(model, tmp_path / "m", training={"epoch": 2})
    twin = make_model()
    twin.build((None, 6))
    tp = twin.parameters()
    twin.compile(loss="sparse_categorical_crossentropy",
                 optimizer=optim.Adam([{"params": tp[:2]}, {"params": tp[2:]}]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert saving.restore_state(twin, path) == {"epoch": 2}
    assert twin.optimizer.param_groups[0]["lr"] == 0.01
    assert same_weights(twin, model)
    model.fit(x, y, epochs=1, verbose=0)
    twin.fit(x, y, epochs=1, verbose=0)
    assert same_weights(twin, model)
