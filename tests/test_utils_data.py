"""Time-series windows and splits, min-max scaling, the tokenizer and the progress bar."""
import io

import numpy as np
import pytest

from rnnfast.utils import (
    MinMaxScaler,
    Progbar,
    Tokenizer,
    build_dataset,
    chronological_split,
    sliding_windows,
    text_to_word_sequence,
    tokenizer_from_json,
)


def seed_build_dataset(time_series, seq_length):
    """The study notes' loop, the oracle of build_dataset."""
    data_x, data_y = [], []
    for i in range(0, len(time_series) - seq_length):
        data_x.append(time_series[i:i + seq_length, :])
        data_y.append(time_series[i + seq_length, [-1]])
    return np.array(data_x), np.array(data_y)


def test_build_dataset_matches_the_notes(rng):
    series = rng.standard_normal((40, 5))
    x, y = build_dataset(series, 7)
    want_x, want_y = seed_build_dataset(series, 7)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert x.shape == (33, 7, 5) and y.shape == (33, 1)


def test_sliding_windows_options():
    series = np.arange(20.0)
    x, y = sliding_windows(series, 4, horizon=3, stride=2)
    assert x.shape == (7, 4, 1) and y.shape == (7, 1)
    np.testing.assert_array_equal(x[1, :, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(y[:, 0], [6, 8, 10, 12, 14, 16, 18])
    table = np.arange(30).reshape(10, 3)
    _, y2 = sliding_windows(table, 2, target=[0, 2])
    np.testing.assert_array_equal(y2[0], [6, 8])
    with pytest.raises(ValueError, match="too few for one window"):
        sliding_windows(series, 20)
    with pytest.raises(ValueError, match="target: column 3 is out of range"):
        sliding_windows(table, 2, target=3)
    with pytest.raises(ValueError, match="series: expected a 1-D"):
        sliding_windows(np.zeros((2, 2, 2)), 1)
    with pytest.raises(TypeError, match="window: expected an int"):
        sliding_windows(series, 2.0)


def test_chronological_split_keeps_time_order():
    x = np.arange(100)
    (tr,), (va,), (te,) = chronological_split(x, val=0.1, test=0.2)
    np.testing.assert_array_equal(np.concatenate([tr, va, te]), x)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    (a, b), (c, d) = chronological_split(x, x * 2, test=0.25)
    assert len(a) == 75 and np.all(b == 2 * a) and c[0] == 75 and np.all(d == 2 * c)
    with pytest.raises(ValueError, match="val \\+ test: expected < 1"):
        chronological_split(x, val=0.5, test=0.5)
    with pytest.raises(ValueError, match=r"arrays\[1\]: expected 100 rows"):
        chronological_split(x, x[:5])
    with pytest.raises(ValueError, match="too few"):
        chronological_split(x[:2], val=0.2, test=0.2)


def test_min_max_scaler_round_trip(rng):
    data = rng.standard_normal((50, 3)) * [1, 10, 100] + [0, 5, -7]
    scaler = MinMaxScaler().fit(data[:30])
    scaled = scaler.transform(data[:30])
    np.testing.assert_allclose(scaled.min(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.max(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(data)), data)
    np.testing.assert_allclose(scaler.inverse_transform(scaled[:, [2]], columns=[2]),
                               data[:30, [2]])
    with pytest.raises(RuntimeError, match="call fit"):
        MinMaxScaler().transform(data)


def test_word_tokenizer_follows_keras_rules():
    texts = ["The cat sat on the mat.", "The dog ate the cat!", "A dog?"]
    tok = Tokenizer()
    tok.fit_on_texts(texts)
    # by count (the: 4, cat: 2, dog: 2), ties in order of first appearance
    assert list(tok.word_index)[:3] == ["the", "cat", "dog"]
    assert tok.word_index["the"] == 1
    assert tok.texts_to_sequences(["the cat and the bird"]) == [[1, 2, 1]]
    assert tok.sequences_to_texts([[1, 2, 0, 99]]) == ["the cat"]
    oov = Tokenizer(num_words=3, oov_token="<unk>")
    oov.fit_on_texts(texts)
    assert oov.word_index["<unk>"] == 1 and oov.word_index["the"] == 2
    assert oov.texts_to_sequences(["the cat bird"]) == [[2, 1, 1]]
    assert oov.vocab_size == 3
    assert text_to_word_sequence("Hello, World!") == ["hello", "world"]


def test_char_tokenizer_round_trip_and_json():
    text = "Hello, world.\nHello again!"
    tok = Tokenizer(char_level=True, lower=False)
    tok.fit_on_texts([text])
    ids = tok.texts_to_sequences([text])[0]
    assert len(ids) == len(text) and min(ids) >= 1
    assert tok.decode(ids) == text
    assert tok.word_index["l"] == 1  # the most frequent character
    assert tok.sequences_to_texts([ids[:3]]) == ["H e l"]  # Keras joins with spaces
    again = tokenizer_from_json(tok.to_json())
    assert again.word_index == tok.word_index and again.decode(ids) == text
    with pytest.raises(TypeError, match="a single str"):
        tok.fit_on_texts(text)
    with pytest.raises(RuntimeError, match="fit_on_texts"):
        Tokenizer().texts_to_sequences(["a"])
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer(num_words=0)


def test_progbar_draws_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    bar = Progbar(4, width=8, stream=term, interval=0)
    for i in range(1, 4):
        bar.update(i, [("loss", 0.5)])
    bar.finish([("loss", 0.25)])
    out = term.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n")
    assert "2/4 [===>....] - ETA:" in out and "loss: 0.5000" in out
    assert "4/4 [========]" in out and "/step - loss: 0.2500" in out
    pipe = io.StringIO()
    quiet = Progbar(4, stream=pipe)
    quiet.update(2)
    quiet.finish()
    assert pipe.getvalue() == "" and not quiet.enabled
