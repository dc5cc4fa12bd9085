"""Text generation with a character-level (or word-level) recurrent language model, the
Char-RNN workflow of the study notes: windows of the text predict the next character
(``Embedding -> LSTM(128) -> Dense(vocab, softmax)``, sparse categorical cross-entropy, Adam);
then text is generated one step at a time from a prompt by greedy decoding, temperature
sampling (seeded) and beam search.

Data
    ``--text FILE``: any UTF-8 text (``--level word`` splits it into lower-cased words, as
    Keras' Tokenizer does).

    Without ``--text``: synthetic text with a learnable structure: sentences made by a small
    grammar, ``<subject> <verb> <object>.``, with 6 subjects ("the cat", "a dog", ...), 6 verbs
    ("sat on", "ran to", ...) and 6 objects ("the mat", "the park", ...), drawn at random and
    joined by spaces. A model that learned it spells every word right and continues each
    phrase with a grammatical one; which subject, verb or object comes next is random.

Usage: ``python examples/char_rnn.py [--text FILE] [--level char|word] [--epochs N]
[--prompt TEXT] [--quick]`` (``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds).
"""
import argparse
import functools
import os
import time

import numpy as np

from rnnfast import generation, optim
from rnnfast.models import Sequential
from rnnfast.models.layers import LSTM, Dense, Embedding
from rnnfast.utils import Tokenizer, sliding_windows

SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "a small bird", "the teacher"]
VERBS = ["sat on", "ran to", "looked at", "jumped over", "walked past", "slept under"]
OBJECTS = ["the mat", "the park", "a red ball", "the tall tree", "the river", "an open door"]


def synthetic_text(sentences, rng):
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
                    for _ in range(sentences))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", help="a UTF-8 text file to learn")
    parser.add_argument("--level", choices=["char", "word"], default="char")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--window", type=int, default=None,
                        help="context length (default: 30 characters or 5 words)")
    parser.add_argument("--sentences", type=int, default=400, help="synthetic sentences")
    parser.add_argument("--prompt", default=None, help="start of the generated text")
    parser.add_argument("--length", type=int, default=None, help="tokens to generate")
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds on a small sample")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("RNNFAST_EXAMPLES_QUICK") == "1"
    if quick:
        args.sentences, args.epochs, args.length = 30, 1, 20
    rng = np.random.default_rng(args.seed)
    char_level = args.level == "char"
    window = args.window or (30 if char_level else 5)
    length = args.length or (80 if char_level else 12)

    if args.text:
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
        if quick:
            text = text[:1000]
        source = args.text
    else:
        text = synthetic_text(args.sentences, rng)
        source = f"{args.sentences} synthetic sentences"
    tokenizer = Tokenizer(char_level=char_level, lower=not char_level)
    tokenizer.fit_on_texts([text])
    ids = np.array(tokenizer.texts_to_sequences([text])[0])
    vocab = len(tokenizer.word_index) + 1  # id 0 is never used (padding)
    if len(ids) <= window:
        raise SystemExit(f"{source}: {len(ids)} tokens are too few for windows of {window}")
    x, y = sliding_windows(ids, window, target=0)
    x, y = x[..., 0], y[:, 0]
    print(f"{source}: {len(ids)} {args.level} tokens, vocabulary {vocab - 1}, "
          f"{len(x)} windows of {window}")

    model = Sequential([Embedding(vocab, 32 if char_level else 10, seed=args.seed),
                        LSTM(128, seed=args.seed + 1),
                        Dense(vocab, activation="softmax", seed=args.seed + 2)], seed=args.seed)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=functools.partial(optim.Adam, lr=3e-3), metrics=["accuracy"],
                  clipnorm=5.0)
    model.summary()
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    total = time.perf_counter() - start
    print(f"time per epoch: {total / max(len(history['loss']), 1):.2f}s")
    print(f"final loss: {history['loss'][-1]:.4f}, accuracy: {history['accuracy'][-1]:.4f}")

    prompt_text = args.prompt if args.prompt is not None else \
        (text[:4] if char_level else " ".join(text.split()[:2]))
    prompt = tokenizer.texts_to_sequences([prompt_text])[0]
    if not prompt:
        raise SystemExit(f"--prompt {prompt_text!r}: no known {args.level}s in it")
    sep = "" if char_level else " "
    lm = generation.LanguageModel(model)

    def show(name, generated):
        print(f"{name:>24}: {prompt_text}{sep}{tokenizer.decode(generated)}")

    print(f"generated from the prompt {prompt_text!r}:")
    show("greedy", generation.greedy(lm, prompt, length))
    for temperature in (0.5, 1.0):
        show(f"sampling, T={temperature}",
             generation.sample(lm, prompt, length, temperature=temperature, seed=args.seed))
    show(f"beam search, width {args.beam_width}",
         generation.beam_search(lm, prompt, length, beam_width=args.beam_width))
    return history


if __name__ == "__main__":
    main()
