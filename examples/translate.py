"""Neural machine translation with attention, the encoder-decoder workflow of the study notes:
a bidirectional LSTM encoder, an LSTM decoder that attends over all encoder outputs at every
step (``--attention dot``, Luong, or ``additive``, Bahdanau), trained with teacher forcing
(``rnnfast.nn.Seq2Seq``, sparse categorical cross-entropy on logits with the padded steps
masked, Adam, gradients clipped to norm 5), then decoded greedily and with beam search
(k=1 against k=5, the notes' comparison; beams of k hypotheses run as one batch, with an end
token and length normalisation).

Data
    ``--data FILE``: tab-separated sentence pairs, one per line, source first (the format of
    the Tatoeba/Anki files, ``Go.<TAB>Va !<TAB>attribution``: columns after the second are
    ignored). Words are lower-cased, punctuation dropped (Keras' Tokenizer rules). The last
    10% of the pairs (at most 500) are the test set.

    Without ``--data``: a synthetic language pair with real structure. The source is English-
    like, subject-verb-object: ``the big dog sees a red cat near the old house``, with plural
    subjects and objects (``the dogs see ...``), 0-2 adjectives per noun and an optional place.
    The target is a made-up language (pseudo-words) that differs in every way a translation
    model must learn: subject-object-verb order with the place phrase moved after the subject,
    adjectives after the noun, nouns with a grammatical gender, determiners and adjectives
    agreeing with their noun in gender and number, and the verb agreeing in number with the
    subject. 60 nouns, 30 adjectives, 30 verbs: about 250 source words and 400 target words.

Reported: the loss and token accuracy per epoch and the time per epoch; corpus BLEU (4-gram,
``rnnfast.utils.corpus_bleu``) of the test translations, greedy against beam search;
example translations; an attention heat-map of one test sentence (``--plot``, default
``translate.png``) when matplotlib is installed.

Usage: ``python examples/translate.py [--data FILE] [--attention dot|additive] [--epochs N]
[--quick]`` (``--quick`` or ``RNNFAST_EXAMPLES_QUICK=1``: a few seconds on a small sample).
"""
import time

import numpy as np

from _common import make_parser, parse_args
from rnnfast import generation, losses, nn, optim
from rnnfast.utils import Tokenizer, corpus_bleu, pad_sequences, text_to_word_sequence

START, END = 1, 2              # target ids; 0 is padding, words start at 3

NOUNS = ["dog", "cat", "bird", "horse", "child", "teacher", "doctor", "farmer", "king", "queen",
         "friend", "student", "soldier", "baker", "singer", "painter", "sailor", "driver",
         "lawyer", "writer", "house", "tree", "river", "car", "book", "table", "window", "door",
         "garden", "road", "bridge", "boat", "city", "village", "mountain", "forest", "field",
         "school", "market", "church", "letter", "song", "picture", "apple", "flower", "stone",
         "chair", "bottle", "ship", "train", "hat", "coat", "lamp", "clock", "key", "box", "cup",
         "shop", "tower", "wall"]
ADJECTIVES = ["big", "small", "old", "young", "red", "blue", "green", "black", "white", "happy",
              "sad", "tall", "short", "new", "quiet", "loud", "rich", "poor", "strong", "weak",
              "kind", "cruel", "clever", "brave", "lazy", "busy", "famous", "strange", "dark",
              "bright"]
VERBS = ["see", "like", "find", "take", "watch", "help", "follow", "paint", "carry", "want",
         "need", "visit", "draw", "hold", "open", "close", "build", "buy", "sell", "love",
         "hate", "meet", "miss", "call", "keep", "push", "pull", "touch", "clean", "move"]
PLACES = ["near", "behind", "under", "beside"]
SYLLABLES = ["ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "ri", "ma", "tu", "be",
             "go", "fi", "la", "ze", "ko", "ni", "su", "ba", "ve", "do", "hu", "ga", "pe", "zo"]


def lexicon(seed=7):
    """The target language's words: a pseudo-word stem per source word (a fixed draw, not
    ``--seed``), each noun's gender."""
    rng = np.random.default_rng(seed)
    used = set()

    def word(syllables):
        while True:
            w = "".join(rng.choice(SYLLABLES, syllables))
            if w not in used:
                used.add(w)
                return w
    nouns = {n: (word(2), "mf"[int(rng.integers(2))]) for n in NOUNS}
    adjectives = {a: word(2) for a in ADJECTIVES}
    verbs = {v: word(3) for v in VERBS}
    places = {p: word(1) + "n" for p in PLACES}
    return nouns, adjectives, verbs, places


def _plural(noun):
    return noun[:-1] + "ren" if noun == "child" else noun + ("es" if noun[-1] in "sxh" else "s")


def synthetic_pairs(count, rng, lex=None):
    """``count`` (source, target) sentence pairs of the synthetic language pair."""
    nouns, adjectives, verbs, places = lex or lexicon()

    def phrase():
        noun = NOUNS[rng.integers(len(NOUNS))]
        plural = rng.random() < 0.35
        definite = rng.random() < 0.6
        adjs = list(rng.choice(ADJECTIVES, int(rng.choice(3, p=[0.4, 0.4, 0.2])),
                               replace=False))
        det = "the" if definite else ("some" if plural else "a")
        src = [det] + adjs + [_plural(noun) if plural else noun]
        stem, gender = nouns[noun]
        ending = {"m": "o", "f": "a"}[gender] + ("s" if plural else "")
        t_det = ("el" if definite else "un") + ending
        tgt = [t_det, stem + ("i" if plural else "")] + [adjectives[a] + ending for a in adjs]
        return src, tgt, plural

    pairs = []
    for _ in range(count):
        subj, t_subj, plural = phrase()
        obj, t_obj, _ = phrase()
        verb = VERBS[rng.integers(len(VERBS))]
        src = subj + [verb if plural else verb + ("es" if verb[-1] in "sh" else "s")] + obj
        tgt_place = []
        if rng.random() < 0.3:
            place = PLACES[rng.integers(len(PLACES))]
            where, t_where, _ = phrase()
            src += [place] + where
            tgt_place = [places[place]] + t_where
        tgt = t_subj + tgt_place + t_obj + [verbs[verb] + ("en" if plural else "e")]
        pairs.append((" ".join(src), " ".join(tgt)))
    return pairs


def read_pairs(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
                raise SystemExit(f"{path}:{number}: expected 'source<TAB>target', got {line!r}")
            pairs.append((cols[0], cols[1]))
    return pairs


def load_data(path=None, pairs=8000, seed=0, limit=None):
    """Train and test pairs (token id lists), the two tokenizers and the source's name."""
    if path:
        data = read_pairs(path)
        source = path
    else:
        data = synthetic_pairs(pairs, np.random.default_rng(seed))
        source = "synthetic language pair"
    if limit:
        data = data[:limit]
    if len(data) < 5:
        raise SystemExit(f"{source}: {len(data)} sentence pairs are too few (at least 5)")
    order = np.random.default_rng(seed).permutation(len(data))
    data = [data[i] for i in order]
    n_test = min(max(len(data) // 10, 1), 500)
    train, test = data[:-n_test], data[-n_test:]
    src_tok, tgt_tok = Tokenizer(), Tokenizer()
    src_tok.fit_on_texts([s for s, _ in train])
    tgt_tok.fit_on_texts([t for _, t in train])

    def ids(pairs):
        src = src_tok.texts_to_sequences([s for s, _ in pairs])
        tgt = [[i + 2 for i in seq] for seq in tgt_tok.texts_to_sequences([t for _, t in pairs])]
        keep = [k for k, s in enumerate(src) if s]
        return [src[k] for k in keep], [tgt[k] for k in keep], [pairs[k] for k in keep]
    return ids(train), ids(test), (src_tok, tgt_tok), source


def to_words(tgt_tok, ids):
    return tgt_tok.sequences_to_texts([[i - 2 for i in ids if i > END]])[0].split()


def make_batch(src, tgt):
    """Post-padded source ids, decoder inputs (start token first) and targets (end token
    last)."""
    x = pad_sequences(src, padding="post").astype(np.int64)
    t_in = pad_sequences([[START] + t for t in tgt], padding="post").astype(np.int64)
    t_out = pad_sequences([t + [END] for t in tgt], padding="post").astype(np.int64)
    return x, t_in, t_out


def train_epoch(model, opt, loss, src, tgt, batch_size, rng):
    """One pass over the pairs in shuffled batches; mean loss and token accuracy."""
    order = rng.permutation(len(src))
    total = correct = tokens = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x, t_in, t_out = make_batch([src[i] for i in idx], [tgt[i] for i in idx])
        mask = t_out != 0
        logits = model(x, t_in)
        value = loss(t_out, logits, mask=mask)
        model.zero_grad()
        model.backward(loss.backward())
        optim.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        n = mask.sum()
        total += value * n
        tokens += n
        correct += ((logits.argmax(-1) == t_out) & mask).sum()
    return total / tokens, correct / tokens


def build_model(src_vocab, tgt_vocab, embedding_dim=64, hidden=128, attention="dot", lr=3e-3,
                seed=0):
    """The model, its optimiser (Adam) and loss (cross-entropy on logits)."""
    model = nn.Seq2Seq(src_vocab, tgt_vocab, embedding_dim, hidden, attention=attention,
                       seed=seed)
    return model, optim.Adam(model.parameters(), lr=lr), \
        losses.SparseCategoricalCrossentropy(from_logits=True)


def translate(model, src, max_len, beam_width=None):
    """Target ids of one source (without the end token): greedy, or beam search of
    ``beam_width`` hypotheses with length normalisation."""
    dec = generation.Seq2SeqDecoder(model, np.array(src))
    if beam_width is None:
        out = generation.greedy(dec, [START], max_len, end_token=END)
    else:
        out = generation.beam_search(dec, [START], max_len, beam_width=beam_width,
                                     end_token=END, length_penalty=1.0)
    return out[:-1] if out and out[-1] == END else out


def plot_attention(weights, src_words, tgt_words, path):
    """A heat-map of attention weights (target rows, source columns) as a PNG; False when
    matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(8, 6))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    axes.set_xticks(range(len(src_words)))
    axes.set_xticklabels(src_words, rotation=60, ha="right")
    axes.set_yticks(range(len(tgt_words)))
    axes.set_yticklabels(tgt_words)
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    axes.set_title("attention weights")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main(argv=None):
    parser = make_parser(__doc__, epochs=8, batch_size=64)
    parser.add_argument("--data", help="tab-separated sentence pairs (source, target)")
    parser.add_argument("--pairs", type=int, default=8000, help="synthetic sentence pairs")
    parser.add_argument("--attention", choices=["dot", "additive"], default="dot")
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument("--examples", type=int, default=5, help="translations to show")
    parser.add_argument("--plot", default="translate.png", help="PNG of attention weights")
    args = parse_args(parser, argv, pairs=300, epochs=2, hidden=32, embedding_dim=16)

    (src, tgt, _), (src_test, tgt_test, pairs_test), (src_tok, tgt_tok), source = load_data(
        args.data, args.pairs, args.seed, limit=300 if args.quick else None)
    src_vocab, tgt_vocab = src_tok.vocab_size, tgt_tok.vocab_size + 2
    print(f"{source}: {len(src)} training and {len(src_test)} test pairs, vocabularies "
          f"{src_vocab - 1} and {tgt_vocab - 3} words")
    model, opt, loss = build_model(src_vocab, tgt_vocab, args.embedding_dim, args.hidden,
                                   args.attention, args.lr, args.seed)
    params = sum(p.size for p in model.parameters())
    print(f"model: {model.attention} attention, hidden {args.hidden}, {params:,} parameters")
    rng = np.random.default_rng(args.seed)
    steps = -(-len(src) // args.batch_size)
    times = []
    for epoch in range(args.epochs):
        model.train()
        start = time.perf_counter()
        value, accuracy = train_epoch(model, opt, loss, src, tgt, args.batch_size, rng)
        times.append(time.perf_counter() - start)
        print(f"Epoch {epoch + 1}/{args.epochs} - {times[-1]:.2f}s "
              f"({1000 * times[-1] / steps:.0f}ms/step) - loss: {value:.4f} - "
              f"accuracy: {accuracy:.4f}")
    if times:
        print(f"time per epoch: {np.mean(times):.3f}s")

    model.eval()
    max_len = max(len(t) for t in tgt) + 5
    references = [[to_words(tgt_tok, t)] for t in tgt_test]
    results = {}
    for name, width in (("greedy (k=1)", None), (f"beam search (k={args.beam_width})",
                                                  args.beam_width)):
        start = time.perf_counter()
        hyps = [translate(model, s, max_len, width) for s in src_test]
        seconds = time.perf_counter() - start
        results[name] = [to_words(tgt_tok, h) for h in hyps]
        bleu = corpus_bleu(references, results[name])
        print(f"BLEU {name}: {bleu:.4f} ({len(hyps)} test sentences, "
              f"{1000 * seconds / len(hyps):.1f}ms per sentence)")
    names = list(results)
    print("example translations:")
    for k in range(min(args.examples, len(src_test))):
        print(f"  source:    {pairs_test[k][0]}")
        print(f"  reference: {' '.join(references[k][0])}")
        for name in names:
            print(f"  {name:>18}: {' '.join(results[name][k])}")

    # the attention weights of the greedy translation of the first test sentence
    out = translate(model, src_test[0], max_len) + [END]
    model(np.array([src_test[0]]), np.array([[START] + out[:-1]]))
    src_words = text_to_word_sequence(pairs_test[0][0])
    tgt_words = to_words(tgt_tok, out[:-1]) + ["<end>"]
    if plot_attention(model.attention_weights[0], src_words, tgt_words, args.plot):
        print(f"attention heat-map written to {args.plot}")
    else:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
    return results


if __name__ == "__main__":
    main()
