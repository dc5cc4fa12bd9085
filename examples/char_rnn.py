"""Text generation with a character-level (or word-level) recurrent language model, the
Char-RNN workflow of the study notes: windows of the text predict the next character
(``Embedding -> LSTM(128) -> Dense(vocab, softmax)``, or a GRU with ``--cell gru`` as in the
notes' Shakespeare model; sparse categorical cross-entropy, Adam);
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

Usage: ``python examples/char_rnn.py [--text FILE] [--level char|word] [--cell lstm|gru]
[--epochs N] [--prompt TEXT] [--quick]`` (``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds).
"""
import functools

import numpy as np

from _common import fit_and_report, make_parser, parse_args
from rnnfast import generation, optim
from rnnfast.models import Sequential
from rnnfast.models.layers import GRU, LSTM, Dense, Embedding
from rnnfast.utils import Tokenizer, sliding_windows

SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "a small bird", "the teacher"]
VERBS = ["sat on", "ran to", "looked at", "jumped over", "walked past", "slept under"]
OBJECTS = ["the mat", "the park", "a red ball", "the tall tree", "the river", "an open door"]


def synthetic_text(sentences, rng):
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
                    for _ in range(sentences))


def load_data(text_path=None, level="char", window=None, sentences=400, seed=0, limit=None):
    """``(x, y)`` (windows of token ids and the id that follows each), the fitted tokenizer,
    the text and its source: the file at ``text_path`` (its first ``limit`` characters) or
    ``sentences`` synthetic sentences."""
    char_level = level == "char"
    window = window or (30 if char_level else 5)
    if text_path:
        with open(text_path, encoding="utf-8") as f:
            text = f.read()
        if limit:
            text = text[:limit]
        source = text_path
    else:
        text = synthetic_text(sentences, np.random.default_rng(seed))
        source = f"{sentences} synthetic sentences"
    tokenizer = Tokenizer(char_level=char_level, lower=not char_level)
    tokenizer.fit_on_texts([text])
    ids = np.array(tokenizer.texts_to_sequences([text])[0])
    if len(ids) <= window:
        raise SystemExit(f"{source}: {len(ids)} tokens are too few for windows of {window}")
    x, y = sliding_windows(ids, window, target=0)
    return (x[..., 0], y[:, 0]), tokenizer, text, source


def build_model(vocab, embedding_dim=32, seed=0, cell="lstm"):
    """The notes' model, compiled: Embedding -> LSTM(128) (or GRU(128)) -> Dense(vocab,
    softmax), sparse categorical cross-entropy, Adam(lr=3e-3), gradients clipped to norm 5."""
    recurrent = {"lstm": LSTM, "gru": GRU}[cell]
    model = Sequential([Embedding(vocab, embedding_dim, seed=seed),
                        recurrent(128, seed=seed + 1),
                        Dense(vocab, activation="softmax", seed=seed + 2)], seed=seed)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=functools.partial(optim.Adam, lr=3e-3), metrics=["accuracy"],
                  clipnorm=5.0)
    return model


def main(argv=None):
    parser = make_parser(__doc__, epochs=5, batch_size=128)
    parser.add_argument("--text", help="a UTF-8 text file to learn")
    parser.add_argument("--level", choices=["char", "word"], default="char")
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm",
                        help="the recurrent layer (the notes' Shakespeare model is a GRU)")
    parser.add_argument("--window", type=int, default=None,
                        help="context length (default: 30 characters or 5 words)")
    parser.add_argument("--sentences", type=int, default=400, help="synthetic sentences")
    parser.add_argument("--prompt", default=None, help="start of the generated text")
    parser.add_argument("--length", type=int, default=None, help="tokens to generate")
    parser.add_argument("--beam-width", type=int, default=5)
    args = parse_args(parser, argv, sentences=30, epochs=1, length=20)
    char_level = args.level == "char"
    length = args.length or (80 if char_level else 12)

    (x, y), tokenizer, text, source = load_data(args.text, args.level, args.window,
                                                args.sentences, args.seed,
                                                limit=1000 if args.quick else None)
    vocab = len(tokenizer.word_index) + 1  # id 0 is never used (padding)
    print(f"{source}: {len(x) + x.shape[1]} {args.level} tokens, vocabulary {vocab - 1}, "
          f"{len(x)} windows of {x.shape[1]}")
    model = build_model(vocab, 32 if char_level else 10, args.seed, args.cell)
    history = fit_and_report(model, x, y, args)

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
