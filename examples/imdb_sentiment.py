"""Sentiment of movie reviews with a convolution before the LSTM, the IMDB workflow of the
study notes::

    Embedding(5000, 100) -> Dropout(0.5) -> Conv1D(64, 5, padding="valid", activation="relu",
    strides=1) -> MaxPooling1D(pool_size=4) -> LSTM(55) -> Dense(1) -> Activation("sigmoid")

binary cross-entropy, Adam, reviews cut or pre-padded to 100 words.

Data
    ``--data FILE``: one review per line, ``<label 0 or 1><TAB><text>``; the text is tokenised
    keeping the 4999 most frequent words. The last 20% of the lines are the test set.

    Without ``--data``: synthetic reviews with a learnable, local structure. The vocabulary
    has 5000 ids; ids 10..59 are positive words, 60..109 negative words and id 3 is "not". A
    review has 30 to 100 words drawn from the neutral ids 110..4999 with a Zipf-like law (the
    k-th neutral word with weight 1/k, as in real text), except that each position holds a
    sentiment word with probability 0.1, preceded by "not" with probability 0.3, which flips
    its polarity. The label is 1 when the flipped polarities sum to more than
    zero (reviews that sum to zero are redrawn). Word pairs decide it, which suits the
    convolution's 5-word windows.

Usage: ``python examples/imdb_sentiment.py [--data FILE] [--epochs N] [--quick]``
(``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds on a small sample).
"""
import argparse
import os
import time

import numpy as np

from rnnfast.models import Sequential
from rnnfast.models.layers import (
    LSTM,
    Activation,
    Conv1D,
    Dense,
    Dropout,
    Embedding,
    MaxPooling1D,
)
from rnnfast.utils import Tokenizer, pad_sequences

NUM_WORDS, MAXLEN, NOT = 5000, 100, 3
POSITIVE, NEGATIVE = np.arange(10, 60), np.arange(60, 110)


def synthetic_reviews(count, rng):
    neutral = np.arange(110, NUM_WORDS)
    weights = 1.0 / np.arange(1, len(neutral) + 1)
    weights /= weights.sum()
    reviews, labels = [], []
    while len(reviews) < count:
        n = int(rng.integers(30, 101))
        words = rng.choice(neutral, size=n, p=weights)
        score = 0
        for i in np.flatnonzero(rng.random(n) < 0.1):
            positive = rng.random() < 0.5
            words[i] = rng.choice(POSITIVE if positive else NEGATIVE)
            polarity = 1 if positive else -1
            if i > 0 and rng.random() < 0.3:
                words[i - 1] = NOT
                polarity = -polarity
            score += polarity
        if score == 0:
            continue
        reviews.append(words.tolist())
        labels.append(int(score > 0))
    return reviews, np.array(labels)


def read_reviews(path):
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, sep, text = line.rstrip("\n").partition("\t")
            if not sep or label not in ("0", "1"):
                raise SystemExit(f"{path}:{number}: expected '<0 or 1><TAB><text>'")
            labels.append(int(label))
            texts.append(text)
    tokenizer = Tokenizer(num_words=NUM_WORDS)
    tokenizer.fit_on_texts(texts)
    return tokenizer.texts_to_sequences(texts), np.array(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="reviews file: '<0 or 1>\\t<text>' per line")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--samples", type=int, default=8000, help="synthetic reviews")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds on a small sample")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("RNNFAST_EXAMPLES_QUICK") == "1"
    if quick:
        args.samples, args.epochs = 400, 2
    rng = np.random.default_rng(args.seed)

    if args.data:
        reviews, labels = read_reviews(args.data)
        if quick:
            reviews, labels = reviews[:args.samples], labels[:args.samples]
        source = args.data
    else:
        reviews, labels = synthetic_reviews(args.samples, rng)
        source = "synthetic reviews (sentiment words, 'not' flips them)"
    split = int(len(reviews) * 0.8)
    x_train = pad_sequences(reviews[:split], maxlen=MAXLEN)
    x_test = pad_sequences(reviews[split:], maxlen=MAXLEN)
    y_train, y_test = labels[:split], labels[split:]
    print(f"{source}: {len(x_train)} training and {len(x_test)} test reviews, "
          f"{y_train.mean():.0%} positive")

    s = args.seed
    model = Sequential([Embedding(NUM_WORDS, 100, seed=s), Dropout(0.5, seed=s + 1),
                        Conv1D(64, 5, padding="valid", activation="relu", strides=1, seed=s + 2),
                        MaxPooling1D(pool_size=4), LSTM(55, seed=s + 3), Dense(1, seed=s + 4),
                        Activation("sigmoid")], seed=s)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_test, y_test), verbose=2)
    total = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"time per epoch: {total / max(len(history['loss']), 1):.2f}s")
    print(f"test loss: {loss:.4f}")
    print(f"test accuracy: {accuracy:.4f} (majority class: "
          f"{max(y_test.mean(), 1 - y_test.mean()):.4f})")
    return history


if __name__ == "__main__":
    main()
