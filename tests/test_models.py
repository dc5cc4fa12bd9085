"""Sequential: learning small tasks, the Keras workflow (history, evaluate, predict, summary),
gradients through the whole stack, optimisers by name and object, gradient clipping, and
clear errors for bad arguments."""
import functools
import io
import sys

import numpy as np
import pytest

from nn_cases import check_layer_gradients
from rnnfast import losses, nn, optim
from rnnfast.models import EarlyStopping, LambdaCallback, Sequential
from rnnfast.models import layers as L
from rnnfast.utils import pad_sequences, to_categorical


def keyword_task(rng, n=480, steps=20, vocab=50, post=False):
    """Label 1 when token 7 occurs in a variable-length sequence of random tokens."""
    seqs, labels = [], rng.integers(0, 2, n)
    for label in labels:
        seq = rng.integers(1, vocab, rng.integers(5, steps + 1))
        seq[seq == 7] = 8
        if label:
            seq[rng.integers(0, len(seq))] = 7
        seqs.append(seq.tolist())
    return pad_sequences(seqs, maxlen=steps, padding="post" if post else "pre"), labels


def test_lstm_classifier_learns_the_keyword_task(rng):
    x, y = keyword_task(rng)
    model = Sequential([L.Embedding(50, 16, seed=0), L.LSTM(16, seed=1),
                        L.Dense(2, activation="softmax", seed=2)], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, to_categorical(y), batch_size=32, epochs=12, validation_split=0.2,
                        verbose=0)
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.history is history and len(history["loss"]) == 12
    assert len(history.epoch_times) == 12 and not history.interrupted
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9
    loss, acc = model.evaluate(x, to_categorical(y), verbose=0)
    assert acc >= 0.9 and loss < 0.4
    probs = model.predict(x[:5])
    assert probs.shape == (5, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_masked_bidirectional_model_learns_with_post_padding(rng):
    x, y = keyword_task(rng, post=True)
    model = Sequential([L.Embedding(50, 8, mask_zero=True, seed=0),
                        L.Bidirectional(L.GRU(8, seed=1)),
                        L.Dense(1, activation="sigmoid", seed=2)],
                       seed=1)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["acc"])
    history = model.fit(x, y, batch_size=32, epochs=12, verbose=0,
                        validation_data=(x[:100], y[:100]))
    assert history["val_acc"][-1] >= 0.9


def test_conv_pool_lstm_model_learns(rng):
    x, y = keyword_task(rng)
    model = Sequential([L.Embedding(50, 16, seed=0), L.Dropout(0.1, seed=1),
                        L.Conv1D(16, 3, activation="relu", seed=2), L.MaxPooling1D(2),
                        L.LSTM(12, seed=3), L.Dense(1, seed=4), L.Activation("sigmoid")], seed=2)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] >= 0.9


def test_lstm_regression_on_a_sine(rng):
    t = np.arange(400)
    series = np.sin(2 * np.pi * t / 25) + 0.05 * rng.standard_normal(400)
    x = np.stack([series[i:i + 10] for i in range(380)])[..., None]
    y = series[10:390, None]
    model = Sequential([L.LSTM(16, seed=0), L.Dense(1, seed=1)], seed=0)
    model.compile(loss="mse", optimizer=functools.partial(optim.Adam, lr=1e-2), metrics=["mae"])
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert history["loss"][-1] < 0.02 < history["loss"][0]
    assert isinstance(model.evaluate(x, y, verbose=0), list)


def test_stacked_and_time_distributed_many_to_many(rng):
    x = rng.standard_normal((64, 6, 3)).astype(np.float32)
    y = np.cumsum(x[..., :1], axis=1)  # running sum: needs the recurrence
    model = Sequential([L.LSTM(16, return_sequences=True, seed=0),
                        L.GRU(16, return_sequences=True, seed=1),
                        L.TimeDistributed(L.Dense(1, seed=2))], seed=3)
    model.compile(loss="mse", optimizer=functools.partial(optim.Adam, lr=1e-2))
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    assert model.output_shape == (None, 6, 1)
    assert history["loss"][-1] < 0.1 * history["loss"][0]


def test_sequential_is_a_module_with_exact_gradients(rng):
    model = Sequential([nn.Linear(3, 4, dtype=np.float64, seed=0), nn.Tanh(),
                        L.LSTM(3, return_sequences=True, dtype=np.float64, seed=1),
                        L.SimpleRNN(2, dtype=np.float64, seed=2), L.Dense(2, dtype=np.float64)])
    x = rng.standard_normal((2, 5, 3))
    model(x)
    check_layer_gradients(model, x, rng)
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["linear.weight", "linear.bias"] and "lstm.rnn.weight_hh_l0" in names


def test_summary_matches_keras_layout():
    model = Sequential([L.Embedding(5000, 100), L.Dropout(0.5),
                        L.Conv1D(64, 5, padding="valid", activation="relu", strides=1),
                        L.MaxPooling1D(pool_size=4), L.LSTM(55), L.Dense(1),
                        L.Activation("sigmoid")])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "sequential"' in text
    assert " embedding (Embedding)        (None, None, 100)         500000" in lines
    assert " conv1d (Conv1D)              (None, None, 64)          32064" in lines
    assert " lstm (LSTM)                  (None, 55)                26400" in lines  # Keras' count
    assert " dense (Dense)                (None, 1)                 56" in lines
    assert "Total params: 558,520" in lines and "Non-trainable params: 0" in lines
    fixed = Sequential([L.Input((30, 4)), L.Conv1D(8, 3), L.GlobalMaxPooling1D(), L.Dense(2)])
    fixed.build()
    assert fixed.output_shapes == [(None, 28, 8), (None, 8), (None, 2)]
    frozen = Sequential([nn.Embedding.from_pretrained(np.ones((10, 3), np.float32)),
                         L.LSTM(2)], name="frozen")
    frozen.build((None, 7))
    out = []
    frozen.summary(print_fn=out.append)
    assert "Trainable params: 48" in out and "Non-trainable params: 30" in out  # as Keras
    with pytest.raises(ValueError, match="has not yet been built"):
        Sequential([L.Dense(3)]).summary()


def test_layer_names_are_unique_and_keras_like():
    model = Sequential([L.Dense(3), L.Dense(3), L.SimpleRNN(2), L.GlobalMaxPooling1D()])
    assert model.layer_names == ["dense", "dense_1", "simple_rnn", "global_max_pooling1d"]
    named = L.Dense(2)
    named.name = "out"
    model.add(named)
    assert model.get_layer("out") is named
    dup = L.Dense(2)
    dup.name = "out"
    with pytest.raises(ValueError, match="name 'out' is already used"):
        model.add(dup)


def test_verbose_output(rng, capsys, monkeypatch):
    x, y = keyword_task(rng, n=64)
    model = Sequential([L.Embedding(50, 4), L.LSTM(4), L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=16, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1/2 - ")
    assert "/step) - loss: " in out[0] and " - val_accuracy: " in out[1]
    model.fit(x, y, epochs=1, verbose=1)  # not a terminal: one line, no bar
    assert capsys.readouterr().out.count("\n") == 1

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25)
    text = term.getvalue()
    assert text.startswith("Epoch 1/2\n\r") and "\nEpoch 2/2\n" in text
    assert "3/3 [==============================] - " in text and "/step - loss: " in text
    assert text.count("val_loss: ") == 2 and text.endswith("\n")


def test_early_stopping_and_stop_training(rng):
    x, y = keyword_task(rng, n=64)
    model = Sequential([L.Embedding(50, 4), L.LSTM(4), L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=functools.partial(optim.SGD, lr=0.0))
    stop = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[stop])
    assert len(history["loss"]) == 3 and stop.stopped_epoch == 2

    def halt(batch, logs):
        if batch == 1:
            model.stop_training = True
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0,
                        callbacks=LambdaCallback(on_batch_end=halt))
    assert len(history["loss"]) == 1  # the partial epoch is recorded, as in Keras


@pytest.mark.parametrize("option", ["clipvalue", "clipnorm", "global_clipnorm"])
def test_gradient_clipping(rng, option):
    x, y = keyword_task(rng, n=32)
    model = Sequential([L.Embedding(50, 4, seed=0), L.LSTM(4, seed=1), L.Dense(1, seed=2)],
                       seed=0)
    model.compile(loss="mse", optimizer=functools.partial(optim.SGD, lr=1.0),
                  **{option: 1e-3})
    model.build((None, 20))
    before = model.get_weights()
    model.fit(x, y * 100, epochs=1, batch_size=32, verbose=0, shuffle=False)
    steps = [w1.astype(np.float64) - w0 for w0, w1 in zip(before, model.get_weights())]
    if option == "clipvalue":
        assert max(np.abs(s).max() for s in steps) <= 1e-3 * (1 + 1e-4)
    elif option == "clipnorm":
        assert max(np.linalg.norm(s) for s in steps) <= 1e-3 * (1 + 1e-3)
    else:
        assert np.sqrt(sum(np.sum(s * s) for s in steps)) <= 1e-3 * (1 + 1e-3)
    assert max(np.abs(s).max() for s in steps) > 1e-5


def test_optimizers_by_name_and_object():
    model = Sequential([L.Input((5,)), L.Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    assert isinstance(model.optimizer, optim.Adam)
    assert model.optimizer.param_groups[0]["eps"] == 1e-7
    model.compile(loss="mse", optimizer="RMSprop")
    assert model.optimizer.param_groups[0]["alpha"] == 0.9
    model.compile(loss="mse", optimizer="sgd")
    assert model.optimizer.param_groups[0]["lr"] == 0.01
    own = optim.AdamW(model.parameters(), lr=0.5)
    model.compile(loss="mse", optimizer=own)
    assert model.optimizer is own
    model.compile(loss="mse", optimizer=optim.RMSprop)
    assert isinstance(model.optimizer, optim.RMSprop)
    other = optim.SGD(nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="its parameters are not this model's"):
        model.compile(loss="mse", optimizer=other)


def test_compile_errors():
    model = Sequential([L.Dense(1)])
    with pytest.raises(ValueError, match="loss: expected a Loss or one of"):
        model.compile(loss="hinge", optimizer="adam")
    with pytest.raises(ValueError, match="loss: compile\\(\\) needs a loss"):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="optimizer: unknown name 'adamax'"):
        model.compile(loss="mse", optimizer="adamax")
    with pytest.raises(TypeError, match="optimizer: expected a name"):
        model.compile(loss="mse", optimizer=3)
    with pytest.raises(ValueError, match="metrics: unknown metric 'f1'"):
        model.compile(loss="mse", metrics=["f1"])
    with pytest.raises(ValueError, match="clipnorm: expected a positive number"):
        model.compile(loss="mse", clipnorm=-1)
    with pytest.raises(ValueError, match="give at most one of them"):
        model.compile(loss="mse", clipnorm=1, global_clipnorm=1)
    with pytest.raises(RuntimeError, match="You must compile your model"):
        model.fit(np.zeros((2, 3)), np.zeros((2, 1)))


def test_fit_errors(rng):
    x, y = keyword_task(rng, n=20)
    model = Sequential([L.Embedding(50, 4), L.LSTM(4), L.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match=r"y: wrong target shape for loss "
                                         r"CategoricalCrossentropy: the model outputs \(None, 3\)"
                                         r".*use loss='sparse_categorical_crossentropy' or "
                                         r"to_categorical\(y, 3\)"):
        model.fit(x, y, verbose=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match="They look one-hot"):
        model.fit(x, to_categorical(y, 3), verbose=0)
    with pytest.raises(ValueError, match=r"class labels must be in 0..2 \(the model has 3 "
                                         r"outputs\), got 6"):
        model.fit(x, y + 5, verbose=0)
    with pytest.raises(ValueError, match="y: expected 20 rows"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(TypeError, match="pad ragged sequences first"):
        model.fit([[1, 2], [3]], [0, 1], verbose=0)
    with pytest.raises(ValueError, match="validation_split: expected a fraction"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(TypeError, match="batch_size: expected an int"):
        model.fit(x, y, batch_size=2.0, verbose=0)
    with pytest.raises(ValueError, match="verbose: expected 0, 1, 2 or 'auto'"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match=r"token ids must be in 0..49"):
        model.fit(x + 50, y, verbose=0)


def test_layer_errors_name_the_layer(rng):
    model = Sequential([nn.Linear(5, 3), nn.Linear(4, 2)])
    with pytest.raises(ValueError, match=r"layer 1 'linear_1' \(Linear\) cannot take an input of "
                                         r"shape \(None, 3\): x: expected 4 features"):
        model.build((None, 5))
    masked = Sequential([L.Embedding(10, 4, mask_zero=True)])
    with pytest.raises(ValueError, match=r"layer 1 'conv1d' \(Conv1D\).*cannot take the padding "
                                         "mask"):
        masked.add(L.Conv1D(2, 2))  # models with a known input build as layers come in
    assert masked.layer_names == ["embedding"] and masked.built
    with pytest.raises(TypeError, match=r"use rnnfast.models.layers.LSTM\(units"):
        Sequential([nn.LSTM(3, 4)])
    with pytest.raises(TypeError, match=r"rnnfast.models.layers.SimpleRNN"):
        Sequential([nn.RNN(3, 4)])
    with pytest.raises(ValueError, match="return_state=True gives several outputs"):
        Sequential([L.LSTM(3, return_state=True)])
    with pytest.raises(ValueError, match="Input: must be the first item"):
        Sequential([L.Dense(2), L.Input((3,))])
    with pytest.raises(TypeError, match="layer: expected an rnnfast layer"):
        Sequential(["dense"])
    broken = Sequential([L.LSTM(3), L.Dense(2)])
    broken.compile(loss="mse")
    with pytest.raises(ValueError, match=r"layer 0 'lstm' \(LSTM\).*expected a 3-D array"):
        broken.fit(np.zeros((4, 5)), np.zeros((4, 2)), verbose=0)


def test_evaluate_and_predict_details(rng):
    model = Sequential([L.Input((4,)), L.Dense(3, activation="softmax")], seed=0)
    model.compile(loss=losses.SparseCategoricalCrossentropy(), optimizer="adam",
                  metrics=["accuracy", "sparse_top_k_categorical_accuracy"])
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(result) == ["loss", "accuracy", "sparse_top_k_categorical_accuracy"]
    assert result["sparse_top_k_categorical_accuracy"] == 1.0
    assert model.predict(x, batch_size=3).shape == (10, 3)
    np.testing.assert_allclose(model.predict(x), model.predict(x, batch_size=1), atol=1e-6)
    assert model.predict(x[:0]).shape == (0, 3)
    ints = Sequential([L.Input((2,)), L.Dense(1)])
    assert ints.predict(np.ones((3, 2), np.int64)).dtype == np.float32
