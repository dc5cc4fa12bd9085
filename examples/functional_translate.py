"""Translation with attention as a Keras functional model (``rnnfast.models.Model``): the
encoder-decoder of the study notes written the way a Keras tutorial writes it, on the data of
``translate.py`` (its synthetic language pair, or ``--data`` tab-separated sentence pairs).

Training model (teacher forcing: the decoder reads the target shifted by one)::

    source = Input(shape=(None,), dtype="int64", name="source")
    target = Input(shape=(None,), dtype="int64", name="target")
    enc_out, h, c = LSTM(units, return_sequences=True, return_state=True)(
        Embedding(src_vocab, dim, mask_zero=True)(source))
    dec_out, _, _ = decoder_lstm(target_embedding(target), initial_state=[h, c])
    context = Attention()([dec_out, enc_out])           # dot-product (Luong) attention
    probs = Dense(tgt_vocab, activation="softmax")(Concatenate()([dec_out, context]))
    model = Model([source, target], probs)
    model.compile(optimizer=Adam(learning_rate=...), loss="sparse_categorical_crossentropy")

The padding masks of ``mask_zero`` flow along the graph: the encoder stops at each source's last
word, attention ignores the padded source positions, and the loss skips the padded target steps.

Greedy decoding uses two inference models that share the trained layers (Keras' pattern): an
encoder model ``source -> [enc_out, h, c]`` and a one-step decoder model ``[word, enc_out, h,
c] -> [probs, h, c]``, called once per output word for a batch of sentences of the same source
length. Reported: the loss per epoch, the time per epoch, corpus BLEU of the greedy test
translations, example translations, and that the saved model loads back with equal
predictions.

Usage: ``python examples/functional_translate.py [--data FILE] [--epochs N] [--quick]``.
"""
import os
import tempfile
import time

import numpy as np

from _common import EpochTimer, make_parser, parse_args
from rnnfast.models import Input, Model, load_model
from rnnfast.models.layers import LSTM, Attention, Concatenate, Dense, Embedding
from rnnfast.models.optimizers import Adam
from rnnfast.utils import corpus_bleu, pad_sequences
from translate import END, START, load_data, make_batch, to_words


def build_models(src_vocab, tgt_vocab, dim, units, seed):
    """The training model and the two inference models, sharing their layers."""
    src_embedding = Embedding(src_vocab, dim, mask_zero=True, seed=seed, name="src_embedding")
    tgt_embedding = Embedding(tgt_vocab, dim, mask_zero=True, seed=seed + 1,
                              name="tgt_embedding")
    encoder = LSTM(units, return_sequences=True, return_state=True, seed=seed + 2,
                   name="encoder")
    decoder = LSTM(units, return_sequences=True, return_state=True, seed=seed + 3,
                   name="decoder")
    attention = Attention(name="attention")
    concat = Concatenate(name="concat")
    output = Dense(tgt_vocab, activation="softmax", seed=seed + 4, name="probs")

    source = Input(shape=(None,), dtype="int64", name="source")
    target = Input(shape=(None,), dtype="int64", name="target")
    enc_out, h, c = encoder(src_embedding(source))
    dec_out, _, _ = decoder(tgt_embedding(target), initial_state=[h, c])
    probs = output(concat([dec_out, attention([dec_out, enc_out])]))
    model = Model([source, target], probs, name="translator", seed=seed)

    encoder_model = Model(source, [enc_out, h, c], name="encoder_model")
    word = Input(shape=(1,), dtype="int64", name="word")
    enc_in = Input(shape=(None, units), name="encoder_outputs")
    h_in, c_in = Input(shape=(units,), name="h"), Input(shape=(units,), name="c")
    step_out, h_out, c_out = decoder(tgt_embedding(word), initial_state=[h_in, c_in])
    step_probs = output(concat([step_out, attention([step_out, enc_in])]))
    step_model = Model([word, enc_in, h_in, c_in], [step_probs, h_out, c_out],
                       name="decoder_step")
    return model, encoder_model, step_model


def greedy(encoder_model, step_model, sources, max_len):
    """Greedy translations (id lists without the end token) of same-length ``sources``."""
    enc_out, h, c = encoder_model.predict(np.array(sources, np.int64), batch_size=len(sources))
    word = np.full((len(sources), 1), START, np.int64)
    out = [[] for _ in sources]
    done = np.zeros(len(sources), bool)
    for _ in range(max_len):
        probs, h, c = step_model.predict([word, enc_out, h, c], batch_size=len(sources))
        word = probs[:, -1].argmax(-1)[:, None].astype(np.int64)
        for k, w in enumerate(word[:, 0]):
            if not done[k]:
                if w == END:
                    done[k] = True
                else:
                    out[k].append(int(w))
        if done.all():
            break
    return out


def translate_all(encoder_model, step_model, sources, max_len):
    """Greedy translations of ``sources``, batched by source length (no padding)."""
    results = [None] * len(sources)
    by_length = {}
    for k, s in enumerate(sources):
        by_length.setdefault(len(s), []).append(k)
    for ks in by_length.values():
        for k, hyp in zip(ks, greedy(encoder_model, step_model, [sources[k] for k in ks],
                                     max_len)):
            results[k] = hyp
    return results


def main(argv=None):
    parser = make_parser(__doc__, epochs=10, batch_size=64)
    parser.add_argument("--data", help="tab-separated sentence pairs (source, target)")
    parser.add_argument("--pairs", type=int, default=8000, help="synthetic sentence pairs")
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--examples", type=int, default=3, help="translations to show")
    args = parse_args(parser, argv, pairs=300, epochs=2, hidden=32, embedding_dim=16)

    (src, tgt, _), (src_test, tgt_test, pairs_test), (src_tok, tgt_tok), source = load_data(
        args.data, args.pairs, args.seed, limit=300 if args.quick else None)
    src_vocab, tgt_vocab = src_tok.vocab_size, tgt_tok.vocab_size + 2
    print(f"{source}: {len(src)} training and {len(src_test)} test pairs")
    model, encoder_model, step_model = build_models(src_vocab, tgt_vocab, args.embedding_dim,
                                                    args.hidden, args.seed)
    model.summary()
    model.compile(optimizer=Adam(learning_rate=args.lr, clipnorm=5.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, t_in, t_out = make_batch(src, tgt)
    timer = EpochTimer()
    model.fit([x, t_in], t_out, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
              callbacks=[timer])
    if timer.times:
        print(f"time per epoch: {np.mean(timer.times):.3f}s")

    max_len = max(len(t) for t in tgt) + 5
    start = time.perf_counter()
    hyps = translate_all(encoder_model, step_model, src_test, max_len)
    seconds = time.perf_counter() - start
    references = [[to_words(tgt_tok, t)] for t in tgt_test]
    words = [to_words(tgt_tok, h) for h in hyps]
    print(f"BLEU greedy: {corpus_bleu(references, words):.4f} ({len(hyps)} test sentences, "
          f"{1000 * seconds / len(hyps):.1f}ms per sentence)")
    for k in range(min(args.examples, len(src_test))):
        print(f"  source:    {pairs_test[k][0]}")
        print(f"  reference: {' '.join(references[k][0])}")
        print(f"  greedy:    {' '.join(words[k])}")

    xs, ts, _ = make_batch(src_test, tgt_test)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "translator.keras")
        model.save(path)
        same = np.array_equal(load_model(path).predict([xs, ts]), model.predict([xs, ts]))
    print(f"saved and loaded: predictions {'equal' if same else 'DIFFERENT'}")
    return hyps


if __name__ == "__main__":
    main()
