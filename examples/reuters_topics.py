"""Topic classification of news articles, the Reuters workflow of the study notes:
``Embedding(1000, 100) -> LSTM(100) -> Dense(46, softmax)``, categorical cross-entropy, Adam,
articles cut or pre-padded to 100 words with ``pad_sequences``, labels one-hot with
``to_categorical``; gradients clipped to norm 1 (``clipnorm``, the notes' remedy for exploding
gradients), which keeps the accuracy from swinging between epochs.

Data
    ``--data FILE``: one article per line, ``<label><TAB><text>``. The text is either token ids
    separated by spaces (ids >= 1000 are dropped, as ``num_words=1000`` does; for instance
    ``keras.datasets.reuters`` written out) or words, which are tokenised keeping the 999 most
    frequent. The last 20% of the lines are the test set.

    Without ``--data``: synthetic articles with a learnable structure. There are 46 topics;
    each owns 6 keyword ids (from 100..999). An article has 20 to 200 words: each word is one
    of its topic's keywords with probability 0.4, otherwise a background id drawn from a
    Zipf-like law over 1..999 (id k with weight 1/k). The topic can be read from the keywords
    among the last 100 words, which an LSTM learns to spot; chance level is 1/46.

Usage: ``python examples/reuters_topics.py [--data FILE] [--epochs N] [--quick]``
(``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds on a small sample).
"""
import numpy as np

from _common import fit_and_report, make_parser, parse_args
from rnnfast.models import Sequential
from rnnfast.models.layers import LSTM, Dense, Embedding
from rnnfast.utils import Tokenizer, pad_sequences, to_categorical

NUM_WORDS, TOPICS, MAXLEN = 1000, 46, 100


def synthetic_articles(count, rng):
    keywords = rng.permutation(np.arange(100, NUM_WORDS))[:TOPICS * 6].reshape(TOPICS, 6)
    weights = 1.0 / np.arange(1, NUM_WORDS)
    weights /= weights.sum()
    labels = rng.integers(0, TOPICS, count)
    articles = []
    for label in labels:
        n = int(rng.integers(20, 201))
        words = rng.choice(np.arange(1, NUM_WORDS), size=n, p=weights)
        is_key = rng.random(n) < 0.4
        words[is_key] = rng.choice(keywords[label], size=int(is_key.sum()))
        articles.append(words.tolist())
    return articles, labels


def read_articles(path):
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, sep, text = line.rstrip("\n").partition("\t")
            if not sep:
                raise SystemExit(f"{path}:{number}: expected '<label><TAB><text>'")
            labels.append(int(label))
            texts.append(text)
    if all(tok.isdigit() for text in texts for tok in text.split()):
        articles = [[int(t) for t in text.split() if int(t) < NUM_WORDS] for text in texts]
    else:
        tokenizer = Tokenizer(num_words=NUM_WORDS)
        tokenizer.fit_on_texts(texts)
        articles = tokenizer.texts_to_sequences(texts)
    return articles, np.array(labels)


def load_data(path=None, samples=5000, seed=0, limit=None):
    """``(x_train, y_train), (x_test, y_test), categories, source``: the articles of ``path``
    (the first ``limit`` of them) or ``samples`` synthetic ones, cut or pre-padded to 100
    words, one-hot labels, the last 20% for testing."""
    if path:
        articles, labels = read_articles(path)
        if limit:
            articles, labels = articles[:limit], labels[:limit]
        source = path
    else:
        articles, labels = synthetic_articles(samples, np.random.default_rng(seed))
        source = "synthetic articles (46 topics, 6 keywords each)"
    split = int(len(articles) * 0.8)
    x_train = pad_sequences(articles[:split], maxlen=MAXLEN)
    x_test = pad_sequences(articles[split:], maxlen=MAXLEN)
    categories = max(int(labels.max()) + 1, TOPICS)
    y_train = to_categorical(labels[:split], categories)
    y_test = to_categorical(labels[split:], categories)
    return (x_train, y_train), (x_test, y_test), categories, source


def build_model(categories=TOPICS, clipnorm=1.0, seed=0):
    """The notes' model, compiled: Embedding(1000, 100) -> LSTM(100) -> Dense(softmax)."""
    model = Sequential([Embedding(NUM_WORDS, 100, seed=seed),
                        LSTM(100, activation="tanh", seed=seed + 1),
                        Dense(categories, activation="softmax", seed=seed + 2)], seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"],
                  clipnorm=clipnorm or None)
    return model


def main(argv=None):
    parser = make_parser(__doc__, epochs=10, batch_size=100)
    parser.add_argument("--data", help="articles file: '<label>\\t<ids or text>' per line")
    parser.add_argument("--samples", type=int, default=5000, help="synthetic articles")
    parser.add_argument("--clipnorm", type=float, default=1.0,
                        help="clip each gradient's norm (Keras' clipnorm; 0: no clipping)")
    args = parse_args(parser, argv, samples=400, epochs=2)

    (x_train, y_train), (x_test, y_test), categories, source = load_data(
        args.data, args.samples, args.seed, limit=args.samples if args.quick else None)
    print(f"{source}: {len(x_train)} training and {len(x_test)} test articles, "
          f"{categories} categories")
    model = build_model(categories, args.clipnorm, args.seed)
    return fit_and_report(model, x_train, y_train, args, validation_data=(x_test, y_test),
                          test=(x_test, y_test),
                          notes={"accuracy": f"chance: {1 / categories:.4f}"})


if __name__ == "__main__":
    main()
