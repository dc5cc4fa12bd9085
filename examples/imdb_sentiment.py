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
import numpy as np

from _common import fit_and_report, make_parser, parse_args
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


def load_data(path=None, samples=8000, seed=0, limit=None):
    """``(x_train, y_train), (x_test, y_test), source``: the reviews of ``path`` (the first
    ``limit`` of them) or ``samples`` synthetic ones, cut or pre-padded to 100 words, labels 0/1,
    the last 20% for testing."""
    if path:
        reviews, labels = read_reviews(path)
        if limit:
            reviews, labels = reviews[:limit], labels[:limit]
        source = path
    else:
        reviews, labels = synthetic_reviews(samples, np.random.default_rng(seed))
        source = "synthetic reviews (sentiment words, 'not' flips them)"
    split = int(len(reviews) * 0.8)
    x_train = pad_sequences(reviews[:split], maxlen=MAXLEN)
    x_test = pad_sequences(reviews[split:], maxlen=MAXLEN)
    return (x_train, labels[:split]), (x_test, labels[split:]), source


def build_model(seed=0):
    """The notes' model, compiled (binary cross-entropy, Adam)."""
    s = seed
    model = Sequential([Embedding(NUM_WORDS, 100, seed=s), Dropout(0.5, seed=s + 1),
                        Conv1D(64, 5, padding="valid", activation="relu", strides=1, seed=s + 2),
                        MaxPooling1D(pool_size=4), LSTM(55, seed=s + 3), Dense(1, seed=s + 4),
                        Activation("sigmoid")], seed=s)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(argv=None):
    parser = make_parser(__doc__, epochs=5, batch_size=100)
    parser.add_argument("--data", help="reviews file: '<0 or 1>\\t<text>' per line")
    parser.add_argument("--samples", type=int, default=8000, help="synthetic reviews")
    args = parse_args(parser, argv, samples=400, epochs=2)

    (x_train, y_train), (x_test, y_test), source = load_data(
        args.data, args.samples, args.seed, limit=args.samples if args.quick else None)
    print(f"{source}: {len(x_train)} training and {len(x_test)} test reviews, "
          f"{y_train.mean():.0%} positive")
    majority = max(y_test.mean(), 1 - y_test.mean())
    return fit_and_report(build_model(args.seed), x_train, y_train, args,
                          validation_data=(x_test, y_test), test=(x_test, y_test),
                          notes={"accuracy": f"majority class: {majority:.4f}"})


if __name__ == "__main__":
    main()
