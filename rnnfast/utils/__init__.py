"""Data utilities of the seed workflows, NumPy only:

- ``pad_sequences`` (Keras' semantics; the loop over ragged lists is Cython) and
  ``to_categorical``;
- ``sliding_windows`` / ``build_dataset``, ``chronological_split`` and ``MinMaxScaler`` for
  time series;
- ``Tokenizer`` (word or character level, Keras' rules) for text and generation;
- ``Progbar``, the progress bar of ``Sequential.fit``;
- ``mu_law_encode`` / ``mu_law_decode`` for waveforms (WaveNet) and ``corpus_bleu`` /
  ``sentence_bleu`` for translations.
"""
from rnnfast.utils.audio import mu_law_decode, mu_law_encode
from rnnfast.utils.bleu import corpus_bleu, sentence_bleu
from rnnfast.utils.categorical import to_categorical
from rnnfast.utils.progress import Progbar
from rnnfast.utils.sequence import pad_sequences
from rnnfast.utils.text import Tokenizer, text_to_word_sequence, tokenizer_from_json
from rnnfast.utils.timeseries import (
    MinMaxScaler,
    build_dataset,
    chronological_split,
    sliding_windows,
)

__all__ = [
    "MinMaxScaler",
    "Progbar",
    "Tokenizer",
    "build_dataset",
    "chronological_split",
    "corpus_bleu",
    "mu_law_decode",
    "mu_law_encode",
    "pad_sequences",
    "sentence_bleu",
    "sliding_windows",
    "text_to_word_sequence",
    "to_categorical",
    "tokenizer_from_json",
]
