"""The training loops' NumPy memory handler (csrc/bindings/array_memory.cc): installed by fit,
evaluate and predict for their own duration, in the calling thread's context only; large blocks
of freed arrays come back to the next arrays of their size class, never while an array holds
them; the kept blocks are bounded and freed when the last scope ends; the models' results are
bitwise those without it."""
import contextlib
import threading

import numpy as np
import pytest

from rnnfast import _C
from rnnfast.models import Sequential
from rnnfast.models import training as tr
from rnnfast.models.callbacks import Callback
from rnnfast.models.layers import (LSTM, Activation, Conv1D, Dense, Dropout, Embedding,
                                   MaxPooling1D)

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

OURS = "rnnfast_array_memory"
DEFAULT = get_handler_name()  # NumPy's ("default_allocator")
BIG = 1 << 20  # float32 elements: 4 MiB, above the handler's smallest block


def stats():
    return _C._array_memory_stats()


@pytest.fixture(autouse=True)
def no_scope_left_open():
    assert stats()["scopes"] == 0
    yield
    assert stats()["scopes"] == 0 and stats()["idle_bytes"] == 0
    assert get_handler_name() == DEFAULT


def test_scope_installs_and_restores_the_handler():
    assert DEFAULT != OURS
    with tr.array_memory():
        assert get_handler_name() == OURS
        with tr.array_memory():  # nested: still ours, one more scope
            assert get_handler_name() == OURS and stats()["scopes"] == 2
        assert get_handler_name() == OURS and stats()["scopes"] == 1
        small = np.ones(10)
        big = np.ones(BIG, np.float32)
        assert get_handler_name(small) == OURS and get_handler_name(big) == OURS
    assert get_handler_name() == DEFAULT
    assert get_handler_name(np.ones(BIG, np.float32)) == DEFAULT
    # arrays made in the scope outlive it: their memory is intact and freed through the handler
    assert (big == 1).all() and (small == 1).all()
    live = stats()["live_blocks"]
    del big
    assert stats()["live_blocks"] == live - 1 and stats()["idle_bytes"] == 0


def test_a_freed_block_comes_back_to_the_next_array_of_its_size_class():
    with tr.array_memory():
        a = np.full(BIG, 7.0, np.float32)
        address = a.ctypes.data
        del a
        assert stats()["idle_blocks"] == 1
        b = np.zeros(BIG - 1000, np.float32)  # the same class: the same block, cleared
        assert b.ctypes.data == address and not b.any()
        c = np.empty(BIG, np.float32)  # b still holds the block: another one
        assert c.ctypes.data != address
        del b
        d = np.zeros_like(c)
        assert d.ctypes.data == address and not d.any()
        e = np.empty(4 * BIG, np.float32)  # another class
        assert e.ctypes.data not in (address, c.ctypes.data)


def test_the_kept_blocks_are_bounded_and_freed_at_the_end():
    with tr.array_memory():
        arrays = [np.empty(BIG, np.float32) for _ in range(80)]  # 320 MiB, never touched
        assert stats()["live_blocks"] >= 80
        del arrays
        s = stats()
        assert 0 < s["idle_bytes"] <= s["max_idle_bytes"]
        assert s["idle_blocks"] == s["max_idle_bytes"] // (4 * BIG)
    assert stats()["idle_blocks"] == 0 and stats()["idle_bytes"] == 0


def test_small_arrays_are_numpys():
    with tr.array_memory():
        before = stats()["live_blocks"]
        a = np.ones(stats()["min_block_bytes"] // 8 - 1)
        assert stats()["live_blocks"] == before
        assert (a == 1).all()


def test_resize_in_and_after_the_scope():
    n = BIG // 4
    with tr.array_memory():
        a = np.arange(n, dtype=np.float32)
        a.resize(3 * n, refcheck=False)  # grows out of its class: moved
        assert (a[:n] == np.arange(n)).all() and not a[n:].any()
        a.resize(2 * n, refcheck=False)  # shrinks within a block's sizes: kept in place
        address = a.ctypes.data
        a.resize(2 * n - 3, refcheck=False)
        assert a.ctypes.data == address
        a.resize(10, refcheck=False)  # below a block's size: moved to NumPy's memory
        assert (a == np.arange(10)).all()
        b = np.arange(n, dtype=np.float32)
    b.resize(4 * n, refcheck=False)  # after the scope: NumPy's memory
    assert (b[:n] == np.arange(n)).all() and not b[n:].any()
    assert get_handler_name(b) == OURS  # an array keeps its handler


def test_another_thread_keeps_numpys_handler():
    seen = {}

    def other():
        seen["name"] = get_handler_name()
        seen["array"] = get_handler_name(np.ones(BIG, np.float32))

    with tr.array_memory():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert get_handler_name() == OURS
    assert seen == {"name": DEFAULT, "array": DEFAULT}


def test_threads_in_their_own_scopes_never_share_a_block():
    errors = []

    def work(k):
        try:
            for i in range(60):
                with tr.array_memory():
                    arrays = [np.full(BIG // 2 + j, k * 1000 + i + j, np.float32)
                              for j in range(4)]
                    for j, a in enumerate(arrays):
                        if not (a == k * 1000 + i + j).all():
                            errors.append((k, i, j))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_bad_arguments():
    with pytest.raises(TypeError, match="previous: expected what _array_memory_enter"):
        _C._array_memory_exit("x")
    with pytest.raises(TypeError, match="previous: expected what _array_memory_enter"):
        _C._array_memory_exit(np.ones(3))
    _C._array_memory_exit(None)  # nothing was installed: nothing to do
    previous = _C._array_memory_enter()
    _C._array_memory_exit(previous)
    with pytest.raises(ValueError, match="previous: no scope"):
        _C._array_memory_exit(previous)  # the scope was already ended
    assert get_handler_name() == DEFAULT


def imdb_like(seed=0):
    model = Sequential([
        Embedding(300, 24, seed=seed),
        Dropout(0.5, seed=seed + 1),
        Conv1D(16, 5, padding="valid", activation="relu", seed=seed + 2),
        MaxPooling1D(pool_size=4),
        LSTM(12, seed=seed + 3),
        Dense(1, seed=seed + 4),
        Activation("sigmoid"),
    ], seed=seed)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


class HandlerNames(Callback):
    def __init__(self):
        super().__init__()
        self.names = set()

    def on_train_batch_end(self, batch, logs=None):
        self.names.add(get_handler_name())


def test_models_train_bitwise_the_same_without_it(monkeypatch):
    """fit / evaluate / predict (batches with blocks above the handler's smallest: the
    embedding rows, the convolution's output, the gradients) with the handler and with none."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 300, (300, 61))
    y = (rng.random(300) < 0.5).astype(np.float32)
    results = {}
    for use in (True, False):
        if not use:
            monkeypatch.setattr(tr, "array_memory", contextlib.nullcontext)
        model = imdb_like()
        names = HandlerNames()
        history = model.fit(x, y, batch_size=150, epochs=2, verbose=0, callbacks=[names],
                            validation_split=0.2)
        assert names.names == ({OURS} if use else {DEFAULT})
        predicted = model.predict(x[:200], batch_size=100)
        kept = predicted.copy()
        model.fit(x, y, batch_size=150, epochs=1, verbose=0)  # reuses blocks: not predict's
        assert (predicted == kept).all()
        results[use] = (history["loss"], history["val_loss"], model.evaluate(x, y, verbose=0),
                        kept, [w.copy() for w in model.get_weights()])
    with_it, without = results[True], results[False]
    assert with_it[:3] == without[:3]
    assert (with_it[3] == without[3]).all()
    for a, b in zip(with_it[4], without[4]):
        assert (a == b).all()


def test_a_failing_fit_ends_its_scope():
    class Boom(Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("boom")

    rng = np.random.default_rng(1)
    model = imdb_like()
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(rng.integers(0, 300, (40, 61)), np.ones(40), batch_size=20, verbose=0,
                  callbacks=[Boom()])
    assert stats()["scopes"] == 0 and get_handler_name() == DEFAULT
