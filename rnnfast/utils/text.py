"""A word- or character-level tokenizer with Keras' ``Tokenizer`` interface and rules.

``fit_on_texts`` counts tokens; ``word_index`` numbers them from 1 by decreasing count (ties
in order of first appearance), 0 being left for padding; with ``oov_token`` that token is 1
and stands for unknown tokens. Words are split on ``split`` after the characters of
``filters`` are replaced by it and the text is lower-cased (``lower``); at ``char_level``
every character is a token and ``filters`` are not applied (Keras' behaviour).
``num_words`` keeps only ids below it when converting texts to sequences::

    tok = Tokenizer(char_level=True, lower=False)
    tok.fit_on_texts([text])
    ids = tok.texts_to_sequences([text])[0]
    tok.decode(ids) == text   # when every character was seen
"""
import json
from collections import OrderedDict

__all__ = ["Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """The words of ``text``: lower-cased, ``filters`` characters turned into ``split``, split
    on ``split``, empty strings dropped."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class Tokenizer:
    """Keras' ``Tokenizer(num_words=None, filters=..., lower=True, split=" ",
    char_level=False, oov_token=None)``."""

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ",
                 char_level=False, oov_token=None):
        if num_words is not None and (isinstance(num_words, bool) or
                                      not isinstance(num_words, int) or num_words < 1):
            raise ValueError(f"num_words: expected an int >= 1 or None, got {num_words!r}")
        if not isinstance(split, str) or not split:
            raise ValueError(f"split: expected a non-empty str, got {split!r}")
        self.num_words = num_words
        self.filters = filters
        self.lower = bool(lower)
        self.split = split
        self.char_level = bool(char_level)
        self.oov_token = oov_token
        self.word_counts = OrderedDict()
        self.document_count = 0
        self.word_index = {}
        self.index_word = {}

    def _tokens(self, text):
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return text
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def _check_texts(self, texts, name):
        if isinstance(texts, str):
            raise TypeError(f"{name}: expected a list of texts, got a single str (wrap it in a "
                            "list)")
        return texts

    def fit_on_texts(self, texts):
        """Count the tokens of ``texts`` (a list of strings or of token lists) and rebuild
        ``word_index`` / ``index_word``."""
        for text in self._check_texts(texts, "texts"):
            self.document_count += 1
            for token in self._tokens(text):
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
        ranked = sorted(self.word_counts.items(), key=lambda item: item[1], reverse=True)
        vocab = ([] if self.oov_token is None else [self.oov_token]) + [w for w, _ in ranked]
        self.word_index = dict(zip(vocab, range(1, len(vocab) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        return self

    @property
    def vocab_size(self):
        """Ids in use plus the padding id 0: the size an Embedding or softmax needs."""
        n = len(self.word_index) + 1
        return n if self.num_words is None else min(n, self.num_words)

    def _oov_index(self):
        return None if self.oov_token is None else self.word_index.get(self.oov_token)

    def texts_to_sequences(self, texts):
        """Token ids of each text; unknown tokens (and ids >= num_words) become the oov id, or
        are dropped without ``oov_token``."""
        if not self.word_index:
            raise RuntimeError("Tokenizer: call fit_on_texts() first")
        oov = self._oov_index()
        out = []
        for text in self._check_texts(texts, "texts"):
            ids = []
            for token in self._tokens(text):
                i = self.word_index.get(token)
                if i is not None and self.num_words and i >= self.num_words:
                    i = None
                if i is None:
                    i = oov
                if i is not None:
                    ids.append(i)
            out.append(ids)
        return out

    def _words(self, seq):
        oov = self._oov_index()
        words = []
        for num in seq:
            num = int(num)
            word = self.index_word.get(num)
            if word is not None and self.num_words and num >= self.num_words:
                word = None
            if word is None and oov is not None:
                word = self.index_word[oov]
            if word is not None:
                words.append(word)
        return words

    def sequences_to_texts(self, sequences):
        """Keras' inverse of ``texts_to_sequences``: tokens joined by spaces (also at
        char_level), unknown ids dropped (or the oov token)."""
        return [" ".join(self._words(seq)) for seq in sequences]

    def decode(self, seq):
        """One sequence of ids back to text: characters joined directly at ``char_level``,
        words by ``split``; id 0 (padding) and unknown ids are dropped (or the oov token)."""
        return ("" if self.char_level else self.split).join(self._words(seq))

    def get_config(self):
        return {"num_words": self.num_words, "filters": self.filters, "lower": self.lower,
                "split": self.split, "char_level": self.char_level, "oov_token": self.oov_token,
                "document_count": self.document_count,
                "word_counts": list(self.word_counts.items())}

    def to_json(self):
        """The tokenizer as a JSON string (``tokenizer_from_json`` reads it back)."""
        return json.dumps({"class_name": "Tokenizer", "config": self.get_config()})


def tokenizer_from_json(json_string):
    """A Tokenizer from ``Tokenizer.to_json()``."""
    data = json.loads(json_string)
    if not isinstance(data, dict) or data.get("class_name") != "Tokenizer":
        raise ValueError("json_string: not the JSON of a Tokenizer")
    config = dict(data["config"])
    counts = config.pop("word_counts")
    documents = config.pop("document_count")
    tok = Tokenizer(**config)
    tok.word_counts = OrderedDict((w, c) for w, c in counts)
    tok.fit_on_texts([])
    tok.document_count = documents
    return tok
